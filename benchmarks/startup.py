"""Start-up time: how long ``ppox --help``, ``ppox presets`` and ``import ppox`` take, each as a
whole process (interpreter start to exit), the median of several runs.

``--src DIR`` times another checkout's ``src`` (the same interpreter and packages), so a change can
be measured before and after, interleaved run by run::

    git worktree add /some/where/before <rev>
    python benchmarks/startup.py --src /some/where/before/src --label before --src src \\
        --label after --out startup.json

Writes a JSON file and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "ppox --help": "from ppox.cli import main; main(['--help'])",
    "ppox presets": "from ppox.cli import main; main(['presets'])",
    "import ppox": "import ppox",
    "ppox train --help": "from ppox.cli import main; main(['train', '--help'])",
}


def once(src: Path, code: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(src.resolve())}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import sys\ntry:\n {code}\nexcept SystemExit:\n pass"],
                   env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", type=Path, action="append", help="a checkout's src folder (repeat)")
    p.add_argument(
        "--label",
        action="append",
        help="a name for each --src, in order (the results file holds names, not paths)",
    )
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--out", type=Path, default=Path("startup.json"))
    args = p.parse_args()
    srcs = args.src or [Path("src")]
    labels = args.label or [f"src{i}" for i in range(len(srcs))]
    if len(labels) != len(srcs):
        p.error("give one --label per --src")
    times: dict[str, dict[str, list[float]]] = {lab: {c: [] for c in COMMANDS} for lab in labels}
    for _ in range(args.runs):  # interleaved: every source and command once per round
        for name, code in COMMANDS.items():
            for s, lab in zip(srcs, labels):
                times[lab][name].append(once(s, code))
    medians = {s: {c: statistics.median(v) for c, v in t.items()} for s, t in times.items()}
    meta = {"python": platform.python_version(), "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "runs": args.runs}  # fmt: skip
    args.out.write_text(json.dumps({"meta": meta, "seconds": times, "median": medians}, indent=1))
    print("| command | " + " | ".join(medians) + " |")
    print("|---|" + "---|" * len(medians))
    for c in COMMANDS:
        print(f"| `{c}` | " + " | ".join(f"{medians[s][c]:.2f} s" for s in medians) + " |")


if __name__ == "__main__":
    main()
