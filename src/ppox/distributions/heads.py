"""The one place that maps a Gymnasium action space to a policy head (docs/action_spaces.md).

``make_head(space, in_features, cfg)`` looks the space's type up in a registry; new action
spaces register a builder with :func:`register_head` and nothing else in ppox changes: the
collector, the learner and the losses only use the :class:`ActionHead` contract.

Registered here: ``Discrete`` (masked categorical with temperature), ``Box`` (diagonal
Gaussian), ``MultiDiscrete`` and ``MultiBinary`` (``factored`` or ``flat``), and ``Dict`` /
``Tuple`` (a hybrid head for one Discrete type plus one Box of parameters, otherwise the
product of the parts' heads, nested to any depth).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from gymnasium import spaces

from ppox.config import PolicyConfig
from ppox.distributions.base import ActionHead
from ppox.distributions.categorical import CategoricalHead, check_mask
from ppox.distributions.composite import CompositeHead, HybridHead, hybrid_parts
from ppox.distributions.multi_categorical import JointCategoricalHead, MultiCategoricalHead
from ppox.distributions.normal import LOG_STD_MAX, LOG_STD_MIN, GaussianHead, SigmaMixin
from ppox.errors import EnvError

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


def draws_from_a_gaussian(space: spaces.Space) -> bool:
    """Whether the head the registry builds for ``space`` draws some part of the action from a
    Gaussian (a Box, a hybrid's parameters, a Box inside a Dict or Tuple, a registered head with
    a σ): what makes a task "continuous" for the bases of ``ppox.presets.bases``."""
    head = make_head(space, 1, PolicyConfig())
    return any(isinstance(m, SigmaMixin) for m in head.modules())


@register_head(spaces.Discrete)
def _discrete(space: spaces.Space, in_features: int, cfg: PolicyConfig) -> ActionHead:
    assert isinstance(space, spaces.Discrete)
    return CategoricalHead(in_features, int(space.n), int(space.start), cfg.temperature)


@register_head(spaces.Box)
def _box(space: spaces.Space, in_features: int, cfg: PolicyConfig) -> ActionHead:
    assert isinstance(space, spaces.Box)
    return GaussianHead(in_features, space, cfg)


def _multi(
    in_features: int, nvec: np.ndarray, start: np.ndarray, shape: tuple[int, ...], cfg: PolicyConfig
) -> ActionHead:
    cls = JointCategoricalHead if cfg.multi_discrete == "flat" else MultiCategoricalHead
    return cls(in_features, nvec, start, shape, cfg.temperature)


@register_head(spaces.MultiDiscrete)
def _multi_discrete(space: spaces.Space, in_features: int, cfg: PolicyConfig) -> ActionHead:
    assert isinstance(space, spaces.MultiDiscrete)
    return _multi(
        in_features, space.nvec.reshape(-1), space.start.reshape(-1), tuple(space.shape), cfg
    )


@register_head(spaces.MultiBinary)
def _multi_binary(space: spaces.Space, in_features: int, cfg: PolicyConfig) -> ActionHead:
    assert isinstance(space, spaces.MultiBinary)
    d = int(np.prod(space.shape))
    return _multi(in_features, np.full(d, 2), np.zeros(d, np.int64), tuple(space.shape), cfg)


def _structured(space: spaces.Space, in_features: int, cfg: PolicyConfig) -> ActionHead:
    hybrid = hybrid_parts(space)
    if hybrid is not None:
        keys, parts, is_dict = hybrid
        t = 0 if isinstance(parts[0], spaces.Discrete) else 1
        type_space, param_space = parts[t], parts[1 - t]
        assert isinstance(type_space, spaces.Discrete) and isinstance(param_space, spaces.Box)
        return HybridHead(
            in_features, type_space, param_space, cfg, keys=keys, type_index=t, is_dict=is_dict
        )
    if isinstance(space, spaces.Dict):
        keys, children = list(space.spaces), list(space.spaces.values())
    else:
        assert isinstance(space, spaces.Tuple)
        keys, children = [str(i) for i in range(len(space.spaces))], list(space.spaces)
    if not children:
        raise EnvError(f"action space {space} has no parts")
    return CompositeHead(
        keys, [make_head(c, in_features, cfg) for c in children], isinstance(space, spaces.Dict)
    )


register_head(spaces.Dict)(_structured)
register_head(spaces.Tuple)(_structured)


__all__ = [
    "LOG_STD_MAX",
    "LOG_STD_MIN",
    "ActionHead",
    "CategoricalHead",
    "GaussianHead",
    "check_mask",
    "make_head",
    "register_head",
]
