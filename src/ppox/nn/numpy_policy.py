"""The actor-critic in NumPy: one MLP implementation for acting and for the hand-written update.

PPO is mostly run with small MLP policies, and at their size each torch call costs a few
microseconds of dispatch whatever it computes: an acting step through torch is some 20 calls,
an autograd minibatch step some 120 kernels (docs/performance.md has ppox's measurements). The
same arithmetic in NumPy costs a third to a quarter of that, because a NumPy call on a few
hundred samples costs well under a microsecond; the matrix products go to BLAS either way.

:class:`NumpyActorCritic` mirrors an :class:`~ppox.nn.actor_critic.ActorCritic`:

- the trunks and output layers as :class:`NumpyMLP` / :class:`NumpyLinear`, which read the torch
  parameters through NumPy views (no copies; the learner's flat buffer is shared memory) and
  write gradients straight into the parameters' ``.grad`` views;
- the action head's distribution math as the head's own NumPy kernel
  (:class:`~ppox.distributions.base.NumpyKernel`), declared in the head's module beside its torch
  math.

Acting (:meth:`NumpyActorCritic.act`) runs a plan built once per rollout by
:meth:`~NumpyActorCritic.refresh`: separate actor and critic trunks up to
:data:`JOINT_MAX_WIDTH` wide run as one block-diagonal MLP (half the calls). Training
(:meth:`~NumpyActorCritic.forward`, :meth:`~NumpyActorCritic.backward`) keeps each layer's
output for the backward pass.

:func:`numpy_support` decides which models qualify, by *exact* classes: an ``ActorCritic``
(not a subclass), no observation encoder, trunks of ``nn.Linear`` / ``nn.Tanh`` / ``nn.ReLU`` /
``nn.ELU`` only, float32 parameters on the CPU, and a head whose own class declares a kernel. A
subclass of any of these may change the math, so it is served by torch, never guessed at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ppox.distributions.base import KernelPass, NumpyKernel, float32_ones, numpy_kernel_of
from ppox.nn.actor_critic import ActorCritic

__all__ = [
    "JOINT_MAX_WIDTH",
    "NumpyActorCritic",
    "NumpyLinear",
    "NumpyMLP",
    "NumpyPass",
    "activate",
    "activation_grad",
    "numpy_support",
    "run_plan",
]

ACTIVATIONS: dict[type[nn.Module], str] = {nn.Tanh: "tanh", nn.ReLU: "relu", nn.ELU: "elu"}
"""The hidden activations the NumPy MLP implements, by exact module class."""

JOINT_MAX_WIDTH = 128
"""Separate actor and critic trunks up to this width act as one network of twice the width
(block-diagonal weights): half the NumPy calls, and at a few envs the extra zeros cost less
than the calls they save. Wider trunks run one after the other."""


def _relu_(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0, out=z)


def _elu(z: np.ndarray) -> np.ndarray:
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0.0)))


_IN_PLACE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "relu": _relu_,
    "elu": _elu,
}
"""The activations as one call each, for the acting plan (no dispatch on the name per layer;
tanh as the bare ufunc: a fresh array of a few rows costs less than a Python frame)."""

Plan = list[tuple[np.ndarray, np.ndarray, "Callable[[np.ndarray], np.ndarray] | None"]]
"""An acting plan: ``(Wᵀ, b, activation or None)`` per layer, contiguous copies."""


def activate(z: np.ndarray, kind: str | None) -> np.ndarray:
    """The activation ``kind`` (None: none) of pre-activations ``z``, in place where it can be."""
    if kind is None:
        return z
    if kind == "tanh":
        return np.tanh(z, out=z)
    if kind == "relu":
        return np.maximum(z, 0.0, out=z)
    return _elu(z)


def activation_grad(
    g: np.ndarray, y: np.ndarray, kind: str, out: np.ndarray | None = None
) -> np.ndarray:
    """``g · act'(z)`` from the activation's output ``y`` (``g`` may be overwritten): tanh
    ``1 − y²``, ReLU ``[y > 0]``, ELU 1 above 0 and ``y + 1`` below. ``out`` (y's shape and
    dtype) receives tanh's result instead of a new array."""
    if kind == "tanh":
        d = np.square(y, out=out)
        np.subtract(1.0, d, out=d)
        return np.multiply(d, g, out=d)
    if kind == "relu":
        return np.multiply(g, y > 0, out=g)
    return np.where(y > 0, g, g * (y + 1.0))


class NumpyLinear:
    """An ``nn.Linear`` as NumPy views of its weight ``[out, in]``, bias and (when training)
    their gradients, followed by an activation (None for an output layer)."""

    def __init__(self, linear: nn.Linear, kind: str | None, train: bool) -> None:
        self.linear, self.kind, self.train = linear, kind, train
        self.refresh()

    def refresh(self) -> None:
        w, b = self.linear.weight, self.linear.bias
        self.w, self.b = w.detach().numpy(), b.detach().numpy()
        if self.train:
            if w.grad is None or b.grad is None:
                raise ValueError(
                    "the NumPy update writes into existing .grad tensors: build the learner's FlatParams first"
                )
            self.gw, self.gb = w.grad.numpy(), b.grad.numpy()

    def out(self, x: np.ndarray) -> np.ndarray:
        """``act(x Wᵀ + b)`` ``[B, out]``."""
        z = x @ self.w.T
        z += self.b
        return activate(z, self.kind)

    def grad(
        self, g: np.ndarray, x: np.ndarray, ones: np.ndarray, need_input: bool = True
    ) -> np.ndarray | None:
        """Write the gradients of W and b from d loss / d the pre-activation output ``g`` and
        the input ``x``; return d loss / d ``x`` when asked. ``ones``: ``[B]`` float32 ones (the
        bias gradient as one BLAS call)."""
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

    def plan(self) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray] | None]:
        """``(Wᵀ, b, activation)`` as contiguous copies, for an acting plan."""
        return self.w.T.copy(), self.b.copy(), None if self.kind is None else _IN_PLACE[self.kind]


class NumpyMLP:
    """A trunk (``nn.Sequential`` of Linear layers, each optionally followed by an activation)."""

    def __init__(self, trunk: nn.Module, train: bool) -> None:
        self.layers: list[NumpyLinear] = []
        for m in trunk.children():
            if type(m) is nn.Linear:
                self.layers.append(NumpyLinear(m, None, train))
            else:
                self.layers[-1].kind = ACTIVATIONS[type(m)]

    def refresh(self) -> None:
        for layer in self.layers:
            layer.refresh()

    @property
    def width(self) -> int:
        return max(layer.w.shape[0] for layer in self.layers)

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """The input and every layer's output (the last is the trunk's features)."""
        hs = [x]
        for layer in self.layers:
            hs.append(layer.out(hs[-1]))
        return hs

    def backward(self, hs: list[np.ndarray], g: np.ndarray, ones: np.ndarray) -> None:
        """Write every layer's gradients from d loss / d the trunk's output ``g`` (``ones``:
        ``[B]`` float32 ones)."""
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if layer.kind is not None:
                g = activation_grad(g, hs[i + 1], layer.kind)
            nxt = layer.grad(g, hs[i], ones, need_input=i > 0)
            if nxt is not None:
                g = nxt


def numpy_support(model: nn.Module) -> str | None:
    """None when :class:`NumpyActorCritic` computes exactly what ``model`` computes, else the
    reason it does not (for the run's record): exact classes only, never ``isinstance``."""
    if type(model) is not ActorCritic:
        return f"the model is a {type(model).__name__}, not ppox's ActorCritic"
    assert isinstance(model, ActorCritic)
    if model.memory is not None:
        return "the policy has memory; the NumPy paths serve feed-forward policies"
    if model.encoder is not None:
        return "the observation goes through an encoder (only a Box read directly by the MLP is served)"
    if numpy_kernel_of(model.head) is None:
        return f"the action head {type(model.head).__name__} declares no NumPy kernel"
    for name, trunk in model.trunks.items():
        if type(trunk) is not nn.Sequential:
            return f"the {name} trunk is a {type(trunk).__name__}, not an nn.Sequential"
        if len(trunk) == 0:
            return "the policy has no hidden layers (hidden_sizes is empty); the NumPy paths serve MLPs"
        for m in trunk.children():
            if type(m) is not nn.Linear and type(m) not in ACTIVATIONS:
                return (
                    f"the {name} trunk holds a {type(m).__name__} (served: Linear, Tanh, ReLU, ELU)"
                )
    layers = [model.value_out] + list(_kernel(model, train=False).out_layers)
    if any(type(m) is not nn.Linear for m in layers):
        return "an output layer is not an nn.Linear"
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        return "the parameters are not float32 on the CPU"
    return None


def _kernel(model: ActorCritic, train: bool) -> NumpyKernel:
    kind = numpy_kernel_of(model.head)
    assert kind is not None
    return kind(model.head)  # type: ignore[no-any-return]


def _block(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[[a, 0], [0, b]]``."""
    out = np.zeros((a.shape[0] + b.shape[0], a.shape[1] + b.shape[1]), dtype=a.dtype)
    out[: a.shape[0], : a.shape[1]] = a
    out[a.shape[0] :, a.shape[1] :] = b
    return out


def run_plan(plan: Plan, x: np.ndarray) -> np.ndarray:
    """An acting plan on ``x`` ``[..., in]`` (a leading axis of stacked weights works alike)."""
    for w, b, act in plan:
        x = x @ w
        x += b
        if act is not None:
            x = act(x)
    return x


class NumpyPass(NamedTuple):
    """What a training forward pass keeps for :meth:`NumpyActorCritic.backward`."""

    head: KernelPass  # log π(a), entropy and the kernel's cache
    actor: list[np.ndarray]  # the actor trunk's input and each layer's output
    critic: list[np.ndarray]  # the same object as ``actor`` for a shared trunk
    value: np.ndarray  # [B]


class NumpyActorCritic:
    """An :class:`ActorCritic` for which :func:`numpy_support` is None, in NumPy.

    Args:
        model: the torch model; its parameters are read (and, with ``train``, their gradients
            written) through views.
        train: also serve :meth:`forward` / :meth:`backward` (the parameters' ``.grad`` must exist).
    """

    def __init__(self, model: ActorCritic, *, train: bool = False) -> None:
        reason = numpy_support(model)
        if reason is not None:
            raise ValueError(f"NumpyActorCritic cannot serve this model: {reason}")
        self.model, self.train = model, train
        self.kernel = _kernel(model, train)
        self.kernel_reads_features = bool(getattr(self.kernel, "reads_features", False))
        self.shared = model.shared
        self.actor = NumpyMLP(model.trunks["actor"], train)
        self.critic = self.actor if self.shared else NumpyMLP(model.trunks["critic"], train)
        self.out = [NumpyLinear(m, None, train) for m in self.kernel.out_layers]
        self.value_out = NumpyLinear(model.value_out, None, train)
        self.joint_ok = not self.shared and self.actor.width <= JOINT_MAX_WIDTH
        self._plan: Plan = []
        self._actor_plan: Plan = []
        self._critic_plan: Plan = []
        self._out_plan: Plan = []
        self._value_plan: Plan = []

    def refresh(self) -> None:
        """Re-read the parameter views and rebuild the acting plan (call after every update,
        before acting or training: a parameter's storage may have been replaced)."""
        for part in {id(x): x for x in [self.actor, self.critic]}.values():
            part.refresh()
        for layer in [*self.out, self.value_out]:
            layer.refresh()
        self.kernel.refresh()
        out_w = np.concatenate([layer.w for layer in self.out]).T.copy()
        out_b = np.concatenate([layer.b for layer in self.out])
        value = self.value_out.plan()
        if self.joint_ok:  # actor and critic as one block-diagonal MLP: [head output | value]
            a, c = [x.plan() for x in self.actor.layers], [x.plan() for x in self.critic.layers]
            self._plan = [
                (np.concatenate([a[0][0], c[0][0]], 1), np.concatenate([a[0][1], c[0][1]]), a[0][2])
            ]
            self._plan += [
                (_block(x[0], y[0]), np.concatenate([x[1], y[1]]), x[2])
                for x, y in zip(a[1:], c[1:])
            ]
            self._plan.append((_block(out_w, value[0]), np.concatenate([out_b, value[1]]), None))
            return
        self._actor_plan = [x.plan() for x in self.actor.layers]
        self._critic_plan = [x.plan() for x in self.critic.layers]
        self._out_plan = [(out_w, out_b, None)]
        self._value_plan = [value]

    # --- acting ----------------------------------------------------------------------------------
    def noise(self, steps: int, num_envs: int, generator: torch.Generator) -> np.ndarray:
        """A rollout's randomness, drawn at once from the run's generator (so a checkpoint of
        the generator resumes collection exactly)."""
        return self.kernel.noise(steps, num_envs, generator)

    def act(
        self, obs: np.ndarray, noise: np.ndarray, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(action, log π(action), value)`` for ``B`` observations ``[B, F]`` (float32), one
        row of :meth:`noise` and an optional bool mask; the numbers the torch model gives for
        the same draw, to float32 rounding."""
        out, value, h = self._outputs(obs)
        if self.kernel_reads_features:
            action, logp = self.kernel.act(out, noise, mask, features=h)  # type: ignore[call-arg]
        else:
            action, logp = self.kernel.act(out, noise, mask)
        return action, logp, value

    def mode(self, obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The distribution's mode for ``B`` observations (the deterministic action: the most
        probable one, the mean of a Gaussian), as the torch model's ``dist(...).mode()``; only
        for a kernel that declares ``mode`` (:meth:`serves_mode`)."""
        return self.kernel.mode(self._outputs(obs)[0], mask)  # type: ignore[attr-defined, no-any-return]

    def serves_mode(self) -> bool:
        """Whether this policy's kernel computes the mode (:meth:`mode`)."""
        return callable(getattr(self.kernel, "mode", None))

    def _outputs(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(head outputs [B, Σ out], value [B], actor features or None)`` by the acting plan;
        the features only where the kernel reads them, or where the trunks run separately."""
        if obs.ndim != 2:
            obs = obs.reshape(obs.shape[0], -1)
        h = None  # the actor's features, for a kernel that reads them (gSDE's φ)
        if self._plan:
            if self.kernel_reads_features:  # stop before the output block to keep them
                x = run_plan(self._plan[:-1], obs)  # [actor features | critic features]
                h = x[:, : self.actor.layers[-1].w.shape[0]]
                both = run_plan(self._plan[-1:], x)
            else:
                both = run_plan(self._plan, obs)
            return both[:, :-1], both[:, -1], h
        h = run_plan(self._actor_plan, obs)
        c = h if self.shared else run_plan(self._critic_plan, obs)
        return run_plan(self._out_plan, h), run_plan(self._value_plan, c)[:, 0], h

    # --- training --------------------------------------------------------------------------------
    def forward(
        self, x: np.ndarray, encoded: tuple[np.ndarray, ...], mask: np.ndarray | None
    ) -> NumpyPass:
        """log π(a), entropy and V for a batch ``x [B, F]`` of observations and the actions
        taken (``kernel.encode``), under the current parameters."""
        actor = self.actor.forward(x)
        critic = actor if self.shared else self.critic.forward(x)
        h = actor[-1]
        out = (
            self.out[0].out(h)
            if len(self.out) == 1
            else np.concatenate([layer.out(h) for layer in self.out], 1)
        )
        return NumpyPass(
            self.kernel.forward(out, encoded, mask),
            actor,
            critic,
            self.value_out.scalar_out(critic[-1]),
        )

    def backward(
        self,
        f: NumpyPass,
        encoded: tuple[np.ndarray, ...],
        mask: np.ndarray | None,
        g_logp: np.ndarray,
        g_entropy: float,
        g_value: np.ndarray,
    ) -> None:
        """Write the gradient of a loss with ``d/d log π(a) = g_logp [B]``, ``d/d H = g_entropy``
        and ``d/d V = g_value [B]`` into every parameter's ``.grad``."""
        g_out = self.kernel.backward(f.head, encoded, mask, g_logp, g_entropy)
        h = f.actor[-1]
        ones = float32_ones(h.shape[0])
        if len(self.out) == 1:
            g_actor = self.out[0].grad(g_out, h, ones)
        else:
            g_actor, start = None, 0
            for layer in self.out:
                end = start + layer.w.shape[0]
                part = layer.grad(np.ascontiguousarray(g_out[:, start:end]), h, ones)
                g_actor = part if g_actor is None else g_actor + part
                start = end
        g_critic = self.value_out.scalar_grad(g_value, f.critic[-1])
        assert g_actor is not None
        if self.shared:
            g_actor += g_critic
            self.actor.backward(f.actor, g_actor, ones)
        else:
            self.actor.backward(f.actor, g_actor, ones)
            self.critic.backward(f.critic, g_critic, ones)
