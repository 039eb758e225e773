"""ppox's ``atari`` preset and CleanRL's ``ppo_atari.py`` side by side on one Atari game, run at the
same time, one thread each: steps/s and whole-game returns at the same steps.

What: ``ppox train --preset atari --env-id ID`` against CleanRL's ``cleanrl/ppo_atari.py`` with its
default arguments (the hyperparameters the preset copies: 8 envs × 128 steps, 4 epochs of 4
minibatches, lr 2.5e-4 annealed, clip 0.1, entropy 0.01, the Nature CNN; docs/pixels.md), for the
same step budget (both anneal the learning rate over it) and seeds.

How: for each seed, the two runs start together as two processes, each with one thread
(OMP_NUM_THREADS=1, ``torch.set_num_threads(1)``), so they share the machine's conditions. Per
run this records the whole process's wall time (start to exit, as this script sees it), the
training steps/s (ppox: ``summary.json``'s ``steps_per_second``; CleanRL: the last ``SPS:`` it
prints, ``global_step`` over the time since its env reset), and the learning curve as each
library logs whole games: the mean raw score of the last 100 games at each step (ppox's
``train_return_mean``; for CleanRL computed here from the ``episodic_return`` lines it prints,
which come from ``RecordEpisodeStatistics``, the innermost wrapper, so whole games in raw score).

CleanRL is not a ppox dependency. Get it (the commit this file was checked with is in
``CLEANRL_COMMIT``) and point ``--cleanrl-dir`` at the checkout::

    git clone https://github.com/vwxyzjn/cleanrl /tmp/cleanrl && git -C /tmp/cleanrl checkout fe8d8a03
    .venv/bin/pip install tyro    # CleanRL's argument parser (in ppox's `bench` extra)
    .venv/bin/python benchmarks/atari_cleanrl.py --cleanrl-dir /tmp/cleanrl --steps 500000 --seeds 1

CleanRL's script targets Gymnasium 0.29; this environment has Gymnasium 1.x. The script runs
unmodified (``runpy``) after these shims, applied in its process only (:data:`SHIMS`): the
renamed wrappers ``GrayScaleObservation`` → ``GrayscaleObservation`` and ``FrameStack`` →
``FrameStackObservation``; ``SyncVectorEnv`` with Gymnasium 0.29's same-step autoreset and its
per-env ``final_info`` list (Gymnasium 1.x defaults to next-step autoreset, which would add one
junk transition per episode, and batches ``final_info`` into a dict); ale-py's ids registered;
one torch thread. Quick check::

    .venv/bin/python benchmarks/atari_cleanrl.py --cleanrl-dir /tmp/cleanrl --steps 4096 --seeds 1 \\
        --out /tmp/atari_cleanrl.json

Results go to benchmarks/results/atari_cleanrl_<game>.json, a .md and a .png beside it
(``--out``); ``--plot-only RESULTS.json`` redraws the curves and rewrites the Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import deque
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from compare_sb3 import fmt, header, machine_info, write_results  # noqa: E402

CLEANRL_COMMIT = "fe8d8a03"
SHIMS = [
    "gymnasium.wrappers.GrayScaleObservation = GrayscaleObservation (renamed in Gymnasium 1.0)",
    "gymnasium.wrappers.FrameStack = FrameStackObservation (renamed in Gymnasium 1.0)",
    "gymnasium.vector.SyncVectorEnv: same-step autoreset (Gymnasium 0.29's only mode) and final_info "
    "as a per-env list (0.29's format), so CleanRL's loop and its episode logging run as written",
    "gymnasium.register_envs(ale_py) before CleanRL's gym.make (ale-py ≥ 0.9 no longer registers on import)",
    "torch.set_num_threads(1)",
]


# --- CleanRL's process ---------------------------------------------------------------------------
def cleanrl_worker(args: argparse.Namespace) -> None:
    """Run CleanRL's ppo_atari.py unmodified after :data:`SHIMS`, in this process."""
    import runpy

    import ale_py
    import gymnasium as gym
    import numpy as np
    import torch

    torch.set_num_threads(1)
    gym.register_envs(ale_py)
    gym.wrappers.GrayScaleObservation = gym.wrappers.GrayscaleObservation  # type: ignore[attr-defined]
    gym.wrappers.FrameStack = gym.wrappers.FrameStackObservation  # type: ignore[attr-defined]

    class SameStepSyncVectorEnv(gym.vector.SyncVectorEnv):
        def __init__(self, env_fns: Any, **kwargs: Any) -> None:
            super().__init__(env_fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP, **kwargs)

        def step(self, actions: Any) -> Any:
            obs, reward, terminated, truncated, infos = super().step(actions)
            if "final_info" in infos:
                batched, ended = infos["final_info"], infos["_final_info"]
                per_env: list[dict[str, Any] | None] = []
                for i in range(self.num_envs):
                    if ended[i] and "episode" in batched and batched["_episode"][i]:
                        ep = batched["episode"]
                        per_env.append(
                            {"episode": {"r": np.array([ep["r"][i]]), "l": np.array([ep["l"][i]])}}
                        )
                    else:
                        per_env.append(None)
                infos = {**infos, "final_info": per_env}
            return obs, reward, terminated, truncated, infos

    gym.vector.SyncVectorEnv = SameStepSyncVectorEnv  # type: ignore[misc]
    root = Path(args.cleanrl_dir).resolve()
    sys.path.insert(0, str(root))
    sys.argv = ["ppo_atari.py", "--env-id", args.env_id, "--seed", str(args.seed),
                "--total-timesteps", str(args.steps), "--no-cuda"]  # fmt: skip
    runpy.run_path(str(root / "cleanrl" / "ppo_atari.py"), run_name="__main__")


# --- the parent ----------------------------------------------------------------------------------
def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start(cmd: list[str], log: Path, cwd: Path) -> tuple[subprocess.Popen[bytes], float, Any]:
    f = log.open("wb")
    return (
        subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=child_env(), cwd=cwd),
        time.time(),
        f,
    )


def ppox_result(run_dir: Path) -> dict[str, Any]:
    import csv

    summary = json.loads((run_dir / "summary.json").read_text())
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    curve = [
        [int(r["global_step"]), float(r["train_return_mean"])]
        for r in rows
        if r["train_return_mean"]
    ]
    return dict(steps=summary["total_steps"], sps=summary["steps_per_second"], curve=curve,
                games=int(rows[-1]["episodes"]) if rows else 0)  # fmt: skip


EPISODE = re.compile(r"global_step=(\d+), episodic_return=\[?([-0-9.e]+)")
SPS = re.compile(r"^SPS: (\d+)", re.M)


def cleanrl_result(log: Path) -> dict[str, Any]:
    text = log.read_text(errors="replace")
    episodes = [(int(s), float(r)) for s, r in EPISODE.findall(text)]
    window: deque[float] = deque(maxlen=100)
    curve = []
    for step, ret in episodes:
        window.append(ret)
        curve.append([step, sum(window) / len(window)])
    sps = [int(x) for x in SPS.findall(text)]
    return dict(steps=max((s for s, _ in episodes), default=0), sps=sps[-1] if sps else None,
                curve=curve, games=len(episodes), episodes=episodes)  # fmt: skip


def at_step(curve: list[list[float]], step: int) -> float | None:
    """The curve's last value at or before ``step``."""
    before = [v for s, v in curve if s <= step]
    return before[-1] if before else None


def run_seed(seed: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    run_dir = work / f"ppox-s{seed}"
    ppox_cmd = [sys.executable, "-m", "ppox", "train", "--preset", "atari", "--env-id", args.env_id,
                "--seed", str(seed), "--total-steps", str(args.steps), "--threads", "1",
                "--eval-every", "0", "--run-dir", str(run_dir), "--no-progress", "--no-tensorboard"]  # fmt: skip
    clean_cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--cleanrl-dir", args.cleanrl_dir,
                 "--env-id", args.env_id, "--seed", str(seed), "--steps", str(args.steps)]  # fmt: skip
    procs = {
        "ppox": start(ppox_cmd, work / f"ppox-s{seed}.log", work),
        "cleanrl": start(clean_cmd, work / f"cleanrl-s{seed}.log", work),
    }
    row: dict[str, Any] = {"seed": seed}
    while len(row) < 1 + len(procs):  # each process's own exit time
        for lib, (proc, t0, f) in procs.items():
            if lib not in row and proc.poll() is not None:
                f.close()
                row[lib] = {"exit_code": proc.returncode, "process_s": time.time() - t0}
        time.sleep(0.5)
    if row["ppox"]["exit_code"] == 0:
        row["ppox"].update(ppox_result(run_dir))
    row["cleanrl"].update(cleanrl_result(work / f"cleanrl-s{seed}.log"))
    for lib in ("ppox", "cleanrl"):
        if row[lib]["exit_code"] != 0:
            tail = (work / f"{lib}-s{seed}.log").read_text(errors="replace").splitlines()[-5:]
            row[lib]["log_tail"] = tail
    common = min(row["ppox"].get("steps", 0), row["cleanrl"]["steps"])
    row["common_step"] = common
    for lib in ("ppox", "cleanrl"):
        row[lib]["return_at_common_step"] = at_step(row[lib].get("curve", []), common)
    print(json.dumps({k: (v if k == "seed" else {kk: vv for kk, vv in v.items() if kk not in ("curve", "episodes")} if isinstance(v, dict) else v) for k, v in row.items()}), flush=True)  # fmt: skip
    return row


def to_markdown(result: dict[str, Any]) -> str:
    versions = f"torch {result['machine']['torch']} · gymnasium {result['machine']['gymnasium']} · ale-py {result['ale_py']}"
    lines = header(f"ppox `atari` preset vs CleanRL `ppo_atari.py` on {result['env_id']}", result, versions,
                   "one thread per process, the two processes run at the same time")  # fmt: skip
    lines += [
        f"Budget {result['steps']:,} steps per run (both anneal the learning rate over it); CleanRL at "
        f"commit {CLEANRL_COMMIT}, run unmodified after the shims below. Returns: the mean raw score of "
        "the last 100 whole games as each library logs them.", "",
        "| seed | ppox steps/s | CleanRL steps/s | ratio | ppox process (s) | CleanRL process (s) | step compared | ppox return | CleanRL return | ppox games | CleanRL games |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for r in result["runs"]:
        p, c = r["ppox"], r["cleanrl"]
        ratio = p.get("sps") / c["sps"] if p.get("sps") and c.get("sps") else None
        lines.append(
            f"| {r['seed']} | {fmt(p.get('sps'), 0)} | {fmt(c.get('sps'), 0)} | {fmt(ratio, 2)}× | "
            f"{fmt(p['process_s'], 0)} | {fmt(c['process_s'], 0)} | {r['common_step']:,} | "
            f"{fmt(p.get('return_at_common_step'), 2)} | {fmt(c.get('return_at_common_step'), 2)} | "
            f"{p.get('games', '—')} | {c.get('games', '—')} |"
        )
    lines += ["", "Shims applied to CleanRL's process (its script itself is unmodified):", ""]
    lines += [f"- {s}" for s in SHIMS]
    lines += ["", "Differences that remain: ppox takes ALE's own grayscale screen and resizes it; CleanRL's "
              "stack resizes the RGB screen and converts it with Gymnasium 1.x's GrayscaleObservation "
              "(luminance weights 0.2125, 0.7154, 0.0721; Gymnasium 0.29's converted with OpenCV). ppox "
              "stores observations as uint8, CleanRL as float32. CleanRL runs budget // 1024 iterations, "
              "ppox enough to reach the budget (one more when 1024 does not divide it), and each anneals "
              "its learning rate over its own count. ppox writes a checkpoint every 10 iterations within "
              "its timed loop.", ""]  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for lib, color in (("ppox", "tab:blue"), ("cleanrl", "tab:orange")):
        for i, r in enumerate(result["runs"]):
            curve = r[lib].get("curve") or []
            if curve:
                xs, ys = zip(*curve)
                ax.plot(
                    xs,
                    ys,
                    color=color,
                    alpha=0.8,
                    label=f"{lib} (seed {r['seed']})" if i < 3 else None,
                )
    ax.set_xlabel("environment steps")
    ax.set_ylabel("score, mean of the last 100 games")
    ax.set_title(f"{result['env_id']}: ppox atari preset vs CleanRL ppo_atari.py")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cleanrl-dir", default=os.environ.get("CLEANRL_DIR", "/tmp/cleanrl"))
    ap.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    ap.add_argument("--steps", type=int, default=500_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None)
    ap.add_argument("--plot-only", default=None, metavar="RESULTS.json")
    args = ap.parse_args(argv)
    if args.worker:
        cleanrl_worker(args)
        return
    if args.plot_only:  # the curves and the Markdown again, from the JSON
        result = json.loads(Path(args.plot_only).read_text())
        Path(args.plot_only).with_suffix(".md").write_text(to_markdown(result))
        plot(result, Path(args.plot_only))
        return
    if not (Path(args.cleanrl_dir) / "cleanrl" / "ppo_atari.py").exists():
        sys.exit(
            f"atari_cleanrl: no cleanrl/ppo_atari.py under --cleanrl-dir {args.cleanrl_dir} (see the docstring)"
        )
    game = args.env_id.replace("NoFrameskip-v4", "").replace("ALE/", "").lower()
    out = Path(args.out or f"benchmarks/results/atari_cleanrl_{game}.json")
    given = argv if argv is not None else sys.argv[1:]
    command = "python benchmarks/atari_cleanrl.py " + " ".join(
        "<path>" if a.startswith("/") else a for a in given
    )
    result: dict[str, Any] = dict(command=command, machine=machine_info(), ale_py=version("ale-py"),
                                  env_id=args.env_id, steps=args.steps, cleanrl_commit=CLEANRL_COMMIT,
                                  shims=SHIMS, runs=[])  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="atari_cleanrl_") as tmp:
        for seed in args.seeds:
            result["runs"].append(run_seed(seed, args, Path(tmp)))
            write_results(out, result, to_markdown(result))
            plot(result, out)


if __name__ == "__main__":
    main()
