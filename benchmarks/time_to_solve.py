"""Wall time to solve CartPole-v1: ppox's preset vs Stable-Baselines3 with the RL Zoo's tuned
hyperparameters, each as its users would run it.

"Solved" is the first evaluation with a mean return ≥ 475 (10 deterministic episodes, one per
seed 1000000..1000009, each on a fresh env, the same protocol for both). Both are evaluated
every ``--eval-every`` environment steps; the clock counts training only (evaluation time is
taken out for both), from the first collected step, and both stop once solved. Each run is a fresh subprocess with one
torch thread and OMP_NUM_THREADS=1; for each seed the two run back to back, alternating which
goes first. Run it on a quiet machine::

    .venv/bin/python benchmarks/time_to_solve.py --seeds 1 2 3 4 5

SB3's settings are the RL Zoo's ``CartPole-v1`` entry (hyperparams/ppo.yml of
DLR-RM/rl-baselines3-zoo: 8 envs × 32 steps, minibatch 256, 20 epochs, γ 0.98, λ 0.8, entropy 0,
learning rate and clip range linear from 1e-3 and 0.2) on SB3's default MlpPolicy. Results go
to benchmarks/results/time_to_solve.json and a .md beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from compare_sb3 import EVAL_SEEDS, fmt, header, machine_info, sb3_evaluate, write_results  # noqa: E402

IMPLS = ("ppox", "sb3")
THRESHOLD = 475.0
RL_ZOO = dict(n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
              learning_rate="lin_0.001", clip_range="lin_0.2")  # fmt: skip


def run_ppox(preset: str, seed: int, steps: int, eval_every: int) -> dict[str, Any]:
    from ppox.io.logging import RunLogger
    from ppox.presets import get_preset
    from ppox.training.trainer import Trainer

    cfg = (
        get_preset(preset)
        .config()
        .replace(
            total_steps=steps,
            seed=seed,
            eval_every=eval_every,
            eval_episodes=len(EVAL_SEEDS),
            eval_seed=EVAL_SEEDS[0],
            device="cpu",
            progress=False,
            tensorboard=False,
            threads=1,
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        trainer = Trainer.create(
            cfg, run_dir
        )  # the loop of ppox.train, stopped once solved as SB3's is
        logger = RunLogger(
            run_dir, tensorboard=False, progress=False, total_steps=steps, start_step=0
        )
        p = trainer.progress
        while p.global_step < steps and not (
            p.evals and p.evals[-1]["eval_return_mean"] >= THRESHOLD
        ):
            trainer.iterate(logger)
        logger.close()
        with (run_dir / "metrics.csv").open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("eval_return_mean")]
    evals = [
        (int(r["global_step"]), float(r["wall_time_s"]), float(r["eval_return_mean"])) for r in rows
    ]
    return dict(
        evals=evals, steps=p.global_step, sps=p.global_step / p.wall_time_s, config=cfg.to_dict()
    )


def run_sb3(seed: int, steps: int, eval_every: int) -> dict[str, Any]:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)

    def linear(start: float) -> Any:
        return lambda remaining: remaining * start

    h = RL_ZOO
    env = make_vec_env("CartPole-v1", n_envs=h["n_envs"], seed=seed)
    model = PPO("MlpPolicy", env, n_steps=h["n_steps"], batch_size=h["batch_size"], gae_lambda=h["gae_lambda"],
                gamma=h["gamma"], n_epochs=h["n_epochs"], ent_coef=h["ent_coef"], learning_rate=linear(1e-3),
                clip_range=linear(0.2), seed=seed, device="cpu", verbose=0)  # fmt: skip
    evals: list[tuple[int, float, float]] = []

    class Clock(BaseCallback):
        """Evaluates every ``eval_every`` steps with the clock stopped; stops once solved."""

        def __init__(self) -> None:
            super().__init__()
            self.start = self.paused = 0.0
            self.next_eval = eval_every

        def _on_training_start(self) -> None:
            self.start = time.perf_counter()

        def _on_step(self) -> bool:
            if self.num_timesteps < self.next_eval:
                return True
            t = time.perf_counter()
            while self.next_eval <= self.num_timesteps:
                self.next_eval += eval_every
            mean = statistics.fmean(sb3_evaluate(self.model, "CartPole-v1"))
            evals.append((self.num_timesteps, t - self.start - self.paused, mean))
            self.paused += time.perf_counter() - t
            return mean < THRESHOLD

    clock = Clock()
    model.learn(total_timesteps=steps, callback=clock)
    trained = time.perf_counter() - clock.start - clock.paused
    return dict(
        evals=evals, steps=model.num_timesteps, sps=model.num_timesteps / trained, config=RL_ZOO
    )


def solved(evals: list[list[float]]) -> tuple[int | None, float | None]:
    """(steps, training seconds) at the first evaluation ≥ THRESHOLD, or (None, None)."""
    for step, wall, mean in evals:
        if mean >= THRESHOLD:
            return int(step), float(wall)
    return None, None


def spawn(impl: str, preset: str, seed: int, steps: int, eval_every: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", impl, preset, str(seed), str(steps),
               str(eval_every), str(out)]  # fmt: skip
        subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True)
        result = json.loads(out.read_text())
    step, wall = solved(result["evals"])
    return dict(impl=impl, seed=seed, solved_step=step, solved_s=wall, **result)


def median(values: list[float | None]) -> float | None:
    """The median, counting an unsolved run (None) as slower than every solved one."""
    if not values:
        return None
    ordered = sorted(values, key=lambda v: (v is None, v or 0.0))
    mid = ordered[(len(ordered) - 1) // 2 : len(ordered) // 2 + 1]
    return (
        None if any(v is None for v in mid) else statistics.fmean(v for v in mid if v is not None)
    )


def to_markdown(result: dict[str, Any]) -> str:
    m, s = result["machine"], result["summary"]
    lines = [
        *header("Wall time to solve CartPole-v1 (mean evaluation return ≥ 475)", result,
                f"torch {m['torch']}, SB3 {m['stable-baselines3']}, gymnasium {m['gymnasium']}, ppox {m['ppox']}",
                "one torch thread in both"),
        f"ppox preset `{result['args']['preset']}`; SB3 with the RL Zoo's CartPole-v1 hyperparameters "
        f"({', '.join(f'{k}={v}' for k, v in RL_ZOO.items())}), default MlpPolicy. Evaluation every "
        f"{result['args']['eval_every']} steps, 10 deterministic episodes on seeds 1000000..1000009; "
        "the clock counts training only. Medians over seeds; an unsolved run counts as slowest.", "",
        "| | ppox | SB3 (RL Zoo) |", "|---|---:|---:|",
        f"| median training seconds to ≥ 475 | {fmt(s['ppox_s'], 2)} | {fmt(s['sb3_s'], 2)} |",
        f"| median steps to ≥ 475 | {fmt(s['ppox_steps'], 0)} | {fmt(s['sb3_steps'], 0)} |",
        f"| runs solved | {s['ppox_solved']} | {s['sb3_solved']} |",
        f"| median steps/s while training | {fmt(s['ppox_sps'], 0)} | {fmt(s['sb3_sps'], 0)} |", "",
        f"**ppox is {fmt(s['speedup'], 2)}× faster** in median wall time to solve." if s["speedup"] else
        "No speed-up: one side did not solve in the median.", "",
        "| impl | seed | steps to ≥ 475 | seconds to ≥ 475 | steps/s |", "|---|---:|---:|---:|---:|",
    ]  # fmt: skip
    for r in result["runs"]:
        lines.append(
            f"| {r['impl']} | {r['seed']} | {fmt(r['solved_step'], 0)} | {fmt(r['solved_s'], 2)} | {fmt(r['sps'], 0)} |"
        )
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="cartpole", help="the ppox preset (default: cartpole)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--steps", type=int, default=200_000, help="budget per run")
    p.add_argument("--eval-every", type=int, default=2_048)
    p.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "time_to_solve.json"
    )
    p.add_argument(
        "--worker", nargs=6, help=argparse.SUPPRESS
    )  # IMPL PRESET SEED STEPS EVAL_EVERY RESULT
    args = p.parse_args(argv)
    if args.worker:
        impl, preset, seed, steps, every, out = args.worker
        r = (
            run_ppox(preset, int(seed), int(steps), int(every))
            if impl == "ppox"
            else run_sb3(int(seed), int(steps), int(every))
        )
        Path(out).write_text(json.dumps(r))
        return
    machine = machine_info()
    runs = []
    for i, seed in enumerate(args.seeds):
        for impl in IMPLS if i % 2 == 0 else IMPLS[::-1]:
            runs.append(spawn(impl, args.preset, seed, args.steps, args.eval_every))
            r = runs[-1]
            print(
                f"{impl} seed {seed}: solved at {r['solved_step']} steps, {r['solved_s']} s, {r['sps']:.0f} SPS",
                file=sys.stderr,
            )
    summary: dict[str, Any] = {}
    for impl in IMPLS:
        mine = [r for r in runs if r["impl"] == impl]
        summary[f"{impl}_s"] = median([r["solved_s"] for r in mine])
        summary[f"{impl}_steps"] = median([r["solved_step"] for r in mine])
        summary[f"{impl}_solved"] = f"{sum(r['solved_s'] is not None for r in mine)}/{len(mine)}"
        summary[f"{impl}_sps"] = statistics.median(r["sps"] for r in mine)
    a, b = summary["ppox_s"], summary["sb3_s"]
    summary["speedup"] = b / a if a and b else None
    result = dict(command=shlex.join(["python", *sys.argv]), machine=machine,
                  args=dict(preset=args.preset, seeds=args.seeds, steps=args.steps, eval_every=args.eval_every),
                  summary=summary, runs=runs)  # fmt: skip
    write_results(args.out, result, to_markdown(result))


if __name__ == "__main__":
    main()
