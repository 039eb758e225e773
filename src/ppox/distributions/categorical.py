"""Masked categorical distribution with temperature, and the Discrete head, with its NumPy kernel.

Masked actions get logit ``finfo.min`` (not −inf, which turns softmax into NaN when combined
with other terms, and not −1e8, which overflows in half precision), so their probability is
exactly 0 after softmax, and entropy sums only over legal actions (the PPO × Family course's
Q&A on action masks; the masking follows sb3-contrib's ``MaskableCategorical``).

:class:`CategoricalKernel` is the same math in NumPy, for the fast paths (acting and the
hand-written update, docs/performance.md). It sits here, beside the torch math it must equal,
and :class:`CategoricalHead` declares it (``numpy_kernel``); a subclass of the head does not
inherit it, so a head that changes the math falls back to torch unless it declares its own.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppox.distributions.base import ActionHead, KernelPass, float32_ones, require_legal

_F32_MIN = float(np.finfo(np.float32).min)


def check_mask(mask: Tensor) -> None:
    """Raise :class:`EnvError` if some state has no legal action (``mask`` ``[..., n]`` bool)."""
    require_legal(mask.cpu(), "action")


class MaskedCategorical:
    """Categorical over ``n`` actions for a batch of states (any number of batch axes).

    Args:
        logits: ``[*batch, n]`` unnormalized log-probabilities (already divided by the temperature).
        mask: optional ``[*batch, n]`` bool, True where the action is legal.
    """

    def __init__(self, logits: Tensor, mask: Tensor | None = None) -> None:
        if mask is not None:
            logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        self.mask = mask
        self.logp_all = logits.log_softmax(-1)

    @property
    def probs(self) -> Tensor:
        return self.logp_all.exp()

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        probs = self.probs
        flat = probs.reshape(-1, probs.shape[-1])
        return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])

    def sample_log_prob(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        action = self.sample(generator)
        return action, self.log_prob(action)

    def mode(self) -> Tensor:
        return self.logp_all.argmax(-1)

    def log_prob(self, action: Tensor) -> Tensor:
        return self.logp_all.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        plogp = self.probs * self.logp_all
        if self.mask is not None:
            plogp = torch.where(self.mask, plogp, torch.zeros_like(plogp))
        return -plogp.sum(-1)

    def kl(self, other: MaskedCategorical) -> Tensor:
        terms = self.probs * (self.logp_all - other.logp_all)
        if self.mask is not None:
            terms = torch.where(self.mask, terms, torch.zeros_like(terms))
        return terms.sum(-1)

    def histograms(self) -> dict[str, Tensor]:
        return {"action_probs": self.probs}


def _row_max(a: np.ndarray) -> np.ndarray:
    """``a.max(1)`` for ``[B, n]``; column by column when n is small (a reduction over a short
    last axis costs about 10 µs at B = 256, a column-wise maximum under 1 µs)."""
    n = a.shape[1]
    if n > 8:
        return a.max(1)
    m = a[:, 0].copy()
    for j in range(1, n):
        np.maximum(m, a[:, j], out=m)
    return m


def shifted_logits(logits: np.ndarray, temperature: float, mask: np.ndarray | None) -> np.ndarray:
    """Logits ``[B, n]`` divided by the temperature, masked actions set to the lowest float32,
    minus each row's maximum: ``log softmax = shifted − log Σ exp(shifted)``, and a masked
    action's ``exp`` is 0."""
    if temperature != 1.0:
        logits = logits / np.float32(temperature)
    if mask is None:
        return logits - _row_max(logits)[:, None]
    logits = np.where(mask, logits, _F32_MIN)
    with np.errstate(
        over="ignore"
    ):  # the lowest float minus the max may round to -inf: exp gives 0
        return logits - _row_max(logits)[:, None]


@functools.lru_cache(maxsize=32)
def _row_starts(n: int, k: int) -> np.ndarray:
    """``[n]`` offsets of the rows of an ``[n, k]`` array, flattened (read-only)."""
    starts = np.arange(n) * k
    starts.flags.writeable = False
    return starts


class CategoricalKernel:
    """:class:`MaskedCategorical` over a :class:`CategoricalHead`'s logits, in NumPy.

    ``out`` is the head's output layer (``logits``) applied to the features, ``[B, n]``; the
    temperature and the mask are applied here, as the head does. Acting (:meth:`act`) samples
    by the inverse CDF from uniforms drawn per rollout (:meth:`noise`); training
    (:meth:`forward`, :meth:`backward`) gives log π(a), the entropy and the gradient of
    ``Σ g_logp·log π(a) + g_entropy·Σ H`` with respect to ``out``.
    """

    def __init__(self, head: CategoricalHead) -> None:
        self.out_layers: list[nn.Linear] = [head.logits]
        self.temperature = head.temperature
        self.n = head.logits.out_features

    def refresh(self) -> None:
        """Nothing to re-read: the head has no parameters outside its output layer."""

    def noise(self, steps: int, num_envs: int, generator: torch.Generator) -> np.ndarray:
        """A rollout's randomness: ``[T, N]`` uniforms in [0, 1) (float64)."""
        return torch.rand((steps, num_envs), generator=generator, dtype=torch.float64).numpy()

    def act(
        self, out: np.ndarray, u: np.ndarray, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(action [B] int64, log π(action) [B] float32)`` for one step's uniforms ``u``."""
        shifted = shifted_logits(out, self.temperature, mask)
        cdf = np.exp(shifted, dtype=np.float64).cumsum(
            -1
        )  # unnormalized; the total is the last entry
        total = cdf[:, -1]
        # inverse CDF: the first action whose cumulative probability exceeds u·total; actions
        # with probability 0 (masked) add nothing to the CDF and are never chosen
        action = np.minimum((cdf <= (u * total)[:, None]).sum(-1), cdf.shape[-1] - 1)
        rows = np.arange(len(action))
        if mask is not None and not mask[rows, action].all():  # u·total rounded up to the total
            bad = ~mask[rows, action]
            action[bad] = (
                mask.shape[-1] - 1 - np.argmax(mask[bad][:, ::-1], -1)
            )  # the last legal action
        return action, (shifted[rows, action] - np.log(total)).astype(np.float32)

    def mode(self, out: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """The most probable legal action ``[B]`` int64 (the first of equals, as torch's argmax)."""
        return np.argmax(shifted_logits(out, self.temperature, mask), -1)

    def encode(self, action: np.ndarray) -> tuple[np.ndarray, ...]:
        """Stored actions ``[B]`` as the training pass reads them: ``(taken [B] int64, one-hot
        [B, n] float32)``."""
        taken = action.astype(np.int64, copy=False)
        onehot = np.zeros((taken.shape[0], self.n), np.float32)
        onehot.reshape(-1)[_row_starts(taken.shape[0], self.n) + taken] = 1.0
        return taken, onehot

    def forward(
        self, out: np.ndarray, encoded: tuple[np.ndarray, ...], mask: np.ndarray | None
    ) -> KernelPass:
        """log π(a) and the entropy ``[B]`` under the current logits."""
        taken = encoded[0]
        shifted = shifted_logits(out, self.temperature, mask)
        e = np.exp(shifted)
        ones = float32_ones(shifted.shape[1])
        total = e @ ones
        logp_all = shifted - np.log(total)[:, None]
        probs = e / total[:, None]
        plogp = probs * logp_all
        if mask is not None:
            plogp = np.where(mask, plogp, 0.0)
        entropy = -(plogp @ ones)
        flat = (
            _row_starts(taken.shape[0], self.n) + taken
        )  # the taken action's index in logp_all, flattened
        return KernelPass(np.take(logp_all, flat), entropy, (logp_all, probs))

    def backward(
        self,
        p: KernelPass,
        encoded: tuple[np.ndarray, ...],
        mask: np.ndarray | None,
        g_logp: np.ndarray,
        g_entropy: float,
    ) -> np.ndarray:
        """d loss / d ``out`` ``[B, n]`` for ``d loss / d log π(a) = g_logp [B]`` and
        ``d loss / d H = g_entropy`` (the same for every sample):
        ``d log π(a)/d z = onehot(a) − p`` and ``d H/d z = −p·(log p + H)`` for logits ``z``,
        both divided by the temperature."""
        logp_all, probs = p.cache
        onehot = encoded[1]
        g_taken = g_logp[:, None]
        if g_entropy:
            spread = logp_all + p.entropy[:, None]
            if mask is not None:
                spread = np.where(mask, spread, 0.0)
            g = probs * (spread * -g_entropy - g_taken)
            g += onehot * g_taken
        else:  # no entropy bonus (the RL Zoo's CartPole setting)
            g = onehot - probs
            g *= g_taken
        if self.temperature != 1.0:
            g *= 1.0 / self.temperature
        return g


class CategoricalHead(ActionHead):
    """Logits over ``n`` actions, divided by a sampling temperature, with optional masks."""

    action_dtype = torch.int64
    numpy_kernel = CategoricalKernel

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

    def from_env(self, action: Any) -> np.ndarray:
        return np.asarray(action, dtype=np.int64).reshape(-1) - self.start
