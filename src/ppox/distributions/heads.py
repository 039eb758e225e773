"""The one place that maps a Gymnasium action space to a policy head (SPEC §3).

``make_head(space, in_features, cfg)`` looks the space's type up in a registry; new action
spaces register a builder with :func:`register_head` and nothing else in ppox changes: the
collector, the learner and the losses only use the :class:`ActionHead` contract.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from ppox.config import PolicyConfig
from ppox.distributions.base import ActionDist
from ppox.distributions.categorical import MaskedCategorical, check_mask
from ppox.distributions.normal import DiagNormal
from ppox.errors import EnvError


class ActionHead(nn.Module, ABC):
    """Maps features ``[B, F]`` (and an optional mask) to an :class:`ActionDist`.

    Attributes:
        action_shape: shape of one action as stored in the rollout (after the batch axes).
        action_dtype: dtype of stored actions.
        mask_shape: shape of one action mask, or None when the space has no mask.
    """

    action_shape: tuple[int, ...]
    action_dtype: torch.dtype
    mask_shape: tuple[int, ...] | None = None

    @abstractmethod
    def forward(self, features: Tensor, mask: Tensor | None = None) -> ActionDist:
        """The distribution for a batch of features."""

    def output_layers(self) -> list[nn.Linear]:
        """Layers that get the small policy-output init gain."""
        return []

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """The env-facing copy of a batch of stored actions ``[N, *action_shape]``."""
        return action


HeadBuilder = Callable[[spaces.Space, int, PolicyConfig], ActionHead]
_REGISTRY: dict[type[spaces.Space], HeadBuilder] = {}


def register_head(space_type: type[spaces.Space]) -> Callable[[HeadBuilder], HeadBuilder]:
    """Decorator: ``@register_head(spaces.Discrete)`` on a builder ``(space, in_features, cfg)``."""

    def deco(builder: HeadBuilder) -> HeadBuilder:
        _REGISTRY[space_type] = builder
        return builder

    return deco


def supported_spaces() -> list[str]:
    return sorted(t.__name__ for t in _REGISTRY)


def make_head(space: spaces.Space, in_features: int, cfg: PolicyConfig) -> ActionHead:
    """The head for ``space``; :class:`EnvError` naming the space when none is registered."""
    for kind in type(space).__mro__:
        if kind in _REGISTRY:
            return _REGISTRY[kind](space, in_features, cfg)
    raise EnvError(
        f"action space {space} is not supported; supported action spaces: {supported_spaces()}"
    )


class CategoricalHead(ActionHead):
    """Logits over ``n`` actions, divided by a sampling temperature, with optional masks."""

    action_dtype = torch.int64

    def __init__(self, in_features: int, n: int, start: int = 0, temperature: float = 1.0) -> None:
        super().__init__()
        self.logits = nn.Linear(in_features, n)
        self.start = start
        self.temperature = temperature
        self.action_shape = ()
        self.mask_shape = (n,)

    def forward(self, features: Tensor, mask: Tensor | None = None) -> MaskedCategorical:
        logits = F.linear(features, self.logits.weight, self.logits.bias)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return MaskedCategorical(logits, mask)

    def output_layers(self) -> list[nn.Linear]:
        return [self.logits]

    def to_env(self, action: np.ndarray) -> np.ndarray:
        return action + self.start if self.start else action


@register_head(spaces.Discrete)
def _discrete(space: spaces.Space, in_features: int, cfg: PolicyConfig) -> ActionHead:
    assert isinstance(space, spaces.Discrete)
    return CategoricalHead(in_features, int(space.n), int(space.start), cfg.temperature)


LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class GaussianHead(ActionHead):
    """Diagonal Gaussian over a Box; σ ``independent`` (learned), ``fixed`` or ``state``."""

    action_dtype = torch.float32

    def __init__(self, in_features: int, space: spaces.Box, cfg: PolicyConfig) -> None:
        super().__init__()
        self.action_shape = tuple(space.shape)
        dim = space.shape[0]
        self.mean = nn.Linear(in_features, dim)
        self.sigma_mode = cfg.sigma_mode
        init = torch.full((dim,), float(cfg.init_log_std))
        if cfg.sigma_mode == "independent":
            self.log_std = nn.Parameter(init)
        elif cfg.sigma_mode == "fixed":
            self.register_buffer("log_std", init)
        else:
            self.log_std_layer = nn.Linear(in_features, dim)
            nn.init.zeros_(self.log_std_layer.weight)
            nn.init.constant_(self.log_std_layer.bias, cfg.init_log_std)
        self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)
        self.bound = cfg.action_bound
        if self.bound == "rescale" and not (np.isfinite(self.low).all() and np.isfinite(self.high).all()):
            raise EnvError(f"action_bound='rescale' needs finite Box bounds, got {space}")

    def forward(self, features: Tensor, mask: Tensor | None = None) -> DiagNormal:
        mean = F.linear(features, self.mean.weight, self.mean.bias)
        if self.sigma_mode == "state":
            log_std = F.linear(features, self.log_std_layer.weight, self.log_std_layer.bias).clamp(LOG_STD_MIN, LOG_STD_MAX)
        else:
            log_std = self.log_std
        return DiagNormal(mean, log_std)

    def output_layers(self) -> list[nn.Linear]:
        return [self.mean]

    def to_env(self, action: np.ndarray) -> np.ndarray:
        if self.bound == "rescale":
            unit = np.clip(action, -1.0, 1.0)
            return self.low + (unit + 1.0) * 0.5 * (self.high - self.low)
        return np.clip(action, self.low, self.high)


@register_head(spaces.Box)
def _box(space: spaces.Space, in_features: int, cfg: PolicyConfig) -> ActionHead:
    assert isinstance(space, spaces.Box)
    if len(space.shape) != 1:
        raise EnvError(f"Box action spaces must be one-dimensional, got shape {space.shape}")
    return GaussianHead(in_features, space, cfg)


__all__ = ["ActionHead", "CategoricalHead", "GaussianHead", "check_mask", "make_head", "register_head"]
