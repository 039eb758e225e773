"""A whole run as a user experiences it: ``ppox train`` from the shell prompt back to the prompt,
against Stable-Baselines3 trained with the RL Baselines3 Zoo's CartPole-v1 settings.

Each run is a process of its own with one thread (``OMP_NUM_THREADS=1``; ppox's default
``threads`` is 1 as well), timed from start to exit. The runs alternate (ppox, SB3, SB3, ppox, …
by seed), so a change in the machine's load affects both sides alike::

    .venv/bin/python benchmarks/whole_process.py --seeds 1 2 3 4 5 \\
        --out benchmarks/results/whole_process

What each side does:

- **ppox**: ``ppox train --seed S`` with everything at its default (the ``cartpole`` preset:
  100,096 steps, an evaluation of 10 episodes every 10,000 steps, checkpoints, metrics.csv,
  TensorBoard events when TensorBoard is installed, the curve figure, summary.json). The
  training loop's own time (``summary.json`` ``wall_time_s``) is reported beside it.
- **SB3**: ``PPO("MlpPolicy", make_vec_env("CartPole-v1", 8, seed=S), seed=S, ...)`` with the
  Zoo's ``hyperparams/ppo.yml`` CartPole-v1 entry (n_envs 8, n_steps 32, batch_size 256,
  gae_lambda 0.8, gamma 0.98, n_epochs 20, ent_coef 0, learning rate and clip range decaying
  linearly from 1e-3 and 0.2), the same evaluation schedule as ppox (an ``EvalCallback`` of 10
  deterministic episodes every 10,000 steps), ``learn`` for the same number of steps, a final
  evaluation of 10 episodes and ``model.save``. No TensorBoard log (fewer files than ppox
  writes). ``learn``'s own time is reported beside it.
- **SB3 without evaluations** (``sb3-no-eval``): the same without the ``EvalCallback``, the
  least work an SB3 script can do for the same training (ppox still evaluates 10 times).

``--src DIR --label NAME`` (repeatable) times other checkouts of ppox as further columns (their
``src`` on ``PYTHONPATH``, same interpreter and packages), to measure a change before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENV_ID = "CartPole-v1"
ZOO = dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0)
"""The RL Zoo's hyperparams/ppo.yml CartPole-v1 entry (n_envs 8; lin_1e-3 and lin_0.2 below)."""
SB3 = ["sb3", "sb3-no-eval"]
"""SB3 with ppox's evaluation schedule, and without periodic evaluations (the least it can do)."""


def sb3_worker(seed: int, steps: int, out: str, evaluate: bool) -> None:
    """One SB3 run (see the module docstring), with or without the periodic evaluations; prints
    a JSON line with learn()'s time."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(1)
    envs = make_vec_env(ENV_ID, n_envs=8, seed=seed)
    model = PPO("MlpPolicy", envs, seed=seed, learning_rate=lambda f: 1e-3 * f, clip_range=lambda f: 0.2 * f,
                verbose=0, **ZOO)  # fmt: skip
    eval_env = make_vec_env(ENV_ID, n_envs=1, seed=seed + 1000)
    callback = EvalCallback(eval_env, eval_freq=10_000 // 8, n_eval_episodes=10, deterministic=True,
                            best_model_save_path=None, log_path=None, verbose=0)  # fmt: skip
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=callback if evaluate else None)
    learn_s = time.perf_counter() - t0
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    model.save(str(Path(out) / "model"))
    print(
        json.dumps({"loop_s": learn_s, "final_return": float(mean), "steps": model.num_timesteps})
    )


def run(
    side: str, label: str, seed: int, steps: int, src: Path | None, work: Path
) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = work / f"{label}-s{seed}"
    if side == "sb3":
        cmd = [
            sys.executable,
            __file__,
            "sb3-worker",
            str(seed),
            str(steps),
            str(out),
            str(label == "sb3"),
        ]
        out.mkdir(parents=True)
    else:
        assert src is not None
        env["PYTHONPATH"] = str(src)
        cmd = [sys.executable, "-m", "ppox", "train", "--seed", str(seed), "--run-dir", str(out)]
        if steps != 100_096:
            cmd += ["--total-steps", str(steps)]
    wall, stdout = timed(cmd, env, work, f"{side} seed {seed}")
    if side == "sb3":
        res = json.loads(stdout.strip().splitlines()[-1])
    else:
        s = json.loads((out / "summary.json").read_text())
        res = {"loop_s": s["wall_time_s"], "final_return": s["eval_return_mean"], "steps": s["total_steps"],
               "backends": s["backends"]}  # fmt: skip
    return {"side": side, "seed": seed, "process_s": wall, **res}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    p.add_argument("--steps", type=int, default=100_096, help="ppox's cartpole preset's budget")
    p.add_argument("--src", action="append", type=Path, default=[], help="another checkout's src")
    p.add_argument("--label", action="append", default=[], help="the name of each --src")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/whole_process")
    a = p.parse_args(argv)
    if len(a.label) != len(a.src):
        p.error("give one --label per --src")
    sides = {"ppox": ROOT / "src", **{lab: s.resolve() for lab, s in zip(a.label, a.src)}}
    rows: list[dict[str, Any]] = []
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ppox-whole-") as tmp:
        for i, seed in enumerate(a.seeds):
            order = [*sides, *SB3] if i % 2 == 0 else [*reversed(SB3), *reversed(list(sides))]
            for side in order:
                row = run(
                    "sb3" if side in SB3 else "ppox",
                    side,
                    seed,
                    a.steps,
                    sides.get(side),
                    Path(tmp),
                )
                row["side"] = side
                rows.append(row)
                print(f"{side:>8} seed {seed}: {row['process_s']:6.2f} s process, {row['loop_s']:6.2f} s loop, "
                      f"return {row['final_return']:.1f}", flush=True)  # fmt: skip
    write(a, rows, list(sides), load0)


def timed(
    cmd: list[str], env: dict[str, str], cwd: Path, what: str, timeout: float | None = None
) -> tuple[float, str]:
    """Run ``cmd`` as a whole process; its wall time in seconds and its stdout. A failure ends the
    benchmark with ``what`` and the ends of the process's output."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{what} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return wall, r.stdout


def write_info(out: Path, load0: tuple[float, ...], **extra: Any) -> dict[str, Any]:
    """A benchmark's record: when, at which commit, on what machine and load, and ``extra``;
    written to ``out/results.json`` (the directory made) and returned."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    info = {"generated": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit.stdout.strip(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "load_at_start": load0,
            "load_at_end": os.getloadavg(), **extra}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(info, indent=2))
    return info


def write(
    a: argparse.Namespace, rows: list[dict[str, Any]], sides: list[str], load0: tuple[float, ...]
) -> None:
    import stable_baselines3
    import torch

    med = {s: {k: statistics.median(r[k] for r in rows if r["side"] == s) for k in ("process_s", "loop_s")}
           for s in [*sides, *SB3]}  # fmt: skip
    info = write_info(a.out, load0, torch=torch.__version__, sb3=stable_baselines3.__version__, seeds=a.seeds,
                      steps=a.steps, medians=med, runs=rows)  # fmt: skip
    lines = [
        "# A whole `ppox train` run against Stable-Baselines3 with the RL Zoo's CartPole settings",
        "",
        f"`benchmarks/whole_process.py --seeds {' '.join(map(str, a.seeds))}` · {info['generated']} · commit "
        f"`{info['commit']}` · {info['machine']}, load {load0[0]:.2f} at start, {info['load_at_end'][0]:.2f} at end · "
        f"torch {info['torch']}, SB3 {info['sb3']} · one thread per process; the runs alternate by seed.",
        "",
        "Process: the whole command, start to exit (what the script's docstring lists). Loop: ppox's training "
        "loop (`summary.json` `wall_time_s`: collection, updates, logging and checkpoints, not the evaluations) or "
        "SB3's `learn()` (its `EvalCallback`'s evaluations included). Medians over the seeds.",
        "",
        "| side | process s (median) | loop s (median) | process / loop | SB3 process / this process | SB3 without evaluations / this process | final returns |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for s in [*sides, *SB3]:
        m = med[s]
        finals = ", ".join(f"{r['final_return']:.0f}" for r in rows if r["side"] == s)
        ratio, ratio_ne = (med[x]["process_s"] / m["process_s"] for x in SB3)
        lines.append(f"| {s} | {m['process_s']:.2f} | {m['loop_s']:.2f} | {m['process_s'] / m['loop_s']:.2f} | "
                     f"{ratio:.2f}× | {ratio_ne:.2f}× | {finals} |")  # fmt: skip
    lines += [
        "",
        "| side | seed | process s | loop s | final return |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['side']} | {r['seed']} | {r['process_s']:.2f} | {r['loop_s']:.2f} | {r['final_return']:.1f} |"
              for r in rows]  # fmt: skip
    (a.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "sb3-worker":
        sb3_worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "True")
    else:
        main()
