"""Five seeds in one process: stacked (:mod:`ppox.training.stacked`) against one after another.

Both sides build the same five :class:`~ppox.training.trainer.Trainer` in one process (one
thread) and train them to the end: ``stacked`` steps them in lockstep and makes each acting
step's and each minibatch's NumPy calls for all five at once on stacked weights; ``one after
another`` trains them in turn. The time is from the first trainer's construction to the last
run's end (start-up, shared by both, excluded); rounds alternate which side goes first. Each
round also checks that both sides ended with the same metrics (all but the speed columns),
weights and Adam state, seed by seed::

    .venv/bin/python benchmarks/seeds_stacked.py --rounds 2 --steps 50000 --out benchmarks/results/seeds_stacked
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from whole_process import write_info  # noqa: E402

SIDES = ("stacked", "one after another")


def worker(side: str, preset: str, steps: int, seeds: list[int], out: Path) -> dict[str, Any]:
    """Train the seeds one way in this process; the time and what was stacked."""
    from ppox.presets import get_preset
    from ppox.training.stacked import train_together
    from ppox.training.trainer import Trainer

    cfg = get_preset(preset).config().replace(total_steps=steps, threads=1, progress=False)
    t0 = time.perf_counter()
    trainers = [Trainer.create(cfg.replace(seed=s), out / f"seed-{s}") for s in seeds]
    if side == "stacked":
        _, calls, reason = train_together(trainers)
        stacked = None if calls is None else calls.stacked
    else:
        for t in trainers:
            t.train()
        stacked, reason = None, "trained one after another"
    return {"seconds": time.perf_counter() - t0, "stacked_calls": stacked, "not_stacked": reason}


def same_runs(a: Path, b: Path) -> bool:
    """Whether every seed's metrics (but the speed columns), weights and Adam state match."""
    from ppox.io.checkpoint import CHECKPOINT_NAME, load_checkpoint

    for run in sorted(p.name for p in a.iterdir() if p.is_dir()):
        rows = [list(csv.DictReader((d / run / "metrics.csv").open())) for d in (a, b)]
        if len(rows[0]) != len(rows[1]) or any(
            r[k] != s[k] for r, s in zip(*rows) for k in r if "time" not in k and "second" not in k
        ):
            return False
        ca, cb = (load_checkpoint(d / run / CHECKPOINT_NAME) for d in (a, b))
        if any(not ca["model"][k].equal(cb["model"][k]) for k in ca["model"]):
            return False
        sa, sb = ca["optimizer"]["state"][0], cb["optimizer"]["state"][0]
        if any(not sa[k].equal(sb[k]) for k in ("exp_avg", "exp_avg_sq")):
            return False
    return True


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        side, preset, steps, seeds, out = argv[1], argv[2], int(argv[3]), argv[4], Path(argv[5])
        print(json.dumps(worker(side, preset, steps, [int(s) for s in seeds.split(",")], out)))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=["cartpole", "pendulum"])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/seeds_stacked")
    a = p.parse_args(argv)
    load0 = os.getloadavg()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    seeds = ",".join(map(str, a.seeds))
    times: dict[str, dict[str, list[float]]] = {q: {s: [] for s in SIDES} for q in a.presets}
    identical: dict[str, list[bool]] = {q: [] for q in a.presets}
    stacked_calls: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ppox-stacked-") as tmp:
        for i in range(a.rounds):
            for preset in a.presets:
                dirs = {}
                for side in SIDES if i % 2 == 0 else SIDES[::-1]:
                    dirs[side] = Path(tmp) / f"{preset}-{i}-{side.replace(' ', '-')}"
                    cmd = [
                        sys.executable,
                        __file__,
                        "worker",
                        side,
                        preset,
                        str(a.steps),
                        seeds,
                        str(dirs[side]),
                    ]
                    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    times[preset][side].append(result["seconds"])
                    if side == "stacked":
                        stacked_calls[preset] = result["stacked_calls"] or result["not_stacked"]
                    print(f"round {i + 1}: {preset}: {side}: {result['seconds']:.1f} s", flush=True)
                identical[preset].append(same_runs(*dirs.values()))
    med = {q: {s: statistics.median(v) for s, v in t.items()} for q, t in times.items()}
    info = write_info(a.out, load0, rounds=a.rounds, steps=a.steps, seeds=a.seeds, seconds=times, medians=med,
                      identical=identical, stacked_calls=stacked_calls)  # fmt: skip
    lines = [
        f"# {len(a.seeds)} seeds in one process: stacked against one after another",
        "",
        f"`benchmarks/seeds_stacked.py` · {info['generated']} · commit `{info['commit']}` · {info['machine']}, "
        f"load {load0[0]:.2f} at start, {info['load_at_end'][0]:.2f} at end · one process, one thread · "
        f"{a.steps:,} steps per seed · seconds from building the first trainer to the last run's end, medians of "
        f"{a.rounds} alternating rounds.",
        "",
        "| preset | stacked, s | one after another, s | stacked / one after another | same numbers, every round |",
        "|---|---:|---:|---:|---|",
    ]
    for q in a.presets:
        m = med[q]
        lines.append(f"| {q} | {m['stacked']:.2f} | {m['one after another']:.2f} | "
                     f"{m['stacked'] / m['one after another']:.2f} | {'yes' if all(identical[q]) else '**no**'} |")  # fmt: skip
    (a.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
