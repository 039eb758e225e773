"""The update: advantages, then epochs × minibatches over one batch.

One learner serves the whole family (``algo``): PPO-Clip, PPO-Penalty with the adaptive KL
coefficient (and DPPO's hinge), REINFORCE with a baseline, and TRPO. The first three differ only
in the policy loss term and in how returns are formed; collection, minibatching, gradient
handling and diagnostics are shared. TRPO replaces the policy's minibatch steps by one
trust-region step per update and keeps the critic's (:mod:`ppox.training.trpo`).

Per update (:meth:`Learner.update` on a :class:`~ppox.types.Rollout`):

1. returns and advantages from the rollout (``advantage``: GAE, n-step or Monte Carlo; REINFORCE
   uses the reward-to-go);
2. for each epoch: optionally recompute values and advantages with the latest critic
   (``recompute_adv``), cut the batch into minibatches in ``minibatch_order``, and take one
   gradient step per minibatch, with the gradient clipped by norm, clamped by value, or the
   step skipped (``grad_clip``);
3. PPO-Penalty: adapt β from the KL between the old and the new policy on the whole batch.

Each minibatch step is one :class:`~ppox.training.update_step.UpdateStep` (forward, the
target-KL check, the gradient) followed by what every backend shares: the workers' average, the
NaN guard (:mod:`ppox.training.nan_guard`), clipping and the Adam step. The step is autograd's,
or for PPO-Clip on a plain MLP policy on the CPU the gradient written out by hand in NumPy
(``run.update_backend``; :mod:`ppox.training.backends` decides, and :attr:`Learner.backend`
records which ran). One minibatch of the whole batch in ``transitions`` order is trained on as it
is, without a shuffle or a copy. Autograd's diagnostics stay tensors until the end of the update,
so its minibatch loop reads the host only for the NaN guard's check.

With several workers (``ppox.training.distributed``) each worker trains on its own batch and
every epoch has the same number of minibatches on every worker, each worker's minibatch being
its share of the global one. After each backward pass the flat gradient is averaged over the
workers (one all-reduce) and only then clipped or skipped, so all take the same step; advantage
statistics (``norm_adv_scope``), the target-KL decision, the KL that adapts β
(``kl_coef_scope``) and REINFORCE's mean baseline are computed over all workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ppox.config import Config, sequence_length
from ppox.core.advantages import gae, next_values, nstep_returns
from ppox.core.losses import adaptive_kl_coef, explained_variance, kl_estimate, normalize_advantages
from ppox.core.schedules import schedule_value
from ppox.nn.actor_critic import ActorCritic
from ppox.nn.memory import Recurrence
from ppox.training import backends, distributed
from ppox.training.lockstep import Request, Steps, drive
from ppox.training.nan_guard import NanGuard
from ppox.training.optim import FlatParams, make_optimizer
from ppox.training.trpo import TrustRegion
from ppox.training.update_step import AutogradStep, NumpyStep, Terms, UpdateStep, finite
from ppox.types import Batch, Obs, Rollout, obs_map

_TERMS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm", "skipped_updates",
          "nonfinite_updates")  # fmt: skip
_CHUNK = 8192  # samples per critic forward pass when recomputing values
BASELINE_DECAY = 0.9
"""REINFORCE ``baseline="mean"``: b ← 0.9·b + 0.1·(mean return of the batch), after each update."""


def flatten_rollout(
    r: Rollout, adv: Tensor, ret: Tensor, value: Tensor | None = None, seq_len: int = 0
) -> Batch:
    """``[T, N, ...]`` rollout plus ``[T, N]`` advantages and returns → a flat ``[T·N, ...]`` batch
    (index ``t·N + n``); ``value`` replaces the rollout's values (after a recompute).

    With ``seq_len`` K (a policy with memory) the batch is in sequence order instead: each env's
    rollout cut into T / K sequences of K steps, env by env, sequence ``c = n·(T/K) + j`` holding
    steps ``j·K … j·K + K − 1`` of env ``n`` at flat indices ``c·K + k``."""
    T, N = r.reward.shape

    def flat(x: Tensor) -> Tensor:
        if not seq_len:
            return x.reshape(-1, *x.shape[2:])
        tail = x.shape[2:]
        x = x.reshape(T // seq_len, seq_len, N, *tail).movedim(2, 0)  # [N, T/K, K, ...]
        return x.reshape(-1, *tail)

    v = r.value if value is None else value
    memory = seq_len and r.state is not None and r.starts is not None
    return Batch(obs_map(flat, r.obs), flat(r.action), flat(r.logp), flat(v), flat(adv), flat(ret),
                 None if r.mask is None else flat(r.mask),
                 flat(r.state) if memory else None, flat(r.starts) if memory else None)  # type: ignore[arg-type]  # fmt: skip


@dataclass
class Experience:
    """One update's data: the flat batch, and the rollout it came from (None for a bare batch)."""

    batch: Batch
    rollout: Rollout | None
    valid: Tensor | None  # [T·N] bool: samples that enter the loss (None: all)
    segments: list[Tensor] | None = None  # episode segments as flat indices, for trajectory order


class _Totals:
    """The minibatch terms (:data:`_TERMS`) summed over an update: autograd's as one tensor (read
    back once at the end), the NumPy step's as floats."""

    def __init__(self) -> None:
        self.tensor: Tensor | None = None
        self.host = [0.0] * len(_TERMS)
        self.n = 0

    def add(self, terms: Tensor | list[float]) -> None:
        self.n += 1
        if isinstance(terms, Tensor):
            self.tensor = terms if self.tensor is None else self.tensor + terms
        else:
            self.host = [a + b for a, b in zip(self.host, terms)]

    def sum(self) -> Tensor:
        host = torch.tensor(self.host)
        return host if self.tensor is None else self.tensor + host


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
        self.guard = NanGuard(cfg.ppo, self.flat, self.optimizer)
        self.backend, self.backend_reason = backends.update_backend(cfg, model)
        """``"numpy"`` or ``"autograd"``, and why not NumPy (None when it is NumPy)."""
        self.step: UpdateStep = NumpyStep(self) if self.backend == "numpy" else AutogradStep(self)
        self._at = (
            0,
            0,
        )  # (epoch, minibatch) of the step being taken, for the NaN guard's messages
        self.seq_len = sequence_length(cfg) if model.memory is not None else 0
        """K, the length of the training sequences of a policy with memory (0: none)."""
        self.trust_region = TrustRegion(self) if cfg.ppo.algo == "trpo" else None

    def recurrence(self, mb: Batch) -> Recurrence | None:
        """The recurrent input of a minibatch of whole sequences (None without memory): each
        sequence's stored initial state and the episode starts inside it."""
        if not self.seq_len or mb.state is None or mb.starts is None:
            return None
        return Recurrence(mb.state[:: self.seq_len], mb.starts, self.seq_len)

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
            "nan_guard": self.guard.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kl_coef = float(state["kl_coef"])
        self.baseline_mean = state["baseline_mean"]
        self.skipped_total = int(state["skipped_total"])
        if "nan_guard" in state:  # checkpoints written before the guard carry none
            self.guard.load_state_dict(state["nan_guard"])

    def coefficients(self, progress: float) -> dict[str, float]:
        """Scheduled values at ``progress`` ∈ [0, 1]: learning rate and entropy weight."""
        o = self.cfg.ppo
        lr = schedule_value("linear" if o.anneal_lr else "constant", o.learning_rate, 0.0, progress)
        lr *= self.guard.lr_scale  # lowered by each rollback of the NaN guard
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
        valid = (
            None if r.valid is None else r.valid.reshape(-1)
        )  # transitions the collector skipped
        if not self.uses_critic:  # REINFORCE without a critic: drop each env's unfinished tail
            complete = _complete(r.done).reshape(-1)
            valid = complete if valid is None else complete & valid
        segments = _segments(r.done) if self.cfg.ppo.minibatch_order == "trajectories" else None
        return Experience(flatten_rollout(r, adv, ret, seq_len=self.seq_len), r, valid, segments)

    # --- the update ------------------------------------------------------------------------------
    def update(self, data: Rollout | Batch, progress: float) -> dict[str, float]:
        """Train on one rollout (or on a ready-made flat batch, for ``transitions`` order without
        recompute); returns the update's mean losses and diagnostics."""
        return drive(self.update_steps(data, progress))

    def update_steps(self, data: Rollout | Batch, progress: float) -> Steps[dict[str, float]]:
        """:meth:`update` as a generator of the update step's ``forward`` and ``gradient``
        calls (:mod:`ppox.training.lockstep`); TRPO's update yields nothing. Its driver runs it
        with NumPy's overflow and invalid-value warnings off (the NaN guard reports them)."""
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
        self.guard.begin_update()
        if self.trust_region is not None:
            totals, n_updates, stopped, rolled_back = self.trust_region.update(
                exp, coef["ent_coef"]
            )
        else:
            totals, n_updates, stopped, rolled_back = yield from self._epochs(exp, coef["ent_coef"])
        self.guard.end_update(rolled_back)
        distributed.all_reduce_mean_(
            totals
        )  # the diagnostics of all workers (grad_norm, skips: the same on each)
        out = dict(zip(_TERMS, (totals / max(n_updates, 1)).tolist()))
        out["skipped_updates"], out["nonfinite_updates"] = totals[-2].item(), totals[-1].item()
        out["rollbacks"] = float(rolled_back)
        self.skipped_total += int(out["skipped_updates"])
        out.update(coef)
        keep = slice(None) if exp.valid is None else exp.valid
        ev = float(explained_variance(exp.batch.value[keep], exp.batch.ret[keep]))
        out["explained_variance"] = ev if math.isfinite(ev) else None  # type: ignore[assignment]  # undefined: constant returns
        out["updates"] = float(n_updates)
        out["early_stop"] = float(stopped)
        if o.algo == "ppo-penalty":
            kl = self._batch_kl(exp.batch)
            self.kl_coef = adaptive_kl_coef(kl_coef, kl, target=o.kl_target, tolerance=o.kl_tolerance,
                                            factor=o.kl_raise, lower_factor=o.kl_lower)  # fmt: skip
            out["kl_coef"], out["kl_after_update"] = kl_coef, kl
        if self.trust_region is not None:
            out.update(self.trust_region.metrics)
        if o.algo == "reinforce" and o.baseline == "mean":
            self._update_baseline(exp, keep)
            out["baseline"] = self.baseline_mean  # type: ignore[assignment]
        return out

    def _update_baseline(self, exp: Experience, keep: Any) -> None:
        m = self._mean_over_workers(exp.batch.ret[keep])
        m = (self.baseline_mean or 0.0) if m is None else m
        old = self.baseline_mean
        self.baseline_mean = m if old is None else BASELINE_DECAY * old + (1 - BASELINE_DECAY) * m

    def _epochs(self, exp: Experience, ent_coef: float) -> Steps[tuple[Tensor, int, bool, bool]]:
        """The epochs of minibatch steps; returns the summed minibatch terms (``_TERMS``), the
        number of steps, whether the target-KL check stopped them early and whether the NaN
        guard rolled the update back."""
        o, step = self.cfg.ppo, self.step
        step.begin_update()
        totals = _Totals()
        batch = self._normalized(exp.batch, exp.valid)
        prepared: tuple[Batch, Any, bool] | None = (
            None  # (batch, as the step reads it, advantages ready)
        )
        for epoch in range(o.num_epochs):
            if epoch > 0 and o.recompute_adv and exp.rollout is not None and self.uses_critic:
                v, nv = self.critic_values(exp.rollout)
                adv, ret = self.estimate(exp.rollout, v, nv)
                batch = self._normalized(flatten_rollout(exp.rollout, adv, ret, v), exp.valid)
            if (
                epoch > 0
                and self.seq_len
                and o.memory_states == "fresh"
                and exp.rollout is not None
            ):
                batch = self._fresh_states(batch, exp.rollout)
            minibatches = self._minibatches(exp)
            if not (
                _whole(minibatches) and prepared is not None and prepared[0] is batch
            ):  # the whole batch: once
                epoch_batch, ready = self._minibatch_normalized(batch, minibatches)
                prepared = (batch, step.epoch_batch(epoch_batch), ready)
            for i, idx in enumerate(minibatches):
                self._at = (epoch + 1, i + 1)
                terms = yield from self._minibatch(
                    step.minibatch(prepared[1], idx, normalize_adv=not prepared[2]), ent_coef
                )
                if terms is None:
                    return totals.sum(), totals.n, True, False
                totals.add(terms)
                if self.guard.rollback_due:
                    self.guard.rollback(self.where)
                    return totals.sum(), totals.n, False, True
        return totals.sum(), totals.n, False, False

    def _minibatch(self, mb: Any, ent_coef: float) -> Steps[Tensor | list[float] | None]:
        """One gradient step; None (and no step) when the target-KL check stops the epochs.
        The step's forward pass and gradient are yielded (:mod:`ppox.training.lockstep`)."""
        o, step = self.cfg.ppo, self.step
        f = yield Request(step, "forward", (mb,))
        approx_kl = step.approx_kl(f)
        if o.target_kl is not None and self._over_workers(approx_kl) > 1.5 * o.target_kl:
            return None
        terms = yield Request(step, "gradient", (f, mb, ent_coef))
        grad_norm, skipped, nonfinite = self._apply_gradient(terms)
        if isinstance(approx_kl, float):
            return [
                *terms[:3],
                approx_kl,
                terms[3],
                float(grad_norm),
                float(skipped),
                float(nonfinite),
            ]
        norm = torch.as_tensor(grad_norm, dtype=approx_kl.dtype, device=approx_kl.device)
        flags = norm.new_tensor([float(skipped), float(nonfinite)])
        return (
            torch.cat([torch.stack([*terms[:3], approx_kl, terms[3], norm]), flags]).detach().cpu()
        )

    @torch.no_grad()
    def _fresh_states(self, batch: Batch, r: Rollout) -> Batch:
        """``memory_states="fresh"``: the batch with each sequence's initial state recomputed by
        the current network, carried through the rollout from the state stored at its start."""
        assert r.state is not None and r.starts is not None
        states = self.model.sequence_states(
            r.obs, r.state[0], r.starts, self.seq_len
        )  # [T/K, N, D]
        state = batch.state.clone()  # type: ignore[union-attr]
        state[:: self.seq_len] = states.transpose(0, 1).reshape(-1, states.shape[-1])
        return batch._replace(state=state)

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
        ``norm_adv_scope="per_worker"`` (the PPO × Family course's Q&A, Q5–Q7)."""
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

    def reducer(self, n: int) -> Callable[[Tensor], Tensor]:
        """How per-sample terms become the minibatch loss: their mean. Across workers holding
        different numbers of samples (REINFORCE without a critic keeps complete episodes only;
        ``nonfinite_env="skip"`` drops transitions), each worker's sum × :meth:`sample_scale`."""
        if not self._unequal:
            return torch.mean
        scale = self.sample_scale(n)
        return lambda x: x.sum() * scale

    def sample_scale(self, n: int) -> float:
        """The weight of each of this worker's ``n`` minibatch samples in the loss: ``1/n``, or
        across workers holding different numbers of samples ``W / (the global minibatch's
        size)``, so that the average of the workers' gradients is the gradient of the mean over
        the global minibatch (one all-reduce)."""
        if not self._unequal:
            return 1.0 / max(n, 1)
        (total,) = distributed.all_reduce_sums(float(n))
        return self.world / max(total, 1.0)

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
        if self.seq_len:
            return self._sequence_minibatches(size)
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

    def _sequence_minibatches(self, size: int) -> list[Tensor | None]:
        """Minibatches of whole sequences (a policy with memory): the sequences shuffled
        (``transitions``) or in order (``fixed``: env by env, in time), each minibatch the flat
        indices of its sequences' steps, sequence by sequence."""
        o, K = self.cfg.ppo, self.seq_len
        count = size // K
        if o.minibatch_order == "fixed":
            order = torch.arange(count)
        else:
            order = torch.randperm(count, generator=self.generator)
        steps = (order.unsqueeze(1) * K + torch.arange(K)).reshape(-1)
        return list(steps.to(self.flat.flat.device).split(size // o.num_minibatches))

    def _apply_gradient(self, terms: Terms) -> tuple[Tensor | float, bool, bool]:
        """Average the gradient over the workers, check it (the NaN guard), clip it, step;
        return the pre-clip gradient norm, whether the step was skipped by ``grad_clip="ignore"``
        and whether it was skipped as non-finite. Every worker decides on the averaged gradient
        (a worker whose loss is not finite poisons its gradient first), so all decide alike."""
        o = self.cfg.ppo
        terms_ok = finite(terms)
        if not terms_ok:
            self.flat.grad.fill_(math.nan)
        if self.world > 1:
            distributed.all_reduce_mean_(
                self.flat.grad
            )  # the global minibatch's gradient; clipped below, alike everywhere
        if o.grad_clip == "norm":
            grad_norm = self.flat.clip_grad_norm(
                math.inf if o.max_grad_norm is None else o.max_grad_norm, o.grad_norm_type
            )
        else:
            grad_norm = self.flat.grad_norm(o.grad_norm_type)
        if not self.guard.allow(float(grad_norm), terms_ok, lambda: self.where):
            return grad_norm, False, True
        if o.grad_clip == "value":
            self.flat.clip_grad_value(o.grad_clip_value)
        if o.grad_clip == "ignore" and float(grad_norm) > o.max_grad_norm:  # type: ignore[operator]
            return grad_norm, True, False
        self.optimizer.apply()
        return grad_norm, False, False

    @property
    def where(self) -> str:
        """The step being taken, in words (for the NaN guard's messages)."""
        return f"epoch {self._at[0]}, minibatch {self._at[1]} of an update"

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
        step = (
            max(self.seq_len, _CHUNK - _CHUNK % self.seq_len) if self.seq_len else _CHUNK
        )  # whole sequences
        for i in range(0, size, step):
            mb = batch.take(torch.arange(i, min(i + step, size), device=batch.adv.device))
            dist = self.model.dist(mb.obs, mb.mask, self.recurrence(mb))
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
