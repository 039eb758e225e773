"""Multi-discrete actions (docs/action_spaces.md): one categorical per dimension, or one over the product.

``factored`` (the default): a shared trunk feeds one linear layer of ``Σ nvec`` logits, read as
``d`` categoricals; the joint log-prob and entropy are sums over the dimensions, and each
dimension has its own mask. Dimensions of different sizes are padded to the largest with
logits that are always masked, so all ``d`` categoricals run as one batched softmax.

``flat``: one categorical over all ``Π nvec`` combinations (the "flattened" alternative, for
comparison; it can represent correlations between dimensions but grows exponentially). The
per-dimension masks become the product mask: a combination is legal when every one of its
components is.

Masks from the env are flat ``Σ nvec`` booleans per env, the concatenation of the dimensions'
masks (``[d, n]`` arrays also work when all sizes are equal). MultiBinary is MultiDiscrete with
all sizes 2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppox.distributions.base import ActionHead, require_legal
from ppox.distributions.categorical import MaskedCategorical
from ppox.errors import EnvError

MAX_FLAT_ACTIONS = 1 << 16
"""Largest product space the ``flat`` multi-discrete head accepts."""


class MultiCategorical:
    """``d`` independent categoricals for a batch ``[B]``; ``logits`` and ``mask`` ``[B, d, n]``."""

    def __init__(self, logits: Tensor, mask: Tensor | None) -> None:
        self.cat = MaskedCategorical(logits, mask)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self.cat.sample(generator)

    def sample_log_prob(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        action = self.cat.sample(generator)
        return action, self.log_prob(action)

    def mode(self) -> Tensor:
        return self.cat.mode()

    def log_prob(self, action: Tensor) -> Tensor:
        return self.cat.log_prob(action).sum(-1)

    def entropy(self) -> Tensor:
        return self.cat.entropy().sum(-1)

    def kl(self, other: MultiCategorical) -> Tensor:
        return self.cat.kl(other.cat).sum(-1)

    def histograms(self) -> dict[str, Tensor]:
        return {"action_probs": self.cat.probs}


def _segments(nvec: np.ndarray) -> list[slice]:
    ends = np.cumsum(nvec)
    return [slice(int(e - n), int(e)) for n, e in zip(nvec, ends)]


class _MultiDiscreteHead(ActionHead):
    """What both multi-discrete heads share: sizes, offsets, env shape, logits, mask checks.

    Args:
        in_features: width of the features.
        nvec: number of choices per dimension, ``[d]``.
        start: value of the first choice per dimension, ``[d]`` (Gymnasium's ``start``).
        shape: shape of one env action (``(d,)``, or MultiBinary's / MultiDiscrete's own shape).
        n_logits: width of the logits layer.
        temperature: sampling temperature (logits are divided by it).
    """

    action_dtype = torch.int64

    def __init__(
        self,
        in_features: int,
        nvec: np.ndarray,
        start: np.ndarray,
        shape: tuple[int, ...],
        n_logits: int,
        temperature: float,
    ) -> None:
        super().__init__()
        self.nvec = np.asarray(nvec, dtype=np.int64).reshape(-1)
        self.start = np.asarray(start, dtype=np.int64).reshape(-1)
        self.env_shape = shape
        self.temperature = temperature
        self.logits = nn.Linear(in_features, n_logits)
        self.mask_shape = (int(self.nvec.sum()),)  # the env's per-dimension layout

    def _logits(self, features: Tensor) -> Tensor:
        logits = F.linear(features, self.logits.weight, self.logits.bias)
        return logits / self.temperature if self.temperature != 1.0 else logits

    def output_layers(self) -> list[nn.Linear]:
        return [self.logits]

    def check_mask(self, mask: np.ndarray) -> None:
        for i, seg in enumerate(_segments(self.nvec)):
            require_legal(mask[:, seg], "action", f" in dimension {i}")


class MultiCategoricalHead(_MultiDiscreteHead):
    """``d`` categoricals with sizes ``nvec`` from one linear layer of ``Σ nvec`` logits."""

    pad_source: Tensor
    size_mask: Tensor

    def __init__(
        self,
        in_features: int,
        nvec: np.ndarray,
        start: np.ndarray,
        shape: tuple[int, ...],
        temperature: float = 1.0,
    ) -> None:
        nvec = np.asarray(nvec, dtype=np.int64).reshape(-1)
        super().__init__(in_features, nvec, start, shape, int(nvec.sum()), temperature)
        d, n_max = len(self.nvec), int(self.nvec.max())
        self.d, self.n_max = d, n_max
        self.action_shape = (d,)
        self.uniform = bool((self.nvec == n_max).all())
        # where each of the Σ nvec logits sits in the padded [d, n_max] grid
        cols = np.concatenate([np.arange(n) for n in self.nvec])
        rows = np.repeat(np.arange(d), self.nvec)
        slot = torch.from_numpy(rows * n_max + cols)
        legal = torch.zeros(d * n_max, dtype=torch.bool)
        legal[slot] = True
        self.register_buffer("size_mask", legal.view(d, n_max), persistent=False)
        # the grid read from [flat, fill]: each cell's source column, the padding's being Σ nvec
        total = int(self.nvec.sum())
        source = torch.full((d * n_max,), total, dtype=torch.int64)
        source[slot] = torch.arange(total)
        self.register_buffer("pad_source", source, persistent=False)

    def _pad(self, flat: Tensor, fill: float | bool) -> Tensor:
        """``[B, Σ nvec]`` → ``[B, d, n_max]`` (padding filled with ``fill``), as one gather:
        as fast as an indexed write into a new tensor (faster from a few hundred rows), and the
        ONNX exporter traces it (the write it cannot)."""
        if self.uniform:
            return flat.reshape(flat.shape[0], self.d, self.n_max)
        col = torch.zeros_like(flat[:, :1])  # [B, 1]: the batch size stays symbolic
        if fill:
            col = ~col if col.dtype == torch.bool else col + fill
        grid = torch.cat([flat, col], dim=1).index_select(1, self.pad_source)
        return grid.view(-1, self.d, self.n_max)

    def forward(self, features: Tensor, mask: Tensor | None = None) -> MultiCategorical:
        padded = self._pad(self._logits(features), 0.0)
        full: Tensor | None = None
        if mask is not None:
            full = self._pad(mask, False)
        elif not self.uniform:
            full = self.size_mask.expand(padded.shape)
        return MultiCategorical(padded, full)

    def to_env(self, action: np.ndarray) -> np.ndarray:
        out = action + self.start if self.start.any() else action
        return out.reshape(action.shape[0], *self.env_shape)

    def from_env(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.int64)
        return a.reshape(a.shape[0], -1) - self.start


class JointCategoricalHead(_MultiDiscreteHead):
    """One categorical over all ``Π nvec`` combinations of a multi-discrete space.

    The stored action is the combination's index (row-major over the dimensions); ``to_env``
    unravels it. Per-dimension masks from the env become the product mask.
    """

    def __init__(
        self,
        in_features: int,
        nvec: np.ndarray,
        start: np.ndarray,
        shape: tuple[int, ...],
        temperature: float = 1.0,
    ) -> None:
        nvec = np.asarray(nvec, dtype=np.int64).reshape(-1)
        total = int(np.prod(nvec.astype(np.float64)))
        if total > MAX_FLAT_ACTIONS:
            raise EnvError(
                f"multi_discrete='flat' needs one logit per combination: {' × '.join(map(str, nvec))} = "
                f"{total} > {MAX_FLAT_ACTIONS}; use multi_discrete='factored'"
            )
        super().__init__(in_features, nvec, start, shape, total, temperature)
        self.action_shape = ()

    def forward(self, features: Tensor, mask: Tensor | None = None) -> MaskedCategorical:
        return MaskedCategorical(
            self._logits(features), None if mask is None else self.joint_mask(mask)
        )

    def joint_mask(self, mask: Tensor) -> Tensor:
        """Per-dimension masks ``[B, Σ nvec]`` → product mask ``[B, Π nvec]`` (row-major)."""
        joint = torch.ones(mask.shape[0], 1, dtype=torch.bool, device=mask.device)
        for seg in _segments(self.nvec):
            joint = (joint.unsqueeze(-1) & mask[:, seg].unsqueeze(1)).reshape(mask.shape[0], -1)
        return joint

    def to_env(self, action: np.ndarray) -> np.ndarray:
        parts = np.stack(np.unravel_index(action.astype(np.int64), tuple(self.nvec)), axis=-1)
        return (parts + self.start).reshape(action.shape[0], *self.env_shape)

    def from_env(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.int64)
        parts = a.reshape(a.shape[0], -1) - self.start
        return np.ravel_multi_index(tuple(parts.T), tuple(self.nvec)).astype(np.int64)
