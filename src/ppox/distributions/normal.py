"""Diagonal Gaussian for Box actions (SPEC §3.2).

Samples are unbounded; the caller stores and trains on them and bounds only the copy sent to
the environment (seed 002; storing clipped actions changes the density the ratio uses).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class DiagNormal:
    """Independent normals over the last axis: ``mean`` and ``log_std`` are ``[B, d]``."""

    def __init__(self, mean: Tensor, log_std: Tensor) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + noise * self.log_std.exp()

    def sample_log_prob(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        action = self.mean + noise * self.log_std.exp()
        # z = noise exactly, so the density needs no division
        return action, (-0.5 * noise.square() - self.log_std - _LOG_SQRT_2PI).sum(-1)

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, action: Tensor) -> Tensor:
        z = (action - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * z.square() - self.log_std - _LOG_SQRT_2PI).sum(-1)

    def entropy(self) -> Tensor:
        return (self.log_std + 0.5 + _LOG_SQRT_2PI).sum(-1)

    def kl(self, other: DiagNormal) -> Tensor:
        var_ratio = torch.exp(2 * (self.log_std - other.log_std))
        t = ((self.mean - other.mean) * torch.exp(-other.log_std)).square()
        return 0.5 * (var_ratio + t - 1).sum(-1) - (self.log_std - other.log_std).sum(-1)

    def histograms(self) -> dict[str, Tensor]:
        return {"action_std": self.log_std.exp()}
