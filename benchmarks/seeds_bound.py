"""Five seeds of the ``cartpole`` preset from one command, against one seed, as a user waits for them.

Whole processes, start to exit, one thread each, rounds alternating:

- ``one seed``: ``ppox train --preset cartpole`` (100k steps);
- ``--seeds``: ``ppox train --seeds 1 2 3 4 5``: one start-up, one forked process per seed (the
  operating system shares the two cores among five processes);
- ``--seeds --jobs 2``: the seeds dealt over two forked processes, each training its seeds one
  after another;
- ``--seeds --stack-seeds``: one forked process per core (two here), each stepping its seeds in
  lockstep with their NumPy calls stacked; the fifth seed's first half is trained by one process
  and its second half, resumed from its checkpoint, by the other (two and a half seeds each);
- ``--seeds --jobs 1 --stack-seeds``: all five stacked in one process, on one core;
- ``stacked bound``: the same preset with ``--num-envs 40 --total-steps 500480``: one run that
  does five seeds' env work and matrix products (a 1280-sample batch through one network costs
  what five 256-sample batches through five do) with the per-call costs of one. Stacking five
  seeds on one core cannot beat it by much (it also pays five evaluations and checkpoints);
- ``ppox ablate --seeds 1 2 3 4 5 --jobs 2``: a forked process per seed, two at a time;
- the same with ``--vectorize-seeds``: the five seeds dealt into two stacked processes.

::

    .venv/bin/python benchmarks/seeds_bound.py --rounds 2 --out benchmarks/results/seeds_bound
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from whole_process import timed, write_info  # noqa: E402

_SEEDS = ["--total-steps", "100000", "--seeds", "1", "2", "3", "4", "5"]
SIDES = {
    "one seed": ["train", "--preset", "cartpole", "--total-steps", "100000"],
    "--seeds": ["train", "--preset", "cartpole", *_SEEDS],
    "--seeds --jobs 2": ["train", "--preset", "cartpole", *_SEEDS, "--jobs", "2"],
    "--seeds --stack-seeds": ["train", "--preset", "cartpole", *_SEEDS, "--stack-seeds"],
    "--seeds --jobs 1 --stack-seeds": ["train", "--preset", "cartpole", *_SEEDS, "--jobs", "1", "--stack-seeds"],
    "stacked bound": ["train", "--preset", "cartpole", "--num-envs", "40", "--total-steps", "500480"],
    "ablate --jobs 2": ["ablate", "--preset", "cartpole", "--seeds", "1", "2", "3", "4", "5", "--jobs", "2"],
    "ablate --jobs 2 --vectorize-seeds": ["ablate", "--preset", "cartpole", "--seeds", "1", "2", "3", "4", "5", "--jobs", "2", "--vectorize-seeds"],
}  # fmt: skip


def run(args: list[str], work: Path) -> float:
    out = work / f"run-{time.monotonic_ns()}"
    where = ["--out", str(out)] if args[0] == "ablate" else ["--run-dir", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ppox", *args, *where]
    return timed(cmd, env, work, f"ppox {' '.join(args)}", timeout=1800)[0]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/seeds_bound")
    p.add_argument(
        "--sides",
        default=",".join(SIDES),
        metavar="SIDE,SIDE",
        help="the rows to run, comma-separated (names start with dashes: --sides='one seed,--seeds')",
    )
    a = p.parse_args(argv)
    a.sides = a.sides.split(",")
    for side in a.sides:
        if side not in SIDES:
            p.error(f"--sides: {side!r} is not one of {', '.join(SIDES)}")
    load0 = os.getloadavg()
    walls: dict[str, list[float]] = {s: [] for s in a.sides}
    with tempfile.TemporaryDirectory(prefix="ppox-seeds-") as tmp:
        for i in range(a.rounds):
            order = a.sides if i % 2 == 0 else a.sides[::-1]
            for side in order:
                walls[side].append(run(SIDES[side], Path(tmp)))
                print(f"round {i + 1}: {side}: {walls[side][-1]:.1f} s", flush=True)
    med = {s: statistics.median(v) for s, v in walls.items()}
    info = write_info(a.out, load0, rounds=a.rounds, commands={s: SIDES[s] for s in a.sides},
                      process_s=walls, medians=med)  # fmt: skip
    one = med.get("one seed")
    lines = [
        "# Five seeds of the `cartpole` preset from one command, against one seed",
        "",
        f"`benchmarks/seeds_bound.py` · {info['generated']} · commit `{info['commit']}` · {info['machine']}, "
        f"load {load0[0]:.2f} at start, {info['load_at_end'][0]:.2f} at end · whole processes, one thread each · "
        f"medians of {a.rounds} alternating rounds.",
        "",
        "| | command | process, s (median) | / one seed |",
        "|---|---|---:|---:|",
    ]
    for s in a.sides:
        ratio = f"{med[s] / one:.2f}×" if one else "–"
        lines.append(f"| {s} | `ppox {' '.join(SIDES[s])}` | {med[s]:.1f} | {ratio} |")
    (a.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
