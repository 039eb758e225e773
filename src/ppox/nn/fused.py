"""The PPO-Clip minibatch gradient written out by hand, for the small MLP policies PPO is mostly
run with.

A minibatch step through autograd runs some 120 small kernels (forward, loss, the graph's
backward nodes) at a few microseconds of dispatch each, about 1 ms at 64–256 samples whatever the
arithmetic (shared research, performance §4.2). The gradient of PPO-Clip's loss for an MLP
actor-critic has a short closed form, so :class:`FusedClipStep` computes the loss terms and
writes the gradient of

    pg + vf_coef · vl − ent_coef · H

(``ppox.core.losses``: clipped surrogate with optional dual clip, value loss with optional value
clipping, mean entropy) straight into the parameters' ``.grad`` in about 40 kernels. Tanh is
evaluated as ``2σ(2x) − 1``: torch's CPU tanh runs element by element (about 2 ns per element
on the machines we measured, 8× a sigmoid), and the two agree to float32 rounding.

It serves what :class:`~ppox.nn.lean.LeanActor` serves, on the CPU: MLP trunks (tanh, ReLU or
ELU; shared or separate) reading a Box observation, and a Discrete head (masks and temperature
included) or a Box head with ``independent`` or ``fixed`` σ. :meth:`FusedClipStep.supports`
says whether a model and config qualify; the learner uses autograd otherwise
(``run.update_backend``). tests/test_fused.py checks the gradient against autograd's on every
supported combination.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ppox.config import PPOConfig
from ppox.distributions.categorical import CategoricalHead, MaskedCategorical
from ppox.distributions.normal import LOG_SQRT_2PI, GaussianHead, normal_entropy
from ppox.nn.actor_critic import ActorCritic
from ppox.nn.lean import plain_mlp_policy

__all__ = ["FusedClipStep", "FusedPass"]

_KINDS = {nn.Tanh: "tanh", nn.ReLU: "relu", nn.ELU: "elu"}


def _layer_out(layer: nn.Linear, x: Tensor, kind: str | None) -> Tensor:
    """``act(x Wᵀ + b)``; tanh as ``2σ(2z) − 1``, the doubling folded into the matmul."""
    if kind == "tanh":
        z = torch.addmm(layer.bias, x, layer.weight.t(), beta=2.0, alpha=2.0)
        return torch.sigmoid_(z).mul_(2.0).sub_(1.0)
    z = torch.addmm(layer.bias, x, layer.weight.t())
    if kind == "relu":
        return torch.relu_(z)
    return z if kind is None else nn.functional.elu_(z)


def _through(g: Tensor, y: Tensor, kind: str) -> Tensor:
    """``g · act'(z)`` from the activation's output ``y``."""
    if kind == "tanh":
        return torch.ops.aten.tanh_backward(g, y)  # type: ignore[no-any-return]
    if kind == "relu":
        return torch.ops.aten.threshold_backward(g, y, 0.0)  # type: ignore[no-any-return]
    return torch.where(y > 0, g, g * (y + 1.0))


@dataclass
class _Layer:
    linear: nn.Linear
    kind: str | None  # the activation after it, None for an output layer


@dataclass
class FusedPass:
    """What the forward pass of one minibatch keeps for the gradient."""

    logp: Tensor  # [B] log π(a|s) under the current parameters
    actor: list[Tensor]  # the actor trunk's input and each layer's output
    critic: list[Tensor]
    value: Tensor  # [B]
    logp_all: Tensor | None = None  # categorical: [B, n] log-probabilities
    probs: Tensor | None = None
    mask: Tensor | None = None
    taken: Tensor | None = None  # [B, 1] the actions as indices
    entropy: Tensor | None = None  # [B]
    z: Tensor | None = None  # Gaussian: [B, d] (a − μ)/σ
    inv_std: Tensor | None = None  # [d]


class FusedClipStep:
    """``forward(obs, action, mask)`` → :class:`FusedPass`; ``backward(pass, ...)`` writes the
    gradient of the PPO-Clip loss into the parameters' ``.grad`` (which must exist: the learner's
    :class:`~ppox.learner.FlatParams` views) and returns the mean loss terms."""

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
        value_out = model.value_out
        assert isinstance(out, nn.Linear) and isinstance(value_out, nn.Linear)
        self.out, self.value_out = out, value_out
        self.temperature = head.temperature if isinstance(head, CategoricalHead) else 1.0
        log_std = None if isinstance(head, CategoricalHead) else head.log_std
        assert log_std is None or isinstance(log_std, Tensor)
        self.log_std: Tensor | None = log_std

    @staticmethod
    def supports(model: ActorCritic, cfg: PPOConfig | None = None) -> bool:
        """True for an MLP policy on CPU reading a Box observation, with a Discrete head or a Box
        head whose σ is ``independent`` or ``fixed``, trained with PPO-Clip (when ``cfg`` is given)."""
        if cfg is not None and cfg.algo != "ppo-clip":
            return False
        head = model.head
        return plain_mlp_policy(model) and not (isinstance(head, GaussianHead) and head.sigma_mode == "state")

    # --- forward ---------------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, obs: Tensor, action: Tensor, mask: Tensor | None = None) -> FusedPass:
        obs = obs.reshape(obs.shape[0], -1)
        actor = _run(self.actor, obs)
        critic = actor if self.critic is self.actor else _run(self.critic, obs)
        vo = self.value_out
        value = torch.addmm(vo.bias, critic[-1], vo.weight.t()).squeeze(1)
        out = torch.addmm(self.out.bias, actor[-1], self.out.weight.t())
        if self.categorical:
            if self.temperature != 1.0:
                out = out.mul_(1.0 / self.temperature)
            dist = MaskedCategorical(out, mask)
            taken = action.long().unsqueeze(1)
            logp = dist.logp_all.gather(1, taken).squeeze(1)
            return FusedPass(logp, actor, critic, value, dist.logp_all, dist.probs, mask, taken, entropy=dist.entropy())
        assert self.log_std is not None
        inv_std = torch.exp(-self.log_std)
        z = (action - out).mul_(inv_std)
        logp = (-0.5 * z.square() - self.log_std).sum(-1).sub_(LOG_SQRT_2PI * z.shape[1])
        entropy = normal_entropy(self.log_std).sum().expand(z.shape[0])
        return FusedPass(logp, actor, critic, value, entropy=entropy, z=z, inv_std=inv_std)

    # --- loss terms and gradient -----------------------------------------------------------------
    @torch.no_grad()
    def backward(
        self,
        f: FusedPass,
        log_ratio: Tensor,
        adv: Tensor,
        old_value: Tensor,
        ret: Tensor,
        *,
        clip_coef: float,
        dual_clip: float | None,
        value_clip: float | None,
        vf_coef: float,
        ent_coef: float,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Write the gradient; return the mean ``(policy loss, value loss, entropy)``."""
        n = log_ratio.shape[0]
        ratio = log_ratio.exp()
        surr1 = ratio * adv
        surr2 = ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef) * adv
        objective = torch.minimum(surr1, surr2)
        # d objective / d log ratio: ρ·A where the unclipped term is the minimum (inside the clip
        # range the two terms are equal and both carry ρ·A), 0 where the clipped one is
        live = surr1 <= surr2
        if dual_clip is not None:
            bound = dual_clip * adv
            floored = (adv < 0) & (bound > objective)
            objective = torch.where(floored, bound, objective)
            live = live & ~floored
        g_lr = surr1.mul_(live).mul_(-1.0 / n)  # d pg / d log ratio, pg = −mean(objective)
        err = f.value - ret
        if value_clip is None:
            vl = 0.5 * err.square()
            g_v = err * (vf_coef / n)
        else:
            delta = f.value - old_value
            err_c = old_value + delta.clamp(-value_clip, value_clip) - ret
            sq, sq_c = err.square(), err_c.square()
            vl = 0.5 * torch.maximum(sq, sq_c)
            g_v = torch.where(sq >= sq_c, err, err_c * (delta.abs() <= value_clip)) * (vf_coef / n)
        g_out = self._head_grad(f, g_lr, ent_coef / n)
        g_actor = self._output_layer(self.out, g_out, f.actor[-1])
        g_critic = self._output_layer(self.value_out, g_v.unsqueeze(1), f.critic[-1])
        if self.critic is self.actor:
            _backprop(self.actor, f.actor, g_actor + g_critic)
        else:
            _backprop(self.actor, f.actor, g_actor)
            _backprop(self.critic, f.critic, g_critic)
        assert f.entropy is not None
        return -objective.mean(), vl.mean(), f.entropy.mean()

    def _head_grad(self, f: FusedPass, g_lr: Tensor, ent_w: float) -> Tensor:
        """d loss / d head output ``[B, out]`` (and, for a learned σ, its gradient written)."""
        if self.categorical:
            assert f.probs is not None and f.logp_all is not None and f.entropy is not None and f.taken is not None
            # d log π(a)/d logits = onehot(a) − p;  d H/d logits = −p·(log p + H)
            g_taken = g_lr.unsqueeze(1)
            if ent_w:
                spread = f.logp_all + f.entropy.unsqueeze(1)
                if f.mask is not None:
                    spread = torch.where(f.mask, spread, 0.0)
                g = f.probs * (spread * ent_w - g_taken)
            else:  # no entropy bonus (the RL Zoo's CartPole setting): three kernels fewer
                g = f.probs * -g_taken
            g.scatter_add_(1, f.taken, g_taken)
            return g.mul_(1.0 / self.temperature) if self.temperature != 1.0 else g
        assert f.z is not None and f.inv_std is not None and self.log_std is not None
        g = g_lr.unsqueeze(1) * f.z
        if isinstance(self.log_std, nn.Parameter):  # d log π/d log σ = z² − 1;  d H/d log σ = 1
            assert self.log_std.grad is not None
            torch.sum(g * f.z, 0, out=self.log_std.grad)
            self.log_std.grad.sub_(g_lr.sum() + ent_w * g_lr.shape[0])
        return g.mul_(f.inv_std)

    @staticmethod
    def _output_layer(layer: nn.Linear, g: Tensor, h: Tensor) -> Tensor:
        """Write the output layer's gradient; return d loss / d its input."""
        assert layer.weight.grad is not None and layer.bias.grad is not None
        torch.mm(g.t(), h, out=layer.weight.grad)
        torch.sum(g, 0, out=layer.bias.grad)
        return g.mm(layer.weight)


def _layers(trunk: nn.Module) -> list[_Layer]:
    out: list[_Layer] = []
    for m in trunk.children():
        if isinstance(m, nn.Linear):
            out.append(_Layer(m, None))
        else:
            out[-1].kind = _KINDS[type(m)]
    return out


def _run(layers: list[_Layer], x: Tensor) -> list[Tensor]:
    hs = [x]
    for layer in layers:
        hs.append(_layer_out(layer.linear, hs[-1], layer.kind))
    return hs


def _backprop(layers: list[_Layer], hs: list[Tensor], g: Tensor) -> None:
    """Write the gradients of an MLP's layers from d loss / d its output ``g``."""
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if layer.kind is not None:
            g = _through(g, hs[i + 1], layer.kind)
        w, b = layer.linear.weight, layer.linear.bias
        assert w.grad is not None and b.grad is not None
        torch.mm(g.t(), hs[i], out=w.grad)
        torch.sum(g, 0, out=b.grad)
        if i > 0:
            g = g.mm(w)
