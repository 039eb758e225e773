"""The PPO-Clip minibatch gradient written out by hand, in NumPy, for the small MLP policies PPO
is mostly run with.

A minibatch step through autograd runs some 120 small torch kernels (forward, loss, the graph's
backward nodes) at a few microseconds of dispatch each, about 1 ms at 64–256 samples whatever
the arithmetic (shared research, performance §4.2). The gradient of PPO-Clip's loss for an MLP
actor-critic has a short closed form, so :class:`FusedClipStep` computes the loss terms and
writes the gradient of

    pg + vf_coef · vl − ent_coef · H

(``ppox.core.losses``: clipped surrogate with optional dual clip, value loss with optional value
clipping, mean entropy) straight into the parameters' ``.grad``. It works on NumPy views of the
parameters and their gradients (no copies: the learner's flat buffer is shared memory), because
a NumPy call on a few hundred samples costs well under a microsecond of overhead where a torch
call costs two to four; the matrix products go to BLAS either way. The optimizer step stays
torch's fused Adam on the same buffer.

It serves what :class:`~ppox.nn.lean.LeanActor` serves, on the CPU: MLP trunks (tanh, ReLU or
ELU; shared or separate) reading a Box observation, and a Discrete head (masks and temperature
included) or a Box head with ``independent`` or ``fixed`` σ. :meth:`FusedClipStep.supports`
says whether a model and config qualify; the learner uses autograd otherwise
(``run.update_backend``). tests/test_fused.py checks the gradient against autograd's on every
supported combination.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import numpy as np
from torch import Tensor, nn

from ppox.config import PPOConfig
from ppox.distributions.categorical import CategoricalHead
from ppox.distributions.normal import LOG_SQRT_2PI, GaussianHead
from ppox.nn.actor_critic import ActorCritic
from ppox.nn.lean import plain_mlp_policy, shifted_logits
from ppox.types import Batch

__all__ = ["FusedBatch", "FusedClipStep", "FusedPass"]

_KINDS = {nn.Tanh: "tanh", nn.ReLU: "relu", nn.ELU: "elu"}


class _Layer:
    """One Linear layer as NumPy views of its weight ``[out, in]``, bias and their gradients,
    and the activation after it (None for an output layer)."""

    def __init__(self, linear: nn.Linear, kind: str | None) -> None:
        self.linear, self.kind = linear, kind
        self.refresh()

    def refresh(self) -> None:
        w, b = self.linear.weight, self.linear.bias
        if w.grad is None or b.grad is None:
            raise ValueError(
                "FusedClipStep writes into existing .grad tensors: build the learner's FlatParams first"
            )
        self.w, self.b = w.detach().numpy(), b.detach().numpy()
        self.gw, self.gb = w.grad.numpy(), b.grad.numpy()

    def out(self, x: np.ndarray) -> np.ndarray:
        """``act(x Wᵀ + b)``."""
        z = x @ self.w.T
        z += self.b
        if self.kind == "tanh":
            return np.tanh(z, out=z)
        if self.kind == "relu":
            return np.maximum(z, 0.0, out=z)
        if self.kind == "elu":
            return np.where(z > 0, z, np.expm1(np.minimum(z, 0.0)))
        return z

    def grad(
        self, g: np.ndarray, x: np.ndarray, ones: np.ndarray, need_input: bool = True
    ) -> np.ndarray | None:
        """Write the gradients of W and b from d loss / d the layer's pre-activation output ``g``
        and its input ``x``; return d loss / d ``x`` when asked. ``ones``: ``[B]`` ones (the bias
        gradient as one BLAS call, about 4× faster than a reduction over the batch axis)."""
        np.dot(g.T, x, out=self.gw)
        np.dot(ones, g, out=self.gb)
        return g @ self.w if need_input else None

    def scalar_out(self, x: np.ndarray) -> np.ndarray:
        """A one-unit output layer (the critic's) as ``[B]``: one matrix-vector product."""
        v = x @ self.w[0]
        v += self.b[0]
        return v

    def scalar_grad(self, g: np.ndarray, x: np.ndarray) -> np.ndarray:
        """:meth:`grad` of a one-unit layer from ``g`` ``[B]``; returns d loss / d ``x``."""
        np.dot(g, x, out=self.gw[0])
        self.gb[0] = g.sum()
        return np.multiply.outer(g, self.w[0])


def _through(g: np.ndarray, y: np.ndarray, kind: str) -> np.ndarray:
    """``g · act'(z)`` from the activation's output ``y`` (``g`` may be overwritten)."""
    if kind == "tanh":  # 1 − y²
        d = np.square(y)
        np.subtract(1.0, d, out=d)
        return np.multiply(d, g, out=d)
    if kind == "relu":
        return np.multiply(g, y > 0, out=g)
    return np.where(y > 0, g, g * (y + 1.0))


@functools.lru_cache(maxsize=32)
def _ones(n: int) -> np.ndarray:
    """``[n]`` float32 ones, read-only (bias gradients and row sums as one BLAS call)."""
    ones = np.ones(n, np.float32)
    ones.flags.writeable = False
    return ones


@functools.lru_cache(maxsize=32)
def _row_starts(n: int, k: int) -> np.ndarray:
    """``[n]`` offsets of the rows of an ``[n, k]`` array, flattened (read-only)."""
    starts = np.arange(n) * k
    starts.flags.writeable = False
    return starts


@dataclass
class FusedBatch:
    """A batch as NumPy arrays (views of the CPU tensors where no conversion is needed), made
    by :meth:`FusedClipStep.batch` once per epoch (once per update when every epoch trains on
    the whole batch); :meth:`take` cuts the minibatches out of it."""

    x: np.ndarray  # [B, in] observations, flattened
    old_logp: np.ndarray  # [B]
    adv: np.ndarray  # [B] advantages
    old_value: np.ndarray  # [B]
    ret: np.ndarray  # [B]
    mask: np.ndarray | None = None  # categorical: [B, n] bool, legal actions
    taken: np.ndarray | None = None  # categorical: [B] int64, the taken action
    onehot: np.ndarray | None = None  # categorical: [B, n] float32, the taken action
    action: np.ndarray | None = None  # Gaussian: [B, d]

    @property
    def ones(self) -> np.ndarray:
        return _ones(self.adv.shape[0])

    @property
    def flat_taken(self) -> np.ndarray:
        """``[B]`` index of the taken action in a ``[B, n]`` array, flattened."""
        assert self.taken is not None and self.onehot is not None
        return _row_starts(self.taken.shape[0], self.onehot.shape[1]) + self.taken

    def take(self, idx: np.ndarray) -> FusedBatch:
        """The samples at ``idx`` ``[b]`` (copies)."""
        return FusedBatch(*(None if a is None else a[idx] for a in _fields_of(self)))  # type: ignore[arg-type]


def _fields_of(fb: FusedBatch) -> tuple[np.ndarray | None, ...]:
    """The fields of ``fb`` in order (``dataclasses.astuple`` would deep-copy the arrays)."""
    return tuple(getattr(fb, f.name) for f in fields(fb))


@dataclass
class FusedPass:
    """What the forward pass of one minibatch keeps for the gradient (NumPy arrays)."""

    log_ratio: np.ndarray  # [B] log π(a|s) − log π_old(a|s) under the current parameters
    actor: list[np.ndarray]  # the actor trunk's input and each layer's output
    critic: list[np.ndarray]
    value: np.ndarray  # [B]
    entropy: np.ndarray  # [B]
    logp_all: np.ndarray | None = None  # categorical: [B, n] log-probabilities
    probs: np.ndarray | None = None
    z: np.ndarray | None = None  # Gaussian: [B, d] (a − μ)/σ
    inv_std: np.ndarray | None = None  # [d]

    def approx_kl(self) -> float:
        """Mean k3 estimate of KL(π_old ‖ π) (``ppox.core.losses.kl_estimate``)."""
        return (
            float(np.add.reduce(np.expm1(self.log_ratio) - self.log_ratio))
            / self.log_ratio.shape[0]
        )


class FusedClipStep:
    """``batch(minibatch)`` → :class:`FusedBatch`; ``forward(batch)`` → :class:`FusedPass`;
    ``backward(pass, batch, ...)`` writes the gradient of the PPO-Clip loss into the parameters'
    ``.grad`` (which must exist: the learner's :class:`~ppox.training.optim.FlatParams` views, built
    before this) and returns the mean loss terms and the clip fraction as floats."""

    def __init__(self, model: ActorCritic) -> None:
        if not self.supports(model):
            raise ValueError("FusedClipStep needs an MLP actor-critic on CPU with a Box observation and a "
                             "Discrete or Box (independent / fixed σ) action")  # fmt: skip
        self.model = model
        self.actor = _layers(model.trunks["actor"])
        self.critic = self.actor if model.shared else _layers(model.trunks["critic"])
        head = model.head
        assert isinstance(head, (CategoricalHead, GaussianHead))
        self.categorical = isinstance(head, CategoricalHead)
        out = head.logits if isinstance(head, CategoricalHead) else head.mean
        assert isinstance(out, nn.Linear) and isinstance(model.value_out, nn.Linear)
        self.out, self.value_out = _Layer(out, None), _Layer(model.value_out, None)
        self.temperature = head.temperature if isinstance(head, CategoricalHead) else 1.0
        self.log_std_param: Tensor | None = (
            None if isinstance(head, CategoricalHead) else head.log_std
        )
        self.refresh()

    @staticmethod
    def supports(model: ActorCritic, cfg: PPOConfig | None = None) -> bool:
        """True for an MLP policy on CPU reading a Box observation, with a Discrete head or a Box
        head whose σ is ``independent`` or ``fixed``, trained with PPO-Clip (when ``cfg`` is given)."""
        if cfg is not None and cfg.algo != "ppo-clip":
            return False
        head = model.head
        return plain_mlp_policy(model) and not (
            isinstance(head, GaussianHead) and head.sigma_mode == "state"
        )

    def refresh(self) -> None:
        """Re-read the NumPy views of the parameters and gradients (the learner calls it at the
        start of every update, in case a parameter's storage was replaced in between)."""
        for layer in {
            id(x): x for x in [*self.actor, *self.critic, self.out, self.value_out]
        }.values():
            layer.refresh()
        self.log_std: np.ndarray | None = None
        self.log_std_grad: np.ndarray | None = None
        if self.log_std_param is not None:
            self.log_std = self.log_std_param.detach().numpy()
            if isinstance(self.log_std_param, nn.Parameter):  # learned σ; a fixed one is a buffer
                assert self.log_std_param.grad is not None, "build the learner's FlatParams first"
                self.log_std_grad = self.log_std_param.grad.numpy()

    def batch(self, mb: Batch) -> FusedBatch:
        """``mb`` (CPU tensors) as float32 NumPy arrays (views where they are float32 already,
        as the collector stores them; a ready-made batch of another float type is converted)."""
        obs = mb.obs
        assert isinstance(obs, Tensor)
        n = obs.shape[0]
        fb = FusedBatch(
            _f32(obs).reshape(n, -1), _f32(mb.logp), _f32(mb.adv), _f32(mb.value), _f32(mb.ret)
        )
        if not self.categorical:
            fb.action = _f32(mb.action)
            return fb
        fb.taken = _np(mb.action).astype(np.int64, copy=False)
        fb.onehot = np.zeros((n, self.out.w.shape[0]), np.float32)
        fb.onehot.reshape(-1)[fb.flat_taken] = 1.0
        fb.mask = None if mb.mask is None else _np(mb.mask)
        return fb

    # --- forward ---------------------------------------------------------------------------------
    def forward(self, fb: FusedBatch) -> FusedPass:
        """The forward pass under the current parameters."""
        actor = _run(self.actor, fb.x)
        critic = actor if self.critic is self.actor else _run(self.critic, fb.x)
        value = self.value_out.scalar_out(critic[-1])
        out = self.out.out(actor[-1])
        if self.categorical:
            m = fb.mask
            shifted = shifted_logits(out, self.temperature, m)
            e = np.exp(shifted)
            ones = _ones(shifted.shape[1])  # row sums as one BLAS call
            total = e @ ones
            logp_all = shifted - np.log(total)[:, None]
            probs = e / total[:, None]
            assert fb.flat_taken is not None
            logp = np.take(logp_all, fb.flat_taken)
            plogp = probs * logp_all
            if m is not None:
                plogp = np.where(m, plogp, 0.0)
            entropy = -(plogp @ ones)
            return FusedPass(logp - fb.old_logp, actor, critic, value, entropy, logp_all, probs)
        assert self.log_std is not None and fb.action is not None
        inv_std = np.exp(-self.log_std)
        z = fb.action - out
        z *= inv_std
        logp = np.square(z) @ np.full(z.shape[1], -0.5, np.float32)
        logp -= float(self.log_std.sum()) + LOG_SQRT_2PI * z.shape[1]
        entropy = np.full(z.shape[0], np.sum(self.log_std + (0.5 + LOG_SQRT_2PI)), dtype=np.float32)
        return FusedPass(logp - fb.old_logp, actor, critic, value, entropy, z=z, inv_std=inv_std)

    # --- loss terms and gradient -----------------------------------------------------------------
    def backward(
        self,
        f: FusedPass,
        fb: FusedBatch,
        *,
        clip_coef: float,
        dual_clip: float | None,
        value_clip: float | None,
        vf_coef: float,
        ent_coef: float,
    ) -> tuple[float, float, float, float]:
        """Write the gradient; return the mean ``(policy loss, value loss, entropy)`` and the
        fraction of samples whose ratio lies outside ``[1 − ε, 1 + ε]``."""
        a = fb.adv
        n = a.shape[0]
        ratio = np.exp(f.log_ratio)
        surr1 = ratio * a
        surr2 = np.minimum(np.maximum(ratio, 1.0 - clip_coef), 1.0 + clip_coef)
        surr2 *= a
        objective = np.minimum(surr1, surr2)
        # d objective / d log ratio: ρ·A where the unclipped term is the minimum (inside the clip
        # range the two terms are equal and both carry ρ·A), 0 where the clipped one is
        live = surr1 <= surr2
        if dual_clip is not None:
            bound = dual_clip * a
            floored = (a < 0) & (bound > objective)
            objective = np.where(floored, bound, objective)
            live &= ~floored
        g_lr = np.where(live, surr1, 0.0)
        g_lr *= -1.0 / n  # d pg / d log ratio, pg = −mean(objective)
        err = f.value - fb.ret
        if value_clip is None:
            vl = 0.5 * float(np.dot(err, err)) / n
            g_v = err * (vf_coef / n)
        else:
            ov = fb.old_value
            delta = f.value - ov
            err_c = ov + np.clip(delta, -value_clip, value_clip) - fb.ret
            sq, sq_c = err * err, err_c * err_c
            vl = 0.5 * float(np.add.reduce(np.maximum(sq, sq_c))) / n
            g_v = np.where(sq >= sq_c, err, err_c * (np.abs(delta) <= value_clip)) * (vf_coef / n)
        g_out = self._head_grad(f, fb, g_lr, ent_coef / n)
        g_actor = self.out.grad(g_out, f.actor[-1], fb.ones)
        g_critic = self.value_out.scalar_grad(g_v, f.critic[-1])
        assert g_actor is not None
        if self.critic is self.actor:
            g_actor += g_critic
            _backprop(self.actor, f.actor, g_actor, fb.ones)
        else:
            _backprop(self.actor, f.actor, g_actor, fb.ones)
            _backprop(self.critic, f.critic, g_critic, fb.ones)
        clipped = float(np.count_nonzero(np.abs(ratio - 1.0) > clip_coef)) / n
        return (
            -float(np.add.reduce(objective)) / n,
            vl,
            float(np.add.reduce(f.entropy)) / n,
            clipped,
        )

    def _head_grad(
        self, f: FusedPass, fb: FusedBatch, g_lr: np.ndarray, ent_w: float
    ) -> np.ndarray:
        """d loss / d head output ``[B, out]`` (and, for a learned σ, its gradient written)."""
        if self.categorical:
            assert f.probs is not None and f.logp_all is not None and fb.onehot is not None
            # d log π(a)/d logits = onehot(a) − p;  d H/d logits = −p·(log p + H)
            g_taken = g_lr[:, None]
            if ent_w:
                spread = f.logp_all + f.entropy[:, None]
                if fb.mask is not None:
                    spread = np.where(fb.mask, spread, 0.0)
                g = f.probs * (spread * ent_w - g_taken)
                g += fb.onehot * g_taken
            else:  # no entropy bonus (the RL Zoo's CartPole setting)
                g = fb.onehot - f.probs
                g *= g_taken
            if self.temperature != 1.0:
                g *= 1.0 / self.temperature
            return g
        assert f.z is not None and f.inv_std is not None
        g = g_lr[:, None] * f.z
        if self.log_std_grad is not None:  # d log π/d log σ = z² − 1;  d H/d log σ = 1
            np.dot(fb.ones, g * f.z, out=self.log_std_grad)
            self.log_std_grad -= float(g_lr.sum()) + ent_w * g_lr.shape[0]
        g *= f.inv_std
        return g


def _np(x: Tensor | np.ndarray) -> np.ndarray:
    """A CPU tensor's memory as a NumPy array (no copy)."""
    return x.detach().numpy() if isinstance(x, Tensor) else x


def _f32(x: Tensor | np.ndarray) -> np.ndarray:
    """:func:`_np` as float32 (a copy only when it is another type)."""
    return _np(x).astype(np.float32, copy=False)


def _layers(trunk: nn.Module) -> list[_Layer]:
    out: list[_Layer] = []
    for m in trunk.children():
        if isinstance(m, nn.Linear):
            out.append(_Layer(m, None))
        else:
            out[-1].kind = _KINDS[type(m)]
    return out


def _run(layers: list[_Layer], x: np.ndarray) -> list[np.ndarray]:
    hs = [x]
    for layer in layers:
        hs.append(layer.out(hs[-1]))
    return hs


def _backprop(layers: list[_Layer], hs: list[np.ndarray], g: np.ndarray, ones: np.ndarray) -> None:
    """Write the gradients of an MLP's layers from d loss / d its output ``g`` (``ones``: ``[B]``)."""
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if layer.kind is not None:
            g = _through(g, hs[i + 1], layer.kind)
        nxt = layer.grad(g, hs[i], ones, need_input=i > 0)
        if nxt is not None:
            g = nxt
