"""TRPO on the family's learner (``algo="trpo"``; "Trust Region Policy Optimization", Schulman
et al. 2015): the same collector, advantages, networks and critic as PPO; only the policy's update
differs. Where PPO takes epochs × minibatches of clipped (or penalized) gradient steps, TRPO takes
one step per update that keeps the KL between the old and the new policy within ``max_kl``:

1. the surrogate ``L(θ) = mean(ρ_θ·A) + ent_coef·mean(H)`` and its gradient ``g`` on the whole
   batch (advantages normalized over it unless ``norm_adv="off"``);
2. the natural-gradient direction ``s ≈ (F + λI)⁻¹ g`` by ``cg_iters`` conjugate-gradient
   iterations, each one Fisher-vector product: the Hessian of ``mean KL(π_old ‖ π_θ)`` at θ_old
   times a vector, by double backpropagation through the action head's own ``kl`` (so masks,
   multi-discrete, hybrid and composite heads need nothing of their own);
3. the step scaled to the trust region and the backtracking line search
   (:mod:`ppox.core.trust_region`): the first of ``line_search_steps`` shrinking steps that
   improves the surrogate with an exact KL ≤ ``max_kl`` is taken, else none;
4. the critic: ``num_epochs × num_minibatches`` steps of value regression with Adam at
   ``learning_rate`` (clipped and NaN-guarded like PPO's steps).

The trust region covers the whole policy: every parameter the action distribution depends on
(the actor's trunk and head, and what it shares with the critic: an observation encoder, a shared
trunk or memory core) moves only by the policy step, and the critic's regression trains only the
parameters the policy does not read. So the KL bound holds for the policy the next rollout
collects with; with ``shared_trunk`` the critic learns only its output layer on the policy's
features.

With several workers (DPPO) every worker computes its share: the gradient and each
Fisher-vector product are averaged over the workers (one all-reduce each; weighted by sample
counts when they differ), and the line search decides on the surrogate and KL summed over all
workers, so every worker takes the same step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ppox.core.losses import value_loss
from ppox.core.trust_region import conjugate_gradient, line_search, trust_region_step
from ppox.training import distributed
from ppox.types import Batch

if TYPE_CHECKING:
    from ppox.training.learner import Experience, Learner

METRICS = (
    "line_search_fraction",
    "line_search_tries",
    "expected_improvement",
    "surrogate_improvement",
)
"""Columns TRPO adds to metrics.csv (``approx_kl`` is the exact KL of the step taken)."""


class TrustRegion:
    """TRPO's update for a :class:`~ppox.training.learner.Learner` (which owns the model, the
    flat parameters, Adam for the critic, the NaN guard and the minibatch order)."""

    def __init__(self, learner: Learner) -> None:
        self.learner = learner
        self.policy_index: Tensor | None = None
        """Flat indices of the parameters the action distribution depends on."""
        self.critic_only: Tensor | None = None
        """Float mask over the flat buffer: 1 where only the critic reads the parameter."""
        self.metrics: dict[str, float] = {}

    # --- which parameters are the policy's ----------------------------------------------------
    def _partition(self, batch: Batch) -> None:
        """Find, by autograd on one batch, which parameters the distribution and the value read."""
        learner, flat = self.learner, self.learner.flat
        dist = learner.model.dist(batch.obs, batch.mask, learner.recurrence(batch))
        policy = torch.autograd.grad(
            dist.log_prob(batch.action).sum() + dist.entropy().sum(), flat.params, allow_unused=True
        )
        value = torch.autograd.grad(
            learner.model.value(batch.obs, learner.recurrence(batch)).sum(),
            flat.params,
            allow_unused=True,
        )
        reads_policy = torch.cat(
            [torch.full((p.numel(),), g is not None) for p, g in zip(flat.params, policy)]
        )
        reads_value = torch.cat(
            [torch.full((p.numel(),), g is not None) for p, g in zip(flat.params, value)]
        )
        device = flat.flat.device
        self.policy_index = reads_policy.nonzero().squeeze(1).to(device)
        self.critic_only = (reads_value & ~reads_policy).to(device=device, dtype=flat.flat.dtype)

    def _flat_grad(self, grads: tuple[Tensor | None, ...]) -> Tensor:
        """Per-parameter gradients as the flat vector of the policy's parameters."""
        flat = self.learner.flat
        parts = [
            torch.zeros_like(p).reshape(-1) if g is None else g.reshape(-1)
            for p, g in zip(flat.params, grads)
        ]
        assert self.policy_index is not None
        return torch.cat(parts)[self.policy_index]

    # --- the update --------------------------------------------------------------------------
    def update(self, exp: Experience, ent_coef: float) -> tuple[Tensor, int, bool, bool]:
        """One TRPO update; returns what :meth:`Learner._epochs` returns (the summed terms of the
        critic's steps, with the policy's terms counted once per step so that their mean is the
        policy step's value; the number of critic steps; no early stop; whether the NaN guard
        rolled the update back). :attr:`metrics` holds the line search's outcome."""
        learner = self.learner
        whole = exp.batch.trainable()  # the collector's tensors, copied so autograd may save them
        batch = whole
        if exp.valid is not None:
            batch = batch.take(exp.valid.nonzero().squeeze(1))
        if learner.cfg.ppo.norm_adv != "off":
            batch = batch._replace(adv=learner._standardize(batch.adv))
        if self.policy_index is None:
            self._partition(batch)
        policy = self._policy_step(batch, ent_coef)
        totals, n, rolled_back = self._critic(exp, whole)
        if n:
            totals[0] = policy["policy_loss"] * n
            totals[2] = policy["entropy"] * n
            totals[3] = policy["approx_kl"] * n
            totals[-1] += policy["nonfinite"]
        return totals, n, False, rolled_back

    def fisher_vector_product(
        self, batch: Batch, old: Any, v: Tensor, damping: float = 0.0
    ) -> Tensor:
        """``(F + λI)·v`` over the policy's parameters: the Hessian of the mean
        ``KL(π_old ‖ π_θ)`` over ``batch`` at the current θ (where ``old``, the detached
        distribution of θ_old, was computed) times ``v``, by double backpropagation through the
        head's ``kl``; averaged over the workers."""
        learner = self.learner
        new = learner.model.dist(batch.obs, batch.mask, learner.recurrence(batch))
        kl = old.kl(new).sum() * learner.sample_scale(batch.adv.shape[0])
        params = learner.flat.params
        grad_kl = self._flat_grad(
            torch.autograd.grad(kl, params, create_graph=True, allow_unused=True)
        )
        hv = self._flat_grad(torch.autograd.grad(torch.dot(grad_kl, v), params, allow_unused=True))
        return self._mean_over_workers(hv) + damping * v

    def _policy_step(self, batch: Batch, ent_coef: float) -> dict[str, float]:
        learner, o = self.learner, self.learner.cfg.ppo
        model, flat = learner.model, learner.flat
        assert self.policy_index is not None
        rec = learner.recurrence(batch)
        n = batch.adv.shape[0]
        scale = learner.sample_scale(n)
        with torch.no_grad():
            old = model.dist(batch.obs, batch.mask, rec)

        def objective(dist: Any) -> tuple[Tensor, Tensor]:
            """(surrogate summed × the sample weight, entropy summed × the weight)."""
            ratio = torch.exp(dist.log_prob(batch.action) - batch.logp)
            entropy = dist.entropy().sum() * scale
            return (ratio * batch.adv).sum() * scale + ent_coef * entropy, entropy

        dist = model.dist(batch.obs, batch.mask, rec)
        surrogate, entropy = objective(dist)
        g = self._flat_grad(torch.autograd.grad(surrogate, flat.params, allow_unused=True))
        g = self._mean_over_workers(g)
        before, mean_entropy = self._sums(float(surrogate.detach()), float(entropy.detach()))

        def fvp(v: Tensor) -> Tensor:
            return self.fisher_vector_product(batch, old, v, damping=o.cg_damping)

        out = {"policy_loss": -before, "entropy": mean_entropy, "approx_kl": 0.0, "nonfinite": 0.0}
        self.metrics = dict.fromkeys(METRICS, 0.0)
        if not torch.isfinite(g).all():
            out["nonfinite"] = 1.0  # no step: the policy stays; counted in nonfinite_updates
            return out
        direction = conjugate_gradient(fvp, g, o.cg_iters)
        step = trust_region_step(direction, fvp(direction), g, o.max_kl)
        theta = flat.flat.data[self.policy_index].clone()

        @torch.no_grad()
        def evaluate(fraction: float) -> tuple[float, float]:
            flat.flat.data[self.policy_index] = theta + fraction * step.step
            new = model.dist(batch.obs, batch.mask, rec)
            after, _ = objective(new)
            after_sum, kl_sum = self._sums(float(after), float(old.kl(new).sum() * scale))
            return after_sum - before, kl_sum

        found = line_search(evaluate, o.max_kl, o.line_search_steps, o.line_search_shrink)
        if found.fraction == 0.0:
            flat.flat.data[self.policy_index] = theta
        else:
            flat.flat.data[self.policy_index] = theta + found.fraction * step.step
        out["approx_kl"] = found.kl
        self.metrics = {
            "line_search_fraction": found.fraction,
            "line_search_tries": float(found.tries),
            "expected_improvement": step.expected_improvement,
            "surrogate_improvement": found.improvement,
        }
        return out

    def _critic(self, exp: Experience, whole: Batch) -> tuple[Tensor, int, bool]:
        """The critic's regression: epochs × minibatches of Adam steps on the value loss, the
        gradient kept to the parameters only the critic reads."""
        learner, o = self.learner, self.learner.cfg.ppo
        assert self.critic_only is not None
        totals = torch.zeros(8)
        n = 0
        for epoch in range(o.num_epochs):
            for i, idx in enumerate(learner._minibatches(exp)):
                learner._at = (epoch + 1, i + 1)
                mb = whole if idx is None else whole.take(idx)
                v = learner.model.value(mb.obs, learner.recurrence(mb))
                per_sample = value_loss(v, mb.value, mb.ret, clip=o.value_clip)
                loss = o.vf_coef * learner.reducer(per_sample.shape[0])(per_sample)
                learner.flat.zero_grad()
                loss.backward()
                learner.flat.grad.mul_(self.critic_only)
                grad_norm, skipped, nonfinite = learner._apply_gradient([loss])
                totals += torch.tensor(
                    [0.0, float(per_sample.detach().mean()), 0.0, 0.0, 0.0,
                     float(grad_norm), float(skipped), float(nonfinite)]
                )  # fmt: skip
                n += 1
                if learner.guard.rollback_due:
                    learner.guard.rollback(learner.where)
                    return totals, n, True
        return totals, n, False

    # --- across workers ----------------------------------------------------------------------
    def _mean_over_workers(self, v: Tensor) -> Tensor:
        """The workers' sample-weighted vectors summed (each already carries its sample weight)."""
        if self.learner.world == 1:
            return v
        return distributed.all_reduce_mean_(v.contiguous())

    def _sums(self, *values: float) -> list[float]:
        """Per-worker sample-weighted sums → the global means (every worker gets the same)."""
        if self.learner.world == 1:
            return list(values)
        return [x / self.learner.world for x in distributed.all_reduce_sums(*values)]
