"""ppox's recurrent presets vs sb3-contrib's RecurrentPPO with the RL Zoo's hyperparameters, on
the same partially observed tasks, each as its users would run it.

What: ``ppox train --preset cartpole-novel|pendulum-novel`` against ``sb3_contrib.RecurrentPPO``
configured from the RL Zoo's ``CartPoleNoVel-v1`` and ``PendulumNoVel-v1`` entries
(hyperparams/ppo_lstm.yml of rl-zoo3 2.9.2; the numbers are copied into ZOO below). Both train on
ppox's ids ``ppox/CartPoleNoVel-v1`` and ``ppox/PendulumNoVel-v1`` (registered by importing
``ppox.envs``) for the same budget and seeds.

Why: the recurrent policies are new in ppox; this says how fast they train and how well they
learn next to the reference recurrent PPO, on one machine, with each library's own tuned setup.
The two setups are not aligned term by term (DIFFERENCES lists where they differ).

How: every (library, task, seed) run is its own fresh process (``python -m ppox train ...`` for
ppox, this script's ``--worker`` mode for sb3-contrib) with OMP_NUM_THREADS and the torch
thread count set to ``--threads``; runs are interleaved: for each seed, for each task, ppox then
sb3-contrib. Per run it records the whole process's wall time (start to exit, as the parent
sees it), the training steps/s (ppox: ``summary.json``'s ``steps_per_second``, which leaves out
evaluation; sb3-contrib: steps over the time inside ``learn()`` less the evaluations), and the
final evaluation: 10 deterministic episodes, each on a fresh env reset with one of ppox's
evaluation seeds (``summary.json``'s ``eval_seeds``), for sb3-contrib through the frozen
``VecNormalize`` observation statistics with the LSTM states carried step to step. Both are
also evaluated every ``--eval-every`` steps (the learning curve). Run it on a quiet machine::

    .venv/bin/python benchmarks/recurrent_sb3.py --steps 100000 --seeds 1 2 3 4 5

Quick end-to-end check::

    .venv/bin/python benchmarks/recurrent_sb3.py --steps 4096 --seeds 1 --tasks cartpole \\
        --out /tmp/recurrent_sb3.json

Results go to benchmarks/results/recurrent_sb3.json, a .md and a .png of the curves beside it
(``--out``); ``--plot-only RESULTS.json`` redraws the curves of an earlier run.
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

sys.path.insert(0, str(Path(__file__).parent))
from compare_sb3 import cpu_model, fmt, header, write_results  # noqa: E402

LIBS = ("ppox", "sb3")
TASKS: dict[str, dict[str, Any]] = {
    "cartpole": dict(env_id="ppox/CartPoleNoVel-v1", preset="cartpole-novel", solved=475.0),
    "pendulum": dict(env_id="ppox/PendulumNoVel-v1", preset="pendulum-novel", solved=-250.0),
}

# The RL Zoo's RecurrentPPO hyperparameters: rl-zoo3 2.9.2, hyperparams/ppo_lstm.yml, entries
# CartPoleNoVel-v1 and PendulumNoVel-v1 (policy MlpLstmPolicy, n_timesteps 1e5, both with
# `normalize: True`, i.e. VecNormalize of observations and rewards with the entry's gamma).
# "lin_X" is a linear schedule from X to 0 over the run. Keys the entries leave out take
# RecurrentPPO's defaults (PendulumNoVel-v1: batch_size 128; both: vf_coef 0.5,
# max_grad_norm 0.5, clip_range_vf None, normalize_advantage True).
ZOO_POLICY_KWARGS: dict[str, Any] = dict(
    ortho_init=False,
    activation_fn="ReLU",  # torch.nn.ReLU
    lstm_hidden_size=64,
    enable_critic_lstm=True,
    net_arch=dict(pi=[64], vf=[64]),
)
ZOO: dict[str, dict[str, Any]] = {
    "cartpole": dict(
        normalize=True,
        n_envs=8,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate="lin_0.001",
        clip_range="lin_0.2",
        policy_kwargs=ZOO_POLICY_KWARGS,
    ),
    "pendulum": dict(
        normalize=True,
        n_envs=4,
        n_steps=1024,
        gae_lambda=0.95,
        gamma=0.9,
        n_epochs=10,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
        use_sde=True,
        sde_sample_freq=4,
        policy_kwargs=ZOO_POLICY_KWARGS,
    ),
}
DIFFERENCES = [
    "Value loss: ppox minimizes vf_coef·0.5·MSE, RecurrentPPO vf_coef·MSE (vf_coef 0.5 in both), "
    "so the critic's gradient weighs twice as much in RecurrentPPO.",
    "Initialization: ppox orthogonal (LSTM weights gain 1, biases 0); the Zoo sets ortho_init=False "
    "(PyTorch's default init).",
    "CartPole clip range: the Zoo anneals it linearly from 0.2 to 0 (lin_0.2); ppox keeps 0.2.",
    "Pendulum exploration: the Zoo uses gSDE (use_sde, sde_sample_freq 4); ppox a state-independent "
    "Gaussian (log σ initialized to 0).",
    "Pendulum learning rate: the Zoo keeps 1e-3 constant; the ppox preset anneals it linearly to 0.",
    "Pendulum minibatches: the Zoo leaves batch_size at RecurrentPPO's 128 (32 minibatches of 128 "
    "consecutive steps from a random offset, cut into sequences at episode and env boundaries); "
    "the ppox preset uses 64 minibatches of one 64-step sequence each (bptt 64).",
    "Linear schedules: RecurrentPPO evaluates them after collecting a batch, ppox before, so "
    "RecurrentPPO's lag one batch behind; here they stop at 0 where the run overshoots the budget "
    "(the Zoo's would go slightly negative for the last update).",
    "Environment: the Zoo's NoVel envs zero the velocity entries (the observation keeps its size); "
    "here both train on ppox's ids, which drop them.",
    "ppox writes a checkpoint every 10 iterations and counts it in its training time; RecurrentPPO "
    "saves nothing during learn().",
]


# --- ppox: the command its users run ------------------------------------------------------------
def ppox_command(task: str, seed: int, args: argparse.Namespace, run_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "ppox", "train", "--preset", TASKS[task]["preset"],
        "--seed", str(seed), "--total-steps", str(args.steps), "--threads", str(args.threads),
        "--eval-every", str(args.eval_every), "--run-dir", str(run_dir),
        "--no-progress", "--no-tensorboard",
    ]  # fmt: skip


def ppox_row(run_dir: Path) -> dict[str, Any]:
    s = json.loads((run_dir / "summary.json").read_text())
    return dict(
        steps=s["total_steps"],
        sps=s["steps_per_second"],
        train_s=s["wall_time_s"],
        eval_return=s["eval_return_mean"],
        eval_return_std=s["eval_return_std"],
        eval_seeds=s["eval_seeds"],
        train_return=s["train_return_mean"],
        evals=[[e["global_step"], e["eval_return_mean"]] for e in s["evals"]],
        backends=s.get("backends"),
    )


# --- sb3-contrib: RecurrentPPO with the Zoo's settings ------------------------------------------
def linear(start: float) -> Any:
    """The Zoo's ``lin_X``: X times the remaining progress, stopped at 0 (see DIFFERENCES)."""
    return lambda remaining: start * max(0.0, remaining)


def schedule(value: float | str) -> Any:
    if isinstance(value, str) and value.startswith("lin_"):
        return linear(float(value[4:]))
    return float(value)


def sb3_model(task: str, seed: int) -> Any:
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    import ppox.envs  # noqa: F401  (registers the ppox/*NoVel ids)

    h = dict(ZOO[task])
    # make_vec_env wraps each env in a Monitor, so ep_info_buffer holds raw returns.
    env = make_vec_env(TASKS[task]["env_id"], n_envs=h.pop("n_envs"), seed=seed)
    if h.pop("normalize"):
        env = VecNormalize(env, norm_obs=True, norm_reward=True, gamma=h["gamma"])
    policy_kwargs = dict(h.pop("policy_kwargs"))
    policy_kwargs["activation_fn"] = getattr(torch.nn, policy_kwargs["activation_fn"])
    for key in ("learning_rate", "clip_range"):
        h[key] = schedule(h[key])
    return RecurrentPPO(
        "MlpLstmPolicy", env, policy_kwargs=policy_kwargs, seed=seed, device="cpu", verbose=0, **h
    )


def sb3_evaluate(model: Any, env_id: str, seeds: list[int]) -> list[float]:
    """One deterministic episode per seed, each on a fresh env reset with that seed, run side by
    side as ppox's evaluation does. Observations go through the training VecNormalize's
    statistics; ``normalize_obs`` only reads them, so evaluating mid-run changes nothing."""
    import gymnasium as gym
    import numpy as np

    vecnorm = model.get_vec_normalize_env()
    envs = [gym.make(env_id) for _ in seeds]
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds)])
    returns = np.zeros(len(seeds))
    running = np.ones(len(seeds), dtype=bool)
    state, start = None, np.ones(len(seeds), dtype=bool)
    while running.any():
        policy_obs = obs if vecnorm is None else vecnorm.normalize_obs(obs)
        actions, state = model.predict(
            policy_obs, state=state, episode_start=start, deterministic=True
        )
        start = np.zeros(len(seeds), dtype=bool)
        for i in np.flatnonzero(running):  # a finished episode's env is stepped no more
            obs[i], reward, terminated, truncated, _ = envs[i].step(actions[i])
            returns[i] += float(reward)
            running[i] = not (terminated or truncated)
    for env in envs:
        env.close()
    return [float(r) for r in returns]


def sb3_callback(task: str, every: int, seeds: list[int]) -> Any:
    """Evaluates every ``every`` steps, after the update that crossed the mark (as ppox does),
    timing the evaluations so that they can be taken out of the training time."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Curve(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.evals: list[list[float]] = []
            self.eval_s = 0.0
            self.next_eval = every

        def _on_rollout_start(self) -> None:  # after train() on the previous rollout
            if not every or self.num_timesteps < self.next_eval:
                return
            while self.next_eval <= self.num_timesteps:
                self.next_eval += every
            t = time.perf_counter()
            mean = statistics.fmean(sb3_evaluate(self.model, TASKS[task]["env_id"], seeds))
            self.evals.append([self.num_timesteps, mean])
            self.eval_s += time.perf_counter() - t

        def _on_step(self) -> bool:
            return True

    return Curve()


def run_sb3(
    task: str, seed: int, steps: int, threads: int, every: int, seeds: list[int]
) -> dict[str, Any]:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    model = sb3_model(task, seed)
    curve = sb3_callback(task, every, seeds)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=curve)
    learn_s = time.perf_counter() - t0
    vecnorm = model.get_vec_normalize_env()
    vecnorm.training, vecnorm.norm_reward = False, False  # frozen statistics, raw rewards
    final = np.array(sb3_evaluate(model, TASKS[task]["env_id"], seeds))
    train_s = learn_s - curve.eval_s
    episodes = [info["r"] for info in model.ep_info_buffer]  # the last 100 training episodes
    return dict(
        steps=model.num_timesteps,
        sps=model.num_timesteps / train_s,
        train_s=train_s,
        eval_return=float(final.mean()),
        eval_return_std=float(final.std()),
        eval_seeds=seeds,
        train_return=float(np.mean(episodes)) if episodes else None,
        evals=[*curve.evals, [model.num_timesteps, float(final.mean())]],
        torch_threads=torch.get_num_threads(),
    )


# --- orchestration ------------------------------------------------------------------------------
def timed(cmd: list[str], threads: int) -> float:
    """Run ``cmd`` to its exit with OMP_NUM_THREADS=threads; its wall time. Output is shown only
    when it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        proc.check_returncode()
    return wall


def spawn(
    lib: str, task: str, seed: int, args: argparse.Namespace, seeds: list[int]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        if lib == "ppox":
            run_dir = Path(tmp) / "run"
            wall = timed(ppox_command(task, seed, args, run_dir), args.threads)
            row = ppox_row(run_dir)
            row["config"] = json.loads((run_dir / "config.json").read_text())
        else:
            out = Path(tmp) / "result.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", task, str(seed), str(out),
                   "--steps", str(args.steps), "--threads", str(args.threads),
                   "--eval-every", str(args.eval_every), "--eval-seeds", *map(str, seeds)]  # fmt: skip
            wall = timed(cmd, args.threads)
            row = json.loads(out.read_text())
    return dict(lib=lib, task=task, env_id=TASKS[task]["env_id"], seed=seed, process_s=wall, **row)


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    total = len(args.seeds) * len(args.tasks) * len(LIBS)
    for seed in args.seeds:
        for task in args.tasks:
            seeds: list[int] = []
            for lib in LIBS:  # ppox first: sb3-contrib is evaluated on its evaluation seeds
                row = spawn(lib, task, seed, args, seeds)
                seeds = row["eval_seeds"]
                rows.append(row)
                print(
                    f"[{len(rows)}/{total}] {lib:4} {task} seed {seed}: {row['steps']} steps, "
                    f"{row['sps']:.0f} steps/s, process {row['process_s']:.1f} s, "
                    f"eval {row['eval_return']:.1f} ± {row['eval_return_std']:.1f}",
                    file=sys.stderr,
                )
    return rows


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize_lib(mine: list[dict[str, Any]], solved: float) -> dict[str, Any]:
    finals = [r["eval_return"] for r in mine]
    steps = sorted({e[0] for r in mine for e in r["evals"]})
    return dict(
        sps=median([r["sps"] for r in mine]),
        process_s=median([r["process_s"] for r in mine]),
        train_s=median([r["train_s"] for r in mine]),
        eval_return_mean=statistics.fmean(finals),
        eval_return_std=statistics.pstdev(finals),
        eval_return_median=median(finals),
        solved=sum(f >= solved for f in finals),
        runs=len(mine),
        curve=[
            [s, median([e[1] for r in mine for e in r["evals"] if e[0] == s])] for s in steps
        ],  # the median over seeds at each evaluated step
    )


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        s: dict[str, Any] = {"solved_threshold": TASKS[task]["solved"]}
        for lib in LIBS:
            mine = [r for r in rows if r["task"] == task and r["lib"] == lib]
            s[lib] = summarize_lib(mine, TASKS[task]["solved"])
        s["sps_ratio_ppox_over_sb3"] = s["ppox"]["sps"] / s["sb3"]["sps"]
        s["process_s_ratio_sb3_over_ppox"] = s["sb3"]["process_s"] / s["ppox"]["process_s"]
        out[task] = s
    return out


def git_commit() -> str | None:
    try:
        r = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                           capture_output=True, text=True, timeout=10)  # fmt: skip
    except OSError:
        return None
    return r.stdout.strip() or None


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine_info(threads: int) -> dict[str, Any]:
    names = ("torch", "stable-baselines3", "sb3-contrib", "gymnasium", "numpy", "ppox")
    return dict(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        platform=platform.platform(),
        processor=cpu_model(),
        cpu_count=os.cpu_count(),
        load_avg_at_start=os.getloadavg(),
        python=platform.python_version(),
        **{name: package_version(name) for name in names},
        commit=git_commit(),
        torch_threads=threads,
        omp_num_threads=threads,
    )


# --- report -------------------------------------------------------------------------------------
def summary_table(summary: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| task | lib | steps/s (training) | ratio ppox/sb3 | process s | final eval return "
        "(mean ± std over seeds) | median | solved |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for task, s in summary.items():
        for lib in LIBS:
            x = s[lib]
            ratio = f"{fmt(s['sps_ratio_ppox_over_sb3'], 2)}×" if lib == "ppox" else ""
            lines.append(
                f"| {task} | {lib} | {fmt(x['sps'], 0)} | {ratio} | {fmt(x['process_s'], 1)} "
                f"| {fmt(x['eval_return_mean'])} ± {fmt(x['eval_return_std'])} "
                f"| {fmt(x['eval_return_median'])} | {x['solved']}/{x['runs']} (≥ {s['solved_threshold']:g}) |"
            )
    return lines


def curve_table(summary: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| task | lib | median eval return at step … |", "|---|---|---|"]
    for task, s in summary.items():
        for lib in LIBS:
            points = ", ".join(f"{step:,}: {fmt(v)}" for step, v in s[lib]["curve"])
            lines.append(f"| {task} | {lib} | {points} |")
    return lines


def run_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| lib | task | seed | steps | steps/s | training s | process s | train return "
        "| final eval return (10 seeds) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['lib']} | {r['task']} | {r['seed']} | {r['steps']} | {fmt(r['sps'], 0)} "
            f"| {fmt(r['train_s'], 2)} | {fmt(r['process_s'], 2)} | {fmt(r['train_return'])} "
            f"| {fmt(r['eval_return'])} ± {fmt(r['eval_return_std'])} |"
        )
    return lines


def to_markdown(result: dict[str, Any]) -> str:
    m, a = result["machine"], result["args"]
    seeds = result["runs"][0]["eval_seeds"]
    return "\n".join(
        [
            *header(
                "ppox recurrent presets vs sb3-contrib RecurrentPPO (RL Zoo hyperparameters)",
                result,
                f"torch {m['torch']}, SB3 {m['stable-baselines3']}, sb3-contrib {m['sb3-contrib']}, "
                f"gymnasium {m['gymnasium']}, ppox {m['ppox']} ({m['commit']})",
                f"torch threads {a['threads']} and OMP_NUM_THREADS={a['threads']} in both",
            ),
            f"Seeds {a['seeds']}, {a['steps']:,} steps per run, every run its own process. ppox: "
            "`ppox train --preset cartpole-novel|pendulum-novel`; sb3-contrib: RecurrentPPO with "
            "the RL Zoo's CartPoleNoVel-v1 / PendulumNoVel-v1 entries (rl-zoo3 2.9.2 "
            "hyperparams/ppo_lstm.yml), both on ppox's NoVel env ids. steps/s: training only "
            "(ppox's summary.json; RecurrentPPO's learn() less its evaluations); ratio of the "
            "medians. Process s: the whole process, start to exit (median). Final eval: 10 "
            f"deterministic episodes on seeds {seeds[0]}…{seeds[-1]}, fresh envs, raw returns.",
            "",
            *summary_table(result["summary"]),
            "",
            f"Learning curves (evaluated every {a['eval_every']:,} steps and at the end):",
            "",
            *curve_table(result["summary"]),
            "",
            "Per run:",
            "",
            *run_table(result["runs"]),
            "",
            "Where the two setups differ:",
            "",
            *(f"- {x}" for x in result["differences"]),
            "",
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--steps", type=int, default=100_000, help="environment steps per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--threads", type=int, default=1, help="torch and OpenMP threads per run")
    p.add_argument(
        "--eval-every", type=int, default=10_000, help="learning-curve evaluations (0: final only)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "recurrent_sb3.json",
        help="results JSON (the .md goes beside it)",
    )
    p.add_argument("--plot-only", type=Path, help="redraw the curves (.png) of a results JSON")
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)  # TASK SEED RESULT (sb3-contrib)
    p.add_argument("--eval-seeds", type=int, nargs="+", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.plot_only:
        plot_curves(json.loads(args.plot_only.read_text()), args.plot_only.with_suffix(".png"))
        return
    if args.worker:
        task, seed, out = args.worker
        row = run_sb3(task, int(seed), args.steps, args.threads, args.eval_every, args.eval_seeds)
        Path(out).write_text(json.dumps(row))
        return
    machine = machine_info(args.threads)
    rows = run_all(args)
    result = dict(
        command=shlex.join(["python", *sys.argv]),
        machine=machine,
        args=dict(
            tasks=args.tasks,
            steps=args.steps,
            seeds=args.seeds,
            threads=args.threads,
            eval_every=args.eval_every,
        ),
        hyperparameters=dict(
            sb3={
                t: dict(ZOO[t], policy="MlpLstmPolicy", env_id=TASKS[t]["env_id"])
                for t in args.tasks
            },
            ppox={
                t: next(r["config"] for r in rows if r["lib"] == "ppox" and r["task"] == t)
                for t in args.tasks
            },
        ),  # fmt: skip
        differences=DIFFERENCES,
        summary=summarize(rows),
        runs=[{k: v for k, v in r.items() if k != "config"} for r in rows],
    )
    write_results(args.out, result, to_markdown(result))
    plot_curves(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out}, its .md and .png", file=sys.stderr)


def plot_curves(result: dict[str, Any], path: Path) -> None:
    """One panel per task: each run's evaluation curve (thin) and the median over seeds (thick),
    ppox and sb3-contrib side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(result["summary"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for lib, color in (("ppox", "tab:blue"), ("sb3", "tab:orange")):
            for r in result["runs"]:
                if r["task"] == task and r["lib"] == lib:
                    xs, ys = zip(*r["evals"])
                    ax.plot(xs, ys, color=color, alpha=0.25, linewidth=1)
            curve = result["summary"][task][lib]["curve"]
            name = "sb3-contrib RecurrentPPO" if lib == "sb3" else "ppox"
            ax.plot(*zip(*curve), color=color, linewidth=2.5, label=f"{name} (median)")
        ax.axhline(result["summary"][task]["solved_threshold"], color="gray", linestyle=":")
        ax.set(title=TASKS[task]["env_id"], xlabel="environment steps", ylabel="evaluation return")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
