"""The PPO update: epochs × shuffled minibatches over one batch (SPEC §1.2, §1.6, §2.5, §5).

Diagnostics are accumulated as tensors and read back once per update, so the minibatch loop
never waits on a host sync except for the optional target-KL check.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ppox.config import Config
from ppox.core.losses import (
    clip_fraction,
    clipped_surrogate,
    explained_variance,
    kl_estimate,
    normalize_advantages,
    value_loss,
)
from ppox.core.schedules import schedule_value
from ppox.types import Batch

_TERMS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm")


class FlatParams:
    """All trainable parameters (and their gradients) as views into one flat buffer.

    For networks this small the update's fixed costs dominate: zeroing, norming, clipping and
    stepping a dozen tensors one by one. With one buffer each of those is a single kernel.
    Autograd accumulates into an existing ``.grad`` in place, so the views stay valid as long as
    gradients are zeroed (never set to None); ``load_state_dict`` copies in place as well.
    """

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = params
        self.flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
        self.flat.grad = torch.zeros_like(self.flat)
        offset = 0
        for p in params:
            n = p.numel()
            p.data = self.flat.data[offset : offset + n].view_as(p)
            p.grad = self.flat.grad[offset : offset + n].view_as(p)
            offset += n

    def zero_grad(self) -> None:
        self.flat.grad.zero_()  # type: ignore[union-attr]

    def clip_grad_norm(self, max_norm: float) -> Tensor:
        """Scale the gradient to total L2 norm ≤ ``max_norm``; return the pre-clip norm."""
        grad = self.flat.grad
        assert grad is not None
        norm = torch.linalg.vector_norm(grad)
        if max_norm != math.inf:
            grad.mul_((max_norm / (norm + 1e-6)).clamp(max=1.0))
        return norm


def make_optimizer(flat: FlatParams, cfg: Config) -> torch.optim.Adam:
    """Adam (fused kernel) over the flat parameter buffer."""
    return torch.optim.Adam([flat.flat], lr=cfg.ppo.learning_rate, eps=cfg.ppo.adam_eps, fused=True)


class Learner:
    """Owns the optimizer and the minibatch RNG; ``update(batch, progress)`` returns metrics."""

    def __init__(self, model: nn.Module, cfg: Config, generator: torch.Generator) -> None:
        self.model, self.cfg, self.generator = model, cfg, generator
        self.flat = FlatParams([p for p in model.parameters() if p.requires_grad])
        self.optimizer = make_optimizer(self.flat, cfg)

    def coefficients(self, progress: float) -> dict[str, float]:
        """Scheduled values at ``progress`` ∈ [0, 1]: learning rate and entropy weight."""
        o = self.cfg.ppo
        lr = schedule_value("linear" if o.anneal_lr else "constant", o.learning_rate, 0.0, progress)
        end = o.ent_coef if o.ent_coef_end is None else o.ent_coef_end
        return {"learning_rate": lr, "ent_coef": schedule_value(o.ent_schedule, o.ent_coef, end, progress)}

    def update(self, batch: Batch, progress: float) -> dict[str, float]:
        o = self.cfg.ppo
        coef = self.coefficients(progress)
        for group in self.optimizer.param_groups:
            group["lr"] = coef["learning_rate"]
        if o.norm_adv == "batch":
            batch = batch._replace(adv=normalize_advantages(batch.adv))
        totals = torch.zeros(len(_TERMS))
        n_updates, stopped = 0, False
        size = batch.adv.shape[0]
        for _epoch in range(o.num_epochs):
            perm = torch.randperm(size, generator=self.generator).to(batch.adv.device)
            for idx in perm.split(self.cfg.minibatch_size):
                terms = self._minibatch(batch.take(idx), coef["ent_coef"])
                if terms is None:
                    stopped = True
                    break
                totals += terms
                n_updates += 1
            if stopped:
                break
        means = (totals / max(n_updates, 1)).tolist()
        out = dict(zip(_TERMS, means))
        out.update(coef)
        out["explained_variance"] = float(explained_variance(batch.value, batch.ret))
        out["updates"] = float(n_updates)
        out["early_stop"] = float(stopped)
        return out

    def _minibatch(self, mb: Batch, ent_coef: float) -> Tensor | None:
        """One gradient step; None (and no step) when the target-KL check stops the epoch loop."""
        o = self.cfg.ppo
        dist, value = self.model(mb.obs, mb.mask)
        log_ratio = dist.log_prob(mb.action) - mb.logp
        approx_kl = kl_estimate(log_ratio.detach()).mean()
        if o.target_kl is not None and approx_kl.item() > 1.5 * o.target_kl:
            return None
        adv = normalize_advantages(mb.adv) if o.norm_adv == "minibatch" else mb.adv
        pg = clipped_surrogate(adv, log_ratio, clip_coef=o.clip_coef, dual_clip=o.dual_clip).mean()
        vl = value_loss(value, mb.value, mb.ret, clip=o.value_clip).mean()
        entropy = dist.entropy().mean()
        loss = pg + o.vf_coef * vl - ent_coef * entropy
        self.flat.zero_grad()
        loss.backward()
        grad_norm = self.flat.clip_grad_norm(math.inf if o.max_grad_norm is None else o.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():
            return torch.stack(
                [pg, vl, entropy, approx_kl, clip_fraction(log_ratio, o.clip_coef), grad_norm]
            ).detach().cpu()
