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
per task, each library's final returns per seed and their median, and whether ppox's median
reaches SB3's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def result_path(runs: Path, impl: str, task: str, seed: int) -> Path:
    return runs / f"{impl}-{task}-s{seed}.json"


def run_ppox(task: str, seed: int, steps: int, runs: Path) -> dict[str, Any]:
    run_dir = runs / f"ppox-{task}-s{seed}"
    cmd = [sys.executable, "-m", "ppox", "train", "--env-id", task, "--seed", str(seed),
           "--total-steps", str(steps), "--run-dir", str(run_dir), "--no-progress", "--no-tensorboard"]  # fmt: skip
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


def run_sb3(task: str, seed: int, steps: int) -> dict[str, Any]:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = PPO("MlpPolicy", make_vec_env(task, n_envs=1, seed=seed), seed=seed, device="cpu")
    model.learn(total_timesteps=steps)
    returns = sb3_evaluate(model, task)
    return {"final": sum(returns) / len(returns), "steps": model.num_timesteps,
            "process_s": time.perf_counter() - t0}  # fmt: skip


def one(impl: str, task: str, seed: int, args: argparse.Namespace) -> str:
    runs = Path(args.runs_dir)
    out = result_path(runs, impl, task, seed)
    if out.is_file():
        return "done before"
    runs.mkdir(parents=True, exist_ok=True)
    if impl == "ppox":
        res = run_ppox(task, seed, args.steps, runs)
    else:  # a process of its own, as ppox's
        cmd = [sys.executable, __file__, "worker", task, str(seed), str(args.steps), str(out)]
        r = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
        if r.returncode != 0:
            raise RuntimeError(f"sb3 {task} s{seed}: {r.stdout[-1500:]}{r.stderr[-1500:]}")
        return "finished"
    out.write_text(json.dumps(res))
    return "finished"


def cmd_run(args: argparse.Namespace) -> None:
    jobs = []
    for seed in args.seeds:
        for i, task in enumerate(args.tasks):
            order = ("ppox", "sb3") if (i + seed) % 2 else ("sb3", "ppox")
            jobs += [(impl, task, seed) for impl in order]

    def go(job: tuple[str, str, int]) -> None:
        try:
            status = one(*job, args)
        except Exception as exc:  # reported, the next run starts
            status = f"failed: {exc}"
        print(f"[{stamp()}] {job[0]} {job[1]} s{job[2]}: {status}", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(go, jobs))
    cmd_report(args)


def cmd_report(args: argparse.Namespace) -> None:
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
                         "process_s": [r["process_s"] for _, r in sorted(results.items())],
                         "steps": sorted({r["steps"] for r in results.values()})}  # fmt: skip
        table[task] = row
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"generated": stamp(), "eval_seeds": EVAL_SEEDS, "tasks": table}, indent=2)
    )
    lines = [
        "# No preset (`ppox train --env-id ID`) vs Stable-Baselines3's default PPO",
        "",
        f"Generated {stamp()} by `benchmarks/defaults_sb3.py`. Final return: the deterministic policy, one episode "
        "from each evaluation seed 1,000,000 … 1,000,009, after the whole budget. ppox starts from the base of "
        'the task\'s kind (docs/presets.md); SB3 is `PPO("MlpPolicy", make_vec_env(ID, n_envs=1, seed=S), seed=S)`.',
        "",
        "| task | steps | ppox per seed | ppox median | SB3 per seed | SB3 median | ppox ≥ SB3 | wall time per run ppox / SB3 |",
        "|---|---:|---|---:|---|---:|---|---:|",
    ]
    for task, row in table.items():
        p, s = row["ppox"], row["sb3"]
        if not p["finals"] and not s["finals"]:
            lines.append(f"| {task} | – | not run yet | – | – | – | – | – |")
            continue
        verdict = (
            "–"
            if p["median"] is None or s["median"] is None
            else ("yes" if p["median"] >= s["median"] else "**no**")
        )
        steps = "/".join(f"{x / 1e6:g}M" for x in sorted(set(p["steps"]) | set(s["steps"])))
        walls = [statistics.mean(x["process_s"]) / 60 if x["process_s"] else None for x in (p, s)]
        lines.append(
            f"| {task} | {steps} | {', '.join(f'{x:.0f}' for x in p['finals']) or '–'} | {_f(p['median'])} | "
            f"{', '.join(f'{x:.0f}' for x in s['finals']) or '–'} | {_f(s['median'])} | {verdict} | "
            f"{_f(walls[0], 1)} / {_f(walls[1], 1)} min |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print(f"[{stamp()}] wrote {out / 'results.md'}", flush=True)


def _f(x: float | None, nd: int = 0) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":  # one SB3 run in this process
        task, seed, steps, out = argv[1], int(argv[2]), int(argv[3]), Path(argv[4])
        out.write_text(json.dumps(run_sb3(task, seed, steps)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("run", "report"):
        p = sub.add_parser(name)
        p.add_argument("--tasks", nargs="+", default=TASKS, metavar="ID")
        p.add_argument("--runs-dir", default="runs/defaults_sb3")
        p.add_argument("--out-dir", default="benchmarks/results/defaults_sb3")
    run = sub.choices["run"]
    run.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    run.add_argument("--steps", type=int, default=1_000_000)
    run.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    (cmd_run if args.cmd == "run" else cmd_report)(args)


if __name__ == "__main__":
    main()
