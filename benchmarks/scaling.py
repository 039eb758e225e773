"""Scaling benchmark (issue 5): steps/s of 1 and 2 workers at the same global batch, and whether
their learning curves match.

HalfCheetah-v5 with the ``halfcheetah`` preset's network and losses (256×256 ReLU MLPs), in one
of two setups (``--setup``):

- ``large`` (default): a global batch of 32 envs × 256 steps = 8192 in 4 minibatches of 2048
  for 10 epochs, the shape data-parallel PPO is run in;
- ``preset``: 8 envs × 256 steps = 2048 in 32 minibatches of 64 for 20 epochs (the preset's
  minibatch size and update-to-data ratio), 640 optimizer steps per batch. Each step has a fixed
  cost (about 1.2 ms: kernel launches, the optimizer over 140k parameters, the exchange) that
  every worker pays in full, so this setup cannot scale on any number of workers.

``batch_scope=global`` (the default) keeps the batch whatever the number of workers:

- 1 worker: ``python -m ppox train ...`` (the single-process run; no torchrun, no process group);
- W workers: ``torchrun --standalone --nproc-per-node W -m ppox train ...`` (1 / W of the envs
  and of each minibatch per worker, one gradient all-reduce per minibatch).

What cannot scale: every worker takes the full optimizer step and pays the per-step costs of a
minibatch (Python, kernel launches, the all-reduce), and collection pays one policy forward per
vector step whatever the number of envs; the batch-proportional work (env steps, forward and
backward over samples) is what the workers share.

Every run is a fresh process per worker with ``OMP_NUM_THREADS=1`` and ``threads=1``; runs go one
after the other, alternating which worker count goes first for each seed. Speed is each run's
training-loop steps/s (``summary.json``: collection, update, logging and checkpoints; evaluation
excluded). Run it on a quiet machine with at least as many cores as workers::

    .venv/bin/python benchmarks/scaling.py --steps 300000 --seeds 1 2 3

A quick check that everything works (a couple of minutes; the numbers mean nothing)::

    .venv/bin/python benchmarks/scaling.py --steps 4096 --seeds 1 --eval-every 2048 \\
        --runs-dir /tmp/scaling-runs --out-dir /tmp/scaling-smoke

``run`` skips runs whose directory already has a ``summary.json`` (start the command again to
continue after an interruption); an unfinished directory is moved aside. The results
(``results.json``, ``results.md``, ``curves.png``: the evaluation curve of each worker count,
mean over seeds, with every seed's curve faint behind it) go to ``--out-dir``
(default ``benchmarks/results/scaling-<setup>``). ``--report-only`` rewrites them from existing runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
COMMON = ["--preset", "halfcheetah", "--threads", "1", "--no-tensorboard", "--no-progress"]
SETUPS = {
    # the preset's update (minibatch 64, 20 epochs): 640 optimizer steps per batch, each with a
    # fixed cost no worker count shares
    "preset": ([*COMMON, "--num-envs", "8", "--num-steps", "256", "--num-minibatches", "32"],
               "global batch 2048 (8 envs × 256 steps), minibatch 64, 20 epochs"),
    # a data-parallel setup: the same network and env, a larger batch in 40 larger minibatches
    "large": ([*COMMON, "--num-envs", "32", "--num-steps", "256", "--num-minibatches", "4", "--num-epochs", "10"],
              "global batch 8192 (32 envs × 256 steps), minibatch 2048, 10 epochs"),
}  # fmt: skip
TARGET_SPEEDUP = 1.6  # issue 5: 2 workers vs the single process


def run_name(workers: int, seed: int) -> str:
    return f"w{workers}-s{seed}"


def command(workers: int, seed: int, run_dir: Path, args: argparse.Namespace) -> list[str]:
    train = ["-m", "ppox", "train", *SETUPS[args.setup][0], "--seed", str(seed), "--total-steps", str(args.steps),
             "--eval-every", str(args.eval_every), "--run-dir", str(run_dir), *args.extra]  # fmt: skip
    if workers == 1:
        return [sys.executable, *train]
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    return [torchrun, "--standalone", "--nproc-per-node", str(workers), *train]


def run_one(workers: int, seed: int, args: argparse.Namespace) -> None:
    run_dir = args.runs_dir / run_name(workers, seed)
    if (run_dir / "summary.json").exists():
        print(f"skip {run_dir.name}: finished")
        return
    if run_dir.exists():
        aside = run_dir.with_name(f"{run_dir.name}.incomplete-{int(time.time())}")
        run_dir.rename(aside)
        print(f"moved the unfinished {run_dir.name} to {aside.name}")
    cmd = command(workers, seed, run_dir, args)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    print(f"run {run_dir.name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    with (args.runs_dir / f"{run_dir.name}.log").open("w") as log:
        code = subprocess.call(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    (args.runs_dir / f"{run_dir.name}.bench.json").write_text(
        json.dumps({"exit_code": code, "process_wall_s": wall, "command": cmd})
    )
    print(f"    exit {code} after {wall:.0f} s", flush=True)


def eval_curve(run_dir: Path) -> list[tuple[int, float]]:
    import csv

    with (run_dir / "metrics.csv").open(newline="") as f:
        return [
            (int(r["global_step"]), float(r["eval_return_mean"]))
            for r in csv.DictReader(f)
            if r["eval_return_mean"]
        ]


def collect(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": [], "by_workers": {}}
    for w in args.workers:
        sps, finals = [], []
        for seed in args.seeds:
            run_dir = args.runs_dir / run_name(w, seed)
            if not (run_dir / "summary.json").exists():
                continue
            s = json.loads((run_dir / "summary.json").read_text())
            bench = args.runs_dir / f"{run_dir.name}.bench.json"
            proc = json.loads(bench.read_text()) if bench.exists() else {}
            out["runs"].append({"run": run_dir.name, "workers": w, "seed": seed, "world_size": s.get("world_size", 1),
                                "steps": s["total_steps"], "steps_per_second": s["steps_per_second"],
                                "loop_wall_s": s["wall_time_s"], "process_wall_s": proc.get("process_wall_s"),
                                "final_eval": s["eval_return_mean"], "curve": eval_curve(run_dir)})  # fmt: skip
            sps.append(s["steps_per_second"])
            finals.append(s["eval_return_mean"])
        if sps:
            out["by_workers"][str(w)] = {"seeds": len(sps), "median_sps": statistics.median(sps),
                                         "median_final_eval": statistics.median(finals)}  # fmt: skip
    base = out["by_workers"].get("1")
    for stats in out["by_workers"].values():
        stats["speedup"] = stats["median_sps"] / base["median_sps"] if base else None
    return out


def plot(results: dict[str, Any], path: Path, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for i, w in enumerate(sorted({r["workers"] for r in results["runs"]})):
        runs = [r for r in results["runs"] if r["workers"] == w]
        color = f"C{i}"
        for r in runs:
            ax.plot(*zip(*r["curve"]), color=color, alpha=0.25, lw=1)
        steps = sorted(set.intersection(*(set(s for s, _ in r["curve"]) for r in runs)))
        mean = [np.mean([dict(r["curve"])[s] for r in runs]) for s in steps]
        label = "1 process" if w == 1 else f"{w} workers (torchrun)"
        ax.plot(
            steps, mean, color=color, lw=2, marker="o", ms=3, label=f"{label}, {len(runs)} seed(s)"
        )
    ax.set(title=f"HalfCheetah-v5, {subtitle}: evaluation return", xlabel="environment steps (all workers)",
           ylabel="return (deterministic policy, mean over evaluation episodes)")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: dict[str, Any], args: argparse.Namespace) -> None:
    args.out_dir.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    meta = {"generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": commit,
            "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "steps": args.steps, "setup": args.setup, "config": SETUPS[args.setup][0], "extra": args.extra, "target_speedup": TARGET_SPEEDUP}  # fmt: skip
    (args.out_dir / "results.json").write_text(json.dumps({**meta, **results}, indent=2))
    if results["runs"]:
        plot(results, args.out_dir / "curves.png", SETUPS[args.setup][1].split(" (")[0])
    lines = [
        "# Scaling: 1 process vs W workers at the same global batch (issue 5)", "",
        f"Generated {meta['generated']} by `benchmarks/scaling.py` from commit `{commit}` on a host with "
        f"{meta['cpus']} CPUs; {args.steps:,} steps per run. HalfCheetah-v5, setup `{args.setup}`: "
        f"`ppox train {' '.join([*SETUPS[args.setup][0], *args.extra])}` "
        f"({SETUPS[args.setup][1]}); 1 worker = a plain process, W workers = "
        "`torchrun --standalone --nproc-per-node W`. SPS = training-loop steps/s (evaluation excluded).", "",
        "| workers | seeds | median SPS | speedup vs 1 process | median final eval |", "|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for w, s in results["by_workers"].items():
        speed = "–" if s["speedup"] is None else f"{s['speedup']:.2f}×"
        lines.append(
            f"| {w} | {s['seeds']} | {s['median_sps']:.0f} | {speed} | {s['median_final_eval']:.0f} |"
        )
    lines += ["", f"Target: ≥ {TARGET_SPEEDUP}× with 2 workers, and curves that overlap.", "",
              "| run | SPS | loop time (s) | process time (s) | final eval |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in results["runs"]:
        proc = "–" if r["process_wall_s"] is None else f"{r['process_wall_s']:.0f}"
        lines.append(
            f"| {r['run']} | {r['steps_per_second']:.0f} | {r['loop_wall_s']:.0f} | {proc} | {r['final_eval']:.0f} |"
        )
    lines += ["", "![curves](curves.png)", ""]
    (args.out_dir / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--setup", choices=list(SETUPS), default="large", help="the training setup (see SETUPS)"
    )
    p.add_argument(
        "--steps", type=int, default=300_000, help="environment steps per run, all workers together"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts (1 = a plain process)"
    )
    p.add_argument("--eval-every", type=int, default=25_000)
    p.add_argument("--runs-dir", type=Path, help="default: runs/scaling-<setup>")
    p.add_argument("--out-dir", type=Path, help="default: benchmarks/results/scaling-<setup>")
    p.add_argument(
        "--report-only", action="store_true", help="only rewrite the results from finished runs"
    )
    p.add_argument("--fresh", action="store_true", help="delete --runs-dir first")
    p.add_argument(
        "extra", nargs="*", help="more `ppox train` flags after --, e.g. -- --eval-episodes 5"
    )
    args = p.parse_args()
    args.runs_dir = args.runs_dir or REPO / "runs" / f"scaling-{args.setup}"
    args.out_dir = args.out_dir or REPO / "benchmarks" / "results" / f"scaling-{args.setup}"
    if args.fresh and not args.report_only:
        shutil.rmtree(args.runs_dir, ignore_errors=True)
    if not args.report_only:
        for i, seed in enumerate(args.seeds):
            order = args.workers if i % 2 == 0 else list(reversed(args.workers))
            for w in order:
                run_one(w, seed, args)
    write_report(collect(args), args)


if __name__ == "__main__":
    main()
