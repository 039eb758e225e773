"""No preset against no tuning: ``ppox train --env-id ID`` vs Stable-Baselines3's default PPO.

A user who names only the task gets ppox's base for its kind (docs/presets.md); a user of
Stable-Baselines3 gets ``PPO("MlpPolicy", env)``. This script trains both on every MuJoCo and
Box2D task for the same budget and seeds, one process per run with one thread, ppox and SB3 of a
(task, seed) back to back (alternating which goes first), and evaluates both the same way: the
deterministic policy, one episode from each of the evaluation seeds 1,000,000 … 1,000,009 (ppox's
defaults; SB3's observation statistics frozen)::

    .venv/bin/python benchmarks/defaults_sb3.py run --seeds 1 2 3 --steps 1000000 --jobs 2 \\
        --runs-dir runs/defaults_sb3 --out-dir benchmarks/results/defaults_sb3

``run`` skips the runs whose result file exists (stop it and start it again at will) and
rewrites the report after each; ``report`` rewrites it from the result files. The table gives,
per task, each library's final returns per seed, their median and their interquartile mean
(``ppox.analysis.metrics.iqm``), and whether ppox's median reaches SB3's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_sb3 import EVAL_SEEDS, sb3_evaluate  # noqa: E402

TASKS = [
    "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "HumanoidStandup-v5",
    "InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Pusher-v5", "Reacher-v5", "Swimmer-v5",
    "LunarLander-v3", "LunarLanderContinuous-v3", "BipedalWalker-v3", "BipedalWalkerHardcore-v3",
]  # fmt: skip


@dataclass(frozen=True)
class Pairing:
    """What a side-by-side benchmark runs: ppox's command line and the Stable-Baselines3 model for
    a (task, seed), and how the report describes them. This file's pairing is no preset vs SB3's
    default PPO; benchmarks/trpo_sb3.py pairs ppox's TRPO presets with sb3-contrib's TRPO."""

    script: str  # the benchmark script (its `worker` subcommand trains one SB3 run)
    title: str
    how: str  # the report's sentence on what each side runs
    tasks: list[str]
    ppox_args: Callable[[str, int, int], list[str]]  # (task, seed, steps) → `ppox train` arguments
    sb3_model: Callable[[str, int], Any]  # (task, seed) → an SB3 model ready to learn
    default_steps: int = 1_000_000  # 0: each task's own budget (``budget``)
    budget: dict[str, int] | None = None
    runs_dir: str = "runs/defaults_sb3"
    out_dir: str = "benchmarks/results/defaults_sb3"


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def result_path(runs: Path, impl: str, task: str, seed: int) -> Path:
    return runs / f"{impl}-{task}-s{seed}.json"


def run_ppox(pairing: Pairing, task: str, seed: int, steps: int, runs: Path) -> dict[str, Any]:
    run_dir = runs / f"ppox-{task}-s{seed}"
    cmd = [sys.executable, "-m", "ppox", "train", *pairing.ppox_args(task, seed, steps), "--run-dir", str(run_dir),
           "--no-progress", "--no-tensorboard"]  # fmt: skip
    if (run_dir / "checkpoint.json").is_file() or (run_dir / "checkpoint.pt").is_file():
        cmd = [sys.executable, "-m", "ppox", "train", "--resume", str(run_dir)]
    t0 = time.perf_counter()
    r = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    if r.returncode != 0:
        raise RuntimeError(f"ppox {task} s{seed}: {r.stdout[-1500:]}{r.stderr[-1500:]}")
    s = json.loads((run_dir / "summary.json").read_text())
    origin = json.loads((run_dir / "config.json").read_text()).get("origin")
    return {"final": s["eval_return_mean"], "steps": s["total_steps"], "process_s": time.perf_counter() - t0,
            "origin": origin}  # fmt: skip


def default_ppo(task: str, seed: int) -> Any:
    """Stable-Baselines3's PPO with every default: ``PPO("MlpPolicy", env)`` on one env."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    return PPO("MlpPolicy", make_vec_env(task, n_envs=1, seed=seed), seed=seed, device="cpu")


def run_sb3(pairing: Pairing, task: str, seed: int, steps: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = pairing.sb3_model(task, seed)
    model.learn(total_timesteps=steps)
    returns = sb3_evaluate(model, task)
    return {"final": sum(returns) / len(returns), "steps": model.num_timesteps,
            "process_s": time.perf_counter() - t0}  # fmt: skip


def one(pairing: Pairing, impl: str, task: str, seed: int, args: argparse.Namespace) -> str:
    runs = Path(args.runs_dir)
    out = result_path(runs, impl, task, seed)
    if out.is_file():
        return "done before"
    runs.mkdir(parents=True, exist_ok=True)
    steps = args.steps or (pairing.budget or {})[task]
    if impl == "ppox":
        res = run_ppox(pairing, task, seed, steps, runs)
    else:  # a process of its own, as ppox's
        cmd = [sys.executable, pairing.script, "worker", task, str(seed), str(steps), str(out)]
        r = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
        if r.returncode != 0:
            raise RuntimeError(f"sb3 {task} s{seed}: {r.stdout[-1500:]}{r.stderr[-1500:]}")
        return "finished"
    out.write_text(json.dumps(res))
    return "finished"


def cmd_run(pairing: Pairing, args: argparse.Namespace) -> None:
    jobs = []
    for seed in args.seeds:
        for i, task in enumerate(args.tasks):
            order = ("ppox", "sb3") if (i + seed) % 2 else ("sb3", "ppox")
            jobs += [(impl, task, seed) for impl in order]

    def go(job: tuple[str, str, int]) -> None:
        try:
            status = one(pairing, *job, args)
        except Exception as exc:  # reported, the next run starts
            status = f"failed: {exc}"
        print(f"[{stamp()}] {job[0]} {job[1]} s{job[2]}: {status}", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(go, jobs))
    cmd_report(pairing, args)


def cmd_report(pairing: Pairing, args: argparse.Namespace) -> None:
    from ppox.analysis.metrics import iqm

    runs = Path(args.runs_dir)
    table: dict[str, Any] = {}
    for task in args.tasks:
        row: dict[str, Any] = {}
        for impl in ("ppox", "sb3"):
            found = sorted(runs.glob(f"{impl}-{task}-s*.json"))
            results = {int(p.stem.rsplit("-s", 1)[1]): json.loads(p.read_text()) for p in found}
            finals = [r["final"] for _, r in sorted(results.items())]
            row[impl] = {"seeds": sorted(results), "finals": finals,
                         "median": statistics.median(finals) if finals else None,
                         "iqm": iqm(finals) if finals else None,
                         "process_s": [r["process_s"] for _, r in sorted(results.items())],
                         "steps_per_s": [r["steps"] / r["process_s"] for _, r in sorted(results.items())],
                         "steps": sorted({r["steps"] for r in results.values()})}  # fmt: skip
        table[task] = row
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"generated": stamp(), "eval_seeds": EVAL_SEEDS, "tasks": table}, indent=2)
    )
    lines = [
        f"# {pairing.title}",
        "",
        f"Generated {stamp()} by `benchmarks/{Path(pairing.script).name}`. Final return: the deterministic policy, "
        "one episode from each evaluation seed 1,000,000 … 1,000,009, after the whole budget. "
        f"{pairing.how} Each run is one process with one thread; wall time and steps/s are the whole process, "
        "start to exit, on a machine shared with other runs (indicative).",
        "",
        "| task | steps | ppox per seed | ppox median | SB3 per seed | SB3 median | ppox ≥ SB3 (medians) | IQM ppox / SB3 | wall time per run ppox / SB3 | steps/s ppox / SB3 |",
        "|---|---:|---|---:|---|---:|---|---:|---:|---:|",
    ]
    for task, row in table.items():
        p, s = row["ppox"], row["sb3"]
        if not p["finals"] and not s["finals"]:
            lines.append(f"| {task} | – | not run yet | – | – | – | – | – | – | – |")
            continue
        verdict = (
            "–"
            if p["median"] is None or s["median"] is None
            else ("yes" if p["median"] >= s["median"] else "**no**")
        )
        steps = "/".join(f"{x / 1e6:g}M" for x in sorted(set(p["steps"]) | set(s["steps"])))
        walls = [statistics.mean(x["process_s"]) / 60 if x["process_s"] else None for x in (p, s)]
        rates = [statistics.mean(x["steps_per_s"]) if x["steps_per_s"] else None for x in (p, s)]
        lines.append(
            f"| {task} | {steps} | {', '.join(f'{x:.0f}' for x in p['finals']) or '–'} | {_f(p['median'])} | "
            f"{', '.join(f'{x:.0f}' for x in s['finals']) or '–'} | {_f(s['median'])} | {verdict} | "
            f"{_f(p['iqm'])} / {_f(s['iqm'])} | "
            f"{_f(walls[0], 1)} / {_f(walls[1], 1)} min | {_f(rates[0])} / {_f(rates[1])} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print(f"[{stamp()}] wrote {out / 'results.md'}", flush=True)


def _f(x: float | None, nd: int = 0) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def main(pairing: Pairing, doc: str, argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":  # one SB3 run in this process
        task, seed, steps, out = argv[1], int(argv[2]), int(argv[3]), Path(argv[4])
        out.write_text(json.dumps(run_sb3(pairing, task, seed, steps)))
        return
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("run", "report"):
        p = sub.add_parser(name)
        p.add_argument("--tasks", nargs="+", default=pairing.tasks, metavar="ID")
        p.add_argument("--runs-dir", default=pairing.runs_dir)
        p.add_argument("--out-dir", default=pairing.out_dir)
    run = sub.choices["run"]
    run.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    run.add_argument("--steps", type=int, default=pairing.default_steps)
    run.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    (cmd_run if args.cmd == "run" else cmd_report)(pairing, args)


DEFAULTS = Pairing(
    script=__file__,
    title="No preset (`ppox train --env-id ID`) vs Stable-Baselines3's default PPO",
    how="ppox starts from the base of the task's kind (docs/presets.md); SB3 is "
    '`PPO("MlpPolicy", make_vec_env(ID, n_envs=1, seed=S), seed=S)`.',
    tasks=TASKS,
    ppox_args=lambda task, seed, steps: [
        "--env-id",
        task,
        "--seed",
        str(seed),
        "--total-steps",
        str(steps),
    ],
    sb3_model=default_ppo,
)

if __name__ == "__main__":
    main(DEFAULTS, __doc__)
