"""The learning table: every MuJoCo and Box2D preset, several seeds, against published PPO returns.

One command runs what is missing and writes the table::

    .venv/bin/python benchmarks/suite.py run --seeds 1 2 3 4 5 --jobs 2 \\
        --runs-dir runs/suite --out-dir benchmarks/results/suite

``run`` trains each (preset, seed) with ``ppox train --preset P --seed S`` in its own process
(``--jobs`` at a time, one thread each), skips pairs whose run directory has a ``summary.json``,
continues a run directory that holds a checkpoint (``ppox train --resume``: a run stopped by
``--deadline`` or moved from another machine goes on where it stopped) and rewrites the report
after every run. ``--deadline SECONDS`` starts nothing after that many seconds and stops runs
still going then (their checkpoints stay). ``--budget PRESET=STEPS`` trains a preset for fewer
steps than its own budget (the table says so).

``report`` reads every run directory (``summary.json``: the final evaluation, the mean over
``eval_episodes`` episodes of the deterministic policy; ``wall_time_s``) and writes
``results.json`` and ``results.md``: per preset the final return of each seed, their IQM with a
95% stratified-bootstrap interval and their median (``ppox.analysis.metrics``), the published PPO
numbers (:data:`PUBLISHED`, each with its source and how it was measured), and the wall time
per run on the machine that ran it.

``check`` asks whether the table still holds at the current code: it compares the runs found in
``--runs-dir`` (made again with ``run``, e.g. seed 1 of every preset) with the table's runs of the
same preset and seed, digit for digit; a run that differs is evaluated again through torch
(``ppox eval --backend torch``), which tells an evaluation rounded differently from a training
that changed. It writes ``reproduce.md`` and ``reproduce.json`` beside the table::

    .venv/bin/python benchmarks/suite.py run --seeds 1 --jobs 2 --runs-dir runs/suite-check \\
        --out-dir runs/suite-check --budget bipedalwalker-hardcore=1000000
    .venv/bin/python benchmarks/suite.py check --runs-dir runs/suite-check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PRESETS = [
    "halfcheetah", "hopper", "walker2d", "ant", "humanoid", "humanoidstandup", "invertedpendulum",
    "inverteddoublependulum", "pusher", "reacher", "swimmer", "lunarlander", "lunarlander-continuous",
    "bipedalwalker", "bipedalwalker-hardcore",
]  # fmt: skip

ZOO = "RL Zoo benchmark.md (one agent, deterministic, ~150k evaluation steps)"
CLEANRL = (
    "CleanRL ppo_continuous_action, MuJoCo v4 (3 seeds, mean of the last 100 training episodes)"
)
TIANSHOU = "Tianshou MuJoCo benchmark, v3/v2 (10 seeds, best test return within 1M steps)"

PUBLISHED: dict[str, list[tuple[str, float, int]]] = {
    # (source, return, budget in steps). RL Zoo: github.com/DLR-RM/rl-baselines3-zoo benchmark.md
    # (PPO rows, v3 MuJoCo / v2 Box2D). CleanRL: docs.cleanrl.dev, rl-algorithms/ppo
    # (ppo_continuous_action, tag pr-424). Tianshou: github.com/thu-ml/tianshou
    # examples/mujoco/README.md (PPO, 1M steps).
    "halfcheetah": [
        (ZOO, 5819.1, 1_000_000),
        (CLEANRL, 1442.6, 1_000_000),
        (TIANSHOU, 5783.9, 1_000_000),
    ],
    "hopper": [
        (ZOO, 2410.4, 1_000_000),
        (CLEANRL, 2382.9, 1_000_000),
        (TIANSHOU, 2609.3, 1_000_000),
    ],
    "walker2d": [
        (ZOO, 3478.8, 1_000_000),
        (CLEANRL, 2288.0, 1_000_000),
        (TIANSHOU, 3588.5, 1_000_000),
    ],
    "ant": [(ZOO, 1327.2, 1_000_000), (TIANSHOU, 3258.4, 1_000_000)],
    "humanoid": [(CLEANRL, 716.1, 1_000_000), (TIANSHOU, 787.1, 1_000_000)],
    "humanoidstandup": [],
    "invertedpendulum": [(CLEANRL, 963.1, 1_000_000), (TIANSHOU, 1000.0, 1_000_000)],
    "inverteddoublependulum": [(TIANSHOU, 9231.3, 1_000_000)],
    "pusher": [(CLEANRL, -40.4, 1_000_000)],
    "reacher": [(TIANSHOU, -4.1, 1_000_000)],
    "swimmer": [(ZOO, 281.6, 1_000_000), (TIANSHOU, 66.7, 1_000_000)],
    "lunarlander": [(ZOO, 242.1, 1_000_000)],
    "lunarlander-continuous": [(ZOO, 270.9, 1_000_000)],
    "bipedalwalker": [(ZOO, 287.9, 5_000_000)],
    "bipedalwalker-hardcore": [(ZOO, 122.4, 100_000_000)],
}
"""The published PPO returns found for each task. Their protocols differ: the Zoo's is one
trained agent, Tianshou's the best evaluation along the way, CleanRL's the last training episodes
of the stochastic policy."""

SHORT = {ZOO: "RL Zoo", CLEANRL: "CleanRL", TIANSHOU: "Tianshou"}

SOURCES = {
    ZOO: "https://github.com/DLR-RM/rl-baselines3-zoo/blob/master/benchmark.md",
    CLEANRL: "https://docs.cleanrl.dev/rl-algorithms/ppo/#ppo_continuous_actionpy",
    TIANSHOU: "https://github.com/thu-ml/tianshou/blob/master/examples/mujoco/README.md",
}


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_one(preset: str, seed: int, args: argparse.Namespace, stop_at: float) -> str:
    runs = Path(args.runs_dir)
    run_dir = runs / f"{preset}-s{seed}"
    if (run_dir / "summary.json").is_file():
        return "done before"
    if time.monotonic() >= stop_at:
        return "not started (deadline)"
    steps = dict(args.budget).get(preset)
    resume = (run_dir / "checkpoint.json").is_file() or (run_dir / "checkpoint.pt").is_file()
    cmd = [sys.executable, "-m", "ppox", "train"]
    if resume:
        cmd += ["--resume", str(run_dir)]
    else:
        cmd += ["--preset", preset, "--seed", str(seed), "--run-dir", str(run_dir),
                "--no-progress", "--no-tensorboard"]  # fmt: skip
    if steps:
        cmd += ["--total-steps", str(steps)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with (runs / f"{preset}-s{seed}.log").open("a") as log:
        log.write(f"[{stamp()}] {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        while proc.poll() is None:
            if time.monotonic() >= stop_at:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
                return "stopped at the deadline (resumable)"
            time.sleep(1.0)
    wall = time.monotonic() - t0
    record = runs / f"{preset}-s{seed}.wall.json"
    walls = json.loads(record.read_text()) if record.is_file() else []
    record.write_text(
        json.dumps([*walls, {"resumed": resume, "process_s": wall, "host_cpus": os.cpu_count()}])
    )
    return "finished" if proc.returncode == 0 else f"failed (exit {proc.returncode})"


def cmd_run(args: argparse.Namespace) -> None:
    stop_at = time.monotonic() + (args.deadline if args.deadline else 1e12)
    pairs = [(p, s) for s in args.seeds for p in args.presets]  # every preset's first seed first
    print(f"[{stamp()}] {len(pairs)} runs, {args.jobs} at a time", flush=True)

    def one(pair: tuple[str, int]) -> None:
        status = run_one(*pair, args, stop_at)
        print(f"[{stamp()}] {pair[0]}-s{pair[1]}: {status}", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, pairs))
    if args.out_dir:
        cmd_report(args)


def collect(preset: str, runs_dir: Path) -> list[dict[str, Any]]:
    out = []
    for d in sorted(runs_dir.glob(f"{preset}-s*")):
        if not d.is_dir() or not d.name[len(preset) + 2 :].isdigit():
            continue
        summary = d / "summary.json"
        if not summary.is_file():
            continue
        s = json.loads(summary.read_text())
        if s.get("eval_return_mean") is None:
            continue
        walls = d.with_name(d.name + ".wall.json")
        process = (
            sum(w["process_s"] for w in json.loads(walls.read_text())) if walls.is_file() else None
        )
        out.append({
            "seed": int(d.name[len(preset) + 2 :]), "final": s["eval_return_mean"], "final_std": s["eval_return_std"],
            "best": s.get("best_eval_return_mean"), "steps": s["total_steps"], "loop_s": s["wall_time_s"],
            "process_s": process,
        })  # fmt: skip
    return out


def cmd_report(args: argparse.Namespace) -> None:
    import numpy as np

    from ppox.analysis.metrics import bootstrap_ci
    from ppox.presets import get_preset

    runs_dir = Path(args.runs_dir)
    rows = {}
    for preset in args.presets:
        runs = collect(preset, runs_dir)
        finals = np.array([r["final"] for r in runs])
        row: dict[str, Any] = {"runs": runs, "published": PUBLISHED.get(preset, []),
                               "preset_steps": get_preset(preset).config().run.total_steps}  # fmt: skip
        if len(runs) >= 2:
            est = bootstrap_ci(finals, "iqm", reps=5000, seed=0)
            row.update(iqm=est.value, low=est.low, high=est.high, median=float(np.median(finals)))
        elif runs:
            row.update(iqm=float(finals[0]), low=None, high=None, median=float(finals[0]))
        rows[preset] = row
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"generated": stamp(), "host_cpus": os.cpu_count(), "python": platform.python_version()}
    (out / "results.json").write_text(json.dumps({"meta": meta, "presets": rows}, indent=2))
    (out / "results.md").write_text(markdown(rows, meta))
    print(f"[{stamp()}] wrote {out / 'results.md'}", flush=True)


def cmd_check(args: argparse.Namespace) -> None:
    """Each run of ``--runs-dir`` against the table's run of the same preset and seed."""
    out = Path(args.out_dir)
    if not (out / "results.json").is_file():
        raise SystemExit(f"suite.py check: no table at {out / 'results.json'} (give --out-dir)")
    table = json.loads((out / "results.json").read_text())["presets"]
    commit = args.commit or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    rows = []
    for preset in args.presets:
        published = {r["seed"]: r for r in table.get(preset, {}).get("runs", [])}
        for run in collect(preset, Path(args.runs_dir)):
            old = published.get(run["seed"])
            if old is None or old["steps"] != run["steps"]:
                continue  # not in the table, or made with another budget: nothing to compare
            row = {"preset": preset, "seed": run["seed"], "steps": run["steps"], "table": old["final"],
                   "now": run["final"], "same": old["final"] == run["final"], "torch": None}  # fmt: skip
            if not row["same"]:  # the evaluation's backend, or the training?
                row["torch"] = torch_eval(Path(args.runs_dir) / f"{preset}-s{run['seed']}")
            rows.append(row)
    (out / "reproduce.json").write_text(
        json.dumps({"generated": stamp(), "commit": commit, "runs": rows}, indent=2)
    )
    same = sum(r["same"] for r in rows)
    via_torch = sum(r["torch"] == r["table"] for r in rows if not r["same"])
    lines = [
        "# Does the table hold at the current code?",
        "",
        f"`benchmarks/suite.py check` · {stamp()} · ppox at commit `{commit}`: runs made again with "
        "`benchmarks/suite.py run`, each against the table's run of the same preset, seed and budget "
        f"(results.md). {same} of {len(rows)} end with the same final evaluation to the last digit. "
        "A run that does not is evaluated again through torch (`ppox eval RUN --backend torch`, "
        "the reference path; training's evaluations act through the NumPy actor where it serves "
        "the policy): the same number then means the same training, its evaluation only rounded "
        f"differently. Of the {len(rows) - same} that differ, {via_torch} give the table's number "
        "through torch.",
        "",
        "| preset | seed | steps | final in the table | final now | same | through torch | same through torch |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        t = r["torch"]
        lines.append(
            f"| {r['preset']} | {r['seed']} | {r['steps']:,} | {r['table']!r} | {r['now']!r} | "
            f"{'yes' if r['same'] else '**no**'} | {'–' if t is None else repr(t)} | "
            f"{'–' if t is None else ('yes' if t == r['table'] else '**no**')} |"
        )
    (out / "reproduce.md").write_text("\n".join(lines) + "\n")
    print(f"[{stamp()}] {same} of {len(rows)} the same, {via_torch} more through torch; wrote "
          f"{out / 'reproduce.md'}", flush=True)  # fmt: skip


def torch_eval(run_dir: Path) -> float:
    """The run's final policy evaluated through torch on its evaluation seeds."""
    r = subprocess.run([sys.executable, "-m", "ppox", "eval", str(run_dir), "--backend", "torch"],
                       capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(f"suite.py check: ppox eval {run_dir} failed: {r.stderr[-1000:]}")
    return float(json.loads(r.stdout)["return_mean"])


def _f(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.1f}" if abs(x) < 100 else f"{x:.0f}"


def markdown(rows: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# ppox presets on MuJoCo and Box2D against published PPO returns",
        "",
        f"Generated {meta['generated']} by `benchmarks/suite.py report`. Score of a run: the final "
        "evaluation (mean return of the deterministic policy over the preset's evaluation episodes, "
        "at the end of its step budget). IQM over seeds with a 95% stratified-bootstrap interval "
        "(`ppox.analysis.metrics.bootstrap_ci`, 5000 resamples). Published numbers: the PPO results "
        "found per task, each with its own protocol (below); Tianshou's is the best evaluation along "
        "the way, an upper bound for a final score.",
        "",
        "| preset | seeds | steps | per seed | IQM [95% CI] | median | published PPO (1M steps unless said) | wall time per run |",
        "|---|---:|---:|---|---|---:|---|---:|",
    ]
    for preset, row in rows.items():
        runs = row["runs"]
        pub_text = (
            " · ".join(
                f"{SHORT[src]} {_f(value)}"
                + ("" if budget == 1_000_000 else f" ({budget / 1e6:g}M)")
                for src, value, budget in row["published"]
            )
            or "–"
        )
        if not runs:
            lines.append(f"| {preset} | 0 | – | not run yet | – | – | {pub_text} | – |")
            continue
        ci = "" if row.get("low") is None else f" [{_f(row['low'])}, {_f(row['high'])}]"
        per_seed = ", ".join(_f(r["final"]) for r in runs)
        steps = sorted({r["steps"] for r in runs})
        walls = [r["process_s"] or r["loop_s"] for r in runs]
        own = row.get("preset_steps")
        short = (
            f" (`--budget`; the preset's own: {own / 1e6:g}M)"
            if own and max(steps) < 0.99 * own
            else ""
        )
        lines.append(
            f"| {preset} | {len(runs)} | {'/'.join(f'{s / 1e6:.2f}M' for s in steps)}{short} | {per_seed} | "
            f"**{_f(row['iqm'])}**{ci} | {_f(row['median'])} | {pub_text} | {sum(walls) / len(walls) / 60:.1f} min |"
        )
    lines += ["", "## Published numbers", ""]
    for source, url in SOURCES.items():
        lines.append(f"- {source}: {url}")
    lines += [
        "",
        "Wall time: the `ppox train` process (all its pieces when a run was resumed), one thread, on a "
        f"machine with {meta['host_cpus']} CPUs shared with other runs; indicative only.",
        "",
    ]
    return "\n".join(lines)


def _budget(text: str) -> tuple[str, int]:
    name, _, steps = text.partition("=")
    if name not in PRESETS or not steps.isdigit():
        raise argparse.ArgumentTypeError(
            f"--budget {text!r}: expected PRESET=STEPS with a preset of the suite"
        )
    return name, int(steps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("run", "report", "check"):
        p = sub.add_parser(name)
        p.add_argument("--presets", nargs="+", default=PRESETS, choices=PRESETS, metavar="PRESET")
        p.add_argument("--runs-dir", default="runs/suite")
        p.add_argument("--out-dir", default="benchmarks/results/suite")
    run = sub.choices["run"]
    run.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    run.add_argument("--jobs", type=int, default=1)
    run.add_argument("--deadline", type=float, default=None, metavar="SECONDS")
    run.add_argument("--budget", type=_budget, action="append", default=[], metavar="PRESET=STEPS")
    sub.choices["check"].add_argument(
        "--commit",
        default=None,
        help="the ppox commit the runs were made at (default: this checkout's)",
    )
    args = parser.parse_args(argv)
    {"run": cmd_run, "report": cmd_report, "check": cmd_check}[args.cmd](args)


if __name__ == "__main__":
    main()
