"""The acting forward pass in NumPy, for the small MLP policies PPO is mostly run with.

During collection the policy runs on a handful of observations per step. At that size each
torch call costs a few microseconds of dispatch whatever it computes, and a step of an
actor-critic with a distribution object is some 20 calls (about 55 µs on a 2-core CPU); the
same arithmetic in NumPy costs about a third of that, which is a large part of a CartPole
step (shared research, performance §4). :class:`LeanActor` copies the weights out once per
rollout and acts with them; the learner keeps training the torch model.

It serves a float Box observation read directly by the MLP trunks (no encoder) and a
Discrete (``CategoricalHead``, masks and temperature included) or Box (``GaussianHead``, any σ
mode) action space on the CPU; :func:`LeanActor.supports` says whether a model qualifies, and
the collector falls back to torch otherwise (``run.act_backend``).

Randomness comes from the run's sampling generator, drawn for the whole rollout at once
(uniforms for a categorical, standard normals for a Gaussian), so a checkpoint's generator
state still resumes the run exactly. Results agree with the torch path to float32 rounding
(a test checks it); the actions drawn differ, since the two paths consume the generator
differently.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ppox.distributions.categorical import CategoricalHead
from ppox.distributions.normal import LOG_SQRT_2PI, LOG_STD_MAX, LOG_STD_MIN, GaussianHead
from ppox.nn.actor_critic import ActorCritic

__all__ = ["LeanActor", "plain_mlp_policy", "shifted_logits"]

_MIN = float(np.finfo(np.float32).min)


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


_ACTIVATIONS = {nn.Tanh: np.tanh, nn.ReLU: lambda x: np.maximum(x, 0, out=x), nn.ELU: _elu}


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
    """A categorical head's logits ``[B, n]`` divided by the temperature, masked actions set to
    the lowest float32, minus each row's maximum: ``log softmax = shifted − log Σ exp(shifted)``,
    and a masked action's ``exp`` is 0 (the acting path and the hand-written gradient share it)."""
    if temperature != 1.0:
        logits = logits / np.float32(temperature)
    if mask is None:
        return logits - _row_max(logits)[:, None]
    logits = np.where(mask, logits, _MIN)
    with np.errstate(
        over="ignore"
    ):  # the lowest float minus the max may round to -inf: exp gives 0
        return logits - _row_max(logits)[:, None]


def plain_mlp_policy(model: ActorCritic) -> bool:
    """Whether ``model`` is what the NumPy acting path and the hand-written gradient
    (:mod:`ppox.nn.fused`) serve: float32 parameters on the CPU, MLP trunks of Linear layers and
    tanh / ReLU / ELU reading a Box observation directly (no encoder), and a Discrete or Box
    head."""
    if model.encoder is not None or not isinstance(model.head, (CategoricalHead, GaussianHead)):
        return False
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        return False
    allowed = (nn.Linear, *_ACTIVATIONS)
    return all(isinstance(m, allowed) for trunk in model.trunks.values() for m in trunk.children())


class _Layers:
    """An MLP as ``[(Wᵀ, b, activation or None), ...]`` NumPy arrays, re-read by :meth:`refresh`."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.modules = modules
        self.layers: list[tuple[np.ndarray, np.ndarray, object]] = []

    def refresh(self) -> None:
        self.layers = []
        for m in self.modules:
            if isinstance(m, nn.Linear):
                w = m.weight.detach().numpy().T.copy()
                self.layers.append((w, m.bias.detach().numpy().copy(), None))
            else:
                w, b, _ = self.layers[-1]
                self.layers[-1] = (w, b, _ACTIVATIONS[type(m)])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return _forward(self.layers, x)


def _forward(layers: list[tuple[np.ndarray, np.ndarray, object]], x: np.ndarray) -> np.ndarray:
    for w, b, act in layers:
        x = x @ w
        x += b
        if act is not None:
            x = act(x)  # type: ignore[operator]
    return x


def _block(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[[a, 0], [0, b]]``."""
    out = np.zeros((a.shape[0] + b.shape[0], a.shape[1] + b.shape[1]), dtype=a.dtype)
    out[: a.shape[0], : a.shape[1]] = a
    out[a.shape[0] :, a.shape[1] :] = b
    return out


JOINT_MAX_WIDTH = 128
"""Separate actor and critic trunks up to this width act as one network of twice the width
(block-diagonal weights): half the NumPy calls, and at a few envs the extra zeros cost less
than the calls they save. Wider trunks run one after the other."""


class LeanActor:
    """``act(obs, noise, mask)`` → ``(action, log_prob, value)`` as NumPy arrays, the same
    numbers the torch model gives for the same draw.

    Args:
        model: an :class:`ActorCritic` for which :meth:`supports` is True.
    """

    def __init__(self, model: ActorCritic) -> None:
        if not self.supports(model):
            raise ValueError(
                "LeanActor needs an MLP actor-critic on CPU with a Box observation and a Discrete or Box action"
            )
        self.model = model
        head = model.head
        assert isinstance(head, (CategoricalHead, GaussianHead))
        self.categorical = isinstance(head, CategoricalHead)
        actor = list(model.trunks["actor"].children())
        critic = list(model.trunks["critic"].children()) if not model.shared else actor
        self.actor, self.critic = _Layers(actor), _Layers(critic)
        self.shared = model.shared
        out: nn.Module = head.logits if isinstance(head, CategoricalHead) else head.mean
        self.out, self.value_out = _Layers([out]), _Layers([model.value_out])
        self.temperature = head.temperature if isinstance(head, CategoricalHead) else 1.0
        self.sigma_mode = None if isinstance(head, CategoricalHead) else head.sigma_mode
        state_sigma: nn.Module | None = (
            getattr(head, "log_std_layer", None) if self.sigma_mode == "state" else None
        )
        self.log_std_layer = None if state_sigma is None else _Layers([state_sigma])
        self.log_std: np.ndarray | None = None
        self.dim = 0 if isinstance(head, CategoricalHead) else head.action_shape[0]
        widths = [m.out_features for m in actor if isinstance(m, nn.Linear)]
        self.joint_ok = not self.shared and state_sigma is None and max(widths) <= JOINT_MAX_WIDTH
        self.joint: list[tuple[np.ndarray, np.ndarray, object]] = []

    @staticmethod
    def supports(model: ActorCritic) -> bool:
        """True for an MLP policy on CPU reading a Box observation directly, with a Discrete
        or Box action head (:func:`plain_mlp_policy`)."""
        return plain_mlp_policy(model)

    def refresh(self) -> None:
        """Copy the model's current weights (call after every update, before acting)."""
        for layers in (self.actor, self.critic, self.out, self.value_out, self.log_std_layer):
            if layers is not None:
                layers.refresh()
        if self.joint_ok:  # actor and critic as one block-diagonal MLP: [head output | value]
            a, c = self.actor.layers, self.critic.layers
            (wo, bo, _), (wv, bv, _) = self.out.layers[0], self.value_out.layers[0]
            self.joint = [
                (np.concatenate([a[0][0], c[0][0]], 1), np.concatenate([a[0][1], c[0][1]]), a[0][2])
            ]
            self.joint += [
                (_block(x[0], y[0]), np.concatenate([x[1], y[1]]), x[2])
                for x, y in zip(a[1:], c[1:])
            ]
            self.joint.append((_block(wo, wv), np.concatenate([bo, bv]), None))
        if self.sigma_mode in ("independent", "fixed"):
            head = self.model.head
            assert isinstance(head, GaussianHead)
            self.log_std = head.log_std.detach().numpy().copy()

    def noise(self, steps: int, num_envs: int, generator: torch.Generator) -> np.ndarray:
        """The randomness of a rollout: ``[T, N]`` uniforms in [0, 1) (float64) for a
        categorical, ``[T, N, d]`` standard normals (float32) for a Gaussian."""
        if self.categorical:
            return torch.rand((steps, num_envs), generator=generator, dtype=torch.float64).numpy()
        return torch.randn((steps, num_envs, self.dim), generator=generator).numpy()

    def act(
        self, obs: np.ndarray, noise: np.ndarray, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step for ``B`` observations ``[B, F]`` (float32) with this step's ``noise``
        (a row of :meth:`noise`) and an optional bool mask ``[B, n]``."""
        if self.joint:
            both = _forward(self.joint, obs)
            out, value, h = both[:, :-1], both[:, -1], obs  # h: read only by a state σ, never joint
        else:
            h = self.actor(obs)
            c = h if self.shared else self.critic(obs)
            value = self.value_out(c)[:, 0]
            out = self.out(h)
        if self.categorical:
            action, logp = self._categorical(out, noise, mask)
        else:
            action, logp = self._gaussian(out, h, noise)
        return action, logp, value

    def _categorical(
        self, logits: np.ndarray, u: np.ndarray, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        shifted = shifted_logits(logits, self.temperature, mask)
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

    def _gaussian(
        self, mean: np.ndarray, h: np.ndarray, noise: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.log_std_layer is not None:
            log_std = np.clip(self.log_std_layer(h), LOG_STD_MIN, LOG_STD_MAX)
        else:
            assert self.log_std is not None, "refresh() first"
            log_std = np.broadcast_to(self.log_std, mean.shape)
        action = mean + noise * np.exp(log_std)
        logp = (-0.5 * np.square(noise) - log_std - np.float32(LOG_SQRT_2PI)).sum(-1)
        return action.astype(np.float32, copy=False), logp.astype(np.float32, copy=False)
