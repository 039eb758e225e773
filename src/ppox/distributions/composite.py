"""Structured actions: Dict / Tuple spaces in general, and hybrid (parameterized) actions
(the PPO × Family course's Q&A, Q14–Q15; H-PPO: Fan et al. 2019, "Hybrid Actor-Critic
Reinforcement Learning in Parameterized Action Space"; docs/action_spaces.md).

**Composite.** A Dict or Tuple of any action spaces (nested too) is the product of its parts'
distributions: one head per part on the shared features, the joint log-prob, entropy and KL are
sums. The stored action is the concatenation of the parts' flat actions (float32 when any part
is continuous, where integer choices are stored exactly), and so is the flat mask.

**Hybrid.** A Dict or Tuple of exactly one Discrete *type* ``k`` (K choices) and one 1-D Box of
*parameters* ``x`` (P values) is a parameterized action. A type→parameter mask ``M [K, P]``
says which parameters each type uses; only those enter the log-prob, the entropy and the KL::

    log π(k, x) = log π(k) + Σ_p M[k, p] · log N(x_p; μ_kp, σ_kp)
    H           = H(π(·)) + Σ_k π(k) Σ_p M[k, p] · H(N(μ_kp, σ_kp))     (exact, no sampling)

One joint ratio comes out of that log-prob. Parameters a type does not use are still sampled
and sent to the env (which ignores them), but they get no gradient and add no entropy.

``hybrid_mode`` picks how the two heads see each other:

- ``independent`` (H-PPO): both heads read the shared features; ``μ_kp = μ_p``.
- ``autoregressive``: the parameter head reads the features and a one-hot of the type, through
  one hidden layer, so each type has its own parameter distribution ``π(x | s, k)``. During the
  update it is evaluated at the stored type; the entropy and KL use all K (K is small).
- ``type_given_params``: the type head reads the features and the parameter head's mean ``μ``
  (the course's Q&A, Q14). With ``hybrid_detach`` (default) ``μ`` is detached there, so the type loss does
  not train the parameter head; without it the type's gradient flows into ``μ`` as well.

Masks from the env (``info["action_mask"]``) for a hybrid part are a dict with optional entries
``"type"`` (``[K]`` bool, legal types) and ``"params"`` (``[K, P]`` bool, the type→parameter mask),
or a flat array of ``K + K·P`` booleans in that order. Without a mask every type is legal and
every parameter counts for every type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from ppox.config import PolicyConfig
from ppox.distributions.base import ActionDist, ActionHead, require_legal
from ppox.distributions.categorical import MaskedCategorical
from ppox.distributions.normal import (
    BoxBound,
    SigmaMixin,
    check_box,
    normal_entropy,
    normal_kl,
    normal_log_density,
)
from ppox.errors import EnvError

_ACT: dict[str, Callable[[Tensor], Tensor]] = {"tanh": torch.tanh, "relu": torch.relu, "elu": F.elu}


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape)) if shape else 1


class Layout:
    """Where each part of a structured action (or mask) sits in the flat vector."""

    def __init__(self, sizes: Sequence[int]) -> None:
        ends = np.cumsum(sizes) if len(sizes) else np.zeros(0, dtype=np.int64)
        self.slices = [slice(int(e - s), int(e)) for s, e in zip(sizes, ends)]
        self.total = int(ends[-1]) if len(sizes) else 0


# --------------------------------------------------------------------------------------------
# Composite: product of independent parts
# --------------------------------------------------------------------------------------------


class CompositeDist:
    """The product of the parts' distributions; actions are flat ``[B, A]``."""

    def __init__(self, head: CompositeHead, parts: list[ActionDist]) -> None:
        self.head, self.parts = head, parts

    def _split(self, action: Tensor) -> list[Tensor]:
        h = self.head
        return [
            action[:, sl].reshape(action.shape[0], *child.action_shape).to(child.action_dtype)
            for sl, child in zip(h.layout.slices, h.children_)
        ]

    def _join(self, parts: list[Tensor]) -> Tensor:
        return torch.cat([p.reshape(p.shape[0], -1).to(self.head.action_dtype) for p in parts], -1)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self._join([d.sample(generator) for d in self.parts])

    def sample_log_prob(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        pairs = [d.sample_log_prob(generator) for d in self.parts]
        return self._join([a for a, _ in pairs]), torch.stack([lp for _, lp in pairs]).sum(0)

    def mode(self) -> Tensor:
        return self._join([d.mode() for d in self.parts])

    def log_prob(self, action: Tensor) -> Tensor:
        return torch.stack([d.log_prob(a) for d, a in zip(self.parts, self._split(action))]).sum(0)

    def entropy(self) -> Tensor:
        return torch.stack([d.entropy() for d in self.parts]).sum(0)

    def kl(self, other: CompositeDist) -> Tensor:
        return torch.stack([d.kl(o) for d, o in zip(self.parts, other.parts)]).sum(0)

    def histograms(self) -> dict[str, Tensor]:
        return {
            f"{key}/{name}": t
            for key, d in zip(self.head.keys, self.parts)
            for name, t in d.histograms().items()
        }


class CompositeHead(ActionHead):
    """One child head per part of a Dict (``keys`` are its keys) or Tuple (``keys`` "0", "1", …)."""

    def __init__(self, keys: list[str], children: list[ActionHead], is_dict: bool) -> None:
        super().__init__()
        self.keys, self.is_dict = keys, is_dict
        self.parts = nn.ModuleList(children)  # registers them
        self.children_: list[ActionHead] = list(children)
        self.layout = Layout([_size(c.action_shape) for c in children])
        self.mask_layout = Layout([c.mask_size for c in children])
        any_float = any(c.action_dtype.is_floating_point for c in children)
        self.action_dtype = torch.float32 if any_float else torch.int64
        self.action_shape = (self.layout.total,)
        self.mask_shape = (self.mask_layout.total,) if self.mask_layout.total else None

    def forward(self, features: Tensor, mask: Tensor | None = None) -> CompositeDist:
        parts = []
        for child, sl in zip(self.children_, self.mask_layout.slices):
            child_mask = None if mask is None or child.mask_shape is None else mask[:, sl]
            parts.append(child(features, child_mask))
        return CompositeDist(self, parts)

    def output_layers(self) -> list[nn.Linear]:
        return [layer for c in self.children_ for layer in c.output_layers()]

    def hidden_layers(self) -> list[nn.Linear]:
        return [layer for c in self.children_ for layer in c.hidden_layers()]

    def to_env(self, action: np.ndarray) -> Any:
        n = action.shape[0]
        parts = [
            child.to_env(
                action[:, sl].reshape(n, *child.action_shape).astype(_np_dtype(child.action_dtype))
            )
            for child, sl in zip(self.children_, self.layout.slices)
        ]
        return dict(zip(self.keys, parts)) if self.is_dict else tuple(parts)

    def from_env(self, action: Any) -> np.ndarray:
        parts = [action[k] for k in self.keys] if self.is_dict else list(action)
        stored = [np.asarray(c.from_env(a)) for c, a in zip(self.children_, parts)]
        n = stored[0].shape[0]
        dtype = np.float32 if self.action_dtype.is_floating_point else np.int64
        return np.concatenate([a.reshape(n, -1).astype(dtype) for a in stored], axis=1)

    def read_mask(self, raw: Any, batch: int) -> np.ndarray:
        if not isinstance(raw, dict):
            return super().read_mask(raw, batch)
        unknown = sorted(k for k in map(str, raw) if k not in self.keys and not k.startswith("_"))
        if unknown:
            raise EnvError(
                f"action mask has key(s) {unknown}; the action space's parts are {self.keys}"
            )
        out = np.ones((batch, self.mask_size), dtype=bool)
        for key, child, sl in zip(self.keys, self.children_, self.mask_layout.slices):
            sub = raw.get(key, raw.get(int(key)) if key.isdigit() else None)
            if sub is not None and child.mask_shape is not None:
                out[:, sl] = child.read_mask(sub, batch)
        return out

    def check_mask(self, mask: np.ndarray) -> None:
        for child, sl in zip(self.children_, self.mask_layout.slices):
            if child.mask_shape is not None:
                child.check_mask(mask[:, sl])


def _np_dtype(dtype: torch.dtype) -> type:
    return np.float32 if dtype.is_floating_point else np.int64


# --------------------------------------------------------------------------------------------
# Hybrid: a discrete type and its continuous parameters
# --------------------------------------------------------------------------------------------


class HybridDist:
    """Joint distribution of a type ``k`` and parameters ``x``; actions are ``[B, 1 + P]``
    (``k`` stored as a float, exactly).

    Args:
        types: the type distribution over K.
        mean, log_std: ``[B, K', P]`` (broadcastable), ``K' = 1`` when the parameters do not
            depend on the type, ``K`` when they do.
        param_mask: ``[B, K, P]`` bool type→parameter mask, or None (every parameter counts).
    """

    def __init__(
        self, types: MaskedCategorical, mean: Tensor, log_std: Tensor, param_mask: Tensor | None
    ) -> None:
        self.types, self.mean, self.log_std = types, mean, log_std
        self.param_mask = param_mask

    def _at(self, t: Tensor, k: Tensor) -> Tensor:
        """``t[b, k_b]`` for ``t [B or 1, K' , P]`` → ``[B, P]``."""
        if t.shape[-2] == 1:
            return t[:, 0].expand(k.shape[0], t.shape[-1])
        return (
            t.expand(k.shape[0], *t.shape[1:])
            .gather(1, k.view(-1, 1, 1).expand(-1, 1, t.shape[-1]))
            .squeeze(1)
        )

    def _weight(self, k: Tensor) -> Tensor | None:
        return None if self.param_mask is None else self._at(self.param_mask, k).to(self.mean.dtype)

    def _params_log_prob(self, k: Tensor, x: Tensor) -> Tensor:
        dens = normal_log_density(x, self._at(self.mean, k), self._at(self.log_std, k))
        w = self._weight(k)
        return (dens if w is None else dens * w).sum(-1)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self.sample_log_prob(generator)[0]

    def sample_log_prob(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        k, lp = self.types.sample_log_prob(generator)
        mean = self._at(self.mean, k)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        x = mean + noise * self._at(self.log_std, k).exp()
        return torch.cat([k.unsqueeze(-1).to(x.dtype), x], -1), lp + self._params_log_prob(k, x)

    def mode(self) -> Tensor:
        k = self.types.mode()
        return torch.cat([k.unsqueeze(-1).to(self.mean.dtype), self._at(self.mean, k)], -1)

    def log_prob(self, action: Tensor) -> Tensor:
        k = action[:, 0].long()
        return self.types.log_prob(k) + self._params_log_prob(k, action[:, 1:])

    def _expected(self, per_param: Tensor) -> Tensor:
        """``Σ_k π(k) Σ_p M[k, p] · per_param[k, p]`` for ``per_param [B or 1, K', P]``."""
        if self.param_mask is not None:
            per_param = per_param * self.param_mask
        per_type = per_param.sum(-1)  # [B or 1, K']
        if per_type.shape[-1] == 1:
            return per_type[:, 0].expand(self.types.logp_all.shape[0])
        return (self.types.probs * per_type).sum(-1)

    def entropy(self) -> Tensor:
        return self.types.entropy() + self._expected(
            normal_entropy(self.log_std).expand_as(self.mean)
        )

    def kl(self, other: HybridDist) -> Tensor:
        kl = normal_kl(self.mean, self.log_std, other.mean, other.log_std)
        return self.types.kl(other.types) + self._expected(kl)

    def histograms(self) -> dict[str, Tensor]:
        return {
            "action_probs": self.types.probs,
            "action_std": self.log_std.exp().expand_as(self.mean),
        }


HYBRID_MODES = ("independent", "autoregressive", "type_given_params")


class HybridHead(ActionHead, SigmaMixin):
    """A type head (Discrete, K) and a parameter head (1-D Box, P); see the module docstring.

    Args:
        keys: the two parts' keys in the space's order (Dict keys, or "0"/"1" for a Tuple).
        type_index: which of the two parts is the type.
        is_dict: whether the env takes a dict (else a tuple).
    """

    action_dtype = torch.float32

    def __init__(
        self,
        in_features: int,
        type_space: spaces.Discrete,
        param_space: spaces.Box,
        cfg: PolicyConfig,
        *,
        keys: list[str],
        type_index: int,
        is_dict: bool,
    ) -> None:
        super().__init__()
        K, P = int(type_space.n), check_box(param_space)
        self.K, self.P, self.start = K, P, int(type_space.start)
        self.keys, self.type_index, self.is_dict = keys, type_index, is_dict
        self.mode_, self.detach, self.temperature = (
            cfg.hybrid_mode,
            cfg.hybrid_detach,
            cfg.temperature,
        )
        self.activation = _ACT[cfg.activation]
        self.action_shape = (1 + P,)
        self.mask_shape = (K + K * P,)
        self.bound = BoxBound(param_space, cfg.action_bound)
        type_in = in_features + (P if self.mode_ == "type_given_params" else 0)
        self.type_logits = nn.Linear(type_in, K)
        param_in = in_features
        if self.mode_ == "autoregressive":
            self.cond = nn.Linear(in_features + K, in_features)
        self.mean = nn.Linear(param_in, P)
        self.init_sigma(param_in, P, cfg)

    def forward(self, features: Tensor, mask: Tensor | None = None) -> HybridDist:
        B, K, P = features.shape[0], self.K, self.P
        type_mask = None if mask is None else mask[:, :K]
        param_mask = None if mask is None else mask[:, K:].reshape(B, K, P)
        if self.mode_ == "autoregressive":
            w = self.cond.weight
            base = F.linear(features, w[:, :-K], self.cond.bias)  # [B, H]
            h = self.activation(
                base.unsqueeze(1) + w[:, -K:].T.unsqueeze(0)
            )  # [B, K, H]: one-hot k added
            mean = F.linear(h, self.mean.weight, self.mean.bias)  # [B, K, P]
            log_std = self._log_std3(h)
            type_in = features
        else:
            mean2 = F.linear(features, self.mean.weight, self.mean.bias)  # [B, P]
            mean, log_std = mean2.unsqueeze(1), self._log_std3(features.unsqueeze(1))
            type_in = features
            if self.mode_ == "type_given_params":
                type_in = torch.cat([features, mean2.detach() if self.detach else mean2], -1)
        logits = F.linear(type_in, self.type_logits.weight, self.type_logits.bias)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return HybridDist(MaskedCategorical(logits, type_mask), mean, log_std, param_mask)

    def _log_std3(self, h: Tensor) -> Tensor:
        ls = self.sigma(h)
        return ls.view(1, 1, -1) if ls.dim() == 1 else ls

    def output_layers(self) -> list[nn.Linear]:
        return [self.type_logits, self.mean]

    def hidden_layers(self) -> list[nn.Linear]:
        return [self.cond] if self.mode_ == "autoregressive" else []

    def to_env(self, action: np.ndarray) -> Any:
        k = action[:, 0].astype(np.int64) + self.start
        x = self.bound(action[:, 1:]).astype(np.float32)
        parts = (k, x) if self.type_index == 0 else (x, k)
        return dict(zip(self.keys, parts)) if self.is_dict else parts

    def from_env(self, action: Any) -> np.ndarray:
        parts = [action[k] for k in self.keys] if self.is_dict else list(action)
        k = np.asarray(parts[self.type_index], dtype=np.int64).reshape(-1) - self.start
        x = self.bound.inverse(np.asarray(parts[1 - self.type_index], dtype=np.float32))
        return np.concatenate([k[:, None].astype(np.float32), x.reshape(len(k), -1)], axis=1)

    def read_mask(self, raw: Any, batch: int) -> np.ndarray:
        if not isinstance(raw, dict):
            return super().read_mask(raw, batch)
        unknown = sorted(
            k for k in map(str, raw) if k not in ("type", "params") and not k.startswith("_")
        )
        if unknown:
            raise EnvError(
                f"hybrid action mask has key(s) {unknown}; allowed: 'type' ([K] bool), 'params' ([K, P] bool)"
            )
        out = np.ones((batch, self.mask_size), dtype=bool)
        K, P = self.K, self.P
        for key, sl, size in (("type", slice(0, K), K), ("params", slice(K, None), K * P)):
            if raw.get(key) is None:
                continue
            part = np.asarray(raw[key], dtype=bool)
            if part.size != batch * size:
                shape = "[K]" if key == "type" else "[K, P]"
                raise EnvError(
                    f"action mask {key!r} has shape {part.shape}; expected {shape} = {size} booleans per env (K={K}, P={P})"
                )
            out[:, sl] = part.reshape(batch, size)
        self.check_mask(out)
        return out

    def check_mask(self, mask: np.ndarray) -> None:
        require_legal(mask[:, : self.K], "action type")


def hybrid_parts(space: spaces.Space) -> tuple[list[str], list[spaces.Space], bool] | None:
    """``(keys, parts, is_dict)`` when ``space`` is a Dict/Tuple of one Discrete and one 1-D Box."""
    if isinstance(space, spaces.Dict):
        keys, parts, is_dict = list(space.spaces), list(space.spaces.values()), True
    elif isinstance(space, spaces.Tuple):
        keys, parts, is_dict = [str(i) for i in range(len(space.spaces))], list(space.spaces), False
    else:
        return None
    kinds = sorted(type(p).__name__ for p in parts)
    if kinds == ["Box", "Discrete"] and all(
        len(p.shape or ()) == 1 for p in parts if isinstance(p, spaces.Box)
    ):
        return keys, parts, is_dict
    return None
