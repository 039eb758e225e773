"""Diagonal Gaussian for Box actions, and the Box head (SPEC §3.2).

Samples are unbounded; the caller stores and trains on them and bounds only the copy sent to
the environment (seed 002; storing clipped actions changes the density the ratio uses).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from ppox.config import PolicyConfig
from ppox.distributions.base import ActionHead
from ppox.errors import EnvError

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
"""``log √(2π)``, the constant of a normal log-density."""
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def normal_log_density(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Elementwise ``log N(x; mean, exp(log_std)²)`` (no sum)."""
    z = (x - mean) * torch.exp(-log_std)
    return -0.5 * z.square() - log_std - LOG_SQRT_2PI


def normal_entropy(log_std: Tensor) -> Tensor:
    """Elementwise entropy of ``N(·, exp(log_std)²)``."""
    return log_std + 0.5 + LOG_SQRT_2PI


def normal_kl(mean_p: Tensor, log_std_p: Tensor, mean_q: Tensor, log_std_q: Tensor) -> Tensor:
    """Elementwise ``KL(N_p ‖ N_q)``."""
    var_ratio = torch.exp(2 * (log_std_p - log_std_q))
    t = ((mean_p - mean_q) * torch.exp(-log_std_q)).square()
    return 0.5 * (var_ratio + t - 1) - (log_std_p - log_std_q)


class DiagNormal:
    """Independent normals over the last axis: ``mean`` and ``log_std`` are ``[B, d]``."""

    def __init__(self, mean: Tensor, log_std: Tensor) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(
            self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device
        )
        return self.mean + noise * self.log_std.exp()

    def sample_log_prob(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        noise = torch.randn(
            self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device
        )
        action = self.mean + noise * self.log_std.exp()
        # z = noise exactly, so the density needs no division
        return action, (-0.5 * noise.square() - self.log_std - LOG_SQRT_2PI).sum(-1)

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, action: Tensor) -> Tensor:
        return normal_log_density(action, self.mean, self.log_std).sum(-1)

    def entropy(self) -> Tensor:
        return normal_entropy(self.log_std).sum(-1)

    def kl(self, other: DiagNormal) -> Tensor:
        return normal_kl(self.mean, self.log_std, other.mean, other.log_std).sum(-1)

    def histograms(self) -> dict[str, Tensor]:
        return {"action_std": self.log_std.exp()}


class SigmaMixin(nn.Module):
    """log σ of ``dim`` Gaussians, as attributes of the head itself (so the parameter is called
    ``log_std`` in checkpoints): ``independent`` (a learned vector), ``fixed`` (a buffer) or
    ``state`` (a linear layer ``log_std_layer`` of the features, clamped to
    [LOG_STD_MIN, LOG_STD_MAX])."""

    def init_sigma(self, in_features: int, dim: int, cfg: PolicyConfig) -> None:
        self.sigma_mode = cfg.sigma_mode
        init = torch.full((dim,), float(cfg.init_log_std))
        if self.sigma_mode == "independent":
            self.log_std = nn.Parameter(init)
        elif self.sigma_mode == "fixed":
            self.register_buffer("log_std", init)
        else:
            self.log_std_layer = nn.Linear(in_features, dim)
            nn.init.zeros_(self.log_std_layer.weight)
            nn.init.constant_(self.log_std_layer.bias, cfg.init_log_std)

    def sigma(self, features: Tensor) -> Tensor:
        """``[..., dim]`` for ``state``, else the ``[dim]`` vector (broadcasts)."""
        if self.sigma_mode == "state":
            layer = self.log_std_layer
            return F.linear(features, layer.weight, layer.bias).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return self.log_std


class BoxBound:
    """Maps stored (unbounded) Box samples to what the env accepts: ``clip`` to the bounds, or
    ``rescale`` from [-1, 1] to the bounds (clipping to [-1, 1] first)."""

    def __init__(self, space: spaces.Box, mode: str) -> None:
        self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)
        self.mode = mode
        if mode == "rescale" and not (np.isfinite(self.low).all() and np.isfinite(self.high).all()):
            raise EnvError(f"action_bound='rescale' needs finite Box bounds, got {space}")

    def __call__(self, action: np.ndarray) -> np.ndarray:
        if self.mode == "rescale":
            unit = np.clip(action, -1.0, 1.0)
            return self.low + (unit + 1.0) * 0.5 * (self.high - self.low)
        return np.clip(action, self.low, self.high)


def check_box(space: spaces.Box) -> int:
    """The action dimension of a 1-D Box (EnvError otherwise)."""
    if len(space.shape) != 1:
        raise EnvError(f"Box action spaces must be one-dimensional, got shape {space.shape}")
    return int(space.shape[0])


class GaussianHead(ActionHead, SigmaMixin):
    """Diagonal Gaussian over a Box; σ ``independent`` (learned), ``fixed`` or ``state``."""

    action_dtype = torch.float32

    def __init__(self, in_features: int, space: spaces.Box, cfg: PolicyConfig) -> None:
        super().__init__()
        dim = check_box(space)
        self.action_shape = (dim,)
        self.mean = nn.Linear(in_features, dim)
        self.init_sigma(in_features, dim, cfg)
        self.bound = BoxBound(space, cfg.action_bound)

    def forward(self, features: Tensor, mask: Tensor | None = None) -> DiagNormal:
        return DiagNormal(
            F.linear(features, self.mean.weight, self.mean.bias), self.sigma(features)
        )

    def output_layers(self) -> list[nn.Linear]:
        return [self.mean]

    def to_env(self, action: np.ndarray) -> np.ndarray:
        return self.bound(action)
