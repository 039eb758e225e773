"""The training loop: collect → advantages → update → log → evaluate → checkpoint.

A run lives in one directory::

    config.json      the resolved config
    metrics.csv      one row per iteration (see ppox.io.logging.COLUMNS)
    tb/              TensorBoard events (scalars, action-probability / σ histograms)
    checkpoint.pt    everything needed to resume exactly (written atomically)
    curve.svg        learning curves (evaluation and training returns; ppox plot draws PNGs)
    summary.json     final numbers (total_steps, eval_return_mean/std, wall_time_s, steps_per_second, …)

``Trainer.resume(run_dir)`` restores policy, optimizer, normalizers, counters, env states and
every RNG state, so on CPU a run killed at any point and resumed ends with the same parameters
as one that was never interrupted. ``Trainer.create_or_resume`` does whichever applies, for
launchers that restart a run with the same command (``torchrun --max-restarts``).

Under torchrun (docs/distributed.md) every worker runs this loop on its own envs; rank 0 alone
decides about the run directory, logs, evaluates and writes checkpoints, and the checkpoint is
rank 0's state (identical parameters, optimizer and merged normalizers on every rank), so a
run can resume on any number of workers.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from ppox.config import Config
from ppox.envs.envpool_backend import resolve_backend
from ppox.envs.make import make_vec_env
from ppox.errors import CheckpointError, ConfigError, NumericalError
from ppox.io import checkpoint as ckpt
from ppox.io.evaluate import evaluate_episodes, numpy_actor, warn_if_cut
from ppox.io.logging import RunLogger, WandbOptions, truncate_csv, wandb_problem
from ppox.io.policy import Policy, build_model
from ppox.io.rundir import (
    RunLock,
    check_not_foreign,
    check_run_dir,
    claim_new_run_dir,
    lock_run_dir,
    new_run_dir,
    resumable,
)
from ppox.io.svg_curve import write_curve_svg
from ppox.io.trust import check_imports
from ppox.io.validate import check_policy_state, check_training_state
from ppox.nn.memory import Recurrence
from ppox.training import distributed
from ppox.training.backends import blas_kernel
from ppox.training.distributed import is_main
from ppox.training.learner import Learner
from ppox.training.lockstep import Request, Steps, drive
from ppox.training.normalizers import RewardScaler
from ppox.training.overlap import OverlapWorker, check_overlap
from ppox.training.rollout import Collector
from ppox.training.seeding import (
    collection_seeds,
    evaluation_seeds,
    rng_state,
    seed_everything,
    set_rng_state,
    worker_seed,
)
from ppox.types import Batch, Rollout, obs_map


@dataclass
class Progress:
    """Counters that a checkpoint carries."""

    iteration: int = 0
    global_step: int = 0
    wall_time_s: float = 0.0
    next_eval_step: int = 0
    evals: list[dict[str, Any]] = field(default_factory=list)


def with_resolved_backend(cfg: Config) -> Config:
    """``cfg`` with ``env_backend="auto"`` replaced by the backend it picks on this install
    (``ppox.envs.envpool_backend.resolve_backend``), so that config.json and the checkpoint
    record what the run collected with, and a resume collects with the same (or says clearly
    why it cannot, e.g. EnvPool missing where the run is resumed)."""
    if cfg.env.env_backend != "auto":
        return cfg
    return cfg.replace(env_backend=resolve_backend(cfg.env))


def resolve_device(name: str) -> torch.device:
    """The device for ``name``; ``cuda`` / ``auto`` under torchrun is this worker's GPU (LOCAL_RANK,
    round robin when workers outnumber GPUs; several workers per GPU need ``--dist-backend gloo``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but no CUDA device is available; use 'cpu' or 'auto'")
    if name == "cuda" and distributed.launched_world_size() > 1:
        return torch.device("cuda", distributed.local_rank() % torch.cuda.device_count())
    return torch.device(name)


class _NoLogger:
    """What ranks other than 0 log to: nothing (only rank 0 writes into the run directory)."""

    def log(self, row: dict[str, Any], histograms: dict[str, torch.Tensor] | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def thread_split(n: int, update_backend: str) -> tuple[int, int]:
    """``(torch threads, BLAS threads)`` for ``run.threads = n``: all ``n`` (0: every core this
    process may use) go to the library the update computes in, NumPy's BLAS for the NumPy
    update, torch for autograd, and the other gets one. Both pools at more than one thread
    make every run slower, not faster: torch's OpenMP threads and OpenBLAS's threads each
    spin-wait on the cores after their own calls, and a loop that alternates the two libraries
    (as every PPO loop does) waits for the other pool's spinning at every call (the `cartpole`
    preset took 74 s instead of 3.5 s with both at 2 threads on a 2-core machine;
    docs/performance.md, "Threads and processes")."""
    n = n or usable_cores()
    return (1, n) if update_backend == "numpy" else (n, 1)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_threads(n: int, update_backend: str = "numpy") -> tuple[int, int]:
    """Give torch and NumPy's BLAS their threads for ``run.threads = n`` (:func:`thread_split`);
    returns ``(torch threads, BLAS threads)``. Called with the update's backend once the learner
    exists (OpenBLAS would otherwise start one thread per core in every worker process)."""
    torch_n, blas_n = thread_split(n, update_backend)
    threadpool_limits(limits=blas_n, user_api="blas")
    torch.set_num_threads(torch_n)  # last: a BLAS built on OpenMP would share torch's setting
    return torch_n, blas_n


class Trainer:
    """Builds every component from a :class:`Config` and runs the loop."""

    def __init__(self, cfg: Config, run_dir: Path) -> None:
        self.cfg = cfg = with_resolved_backend(cfg.validate())
        self.run_dir = run_dir
        # one thread while the model is built (its initialization never depends on the machine's
        # cores); the run's own split once the learner says which library the update runs in
        set_threads(1)
        # torch's flag is global: set it to this run's value, so an earlier run's choice never leaks.
        # Only when it changes: setting it imports torch's compiler configuration (~1.4 s of start-up)
        if torch.are_deterministic_algorithms_enabled() != cfg.run.deterministic:
            torch.use_deterministic_algorithms(cfg.run.deterministic)
        self.device = resolve_device(cfg.run.device)
        if cfg.run.overlap_collection:
            check_overlap(cfg, self.device)
        distributed.init()  # a no-op without torchrun, or when the caller joined a group already
        self.world, self.rank = distributed.world_size(), distributed.rank()
        cfg.validate_world(self.world)
        self.num_envs = cfg.worker_envs(self.world)  # this worker's envs
        self.global_batch = cfg.global_batch_size(self.world)
        seed_everything(
            cfg.run.seed
        )  # the same on every rank: identical initial weights (broadcast anyway)
        self.model, self.obs_norm = build_model(cfg, self.device)
        # action sampling differs by worker; minibatch shuffling is the same generator on every
        # worker (each shuffles its own batch), so rank 0's checkpointed state serves them all
        seed = worker_seed(cfg.run.seed, self.rank)
        self.sample_gen = torch.Generator().manual_seed(seed)
        self.shuffle_gen = torch.Generator().manual_seed(cfg.run.seed + 1)
        if self.device.type != "cpu":  # sampling happens on the device
            self.sample_gen = torch.Generator(self.device).manual_seed(seed)
        self.learner = Learner(self.model, cfg, self.shuffle_gen)
        self.threads = set_threads(cfg.run.threads, self.learner.backend)
        self.learner.broadcast_params()
        self.envs = make_vec_env(cfg.env, num_envs=self.num_envs)
        scaler = RewardScaler(
            self.num_envs,
            enabled=cfg.env.scale_reward,
            gamma=cfg.ppo.gamma,
            clip=cfg.env.reward_clip,
        )
        if self.world > 1:
            self.obs_norm.share()
            scaler.share()
        where = f"env_id={cfg.env.env_id!r}" + (f" on worker {self.rank}" if self.world > 1 else "")
        self.collector = Collector(self.envs, self.model, self.obs_norm, scaler, cfg.ppo.num_steps, self.device, self.sample_gen,
                                   cfg.run.act_backend, nonfinite=cfg.env.nonfinite_env, label=where,
                                   sign_reward=cfg.env.sign_reward)  # fmt: skip
        r = cfg.run
        self.eval_seeds = evaluation_seeds(r.eval_seed, r.eval_episodes)
        # "numpy" or "torch": what the last evaluation acted with
        self.eval_backend: str | None = None
        self.train_seeds = self._collection_seeds(r.seed)
        self.progress = Progress(next_eval_step=r.eval_every)
        self.resumed_envs = True
        # overlap_collection's worker, started at the first rollout
        self.overlap: OverlapWorker | None = None

    def init_policy_from(self, source: str) -> None:
        """Copy the policy (weights, observation statistics) of the checkpoint at ``source`` into
        this new run's, in place (``init_from``); its shapes are checked against this network."""
        try:
            state = ckpt.load_checkpoint(source)
            norm = self.obs_norm.state_dict()
            check_policy_state(state, str(source), model=self.model, obs_norm=norm)
        except CheckpointError as exc:
            raise ConfigError(
                f"init_from={source!r}: {exc} (this run's network must match)"
            ) from None
        with torch.no_grad():
            self.model.load_state_dict(state["model"])
        self.obs_norm.load_state_dict(state["obs_norm"])
        self.learner.broadcast_params()

    def _collection_seeds(self, seed: int) -> list[int]:
        """This worker's env seeds: distinct across workers, never an evaluation seed."""
        r = self.cfg.run
        return collection_seeds(seed, self.num_envs, range(r.eval_seed, r.eval_seed + r.eval_episodes),
                                rank=self.rank, world=self.world)  # fmt: skip

    # --- construction -------------------------------------------------------------------------
    run_lock: RunLock | None = None
    """The lock this run holds on its directory (rank 0; :func:`ppox.io.rundir.lock_run_dir`)."""

    @classmethod
    def create(
        cls, cfg: Config, run_dir: str | Path | None = None, *, origin: dict[str, Any] | None = None
    ) -> Trainer:
        """A new run in an empty (or new) directory; never overwrites an existing run.
        ``origin`` (what the config started from: a preset, the base of the task's kind, a
        config file) is recorded in ``config.json``."""
        cfg = cfg.validate()
        check_optional_packages(cfg)
        distributed.init()
        path = distributed.main_decides(
            lambda: new_run_dir(cfg, run_dir)
        )  # rank 0 holds the directory
        return cls._start(cfg, path, origin=origin)

    @classmethod
    def resume(
        cls, run_dir: str | Path, total_steps: int | None = None, *, trust_imports: bool = False
    ) -> Trainer:
        """Continue the run in ``run_dir`` from its checkpoint (optionally with a new budget).

        The run directory is locked first (another run writing it is refused), what a killed
        checkpoint write left is removed, and the checkpoint is verified and checked against
        the network before it is used (docs/trust.md). A checkpoint whose config would import a
        module (``env_id`` ``module:Id``, an encoder ``module:callable``) is refused unless
        ``trust_imports``."""
        distributed.init()
        held: list[RunLock] = []
        # rank 0 reads the checkpoint and sends it to the others: no shared filesystem needed
        path, state = distributed.main_decides(
            lambda: _open_for_resume(Path(run_dir), trust_imports, held)
        )
        return cls._continue(path, state, total_steps, held[0] if held else None)

    @classmethod
    def create_or_resume(
        cls, cfg: Config, run_dir: str | Path | None = None, *, origin: dict[str, Any] | None = None
    ) -> Trainer:
        """Resume the run in ``run_dir`` if it holds a checkpoint of ``cfg`` (``total_steps`` may
        differ), else start ``cfg`` there: one command that a restarting launcher
        (``torchrun --max-restarts``) can repeat (``ppox train --auto-resume``). A directory
        holding another run, or locked by a live one, is refused; see
        :func:`ppox.io.rundir.resumable`."""
        cfg = with_resolved_backend(cfg.validate())
        where = run_dir or cfg.run.run_dir
        if where is None:
            raise ConfigError("--auto-resume needs the run directory to use (--run-dir DIR)")
        path = Path(where)
        distributed.init()
        held: list[RunLock] = []
        state = distributed.main_decides(lambda: _open_for_auto_resume(cfg, path, held))
        lock = held[0] if held else None
        if state is None:
            return cls._start(cfg, path, lock, origin=origin)
        return cls._continue(path, state, cfg.run.total_steps, lock)

    @classmethod
    def _start(
        cls,
        cfg: Config,
        path: Path,
        lock: RunLock | None = None,
        *,
        origin: dict[str, Any] | None = None,
    ) -> Trainer:
        trainer = cls(cfg, path)
        try:  # the first reset before the directory exists: an env that fails there leaves nothing behind
            if cfg.policy.init_from:
                trainer.init_policy_from(cfg.policy.init_from)
            trainer.collector.reset(trainer.train_seeds)
        except BaseException:
            _give_up(trainer, lock)
            raise
        try:
            if lock is None:  # rank 0 creates, locks and checks the directory; the others wait
                held: list[RunLock] = []
                distributed.main_decides(lambda: held.append(claim_new_run_dir(path)))
                lock = held[0] if held else None
            trainer.run_lock = lock
            if is_main():
                record = {**trainer.cfg.to_dict(), "backends": trainer.backends()}
                if origin is not None:
                    record["origin"] = origin
                (path / "config.json").write_text(json.dumps(record, indent=2))
        except BaseException:
            _give_up(trainer, lock)
            raise
        return trainer

    @classmethod
    def _continue(
        cls, path: Path, state: dict[str, Any], total_steps: int | None, lock: RunLock | None
    ) -> Trainer:
        trainer = None
        try:
            cfg = ckpt.config_of(state, path / ckpt.CHECKPOINT_NAME)
            if total_steps is not None:
                cfg = cfg.replace(total_steps=total_steps)
            check_optional_packages(cfg)
            trainer = cls(cfg, path)
            trainer.run_lock = lock
            trainer.load_state_dict(state)
        except BaseException:
            _give_up(trainer, lock)
            raise
        if is_main():
            truncate_csv(path / "metrics.csv", trainer.progress.global_step)
        return trainer

    def release_run_dir(self) -> None:
        """Let another run take the directory (the run has written its last file)."""
        if self.run_lock is not None:
            self.run_lock.release()

    # --- the loop -----------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Train to ``total_steps``; returns the run's summary."""
        summary = drive(self.train_steps(self.open_logger()))
        assert summary is not None  # only a pause_at returns without one
        return summary

    def open_logger(self) -> RunLogger | _NoLogger:
        """The run's logger (rank 0; the others log nothing), after saying which backends run."""
        cfg, p = self.cfg, self.progress
        logger: RunLogger | _NoLogger = _NoLogger()
        if is_main():
            logger = RunLogger(
                self.run_dir,
                tensorboard=cfg.run.tensorboard,
                progress=cfg.run.progress,
                total_steps=cfg.run.total_steps,
                start_step=p.global_step,
                progress_interval=cfg.run.progress_interval,
                wandb=wandb_options(cfg),
            )
        if is_main():
            print(f"ppox: backends: {self.describe_backends()}", flush=True)
        return logger

    def train_steps(
        self, logger: RunLogger | _NoLogger, pause_at: int | None = None
    ) -> Steps[dict[str, Any] | None]:
        """The loop from here to the end of the run as a generator of the policy's NumPy calls
        (:mod:`ppox.training.lockstep`), after :meth:`open_logger`; returns the summary.

        Each iteration starts with a ``boundary`` request (answered by :meth:`boundary`), where
        a lockstep driver may add runs in step with this one. With ``pause_at``, the loop stops
        at the first iteration that ends at or past that step (at once if the run is there
        already): the checkpoint is written there, the directory released, and ``None``
        returned; :meth:`resume` continues it exactly where :meth:`resumes_exactly` holds."""
        cfg, p = self.cfg, self.progress
        paused = False
        try:
            while p.global_step < cfg.run.total_steps:
                if pause_at is not None and p.global_step >= pause_at:
                    if p.iteration % cfg.run.checkpoint_every:  # not written by this iteration
                        self.save()
                    paused = True
                    break
                yield Request(self, "boundary", ())
                yield from self.iterate_steps(logger)
        finally:
            logger.close()
            self.close_collection()
        summary = None if paused else self.finish()
        self.release_run_dir()
        return summary

    def boundary(self) -> None:
        """The request that starts an iteration (:meth:`train_steps`); it computes nothing."""

    def resumes_exactly(self) -> bool:
        """Whether a checkpoint of this run continues its environments' episodes exactly (every
        env state can be snapshotted; docs/architecture.md, "Exact resume")."""
        if self.world > 1 or self.cfg.run.overlap_collection:
            return False
        return all(s is not None for s in self.collector.envs.call("ppox_get_state"))  # type: ignore[attr-defined]

    def iterate(self, logger: RunLogger | _NoLogger) -> None:
        """One iteration. ``wall_time_s`` counts collection, update, logging and checkpoints,
        not evaluation (which is extra work a training run does not need)."""
        drive(self.iterate_steps(logger))

    def iterate_steps(self, logger: RunLogger | _NoLogger) -> Steps[None]:
        """:meth:`iterate` as a generator of the policy's NumPy calls (collection's acting, the
        update's forward passes and gradients: :mod:`ppox.training.lockstep`)."""
        cfg, p = self.cfg, self.progress
        t0 = time.perf_counter()
        try:
            rollout, skipped = yield from self._collect()
            self.merge_statistics()
            metrics = yield from self.learner.update_steps(
                rollout, progress=p.global_step / cfg.run.total_steps
            )
        except NumericalError as exc:  # say when, as well as where
            raise NumericalError(
                f"iteration {p.iteration + 1} (after global step {p.global_step:,}): {exc}"
            ) from None
        metrics["skipped_transitions"] = float(skipped)
        p.iteration += 1
        p.global_step += self.global_batch
        elapsed = time.perf_counter() - t0
        row = self.row(metrics, self.global_batch / elapsed, p.wall_time_s + elapsed)
        eval_s = 0.0
        # the other ranks wait for rank 0 in their next collective
        evaluate = self._eval_due() and is_main()
        if evaluate:
            t_eval = time.perf_counter()
            row.update(self.evaluate_now())
            eval_s = time.perf_counter() - t_eval
        # the policy's histograms (a forward pass and a histogram each) with the evaluations and
        # at the first iteration, not at every iteration: a few per run are what a reader looks at
        logger.log(row, self._histograms(rollout) if evaluate or p.iteration == 1 else None)
        p.wall_time_s += time.perf_counter() - t0 - eval_s
        if p.iteration % cfg.run.checkpoint_every == 0 or p.global_step >= cfg.run.total_steps:
            t_save = time.perf_counter()
            self.save()
            p.wall_time_s += time.perf_counter() - t_save

    def _collect(self) -> Steps[tuple[Rollout, int]]:
        """This iteration's rollout and the number of transitions skipped in it: collected now,
        or with ``overlap_collection`` by the worker (:mod:`ppox.training.overlap`), which then
        starts the next one with the policy as it is before this update, unless a checkpoint
        or the end of the run comes after this iteration."""
        if not self.cfg.run.overlap_collection:
            rollout = yield from self.collector.collect_steps()
            return rollout, self.collector.buffer.skipped
        if self.overlap is None:  # forked now: a resumed run's worker continues its restored state
            self.overlap = OverlapWorker(self.collector, self.sample_gen)
        w, p, cfg = self.overlap, self.progress, self.cfg
        if not w.pending:
            w.start(self.model.state_dict())
        rollout, after = w.result()
        self.obs_norm.load_state_dict(after["obs_norm"])
        self.collector.stats.load_state_dict(after["stats"])
        last = p.global_step + self.global_batch >= cfg.run.total_steps
        if not last and (p.iteration + 1) % cfg.run.checkpoint_every:
            w.start(self.model.state_dict())
        return rollout, int(after["skipped"])

    def close_collection(self) -> None:
        """Close the environments (and stop the overlap worker, which owns its own copies)."""
        if self.overlap is not None:
            self.overlap.close()
            self.overlap = None
        self.envs.close()

    def merge_statistics(self) -> None:
        """After each collection the workers merge their normalizer statistics (as the workers of the DPPO paper do: Heess et al. 2017, "Emergence of Locomotion Behaviours in Rich Environments"),
        so all normalize alike from here on; nothing to do in one process."""
        if self.world == 1:
            return
        self.obs_norm.sync()
        self.collector.reward_scaler.sync()
        self.collector.refresh_obs()

    def advantages(self, r: Rollout) -> Batch:
        """The flat batch the first epoch of an update trains on (advantages per the config)."""
        return self.learner.prepare(r).batch

    def row(self, metrics: dict[str, float], sps: float, wall_time_s: float) -> dict[str, Any]:
        """The iteration's ``metrics.csv`` row; ``wall_time_s``: training time up to the end of
        this iteration's update (earlier rows' logging and checkpoints included)."""
        p, stats = self.progress, self.collector.stats
        return {
            "iteration": p.iteration,
            "global_step": p.global_step,
            "wall_time_s": wall_time_s,
            "steps_per_second": sps,
            "train_return_mean": float(np.mean(stats.returns)) if stats.returns else None,
            "train_length_mean": float(np.mean(stats.lengths)) if stats.lengths else None,
            "episodes": stats.episodes,
            **metrics,
        }

    def _eval_due(self) -> bool:
        p = self.progress
        if p.global_step >= self.cfg.run.total_steps:
            return True
        if self.cfg.run.eval_every and p.global_step >= p.next_eval_step:
            while p.next_eval_step <= p.global_step:
                p.next_eval_step += self.cfg.run.eval_every
            return True
        return False

    def evaluate_now(self) -> dict[str, Any]:
        """Evaluate the current policy on the fixed seeds; a policy with non-finite parameters
        (which the NaN guard never lets through) or non-finite returns is never reported."""
        if not all(bool(torch.isfinite(t).all()) for t in self.model.state_dict().values()):
            raise NumericalError(
                "the policy's parameters are not finite; it is not evaluated (the last checkpoint is intact)"
            )
        episodes = evaluate_episodes(
            self.policy(),
            self.cfg.env,
            self.eval_seeds,
            deterministic=self.cfg.run.eval_deterministic,
            backend=self._eval_backend_choice(),
        )
        warn_if_cut(episodes, self.cfg.env)
        self.eval_backend = episodes.backend
        returns = episodes.returns
        if not np.isfinite(returns).all():
            raise NumericalError(f"env_id={self.cfg.env.env_id!r} gave non-finite evaluation returns {returns.tolist()} "
                                 f"on seeds {self.eval_seeds[0]}…{self.eval_seeds[-1]}; nothing is reported")  # fmt: skip
        self.model.train()
        result = {
            "eval_return_mean": float(returns.mean()),
            "eval_return_std": float(returns.std()),
            # episodes stopped at eval_max_steps rather than by the env: their returns are partial
            "eval_truncated_at_cap": episodes.truncated_at_cap,
        }
        self.progress.evals.append({"global_step": self.progress.global_step, **result})
        return result

    def _eval_backend_choice(self) -> str:
        """What evaluations ask :func:`evaluate_episodes` for: torch when the run acts through
        torch by request, else ``auto`` (the NumPy actor where it serves the policy)."""
        return "torch" if self.cfg.run.act_backend == "torch" else "auto"

    def backends(self) -> dict[str, Any]:
        """What this run acts, computes gradients and steps environments with, and why a fast
        path was not taken (recorded in config.json and summary.json; docs/performance.md)."""
        c, lr = self.collector, self.learner
        why = {"act": c.act_backend_reason, "update": lr.backend_reason}
        evals = self.eval_backend  # what the last evaluation ran, else what one will run
        if evals is None:
            evals = (
                "torch"
                if numpy_actor(
                    self.policy(), self.cfg.run.eval_deterministic, self._eval_backend_choice()
                )
                is None
                else "numpy"
            )
        collection = "overlapped" if self.cfg.run.overlap_collection else "synchronous"
        threads = {"torch": self.threads[0], "blas": self.threads[1]}
        return {"act": c.act_backend, "update": lr.backend, "eval": evals, "env": self.cfg.env.env_backend,
                "collection": collection, "threads": threads, "blas": blas_kernel(),
                "fallback_reasons": {k: v for k, v in why.items() if v is not None}}  # fmt: skip

    def describe_backends(self) -> str:
        b = self.backends()
        why = b["fallback_reasons"]
        part = {k: b[k] + (f" ({why[k]})" if k in why else "") for k in ("act", "update")}
        return (f"acting {part['act']}, update {part['update']}, evaluation {b['eval']}, env {b['env']}, "
                f"collection {b['collection']}")  # fmt: skip

    def policy(self) -> Policy:
        return Policy(self.model, self.obs_norm, self.cfg)

    @torch.no_grad()
    def _histograms(self, r: Rollout) -> dict[str, torch.Tensor]:
        if not self.cfg.run.tensorboard or not is_main():
            return {}
        rec = (
            None
            if r.state is None or r.starts is None
            else Recurrence(r.state[-1], r.starts[-1], 1)
        )
        dist = self.model.dist(
            obs_map(lambda x: x[-1], r.obs), None if r.mask is None else r.mask[-1], rec
        )
        return {k: v.flatten().cpu() for k, v in dist.histograms().items()}

    def finish(self) -> dict[str, Any]:
        p = self.progress
        last = p.evals[-1] if p.evals else {}
        summary = {
            "env_id": self.cfg.env.env_id,
            "seed": self.cfg.run.seed,
            "total_steps": p.global_step,
            "iterations": p.iteration,
            "eval_return_mean": last.get("eval_return_mean"),
            "eval_return_std": last.get("eval_return_std"),
            "eval_seeds": self.eval_seeds,
            "eval_deterministic": self.cfg.run.eval_deterministic,
            "eval_max_steps": self.cfg.run.eval_max_steps,
            "eval_truncated_at_cap": last.get("eval_truncated_at_cap"),
            "best_eval_return_mean": max((e["eval_return_mean"] for e in p.evals), default=None),
            "evals": p.evals,
            "wall_time_s": p.wall_time_s,
            "steps_per_second": p.global_step / max(p.wall_time_s, 1e-9),
            "train_return_mean": float(np.mean(self.collector.stats.returns))
            if self.collector.stats.returns
            else None,
            "resumed_env_state_exactly": self.resumed_envs,
            "backends": self.backends(),
            **self._workers(),
        }
        if is_main():
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
            write_curve_svg(
                self.run_dir,
                self.run_dir / "curve.svg",
                title=f"ppox {self.cfg.env.env_id} seed {self.cfg.run.seed}",
            )
        return summary

    def _workers(self) -> dict[str, Any]:
        """How the run was split (recorded in summary.json and the checkpoint)."""
        return {"world_size": self.world, "envs_per_worker": self.num_envs, "batch_scope": self.cfg.run.batch_scope,
                "global_batch": self.global_batch, "dist_backend": distributed.backend()}  # fmt: skip

    # --- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        p = self.progress
        # with overlap_collection the worker holds collection's state (idle at a checkpoint)
        col = self.overlap.state() if self.overlap is not None else None
        rng = rng_state({"sample": self.sample_gen, "shuffle": self.shuffle_gen})
        if col is not None:
            rng["generators"]["sample"] = col["sample"]
        return {
            "config": self.cfg.to_dict(),
            "progress": {
                "iteration": p.iteration,
                "global_step": p.global_step,
                "wall_time_s": p.wall_time_s,
                "next_eval_step": p.next_eval_step,
                "evals": p.evals,
            },
            "model": self.model.state_dict(),
            "optimizer": self.learner.optimizer.state_dict(),
            "learner": self.learner.state_dict(),
            "obs_norm": self.obs_norm.state_dict(),
            "reward_scaler": col["reward_scaler"]
            if col
            else self.collector.reward_scaler.state_dict(),
            "collector": col["collector"] if col else self.collector.state_dict(),
            "rng": rng,
            "workers": self._workers(),  # for the record: a checkpoint resumes on any number of workers
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the whole run from a loaded checkpoint, after checking every part against the
        network, optimizer, normalizers and generators built here
        (:func:`ppox.io.validate.check_training_state`): a state that does not fit is a
        :class:`CheckpointError` naming it, before anything is changed."""
        check_training_state(state, str(self.run_dir / ckpt.CHECKPOINT_NAME), cfg=self.cfg,
                             model=self.model, flat=self.learner.flat.flat,
                             obs_norm=self.obs_norm.state_dict(),
                             generators={"sample": self.sample_gen, "shuffle": self.shuffle_gen})  # fmt: skip
        try:
            self.model.load_state_dict(state["model"])
            self.learner.optimizer.load_state_dict(state["optimizer"])
            if "learner" in state:  # checkpoints before the PPO family carry no learner state
                self.learner.load_state_dict(state["learner"])
            self.obs_norm.load_state_dict(state["obs_norm"])
            own_envs = self.rank == 0 and len(state["collector"]["env_states"]) == self.num_envs
            scaler = (
                state["reward_scaler"]
                if own_envs
                else {**state["reward_scaler"], "ret": [0.0] * self.num_envs}
            )
            self.collector.reward_scaler.load_state_dict(scaler)
            self.progress = Progress(**state["progress"])
            set_rng_state(state["rng"], {"sample": self.sample_gen, "shuffle": self.shuffle_gen})
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint in {self.run_dir} does not match its config: {exc}"
            ) from None
        self.learner.broadcast_params()  # every rank loaded the same state; make sure of it
        self._resume_envs(state, own_envs)

    def _resume_envs(self, state: dict[str, Any], own_envs: bool) -> None:
        """Worker 0 continues its envs' episodes from their snapshots where it can."""
        # envs that cannot be snapshotted restart from fresh seeds, not from the run's first ones;
        # so do the envs of workers other than 0, and all of them on another number of envs per
        # worker (the checkpoint holds worker 0's envs only)
        fresh_seed = self.cfg.run.seed + 7919 * self.progress.iteration
        fresh = self._collection_seeds(fresh_seed)
        if self.rank > 0:
            self.sample_gen.manual_seed(worker_seed(fresh_seed, self.rank))
        if own_envs:
            restored = self.collector.load_state_dict(state["collector"], fresh)
            if not restored:
                print(self._fallback_note(state["collector"]["env_states"]))
        else:
            self.collector.reset(fresh)
            restored = False
        self.resumed_envs = restored and self.world == 1
        if is_main() and (self.world > 1 or not own_envs):
            print(f"ppox: resuming on {self.world} worker(s) × {self.num_envs} envs (the checkpoint holds worker 0's "
                  f"{len(state['collector']['env_states'])}); " + ("worker 0 continues its episodes, the others start new ones"
                  if restored else "every env starts a new episode"))  # fmt: skip

    def _fallback_note(self, states: list[Any]) -> str:
        """Why the envs of a resumed run restart from new resets (said once, on resume)."""
        env = self.cfg.env.env_id
        if any(isinstance(s, bytes) for s in states):
            return (f"ppox: the environment states in this checkpoint are pickles (written before checkpoint "
                    f"version 2), which ppox never unpickles; resumed episodes of {env} restart from new resets")  # fmt: skip
        if any(s is None for s in states):
            return f"ppox: the environments of {env} cannot be snapshotted; resumed episodes restart from new resets"
        return f"ppox: the saved environment states do not fit the environments of {env}; resumed episodes restart from new resets"

    def save(self) -> None:
        """Write the checkpoint (rank 0): atomic, checksummed, and refused with a
        :class:`CheckpointError` when a model, optimizer, normalizer or learner value is not
        finite, keeping the previous checkpoint (:func:`ppox.io.checkpoint.save_checkpoint`)."""
        if is_main():
            ckpt.save_checkpoint(self.state_dict(), self.run_dir / ckpt.CHECKPOINT_NAME)


def _open_for_resume(
    run_dir: Path, trust_imports: bool, held: list[RunLock]
) -> tuple[Path, dict[str, Any]]:
    """Rank 0 of a resume: lock the run directory, remove what a killed checkpoint write left,
    read and verify the checkpoint, and refuse a config that names a module to import unless
    trusted (before anything is imported). Returns the run directory and the state."""
    file = ckpt.resolve(run_dir)
    path = file.parent
    held.append(lock_run_dir(path))
    try:
        ckpt.remove_stale_tmp(path)
        state = ckpt.load_checkpoint(file, map_location="cpu")
        check_imports(ckpt.config_of(state, file), str(file), trust_imports)
    except BaseException:
        held.pop().release()
        raise
    return path, state


def _open_for_auto_resume(cfg: Config, path: Path, held: list[RunLock]) -> dict[str, Any] | None:
    """Rank 0 of ``--auto-resume``: lock an existing run directory (a new one is created and
    locked by ``_start``), then decide (:func:`ppox.io.rundir.resumable`)."""
    check_run_dir(path)
    if path.is_dir():
        check_not_foreign(path)
        held.append(lock_run_dir(path))
    try:
        return resumable(cfg, path)
    except BaseException:
        if held:
            held.pop().release()
        raise


def _give_up(trainer: Trainer | None, lock: RunLock | None) -> None:
    """A start or resume that failed: close the envs it made and leave the directory."""
    if trainer is not None:
        trainer.close_collection()
    if lock is not None:
        lock.release()


def train(cfg: Config, run_dir: str | Path | None = None) -> dict[str, Any]:
    """Train a new run from ``cfg``; returns the summary (also written to ``summary.json``)."""
    return Trainer.create(cfg, run_dir).train()


def check_optional_packages(cfg: Config) -> None:
    """The packages a run's switches need, checked before the run writes anything."""
    problem = wandb_problem() if cfg.run.wandb else None
    if problem:
        raise ConfigError(problem)


def wandb_options(cfg: Config) -> WandbOptions | None:
    """The W&B settings of ``cfg`` (None when ``wandb`` is off)."""
    if not cfg.run.wandb:
        return None
    tags = tuple(t.strip() for t in (cfg.run.wandb_tags or "").split(",") if t.strip())
    return WandbOptions(
        project=cfg.run.wandb_project or "ppox", group=cfg.run.wandb_group, tags=tags,
        config=cfg.to_dict(),
    )  # fmt: skip
