"""Two commits of ppox, interleaved on one machine: did a change make the fast paths slower?

Checks out ``--base`` and ``--head`` as temporary git worktrees and alternates between them,
round after round (the order flips every round), so that the machine's drifts hit both alike:

- ``fixed_costs``: each commit's own ``benchmarks/fixed_costs.py`` (one repeat per round): the
  policy's share of an acting step and one minibatch step, each commit's fast path (``auto`` /
  ``numpy``) and its torch reference;
- ``micro``: this tree's ``benchmarks/ab_micro.py`` against each commit's package (the same
  cases, each timed as the best of many short repeats, which a shared machine disturbs less than
  ``fixed_costs``'s one timing per round);
- ``sb3``: whole training runs of this tree's ``benchmarks/compare_sb3.py`` harness (which uses
  only ppox's public API, so both commits run the same harness) for ppox at each commit, with
  Stable-Baselines3 run in the same rounds as the reference of the SB3 comparison.

Every process gets ``OMP_NUM_THREADS=1`` and ``OPENBLAS_NUM_THREADS=1``. Results: medians over
rounds per case, the head / base ratio of times (or of steps per second), written to
``benchmarks/results/ab_<base>_<head>.{json,md}``::

    .venv/bin/python benchmarks/ab_commits.py --base 93d0a52 --head HEAD --rounds 5
    .venv/bin/python benchmarks/ab_commits.py --base 93d0a52 --rounds 1 --updates 2 --steps 4096 --seeds 1 --out /tmp/ab.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from compare_sb3 import SUITES, header, machine_info, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def resolve(commit: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", commit], check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


@contextmanager
def worktrees(commits: list[str]) -> Iterator[dict[str, Path]]:
    """Detached worktrees of ``commits`` in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ppox-ab-") as tmp:
        trees = {}
        try:
            for c in commits:
                trees[c] = Path(tmp) / c
                subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(trees[c]), c],
                               check=True)  # fmt: skip
            yield trees
        finally:
            for path in trees.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                    check=False,
                )


def _run(cmd: list[str], src: Path | None, out: Path) -> dict[str, Any]:
    env = {**ENV, "PYTHONPATH": str(src)} if src is not None else ENV
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def fixed_costs_round(tree: Path, updates: int, tmp: Path) -> dict[str, dict[str, float]]:
    """``{case: {"fast": µs, "reference": µs}}`` from one repeat of the commit's own script."""
    out = tmp / "fixed.json"
    cmd = [sys.executable, str(tree / "benchmarks" / "fixed_costs.py"), "--repeats", "1", "--updates", str(updates),
           "--out", str(out)]  # fmt: skip
    r = _run(cmd, tree / "src", out)
    rows = {}
    for group, ref in (("acting", "torch"), ("cases", "autograd")):
        for name, case in r[group].items():
            fast = case.get("numpy", case.get("auto"))
            rows[f"{group}: {name}"] = {"fast": fast["median"], "reference": case[ref]["median"]}
    return rows


def micro_round(tree: Path, tmp: Path) -> dict[str, float]:
    """``{case: best µs}`` from one run of ``ab_micro.py`` against the commit's package."""
    out = tmp / "micro.json"
    return _run(
        [sys.executable, str(ROOT / "benchmarks" / "ab_micro.py"), str(out)], tree / "src", out
    )


def sb3_round(impl: str, tree: Path | None, suite: str, seed: int, steps: int, tmp: Path) -> float:
    """Training-loop steps per second of one run (ppox at ``tree``, or SB3)."""
    out = tmp / "run.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "compare_sb3.py"), "--worker", impl, suite, str(seed), str(steps),
           str(out)]  # fmt: skip
    return float(_run(cmd, None if tree is None else tree / "src", out)["sps"])


def collect(
    args: argparse.Namespace, trees: dict[str, Path], base: str, head: str
) -> dict[str, Any]:
    fixed: dict[str, dict[str, list[dict[str, float]]]] = {base: {}, head: {}}
    micro: dict[str, dict[str, list[float]]] = {base: {}, head: {}}
    sps: dict[str, dict[str, list[float]]] = {base: {}, head: {}, "sb3": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            order = [base, head] if k % 2 == 0 else [head, base]
            if "fixed_costs" in args.what:
                for c in order:
                    for name, row in fixed_costs_round(trees[c], args.updates, Path(tmp)).items():
                        fixed[c].setdefault(name, []).append(row)
            if "micro" in args.what:
                for c in order:
                    for name, us in micro_round(trees[c], Path(tmp)).items():
                        micro[c].setdefault(name, []).append(us)
            if "sb3" in args.what:
                for suite in args.suites:
                    for seed in args.seeds:
                        key = f"{suite} seed {seed}"
                        for c in order:
                            sps[c].setdefault(key, []).append(
                                sb3_round("ppox", trees[c], suite, seed, args.steps, Path(tmp))
                            )
                        sps["sb3"].setdefault(key, []).append(
                            sb3_round("sb3", None, suite, seed, args.steps, Path(tmp))
                        )
            print(f"round {k + 1}/{args.rounds} done", file=sys.stderr)
    return {"fixed_costs": fixed, "micro": micro, "sps": sps}


def summarize(raw: dict[str, Any], base: str, head: str) -> dict[str, Any]:
    med = statistics.median
    fixed = {}
    for name in raw["fixed_costs"][base]:
        b, h = raw["fixed_costs"][base][name], raw["fixed_costs"][head][name]
        fast_b, fast_h = med(x["fast"] for x in b), med(x["fast"] for x in h)
        ref_b, ref_h = med(x["reference"] for x in b), med(x["reference"] for x in h)
        fixed[name] = {"base_us": fast_b, "head_us": fast_h, "head_over_base": fast_h / fast_b,
                       "reference_head_over_base": ref_h / ref_b}  # fmt: skip
    micro = {}
    for name in raw.get("micro", {base: {}})[base]:
        b, h = med(raw["micro"][base][name]), med(raw["micro"][head][name])
        micro[name] = {"base_us": b, "head_us": h, "head_over_base": h / b}
    sps = {}
    for key in raw["sps"][base]:
        b, h, s = (
            med(raw["sps"][base][key]),
            med(raw["sps"][head][key]),
            med(raw["sps"]["sb3"][key]),
        )
        sps[key] = {"base_sps": b, "head_sps": h, "head_over_base": h / b, "sb3_sps": s, "base_over_sb3": b / s,
                    "head_over_sb3": h / s}  # fmt: skip
    return {"fixed_costs": fixed, "micro": micro, "sps": sps}


def to_markdown(result: dict[str, Any]) -> str:
    m, base, head, s = result["machine"], result["base"], result["head"], result["summary"]
    lines = [*header(f"ppox {base} vs {head}, interleaved", result, f"torch {m['torch']}, numpy {m['numpy']}",
                     "one thread (OMP, OpenBLAS)"),
             f"Medians over {result['args']['rounds']} rounds; the order of the two commits flips every round."]  # fmt: skip
    if s["fixed_costs"]:
        lines += ["", "## Fixed costs (µs; each commit's own `fixed_costs.py`, its fast path)", "",
                  f"| case | {base} | {head} | {head} / {base} | torch reference {head} / {base} |", "|---|---:|---:|---:|---:|",
                  *(f"| {k} | {v['base_us']:.1f} | {v['head_us']:.1f} | {v['head_over_base']:.3f} | "
                    f"{v['reference_head_over_base']:.3f} |" for k, v in s["fixed_costs"].items())]  # fmt: skip
    if s.get("micro"):
        lines += ["", "## Fixed costs, best of many repeats (µs; `ab_micro.py` against each commit)", "",
                  f"| case | {base} | {head} | {head} / {base} |", "|---|---:|---:|---:|",
                  *(f"| {k} | {v['base_us']:.1f} | {v['head_us']:.1f} | {v['head_over_base']:.3f} |"
                    for k, v in s["micro"].items())]  # fmt: skip
    if s["sps"]:
        lines += ["", f"## Training loop, steps per second (`compare_sb3.py` settings, {result['args']['steps']:,} steps)", "",
                  f"| run | ppox {base} | ppox {head} | {head} / {base} | SB3 | {base} / SB3 | {head} / SB3 |",
                  "|---|---:|---:|---:|---:|---:|---:|",
                  *(f"| {k} | {v['base_sps']:,.0f} | {v['head_sps']:,.0f} | {v['head_over_base']:.3f} | {v['sb3_sps']:,.0f} | "
                    f"{v['base_over_sb3']:.2f}× | {v['head_over_sb3']:.2f}× |" for k, v in s["sps"].items())]  # fmt: skip
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="the commit to compare against")
    p.add_argument(
        "--head",
        default="HEAD",
        help="the commit under test (default: HEAD; commit your changes first)",
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--what",
        nargs="+",
        choices=("fixed_costs", "micro", "sb3"),
        default=["fixed_costs", "micro", "sb3"],
    )
    p.add_argument("--updates", type=int, default=20, help="fixed_costs: timed updates per round")
    p.add_argument("--suites", nargs="+", choices=list(SUITES), default=list(SUITES))
    p.add_argument("--steps", type=int, default=100_000, help="sb3: environment steps per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results JSON (default results/ab_<base>_<head>.json)",
    )
    args = p.parse_args(argv)
    base, head = resolve(args.base), resolve(args.head)
    machine = machine_info()
    with worktrees([base, head]) as trees:
        raw = collect(args, trees, base, head)
    result = dict(command=shlex.join(["python", *sys.argv]), machine=machine, base=base, head=head,
                  args={k: v for k, v in vars(args).items() if k != "out"}, summary=summarize(raw, base, head), raw=raw)  # fmt: skip
    out = args.out or Path(__file__).parent / "results" / f"ab_{base}_{head}.json"
    write_results(out, result, to_markdown(result))


if __name__ == "__main__":
    main()
