"""One minibatch step's loss and gradient, two ways: autograd, and by hand in NumPy.

The learner (:mod:`ppox.training.learner`) owns everything around the step: advantages, the
epochs and their minibatches, advantage normalization, the target-KL check, the workers' gradient
average, clipping, the NaN guard and the Adam step. What differs between the two ways of
computing a gradient is behind one interface, :class:`UpdateStep`:

- :meth:`~UpdateStep.epoch_batch` converts an epoch's flat batch once (NumPy arrays, or tensors
  autograd may save); :meth:`~UpdateStep.minibatch` cuts a minibatch from it;
- :meth:`~UpdateStep.forward` evaluates the policy and critic on it under the current
  parameters, and :meth:`~UpdateStep.approx_kl` reads the mean k3 estimate of the KL from that;
- :meth:`~UpdateStep.gradient` writes the gradient of the minibatch loss into the learner's flat
  gradient buffer and returns the loss terms.

:class:`AutogradStep` serves every member of the family and every model. :class:`NumpyStep`
serves PPO-Clip on the models :func:`ppox.nn.numpy_policy.numpy_support` accepts, for the
settings :mod:`ppox.training.backends` lists as honoured; it is the same math (a differential
test per head kernel and per loss option checks it against autograd). A NumPy call on a few
hundred samples costs under a microsecond where a torch call costs a few, so on small MLPs its
step takes a third to a quarter of autograd's (docs/performance.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import Tensor

from ppox.core.loss_grads import clipped_surrogate_grad, value_loss_grad
from ppox.core.losses import (
    clip_fraction,
    clipped_surrogate,
    kl_estimate,
    kl_penalty,
    normalize_advantages,
    reinforce_loss,
    surrogate,
    value_loss,
)
from ppox.nn.numpy_policy import NumpyActorCritic, NumpyPass
from ppox.types import Batch

if TYPE_CHECKING:
    from ppox.training.learner import Learner

__all__ = ["AutogradStep", "NumpyBatch", "NumpyStep", "UpdateStep"]

Terms = Any
"""What :meth:`UpdateStep.gradient` returns: ``(policy loss, value loss, entropy, clip
fraction)`` as four floats (NumPy) or four scalar tensors (autograd, read back once per update)."""


class UpdateStep(Protocol):
    """One minibatch's loss and gradient (see the module docstring)."""

    name: str

    def begin_update(self) -> None:
        """Called at the start of every update (parameters may have moved in between)."""

    def epoch_batch(self, batch: Batch) -> Any:
        """The epoch's flat batch in the form :meth:`minibatch` cuts from."""

    def minibatch(self, data: Any, idx: Tensor | None, *, normalize_adv: bool) -> Any:
        """The samples at ``idx`` (None: all of them), advantages standardized if asked."""

    def forward(self, mb: Any) -> Any:
        """The policy and critic on the minibatch under the current parameters."""

    def approx_kl(self, f: Any) -> Tensor | float:
        """Mean k3 estimate of KL(π_old ‖ π) over the minibatch (``kl_estimate``)."""

    def gradient(self, f: Any, mb: Any, ent_coef: float) -> Terms:
        """Zero the flat gradient, write the minibatch loss's gradient into it, return the terms."""


class AutogradStep:
    """The loss of ``algo`` (PPO-Clip, PPO-Penalty, REINFORCE) and its gradient by autograd, on
    any model. Reads the learner's adaptive state (β, the reducer across workers) at each step."""

    name = "autograd"

    def __init__(self, learner: Learner) -> None:
        self.learner = learner
        self._whole: tuple[Batch, Batch] | None = None  # (an epoch's batch, its trainable copy)

    def begin_update(self) -> None:
        self._whole = None

    def epoch_batch(self, batch: Batch) -> Batch:
        return batch

    def minibatch(self, data: Batch, idx: Tensor | None, *, normalize_adv: bool) -> Batch:
        if idx is not None:
            mb = data.take(idx)  # a copy by index: autograd may save it
        else:  # the whole batch, copied out of inference mode once for all the epochs that reuse it
            if self._whole is None or self._whole[0] is not data:
                self._whole = (data, data.trainable())
            mb = self._whole[1]
        return mb._replace(adv=normalize_advantages(mb.adv)) if normalize_adv else mb

    def forward(self, mb: Batch) -> tuple[Any, Tensor, Tensor, Tensor, Callable[[Tensor], Tensor]]:
        mean = self.learner.reducer(mb.adv.shape[0])
        dist, value = self.learner.model(mb.obs, mb.mask, self.learner.recurrence(mb))
        logp = dist.log_prob(mb.action)
        return dist, value, logp, logp - mb.logp, mean

    def approx_kl(self, f: tuple[Any, ...]) -> Tensor:
        mean, log_ratio = f[4], f[3]
        return mean(kl_estimate(log_ratio.detach()))  # type: ignore[no-any-return]

    def gradient(self, f: tuple[Any, ...], mb: Batch, ent_coef: float) -> list[Tensor]:
        learner = self.learner
        o = learner.cfg.ppo
        dist, value, logp, log_ratio, mean = f
        if o.algo == "ppo-clip":
            pg = mean(
                clipped_surrogate(mb.adv, log_ratio, clip_coef=o.clip_coef, dual_clip=o.dual_clip)
            )
        elif (
            o.algo == "ppo-penalty"
        ):  # DPPO's hinge reads each worker's own minibatch KL, as DPPO's workers do
            kl = kl_estimate(log_ratio)
            margin = None if o.kl_margin is None else o.kl_margin * o.kl_target
            pen = kl_penalty(
                kl, kl.mean(), coef=learner.kl_coef, margin=margin, margin_coef=o.kl_margin_coef
            )
            pg = mean(surrogate(mb.adv, log_ratio) + pen)
        else:
            pg = mean(reinforce_loss(mb.adv, logp))
        if learner.uses_critic:
            vl = mean(value_loss(value, mb.value, mb.ret, clip=o.value_clip))
        else:
            vl = value.sum() * 0.0
        entropy = mean(dist.entropy())
        loss = pg + o.vf_coef * vl - ent_coef * entropy
        learner.flat.zero_grad()
        loss.backward()
        with torch.no_grad():
            if mb.adv.numel():
                clipped = clip_fraction(log_ratio, o.clip_coef)
            else:
                clipped = torch.zeros((), device=pg.device)
        return [pg.detach(), vl.detach(), entropy.detach(), clipped]


@dataclass
class NumpyBatch:
    """A batch as float32 NumPy arrays (views of the CPU tensors where no conversion is needed),
    made once per epoch (once per update when every epoch trains on the whole batch)."""

    x: np.ndarray  # [B, F] observations, flattened
    old_logp: np.ndarray  # [B]
    adv: np.ndarray  # [B]
    old_value: np.ndarray  # [B]
    ret: np.ndarray  # [B]
    action: tuple[np.ndarray, ...]  # the head kernel's encoding of the taken actions
    mask: np.ndarray | None  # [B, M] bool legal actions, or None

    def take(self, idx: np.ndarray) -> NumpyBatch:
        """The samples at ``idx`` ``[b]`` (copies)."""
        parts = [getattr(self, f.name) for f in fields(self)]
        cut = [
            None if a is None else tuple(x[idx] for x in a) if isinstance(a, tuple) else a[idx]
            for a in parts
        ]
        return NumpyBatch(*cut)  # type: ignore[arg-type]


def _np(x: Tensor) -> np.ndarray:
    """A CPU tensor's memory as a float32 NumPy array (a copy only for another dtype)."""
    return x.detach().numpy().astype(np.float32, copy=False)


class NumpyStep:
    """PPO-Clip's minibatch loss and its gradient written out by hand in NumPy.

    ``pg + vf_coef·vl − ent_coef·H`` (:func:`~ppox.core.losses.clipped_surrogate` with the
    optional dual clip, :func:`~ppox.core.losses.value_loss` with the optional value clip, the
    mean entropy), chained through :mod:`ppox.core.loss_grads`, the head's kernel and the MLP's
    backward pass into the parameters' ``.grad`` (views of the learner's flat buffer).
    """

    name = "numpy"

    def __init__(self, learner: Learner) -> None:
        self.learner = learner
        self.net = NumpyActorCritic(learner.model, train=True)

    def begin_update(self) -> None:
        self.net.refresh()

    def epoch_batch(self, batch: Batch) -> NumpyBatch:
        obs = batch.obs
        assert isinstance(obs, Tensor)
        n = obs.shape[0]
        action = self.net.kernel.encode(batch.action.detach().numpy())
        mask = None if batch.mask is None else batch.mask.numpy()
        return NumpyBatch(_np(obs).reshape(n, -1), _np(batch.logp), _np(batch.adv), _np(batch.value), _np(batch.ret),
                          action, mask)  # fmt: skip

    def minibatch(self, data: NumpyBatch, idx: Tensor | None, *, normalize_adv: bool) -> NumpyBatch:
        mb = data if idx is None else data.take(idx.numpy())
        if normalize_adv:
            mb = NumpyBatch(mb.x, mb.old_logp, normalize_advantages(torch.from_numpy(mb.adv)).numpy(), mb.old_value,
                            mb.ret, mb.action, mb.mask)  # fmt: skip
        return mb

    def forward(self, mb: NumpyBatch) -> tuple[NumpyPass, np.ndarray]:
        f = self.net.forward(mb.x, mb.action, mb.mask)
        return f, f.head.logp - mb.old_logp

    def approx_kl(self, f: tuple[NumpyPass, np.ndarray]) -> float:
        log_ratio = f[1]
        return float(np.add.reduce(np.expm1(log_ratio) - log_ratio)) / log_ratio.shape[0]

    def gradient(
        self, f: tuple[NumpyPass, np.ndarray], mb: NumpyBatch, ent_coef: float
    ) -> list[float]:
        terms, g_logp, g_entropy, g_value = self.loss(f, mb, ent_coef)
        self.learner.flat.zero_grad()
        self.net.backward(f[0], mb.action, mb.mask, g_logp, g_entropy, g_value)
        return terms

    def loss(
        self, f: tuple[NumpyPass, np.ndarray], mb: NumpyBatch, ent_coef: float
    ) -> tuple[list[float], np.ndarray, float, np.ndarray]:
        """The minibatch's loss terms (what :meth:`gradient` returns) and the loss's derivatives
        in log π(a) ``[B]``, in the entropy, and in V ``[B]`` (what the backward pass reads)."""
        o = self.learner.cfg.ppo
        p, log_ratio = f
        n = log_ratio.shape[0]
        pg, g_logp, ratio = clipped_surrogate_grad(mb.adv, log_ratio, clip_coef=o.clip_coef, dual_clip=o.dual_clip,
                                                   scale=1.0 / n)  # fmt: skip
        vl, g_value = value_loss_grad(
            p.value, mb.old_value, mb.ret, clip=o.value_clip, scale=o.vf_coef / n
        )
        clipped = float(np.count_nonzero(np.abs(ratio - 1.0) > o.clip_coef)) / n
        entropy = p.head.entropy
        terms = [
            float(np.add.reduce(pg)) / n,
            float(np.add.reduce(vl)) / n,
            float(np.add.reduce(entropy)) / n,
            clipped,
        ]
        return terms, g_logp, -ent_coef / n, g_value


def finite(terms: Terms) -> bool:
    """Whether every loss term is finite (one host read for autograd's tensors)."""
    if isinstance(terms, list) and terms and isinstance(terms[0], float):
        return math.isfinite(sum(terms))
    return bool(torch.isfinite(torch.stack(terms)).all())
