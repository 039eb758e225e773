"""The update: advantages, then epochs × minibatches over one batch (SPEC §1, §2, §5).

One learner serves the whole family (``algo``): PPO-Clip, PPO-Penalty with the adaptive KL
coefficient (and DPPO's hinge), and REINFORCE with a baseline. They differ only in the policy
loss term and in how returns are formed; collection, minibatching, gradient handling and
diagnostics are shared.

Per update (:meth:`Learner.update` on a :class:`~ppox.types.Rollout`):

1. returns and advantages from the rollout (``advantage``: GAE, n-step or Monte Carlo; REINFORCE
   uses the reward-to-go);
2. for each epoch: optionally recompute values and advantages with the latest critic
   (``recompute_adv``), cut the batch into minibatches in ``minibatch_order``, and take one
   gradient step per minibatch, with the gradient clipped by norm, clamped by value, or the
   step skipped (``grad_clip``);
3. PPO-Penalty: adapt β from the KL between the old and the new policy on the whole batch.

Through autograd, diagnostics are accumulated as tensors and read back once per update, so the
minibatch loop never waits on a host sync except for the optional target-KL check and
``grad_clip="ignore"``.
For PPO-Clip on an MLP policy on the CPU the minibatch gradient is written out by hand in NumPy
(:class:`ppox.nn.fused.FusedClipStep`, ``run.update_backend``; its diagnostics are floats, read
for free), otherwise autograd computes it; everything after the gradient (the workers' average,
clipping, the Adam step) is shared. One minibatch of the whole batch in ``transitions`` order is
trained on as it is, without a shuffle or a copy.

With several workers (``ppox.training.distributed``, issue 5) each worker trains on its own batch and
every epoch has the same number of minibatches on every worker, each worker's minibatch being
its share of the global one. After each backward pass the flat gradient is averaged over the
workers (one all-reduce) and only then clipped or skipped, so all take the same step; advantage
statistics (``norm_adv_scope``), the target-KL decision, the KL that adapts β
(``kl_coef_scope``) and REINFORCE's mean baseline are computed over all workers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ppox.config import Config
from ppox.core.advantages import gae, next_values, nstep_returns
from ppox.core.losses import (
    adaptive_kl_coef,
    clip_fraction,
    clipped_surrogate,
    explained_variance,
    kl_estimate,
    kl_penalty,
    normalize_advantages,
    reinforce_loss,
    surrogate,
    value_loss,
)
from ppox.core.schedules import schedule_value
from ppox.nn.actor_critic import ActorCritic
from ppox.nn.fused import FusedBatch, FusedClipStep
from ppox.training import distributed
from ppox.training.optim import FlatParams, make_optimizer
from ppox.types import Batch, Obs, Rollout, obs_map

_TERMS = (
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "grad_norm",
    "skipped_updates",
)
_CHUNK = 8192  # samples per critic forward pass when recomputing values
BASELINE_DECAY = 0.9
"""REINFORCE ``baseline="mean"``: b ← 0.9·b + 0.1·(mean return of the batch), after each update."""


def flatten_rollout(r: Rollout, adv: Tensor, ret: Tensor, value: Tensor | None = None) -> Batch:
    """``[T, N, ...]`` rollout plus ``[T, N]`` advantages and returns → a flat ``[T·N, ...]`` batch
    (index ``t·N + n``); ``value`` replaces the rollout's values (after a recompute)."""

    def flat(x: Tensor) -> Tensor:
        return x.reshape(-1, *x.shape[2:])

    v = r.value if value is None else value
    return Batch(obs_map(flat, r.obs), flat(r.action), flat(r.logp), flat(v), flat(adv), flat(ret),
                 None if r.mask is None else flat(r.mask))  # fmt: skip


@dataclass
class Experience:
    """One update's data: the flat batch, and the rollout it came from (None for a bare batch)."""

    batch: Batch
    rollout: Rollout | None
    valid: Tensor | None  # [T·N] bool: samples that enter the loss (None: all)
    segments: list[Tensor] | None = None  # episode segments as flat indices, for trajectory order


def _whole(minibatches: list[Tensor | None]) -> bool:
    """Whether an epoch's minibatches are the single whole-batch one (``[None]``)."""
    return len(minibatches) == 1 and minibatches[0] is None


class Learner:
    """Owns the optimizer, the minibatch RNG and the family's adaptive state (β, the REINFORCE
    running-mean baseline); ``update(rollout, progress)`` returns the update's metrics."""

    def __init__(self, model: ActorCritic, cfg: Config, generator: torch.Generator) -> None:
        self.model, self.cfg, self.generator = model, cfg, generator
        self.flat = FlatParams([p for p in model.parameters() if p.requires_grad])
        self.optimizer = make_optimizer(self.flat, cfg)
        self.kl_coef = cfg.ppo.kl_coef
        self.baseline_mean: float | None = None
        self.skipped_total = 0
        self.world, self.rank = distributed.world_size(), distributed.rank()
        self._global_adv = self.world > 1 and cfg.ppo.norm_adv_scope == "global"
        self._unequal = False  # workers hold different numbers of samples in this update
        fused = cfg.run.update_backend in ("auto", "numpy") and FusedClipStep.supports(
            model, cfg.ppo
        )
        self.fused = FusedClipStep(model) if fused else None

    def broadcast_params(self) -> None:
        """Give every worker rank 0's parameters and buffers (at start and after a resume)."""
        if self.world == 1:
            return
        distributed.broadcast_(self.flat.flat.data)
        in_flat = {id(p) for p in self.flat.params}
        for t in [p.data for p in self.model.parameters() if id(p) not in in_flat] + list(
            self.model.buffers()
        ):
            distributed.broadcast_(t)

    # --- state beyond the optimizer (checkpointed) -----------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "kl_coef": self.kl_coef,
            "baseline_mean": self.baseline_mean,
            "skipped_total": self.skipped_total,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kl_coef = float(state["kl_coef"])
        self.baseline_mean = state["baseline_mean"]
        self.skipped_total = int(state["skipped_total"])

    def coefficients(self, progress: float) -> dict[str, float]:
        """Scheduled values at ``progress`` ∈ [0, 1]: learning rate and entropy weight."""
        o = self.cfg.ppo
        lr = schedule_value("linear" if o.anneal_lr else "constant", o.learning_rate, 0.0, progress)
        end = o.ent_coef if o.ent_coef_end is None else o.ent_coef_end
        return {
            "learning_rate": lr,
            "ent_coef": schedule_value(o.ent_schedule, o.ent_coef, end, progress),
        }

    # --- returns and advantages ------------------------------------------------------------------
    @property
    def uses_critic(self) -> bool:
        o = self.cfg.ppo
        return o.algo != "reinforce" or o.baseline == "critic"

    def estimate(self, r: Rollout, values: Tensor, next_values: Tensor) -> tuple[Tensor, Tensor]:
        """``(advantages, returns)`` ``[T, N]`` from the rollout's rewards and episode flags with
        the given ``V(s_t)`` and ``V(s_{t+1})`` ``[T, N]``."""
        o = self.cfg.ppo
        if o.algo == "reinforce":
            if (
                o.baseline == "critic"
            ):  # reward-to-go, bootstrapped where the rollout cuts an episode
                ret = gae(
                    r.reward, values, next_values, r.terminated, r.done, gamma=o.gamma, lam=1.0
                )[1]
                return ret - values, ret
            zeros = torch.zeros_like(values)  # no critic: cut episodes are left out (see prepare)
            ret = gae(r.reward, zeros, zeros, r.terminated, r.done, gamma=o.gamma, lam=1.0)[1]
            b = 0.0
            if o.baseline == "mean":
                first = self._mean_over_workers(ret[_complete(r.done)])
                b = self.baseline_mean if self.baseline_mean is not None else first or 0.0
            return ret - b, ret
        if o.advantage == "nstep":
            ret = nstep_returns(
                r.reward, next_values, r.terminated, r.done, gamma=o.gamma, n=o.n_step
            )
            return ret - values, ret
        lam = 1.0 if o.advantage == "mc" else o.lam
        return gae(r.reward, values, next_values, r.terminated, r.done, gamma=o.gamma, lam=lam)

    @torch.no_grad()
    def critic_values(self, r: Rollout) -> tuple[Tensor, Tensor]:
        """``V(s_t)`` and ``V(s_{t+1})`` ``[T, N]`` from the current critic: the stored
        observations, the one after the last step, and the final observations of truncated
        steps (terminated steps get 0; they are never bootstrapped)."""
        if r.last_obs is None:
            raise ValueError(
                "recomputing values needs a rollout from the collector (last_obs is missing)"
            )
        T, N = r.reward.shape
        flat: Obs = obs_map(lambda x: x.reshape(T * N, *x.shape[2:]), r.obs)
        value = self.model.value
        parts = [value(obs_map(lambda x: x[i : i + _CHUNK], flat)) for i in range(0, T * N, _CHUNK)]  # noqa: B023
        v = torch.cat(parts).reshape(T, N)
        finals = None if r.final_obs is None else value(r.final_obs)
        return v, next_values(v, value(r.last_obs), r.done, r.final_index, finals)

    def prepare(self, r: Rollout) -> Experience:
        """Advantages and the flat batch for one rollout (what the first epoch trains on)."""
        adv, ret = self.estimate(r, r.value, r.next_value)
        valid = None
        if not self.uses_critic:  # REINFORCE without a critic: drop each env's unfinished tail
            valid = _complete(r.done).reshape(-1)
        segments = _segments(r.done) if self.cfg.ppo.minibatch_order == "trajectories" else None
        return Experience(flatten_rollout(r, adv, ret), r, valid, segments)

    # --- the update ------------------------------------------------------------------------------
    def update(self, data: Rollout | Batch, progress: float) -> dict[str, float]:
        """Train on one rollout (or on a ready-made flat batch, for ``transitions`` order without
        recompute); returns the update's mean losses and diagnostics."""
        o = self.cfg.ppo
        coef = self.coefficients(progress)
        for group in self.optimizer.param_groups:
            group["lr"] = coef["learning_rate"]
        if isinstance(data, Rollout):
            exp = self.prepare(data)
        else:
            if o.recompute_adv or o.minibatch_order != "transitions":
                raise ValueError(
                    "recompute_adv and minibatch_order other than 'transitions' need a Rollout"
                )
            exp = Experience(data, None, None)
        self._unequal = self.world > 1 and exp.valid is not None
        kl_coef = self.kl_coef
        totals, n_updates, stopped = self._epochs(exp, coef["ent_coef"])
        distributed.all_reduce_mean_(
            totals
        )  # the diagnostics of all workers (grad_norm, skips: the same on each)
        means = (totals / max(n_updates, 1)).tolist()
        out = dict(zip(_TERMS, means))
        out["skipped_updates"] = totals[-1].item()
        self.skipped_total += int(out["skipped_updates"])
        out.update(coef)
        keep = slice(None) if exp.valid is None else exp.valid
        out["explained_variance"] = float(
            explained_variance(exp.batch.value[keep], exp.batch.ret[keep])
        )
        out["updates"] = float(n_updates)
        out["early_stop"] = float(stopped)
        if o.algo == "ppo-penalty":
            kl = self._batch_kl(exp.batch)
            self.kl_coef = adaptive_kl_coef(kl_coef, kl, target=o.kl_target, tolerance=o.kl_tolerance,
                                            factor=o.kl_raise, lower_factor=o.kl_lower)  # fmt: skip
            out["kl_coef"], out["kl_after_update"] = kl_coef, kl
        if o.algo == "reinforce" and o.baseline == "mean":
            m = self._mean_over_workers(exp.batch.ret[keep])
            m = (self.baseline_mean or 0.0) if m is None else m
            self.baseline_mean = (
                m
                if self.baseline_mean is None
                else BASELINE_DECAY * self.baseline_mean + (1 - BASELINE_DECAY) * m
            )
            out["baseline"] = self.baseline_mean
        return out

    def _epochs(self, exp: Experience, ent_coef: float) -> tuple[Tensor, int, bool]:
        """The epochs of minibatch steps; returns the summed minibatch terms (``_TERMS``), the
        number of steps and whether the target-KL check stopped them early."""
        o = self.cfg.ppo
        if self.fused is not None:
            self.fused.refresh()
        totals = torch.zeros(len(_TERMS))
        host = [0.0] * len(_TERMS)  # the hand-written gradient's terms, summed as floats
        n_updates = 0
        batch = self._normalized(exp.batch, exp.valid)
        # (batch, as the epoch trains on it, advantages ready, the same for the fused step)
        prepared: tuple[Batch, Batch, bool, FusedBatch | None] | None = None
        for epoch in range(o.num_epochs):
            if epoch > 0 and o.recompute_adv and exp.rollout is not None and self.uses_critic:
                v, nv = self.critic_values(exp.rollout)
                adv, ret = self.estimate(exp.rollout, v, nv)
                batch = self._normalized(flatten_rollout(exp.rollout, adv, ret, v), exp.valid)
            minibatches = self._minibatches(exp)
            if not (
                _whole(minibatches) and prepared is not None and prepared[0] is batch
            ):  # the whole batch: once
                epoch_batch, ready = self._minibatch_normalized(batch, minibatches)
                prepared = (
                    batch,
                    epoch_batch,
                    ready,
                    None if self.fused is None else self.fused.batch(epoch_batch),
                )
            _, epoch_batch, ready, fused = prepared
            for idx in minibatches:
                if fused is not None:
                    terms: Tensor | list[float] | None = self._fused_minibatch(
                        fused if idx is None else fused.take(idx.numpy()), ent_coef, ready
                    )
                else:
                    terms = self._minibatch(
                        epoch_batch if idx is None else epoch_batch.take(idx), ent_coef, ready
                    )
                if terms is None:
                    return totals + torch.tensor(host), n_updates, True
                if isinstance(terms, Tensor):
                    totals += terms
                else:
                    host = [a + b for a, b in zip(host, terms)]
                n_updates += 1
        return totals + torch.tensor(host), n_updates, False

    def _normalized(self, batch: Batch, valid: Tensor | None) -> Batch:
        """``norm_adv="batch"``: advantages standardized with the statistics of the samples
        that enter the loss."""
        if self.cfg.ppo.norm_adv != "batch":
            return batch
        if valid is None:
            return batch._replace(adv=self._standardize(batch.adv))
        adv = batch.adv.clone()
        adv[valid] = self._standardize(batch.adv[valid])
        return batch._replace(adv=adv)

    def _standardize(self, adv: Tensor) -> Tensor:
        """Advantage normalization; with several workers over all of them unless
        ``norm_adv_scope="per_worker"`` (seed 000 Q5–Q7)."""
        return (
            distributed.normalize_advantages(adv) if self._global_adv else normalize_advantages(adv)
        )

    def _minibatch_normalized(
        self, batch: Batch, minibatches: list[Tensor | None]
    ) -> tuple[Batch, bool]:
        """``norm_adv="minibatch"`` ahead of the minibatch steps where it can be: across workers,
        every global minibatch's advantages standardized with the statistics of all workers'
        shares of it, for the whole epoch in one collective; in one process, a single minibatch
        of the whole batch standardized once (not once per epoch). Returns the batch and whether
        its advantages are ready (the minibatch step then leaves them as they are)."""
        whole = _whole(minibatches)
        if (
            whole and self.fused is None
        ):  # autograd trains on it as it is, not through a copy by index
            batch = batch.trainable()
        if self.cfg.ppo.norm_adv != "minibatch":
            return batch, True
        if whole:
            return batch._replace(adv=self._standardize(batch.adv)), True
        if not self._global_adv:
            return batch, False
        adv = batch.adv.clone()
        chunks = [batch.adv[i] for i in minibatches if i is not None]
        for idx, normed in zip(minibatches, distributed.normalize_advantages_chunks(chunks)):
            adv[idx] = normed
        return batch._replace(adv=adv), True

    def _mean_over_workers(self, x: Tensor) -> float | None:
        """The mean of ``x`` over every worker's elements (None when there are none)."""
        if self.world == 1:
            return float(x.mean()) if x.numel() else None
        total, count = distributed.all_reduce_sums(float(x.sum()), float(x.numel()))
        return total / count if count else None

    def _reducer(self, n: int) -> Callable[[Tensor], Tensor]:
        """How per-sample terms become the minibatch loss: their mean. Across workers holding
        different numbers of samples (REINFORCE without a critic keeps complete episodes only),
        each worker's sum × W / (the global minibatch's size), so that the average of the
        workers' gradients is the gradient of the mean over the global minibatch."""
        if not self._unequal:
            return torch.mean
        (total,) = distributed.all_reduce_sums(float(n))
        scale = self.world / max(total, 1.0)
        return lambda x: x.sum() * scale

    def _minibatches(self, exp: Experience) -> list[Tensor | None]:
        """One epoch's minibatch indices into the flat batch, in ``minibatch_order``; ``[None]``
        for one minibatch of the whole batch in ``transitions`` order (the RL Zoo's CartPole
        setting), which needs neither a shuffle nor a copy: the gradient of a mean does not
        depend on the order of its terms."""
        o = self.cfg.ppo
        size = exp.batch.adv.shape[0]
        if (
            o.num_minibatches == 1
            and o.minibatch_order == "transitions"
            and exp.valid is None
            and size
        ):
            return [None]
        if o.minibatch_order == "transitions":
            order = torch.randperm(size, generator=self.generator)
        elif o.minibatch_order == "fixed":
            assert exp.rollout is not None
            T, N = exp.rollout.reward.shape
            order = torch.arange(size).reshape(T, N).t().reshape(-1)  # env by env, in time order
        else:
            assert exp.segments is not None
            perm = torch.randperm(len(exp.segments), generator=self.generator).tolist()
            order = torch.cat([exp.segments[i] for i in perm])
        order = order.to(exp.batch.adv.device)
        if exp.valid is not None:
            order = order[exp.valid[order]]
        n = order.shape[0]
        if (
            self._unequal
        ):  # the same number of chunks everywhere, none empty on every worker at once
            counts = distributed.all_reduce_sums(
                *(float(n) if r == self.rank else 0.0 for r in range(self.world))
            )
            k = min(o.num_minibatches, int(max(counts)))
            return list(order.tensor_split(k)) if k else []
        if n == 0:
            return []
        mb = math.ceil(n / o.num_minibatches)
        return list(order.split(mb))

    def _minibatch(self, mb: Batch, ent_coef: float, adv_ready: bool) -> Tensor | None:
        """One gradient step through autograd; None (and no step) when the target-KL check
        stops the epoch loop. ``adv_ready``: the minibatch's advantages are already normalized
        as configured."""
        o = self.cfg.ppo
        mean = self._reducer(mb.adv.shape[0])
        dist, value = self.model(mb.obs, mb.mask)
        logp = dist.log_prob(mb.action)
        log_ratio = logp - mb.logp
        approx_kl = mean(kl_estimate(log_ratio.detach()))
        if o.target_kl is not None and self._over_workers(approx_kl) > 1.5 * o.target_kl:
            return None
        adv = mb.adv if adv_ready else normalize_advantages(mb.adv)
        pg, vl, entropy = self._autograd_step(mb, dist, value, logp, log_ratio, adv, mean, ent_coef)
        grad_norm, skipped = self._apply_gradient()
        with torch.no_grad():
            clipped = (
                clip_fraction(log_ratio, o.clip_coef)
                if mb.adv.numel()
                else torch.zeros((), device=pg.device)
            )
            norm = torch.as_tensor(grad_norm, dtype=pg.dtype, device=pg.device)
            terms = [pg, vl, entropy, approx_kl, clipped, norm, norm.new_tensor(float(skipped))]
            return torch.stack(terms).detach().cpu()

    def _fused_minibatch(
        self, fb: FusedBatch, ent_coef: float, adv_ready: bool
    ) -> list[float] | None:
        """:meth:`_minibatch` through the hand-written gradient (``self.fused``, NumPy on the CPU)."""
        o = self.cfg.ppo
        assert self.fused is not None and not self._unequal
        if not adv_ready:
            fb = dataclasses.replace(fb, adv=normalize_advantages(torch.from_numpy(fb.adv)).numpy())
        f = self.fused.forward(fb)
        approx_kl = f.approx_kl()
        if o.target_kl is not None and self._over_workers(approx_kl) > 1.5 * o.target_kl:
            return None
        self.flat.zero_grad()
        pg, vl, entropy, clipped = self.fused.backward(f, fb, clip_coef=o.clip_coef, dual_clip=o.dual_clip,
                                                       value_clip=o.value_clip, vf_coef=o.vf_coef,
                                                       ent_coef=ent_coef)  # fmt: skip
        grad_norm, skipped = self._apply_gradient()
        return [pg, vl, entropy, approx_kl, clipped, float(grad_norm), float(skipped)]

    def _autograd_step(self, mb: Batch, dist: Any, value: Tensor, logp: Tensor, log_ratio: Tensor, adv: Tensor,
                       mean: Callable[[Tensor], Tensor], ent_coef: float) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """The loss of the minibatch and its gradient by autograd; returns the loss terms."""
        o = self.cfg.ppo
        if o.algo == "ppo-clip":
            pg = mean(
                clipped_surrogate(adv, log_ratio, clip_coef=o.clip_coef, dual_clip=o.dual_clip)
            )
        elif (
            o.algo == "ppo-penalty"
        ):  # DPPO's hinge reads each worker's own minibatch KL, as DPPO's workers do
            kl = kl_estimate(log_ratio)
            margin = None if o.kl_margin is None else o.kl_margin * o.kl_target
            pen = kl_penalty(
                kl, kl.mean(), coef=self.kl_coef, margin=margin, margin_coef=o.kl_margin_coef
            )
            pg = mean(surrogate(adv, log_ratio) + pen)
        else:
            pg = mean(reinforce_loss(adv, logp))
        vl = (
            mean(value_loss(value, mb.value, mb.ret, clip=o.value_clip))
            if self.uses_critic
            else value.sum() * 0.0
        )
        entropy = mean(dist.entropy())
        loss = pg + o.vf_coef * vl - ent_coef * entropy
        self.flat.zero_grad()
        loss.backward()
        return pg, vl, entropy

    def _apply_gradient(self) -> tuple[Tensor | float, bool]:
        """Average the gradient over the workers, clip it, step; return the pre-clip gradient
        norm and whether the step was skipped (``grad_clip="ignore"``)."""
        o = self.cfg.ppo
        if self.world > 1:
            distributed.all_reduce_mean_(
                self.flat.grad
            )  # the global minibatch's gradient; clipped below, alike everywhere
        skipped = False
        if o.grad_clip == "norm":
            grad_norm = self.flat.clip_grad_norm(
                math.inf if o.max_grad_norm is None else o.max_grad_norm, o.grad_norm_type
            )
        else:
            grad_norm = self.flat.grad_norm(o.grad_norm_type)
            if o.grad_clip == "value":
                self.flat.clip_grad_value(o.grad_clip_value)
        assert o.max_grad_norm is not None or o.grad_clip != "ignore"
        if o.grad_clip == "ignore" and float(grad_norm) > o.max_grad_norm:  # type: ignore[operator]
            skipped = True
        else:
            self.optimizer.apply()
        return grad_norm, skipped

    def _over_workers(self, x: Tensor | float) -> float:
        """A per-worker mean as a number, averaged over the workers (the decision everyone takes)."""
        value = float(x)
        if self.world == 1:
            return value
        return distributed.all_reduce_sums(value)[0] / self.world

    @torch.no_grad()
    def _batch_kl(self, batch: Batch) -> float:
        """Mean KL(π_old ‖ π_new) over the whole batch (k3 estimator), after the update."""
        size = batch.adv.shape[0]
        total = 0.0
        for i in range(0, size, _CHUNK):
            mb = batch.take(torch.arange(i, min(i + _CHUNK, size), device=batch.adv.device))
            dist = self.model.dist(mb.obs, mb.mask)
            total += float(kl_estimate(dist.log_prob(mb.action) - mb.logp).sum())
        count = float(size)
        if self.world > 1 and self.cfg.ppo.kl_coef_scope == "global":
            total, count = distributed.all_reduce_sums(total, count)  # one β on every worker
        return total / max(count, 1.0)


def _complete(done: Tensor) -> Tensor:
    """``[T, N]`` bool: the step belongs to an episode that ends inside the rollout (some step at
    or after it, in the same env, is an episode end)."""
    return done.bool().flip(0).cummax(0).values.flip(0)


def _segments(done: Tensor) -> list[Tensor]:
    """Episode segments of a ``[T, N]`` rollout as flat index tensors (``t·N + n``), env by env:
    each env's steps split after every episode end (the first and last segments may be parts of
    episodes that began before or end after the rollout)."""
    T, N = done.shape
    ends = done.bool().cpu()
    out: list[Tensor] = []
    for n in range(N):
        start = 0
        for t in torch.nonzero(ends[:, n]).flatten().tolist() + ([] if ends[T - 1, n] else [T - 1]):
            out.append(torch.arange(start, t + 1) * N + n)
            start = t + 1
    return out
