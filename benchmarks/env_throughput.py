"""Environment-only throughput: ppox's Gymnasium vector env against the EnvPool backend.

Steps each vector env with random actions (drawn beforehand from the action space with a fixed
seed and replayed, so drawing them costs nothing inside the timed loop) and reports env steps
per second (vector steps × envs / wall time). Every measurement builds a fresh env, resets it,
warms it up, then times ``--seconds`` of stepping. Backends are interleaved (A B C A B C …) for
``--repeats`` rounds so a change in machine load hits all of them; the table gives medians and
the min–max range. Optionally (``--train-steps``) it also times short ``ppox.train`` runs of the
same tasks on each backend (the training loop's ``steps_per_second``: collection + update).

    .venv/bin/python benchmarks/env_throughput.py                       # defaults below
    .venv/bin/python benchmarks/env_throughput.py --repeats 7 --seconds 3 --train-steps 20000

Backends: ``gymnasium`` (``env_backend=gymnasium``, ``vectorization=sync``: ppox's
``LeanSyncVectorEnv``), ``envpool-sync`` (``env_backend=envpool``, ``vectorization=sync``: one
EnvPool worker thread), ``envpool-threads`` (``vectorization=async``: one EnvPool thread per
env, at most the CPU count; skipped for one env, where it is the same as ``envpool-sync``).
Writes ``--out`` (JSON) and the Markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ppox.config import EnvConfig
from ppox.envs.make import make_vec_env

REPO = Path(__file__).resolve().parent.parent
CASES = [("CartPole-v1", 4), ("HalfCheetah-v5", 1), ("HalfCheetah-v5", 8)]
BACKENDS = {
    "gymnasium": {"env_backend": "gymnasium", "vectorization": "sync"},
    "envpool-sync": {"env_backend": "envpool", "vectorization": "sync"},
    "envpool-threads": {"env_backend": "envpool", "vectorization": "async"},
}


def backends_for(num_envs: int, wanted: list[str]) -> list[str]:
    return [b for b in wanted if not (b == "envpool-threads" and num_envs == 1)]


def measure(env_id: str, num_envs: int, backend: str, seconds: float, warmup: int = 200) -> float:
    """Env steps per second of one fresh vector env stepped for about ``seconds``."""
    envs = make_vec_env(EnvConfig(env_id=env_id, num_envs=num_envs, **BACKENDS[backend]))
    try:
        space = envs.action_space
        space.seed(0)
        actions = [space.sample() for _ in range(1000)]
        envs.reset(seed=[100 + i for i in range(num_envs)])
        for k in range(warmup):
            envs.step(actions[k % 1000])
        steps, start = 0, time.perf_counter()
        while True:
            for k in range(200):
                envs.step(actions[k % 1000])
            steps += 200
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return steps * num_envs / elapsed
    finally:
        envs.close()


def train_sps(env_id: str, num_envs: int, backend: str, total_steps: int) -> float:
    """``steps_per_second`` of a short ``ppox.train`` run (MuJoCo preset settings for HalfCheetah)."""
    import ppox

    if env_id.startswith("HalfCheetah"):
        cfg = (
            ppox.get_preset("halfcheetah")
            .config()
            .replace(num_envs=num_envs, num_steps=max(64, 2048 // num_envs))
        )
    else:
        cfg = ppox.get_preset("cartpole").config().replace(num_envs=num_envs)
    cfg = cfg.replace(total_steps=total_steps, eval_every=0, eval_episodes=1, tensorboard=False, progress=False,
                      checkpoint_every=10**6, threads=1, seed=1, **BACKENDS[backend])  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        return float(ppox.train(cfg, Path(tmp) / "run")["steps_per_second"])


def interleaved(
    fn: Any, repeats: int, cases: list[tuple[str, int]], wanted: list[str]
) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for r in range(repeats):
        for env_id, n in cases:
            names = backends_for(n, wanted)
            order = names if r % 2 == 0 else names[::-1]  # alternate who goes first
            for b in order:
                value = fn(env_id, n, b)
                out.setdefault(f"{env_id} × {n}", {}).setdefault(b, []).append(value)
                print(
                    f"round {r + 1}/{repeats}  {env_id} × {n}  {b:16s} {value:12,.0f} steps/s",
                    flush=True,
                )
    return out


def summarize(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for case, per in samples.items():
        base = statistics.median(per["gymnasium"]) if "gymnasium" in per else None
        table[case] = {
            b: {"median": statistics.median(v), "min": min(v), "max": max(v), "samples": v,
                "vs_gymnasium": None if base is None else statistics.median(v) / base}
            for b, v in per.items()
        }  # fmt: skip
    return table


def pkg(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo")
    names = [
        ln.split(":", 1)[1].strip()
        for ln in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
        if ln.startswith("model name")
    ]
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "platform": platform.platform(),
        "processor": names[0] if names else platform.processor(), "cpu_count": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(), "python": platform.python_version(),
        **{n: pkg(n) for n in ("envpool", "gymnasium", "mujoco", "numpy", "torch")},
    }  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# Environment throughput: Gymnasium vs EnvPool",
        "",
        f"Command: `{result['command']}`  ",
        f"Commit: `{result['commit']}`{' (with uncommitted changes)' if result['dirty'] else ''}  ",
        f"Machine: {m['processor']}, {m['cpu_count']} CPUs, {m['platform']}; Python {m['python']}, "
        f"envpool {m['envpool']}, gymnasium {m['gymnasium']}, mujoco {m['mujoco']}, numpy {m['numpy']}  ",
        f"Load average at start {tuple(round(x, 1) for x in m['load_avg_at_start'])}, "
        f"at end {tuple(round(x, 1) for x in result['load_avg_at_end'])}.",
    ]
    if result.get("note"):
        lines += ["", f"**Note.** {result['note']}"]
    sections = [
        (
            "Env-only steps/s (random actions)",
            result["env_only"],
            result["args"]["seconds"],
            "s per sample",
        )
    ]
    if result.get("training"):
        sections.append(("Training-loop steps/s (`ppox.train`, summary `steps_per_second`)", result["training"],
                         result["args"]["train_steps"], "env steps per run"))  # fmt: skip
    for title, table, size, unit in sections:
        lines += ["", f"## {title}", "",
                  f"Median over {result['args']['repeats']} interleaved rounds ({size} {unit}); [min – max]; ratio to Gymnasium.",
                  "", "| task × envs | backend | steps/s | range | × gymnasium |", "|---|---|---:|---|---:|"]  # fmt: skip
        for case, per in table.items():
            for b, s in per.items():
                ratio = "—" if s["vs_gymnasium"] is None else f"{s['vs_gymnasium']:.2f}"
                lines.append(
                    f"| {case} | {b} | {s['median']:,.0f} | {s['min']:,.0f} – {s['max']:,.0f} | {ratio} |"
                )
    return "\n".join(lines) + "\n"


def _portable(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (results files must not name
    paths of the machine they were made on), else its name."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return path.name


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument(
        "--seconds", type=float, default=2.0, help="timed stepping per sample (default 2)"
    )
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    p.add_argument(
        "--train-steps",
        type=int,
        default=0,
        help="also time ppox.train runs of this many steps (0: skip)",
    )
    p.add_argument(
        "--note",
        default="",
        help="a remark written into the results (e.g. that the machine was loaded)",
    )
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/env_throughput.json")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    result: dict[str, Any] = {
        "command": shlex.join(["python", "benchmarks/env_throughput.py", *(sys.argv[1:] if argv is None else argv)]),
        "commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--", "src", "benchmarks")),
        "machine": machine_info(), "args": {k: _portable(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "note": args.note,
    }  # fmt: skip
    np.random.seed(0)
    result["env_only"] = summarize(
        interleaved(
            lambda e, n, b: measure(e, n, b, args.seconds), args.repeats, CASES, args.backends
        )
    )
    if args.train_steps:
        result["training"] = summarize(
            interleaved(
                lambda e, n, b: train_sps(e, n, b, args.train_steps),
                args.repeats,
                CASES,
                args.backends,
            )
        )
    result["load_avg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
