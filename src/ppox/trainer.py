"""The training loop: collect → advantages → update → log → evaluate → checkpoint.

A run lives in one directory::

    config.json      the resolved config
    metrics.csv      one row per iteration (see ppox.logging.COLUMNS)
    tb/              TensorBoard events (scalars, action-probability / σ histograms)
    checkpoint.pt    everything needed to resume exactly (written atomically)
    curve.png        learning curves
    summary.json     final numbers (total_steps, eval_return_mean/std, wall_time_s, steps_per_second, …)

``Trainer.resume(run_dir)`` restores policy, optimizer, normalizers, counters, env states and
every RNG state, so on CPU a run killed at any point and resumed ends with the same parameters
as one that was never interrupted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppox import checkpoint as ckpt
from ppox.config import Config
from ppox.distributed import is_main
from ppox.envs.make import make_vec_env
from ppox.errors import CheckpointError, ConfigError
from ppox.evaluate import evaluate
from ppox.learner import Learner
from ppox.logging import RunLogger, truncate_csv
from ppox.normalizers import RewardScaler
from ppox.plotting import plot_runs
from ppox.policy import Policy, build_model
from ppox.rollout import Collector
from ppox.seeding import (
    collection_seeds,
    evaluation_seeds,
    rng_state,
    seed_everything,
    set_rng_state,
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


def default_run_dir(cfg: Config) -> Path:
    name = cfg.env.env_id.replace("/", "_").replace(":", "_")
    return Path("runs") / f"{name}-s{cfg.run.seed}-{datetime.now():%Y%m%d-%H%M%S}"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but no CUDA device is available; use 'cpu' or 'auto'")
    return torch.device(name)


class Trainer:
    """Builds every component from a :class:`Config` and runs the loop."""

    def __init__(self, cfg: Config, run_dir: Path) -> None:
        self.cfg = cfg.validate()
        self.run_dir = run_dir
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        if cfg.run.deterministic:
            torch.use_deterministic_algorithms(True)
        seed_everything(cfg.run.seed)
        self.device = resolve_device(cfg.run.device)
        self.model, self.obs_norm = build_model(cfg, self.device)
        self.sample_gen = torch.Generator().manual_seed(cfg.run.seed)
        self.shuffle_gen = torch.Generator().manual_seed(cfg.run.seed + 1)
        if self.device.type != "cpu":  # sampling happens on the device
            self.sample_gen = torch.Generator(self.device).manual_seed(cfg.run.seed)
        self.learner = Learner(self.model, cfg, self.shuffle_gen)
        self.envs = make_vec_env(cfg.env)
        scaler = RewardScaler(cfg.env.num_envs, enabled=cfg.env.scale_reward, gamma=cfg.ppo.gamma, clip=cfg.env.reward_clip)
        self.collector = Collector(self.envs, self.model, self.obs_norm, scaler, cfg.ppo.num_steps, self.device, self.sample_gen)
        r = cfg.run
        self.eval_seeds = evaluation_seeds(r.eval_seed, r.eval_episodes)
        self.train_seeds = collection_seeds(r.seed, cfg.env.num_envs, range(r.eval_seed, r.eval_seed + r.eval_episodes))
        self.progress = Progress(next_eval_step=r.eval_every)
        self.resumed_envs = True

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def create(cls, cfg: Config, run_dir: str | Path | None = None) -> Trainer:
        """A new run in an empty (or new) directory; never overwrites an existing run."""
        cfg = cfg.validate()
        path = Path(run_dir or cfg.run.run_dir or default_run_dir(cfg))
        if path.exists() and any(path.iterdir()):
            raise ConfigError(f"run_dir={str(path)!r} already holds files; resume it with --resume {path} or choose another --run-dir")
        trainer = cls(cfg, path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        trainer.collector.reset(trainer.train_seeds)
        return trainer

    @classmethod
    def resume(cls, run_dir: str | Path, total_steps: int | None = None) -> Trainer:
        """Continue the run in ``run_dir`` from its checkpoint (optionally with a new budget)."""
        path = Path(run_dir)
        state = ckpt.load_checkpoint(path, map_location="cpu")
        cfg = Config.from_dict(state["config"])
        if total_steps is not None:
            cfg = cfg.replace(total_steps=total_steps)
        trainer = cls(cfg, path)
        trainer.load_state_dict(state)
        truncate_csv(path / "metrics.csv", trainer.progress.global_step)
        return trainer

    # --- the loop -----------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        cfg, p = self.cfg, self.progress
        logger = RunLogger(self.run_dir, tensorboard=cfg.run.tensorboard and is_main(), progress=cfg.run.progress,
                           total_steps=cfg.run.total_steps, start_step=p.global_step)
        try:
            while p.global_step < cfg.run.total_steps:
                self.iterate(logger)
        finally:
            logger.close()
            self.envs.close()
        return self.finish()

    def iterate(self, logger: RunLogger) -> None:
        """One iteration. ``wall_time_s`` counts collection, update, logging and checkpoints,
        not evaluation (which is extra work a training run does not need)."""
        cfg, p = self.cfg, self.progress
        t0 = time.perf_counter()
        rollout = self.collector.collect()
        metrics = self.learner.update(rollout, progress=p.global_step / cfg.run.total_steps)
        p.iteration += 1
        p.global_step += cfg.batch_size
        row = self.row(metrics, cfg.batch_size / (time.perf_counter() - t0))
        eval_s = 0.0
        if self._eval_due():
            t_eval = time.perf_counter()
            row.update(self.evaluate_now())
            eval_s = time.perf_counter() - t_eval
        logger.log(row, self._histograms(rollout))
        p.wall_time_s += time.perf_counter() - t0 - eval_s
        if p.iteration % cfg.run.checkpoint_every == 0 or p.global_step >= cfg.run.total_steps:
            t_save = time.perf_counter()
            self.save()
            p.wall_time_s += time.perf_counter() - t_save

    def advantages(self, r: Rollout) -> Batch:
        """The flat batch the first epoch of an update trains on (advantages per the config)."""
        return self.learner.prepare(r).batch

    def row(self, metrics: dict[str, float], sps: float) -> dict[str, Any]:
        p, stats = self.progress, self.collector.stats
        return {
            "iteration": p.iteration,
            "global_step": p.global_step,
            "wall_time_s": p.wall_time_s,
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

    def evaluate_now(self) -> dict[str, float]:
        returns = evaluate(self.policy(), self.cfg.env, self.eval_seeds, deterministic=self.cfg.run.eval_deterministic)
        self.model.train()
        result = {"eval_return_mean": float(returns.mean()), "eval_return_std": float(returns.std())}
        self.progress.evals.append({"global_step": self.progress.global_step, **result})
        return result

    def policy(self) -> Policy:
        return Policy(self.model, self.obs_norm, self.cfg)

    @torch.no_grad()
    def _histograms(self, r: Rollout) -> dict[str, torch.Tensor]:
        if not self.cfg.run.tensorboard:
            return {}
        dist = self.model.dist(obs_map(lambda x: x[-1], r.obs), None if r.mask is None else r.mask[-1])
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
            "best_eval_return_mean": max((e["eval_return_mean"] for e in p.evals), default=None),
            "evals": p.evals,
            "wall_time_s": p.wall_time_s,
            "steps_per_second": p.global_step / max(p.wall_time_s, 1e-9),
            "train_return_mean": float(np.mean(self.collector.stats.returns)) if self.collector.stats.returns else None,
            "resumed_env_state_exactly": self.resumed_envs,
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        plot_runs([self.run_dir], self.run_dir / "curve.png", title=f"ppox {self.cfg.env.env_id} seed {self.cfg.run.seed}")
        return summary

    # --- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        p = self.progress
        return {
            "config": self.cfg.to_dict(),
            "progress": {"iteration": p.iteration, "global_step": p.global_step, "wall_time_s": p.wall_time_s,
                         "next_eval_step": p.next_eval_step, "evals": p.evals},
            "model": self.model.state_dict(),
            "optimizer": self.learner.optimizer.state_dict(),
            "learner": self.learner.state_dict(),
            "obs_norm": self.obs_norm.state_dict(),
            "reward_scaler": self.collector.reward_scaler.state_dict(),
            "collector": self.collector.state_dict(),
            "rng": rng_state({"sample": self.sample_gen, "shuffle": self.shuffle_gen}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.learner.optimizer.load_state_dict(state["optimizer"])
            if "learner" in state:  # checkpoints before the PPO family carry no learner state
                self.learner.load_state_dict(state["learner"])
            self.obs_norm.load_state_dict(state["obs_norm"])
            self.collector.reward_scaler.load_state_dict(state["reward_scaler"])
            self.progress = Progress(**state["progress"])
            set_rng_state(state["rng"], {"sample": self.sample_gen, "shuffle": self.shuffle_gen})
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint in {self.run_dir} does not match its config: {exc}") from None
        # envs that cannot be snapshotted restart from fresh seeds, not from the run's first ones
        r = self.cfg.run
        fresh = collection_seeds(r.seed + 7919 * self.progress.iteration, self.cfg.env.num_envs,
                                 range(r.eval_seed, r.eval_seed + r.eval_episodes))
        self.resumed_envs = self.collector.load_state_dict(state["collector"], fresh)
        if not self.resumed_envs:
            print(f"ppox: the environments of {self.cfg.env.env_id} cannot be snapshotted; resumed episodes restart from new resets")

    def save(self) -> None:
        if is_main():
            ckpt.save_checkpoint(self.state_dict(), self.run_dir / ckpt.CHECKPOINT_NAME)


def train(cfg: Config, run_dir: str | Path | None = None) -> dict[str, Any]:
    """Train a new run from ``cfg``; returns the summary (also written to ``summary.json``)."""
    return Trainer.create(cfg, run_dir).train()
