"""ppox vs Stable-Baselines3 PPO: same hyperparameters, same machine, interleaved runs.

Run it on a quiet machine (the full default takes a while; see benchmarks/README.md)::

    .venv/bin/python benchmarks/compare_sb3.py --suite all --steps 100000 --seeds 1 2 3

Quick end-to-end check::

    .venv/bin/python benchmarks/compare_sb3.py --suite all --steps 4096 --seeds 1

Every run is a fresh subprocess with OMP_NUM_THREADS=1 and torch.set_num_threads(1). For each
seed ppox and SB3 run back to back, alternating which goes first. The headline speed ratio is
ppox's training-loop SPS (``summary["steps_per_second"]``) over SB3's ``model.learn()`` SPS;
ppox's whole ``ppox.train()`` call (setup, logging, checkpoints, final eval, plot) is reported
beside it. Results go to benchmarks/results/compare_sb3_<suite>.json and a .md beside it.

Three SB3 settings are aligned so that both libraries optimize the same thing (see ALIGNMENT):
value-loss weight, hidden-layer init gain and the learning-rate schedule's step offset.
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
from importlib.metadata import version
from pathlib import Path
from typing import Any

IMPLS = ("ppox", "sb3")
EVAL_SEEDS = list(range(1_000_000, 1_000_010))  # ppox's defaults: eval_seed=1e6, 10 episodes
COMMON = dict(gamma=0.99, lam=0.95, clip_coef=0.2, vf_coef=0.5, max_grad_norm=0.5)
SUITES: dict[str, dict[str, Any]] = {
    "cartpole": dict(
        COMMON,
        env_id="CartPole-v1",
        num_envs=4,
        num_steps=128,
        num_epochs=4,
        num_minibatches=4,
        learning_rate=2.5e-4,
        ent_coef=0.01,
        normalize_obs=False,
        scale_reward=False,
    ),
    "halfcheetah": dict(
        COMMON,
        env_id="HalfCheetah-v5",
        num_envs=1,
        num_steps=2048,
        num_epochs=10,
        num_minibatches=32,
        learning_rate=3e-4,
        ent_coef=0.0,
        normalize_obs=True,
        scale_reward=True,
    ),
}
ALIGNMENT = [
    "SB3 vf_coef = ppox vf_coef / 2: SB3's value loss is MSE, ppox's is 0.5*MSE.",
    "SB3 hidden layers re-initialized orthogonal with gain 5/3 (tanh), as ppox does; "
    "SB3 uses sqrt(2). Output gains already match (policy 0.01, value 1).",
    "SB3 lr schedule shifted by one batch: SB3 evaluates it after collecting, ppox before, "
    "so update k uses lr*(1 - k*batch/steps) in both.",
]


# --- ppox ---------------------------------------------------------------------------------------
def run_ppox(suite: str, seed: int, steps: int) -> dict[str, Any]:
    import torch

    import ppox

    cfg = ppox.Config().replace(
        **SUITES[suite],
        anneal_lr=True,
        adam_eps=1e-5,
        value_clip=None,
        norm_adv="minibatch",
        obs_clip=10.0,
        reward_clip=10.0,
        init_log_std=0.0,
        hidden_sizes=(64, 64),
        activation="tanh",
        shared_trunk=False,
        init="orthogonal",
        total_steps=steps,
        seed=seed,
        eval_every=0,
        eval_episodes=len(EVAL_SEEDS),
        eval_seed=EVAL_SEEDS[0],
        device="cpu",
        progress=False,
        tensorboard=False,
        threads=1,
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = ppox.train(cfg, run_dir=Path(tmp) / "run")
        whole = time.perf_counter() - t0
    assert s["eval_seeds"] == EVAL_SEEDS, s["eval_seeds"]
    return dict(
        steps=s["total_steps"],
        sps=s["steps_per_second"],
        wall_s=s["wall_time_s"],
        sps_whole=s["total_steps"] / whole,
        wall_whole_s=whole,
        train_return=s["train_return_mean"],
        eval_return=s["eval_return_mean"],
        eval_return_std=s["eval_return_std"],
        torch_threads=torch.get_num_threads(),
    )


# --- Stable-Baselines3 --------------------------------------------------------------------------
def sb3_model(suite: str, seed: int, steps: int) -> Any:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    h = SUITES[suite]
    env = make_vec_env(h["env_id"], n_envs=h["num_envs"], seed=seed)  # Monitor-wrapped: raw returns
    if h["normalize_obs"] or h["scale_reward"]:
        env = VecNormalize(
            env,
            norm_obs=h["normalize_obs"],
            norm_reward=h["scale_reward"],
            clip_obs=10.0,
            clip_reward=10.0,
            gamma=h["gamma"],
        )
    batch = h["num_envs"] * h["num_steps"]
    lr, shift = h["learning_rate"], batch / steps

    def lr_schedule(remaining: float) -> float:  # see ALIGNMENT
        return lr * min(1.0, max(0.0, remaining + shift))

    policy_kwargs = dict(
        net_arch=dict(pi=[64, 64], vf=[64, 64]),
        activation_fn=torch.nn.Tanh,
        ortho_init=True,
        log_std_init=0.0,
        optimizer_kwargs=dict(eps=1e-5),
    )
    model = PPO(
        "MlpPolicy",
        env,
        learning_rate=lr_schedule,
        n_steps=h["num_steps"],
        batch_size=batch // h["num_minibatches"],
        n_epochs=h["num_epochs"],
        gamma=h["gamma"],
        gae_lambda=h["lam"],
        clip_range=h["clip_coef"],
        clip_range_vf=None,
        normalize_advantage=True,
        ent_coef=h["ent_coef"],
        vf_coef=h["vf_coef"] / 2,
        max_grad_norm=h["max_grad_norm"],
        policy_kwargs=policy_kwargs,
        seed=seed,
        device="cpu",
        verbose=0,
    )
    match_ppox_init(model.policy)
    return model


def match_ppox_init(policy: Any) -> None:
    """Orthogonal init with the tanh gain on SB3's hidden layers (ppox's rule); biases zero."""
    import torch

    gain = torch.nn.init.calculate_gain("tanh")
    for module in policy.mlp_extractor.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.orthogonal_(module.weight, gain)
            torch.nn.init.zeros_(module.bias)


def sb3_evaluate(model: Any, env_id: str) -> list[float]:
    """Deterministic return of one episode per seed in EVAL_SEEDS, each from a fresh env."""
    import gymnasium as gym

    vecnorm = model.get_vec_normalize_env()
    if vecnorm is not None:
        vecnorm.training = False
    returns = []
    for seed in EVAL_SEEDS:
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            policy_obs = obs if vecnorm is None else vecnorm.normalize_obs(obs)
            action, _ = model.predict(policy_obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + float(reward), terminated or truncated
        env.close()
        returns.append(total)
    return returns


def run_sb3(suite: str, seed: int, steps: int) -> dict[str, Any]:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    model = sb3_model(suite, seed, steps)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - t0
    episodes = [info["r"] for info in model.ep_info_buffer]  # the last 100 (stats_window_size)
    evals = np.array(sb3_evaluate(model, SUITES[suite]["env_id"]))
    return dict(
        steps=model.num_timesteps,
        sps=model.num_timesteps / wall,
        wall_s=wall,
        sps_whole=None,
        wall_whole_s=None,
        train_return=float(np.mean(episodes)) if episodes else None,
        eval_return=float(evals.mean()),
        eval_return_std=float(evals.std()),
        torch_threads=torch.get_num_threads(),
    )


# --- the ceiling --------------------------------------------------------------------------------
def run_env(suite: str, seed: int, steps: int) -> dict[str, Any]:
    """The same vector env ppox trains on, stepped with random actions drawn beforehand: the
    steps/s that training could reach if acting and learning cost nothing."""
    import numpy as np

    from ppox.config import EnvConfig
    from ppox.envs.make import make_vec_env

    h = SUITES[suite]
    envs = make_vec_env(EnvConfig(env_id=h["env_id"], num_envs=h["num_envs"]))
    n = h["num_envs"]
    envs.reset(seed=[seed * 100 + i for i in range(n)])
    envs.action_space.seed(seed)
    actions = [envs.action_space.sample() for _ in range(steps // n)]
    t0 = time.perf_counter()
    for a in actions:
        envs.step(a)
    wall = time.perf_counter() - t0
    envs.close()
    return dict(
        steps=len(actions) * n,
        sps=len(actions) * n / wall,
        wall_s=wall,
        sps_whole=None,
        wall_whole_s=None,
        train_return=None,
        eval_return=None,
        eval_return_std=None,
        torch_threads=None,
        numpy=np.__version__,
    )


# --- orchestration ------------------------------------------------------------------------------
def spawn(impl: str, suite: str, seed: int, steps: int) -> dict[str, Any]:
    """One run in a fresh interpreter; its result comes back through a temporary JSON file."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            impl,
            suite,
            str(seed),
            str(steps),
            str(out),
        ]
        proc = subprocess.run(
            cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE, text=True
        )
        # Pass the worker's stderr on, minus MuJoCo's per-env deprecation warning and blank lines.
        lines = proc.stderr.splitlines()
        sys.stderr.writelines(f"{x}\n" for x in lines if x.strip() and "settotalmass" not in x)
        proc.check_returncode()
        result = json.loads(out.read_text())
    return dict(impl=impl, suite=suite, env_id=SUITES[suite]["env_id"], seed=seed, **result)


def run_all(suites: list[str], seeds: list[int], steps: int) -> list[dict[str, Any]]:
    rows, total = [], len(suites) * len(seeds) * (len(IMPLS) + 1)
    for suite in suites:
        for i, seed in enumerate(seeds):
            for impl in (*(IMPLS if i % 2 == 0 else IMPLS[::-1]), "env"):
                row = spawn(impl, suite, seed, steps)
                rows.append(row)
                evaluated = "" if row["eval_return"] is None else f", eval {row['eval_return']:.1f}"
                print(
                    f"[{len(rows)}/{total}] {impl:4} {suite} seed {seed}: {row['steps']} steps, "
                    f"{row['sps']:.0f} SPS{evaluated}",
                    file=sys.stderr,
                )
    return rows


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for suite in dict.fromkeys(r["suite"] for r in rows):
        s: dict[str, Any] = {}
        for impl in IMPLS:
            mine = [r for r in rows if r["suite"] == suite and r["impl"] == impl]
            for key in ("sps", "sps_whole", "train_return", "eval_return"):
                s[f"{impl}_{key}"] = median([r[key] for r in mine])
        s["sps_ratio_ppox_over_sb3"] = s["ppox_sps"] / s["sb3_sps"]
        ceiling = median([r["sps"] for r in rows if r["suite"] == suite and r["impl"] == "env"])
        s["env_sps"] = ceiling
        for impl in IMPLS:  # the fraction of the env-only throughput that training reaches
            s[f"{impl}_env_fraction"] = s[f"{impl}_sps"] / ceiling if ceiling else None
        out[suite] = s
    return out


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    return dict(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        platform=platform.platform(),
        processor=cpu_model(),
        cpu_count=os.cpu_count(),
        load_avg_at_start=os.getloadavg(),
        python=platform.python_version(),
        **{
            name: version(name)
            for name in ("torch", "stable-baselines3", "gymnasium", "mujoco", "numpy", "ppox")
        },
        torch_threads=1,
        omp_num_threads=1,
    )


# --- report -------------------------------------------------------------------------------------
def header(title: str, result: dict[str, Any], versions: str, threads: str) -> list[str]:
    """A results file's first lines: title, command, and the machine it ran on."""
    m = result["machine"]
    return [
        f"# {title}", "", f"`{result['command']}`", "",
        f"{m['date']} · {m['processor']}, {m['cpu_count']} CPUs, load at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_avg_at_start'])} · {versions} · {threads}", "",
    ]  # fmt: skip


def write_results(out: Path, result: dict[str, Any], markdown: str) -> None:
    """``result`` as JSON to ``out``, ``markdown`` beside it as ``.md``, and the markdown printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown)
    print(markdown)


def fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def run_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| impl | suite | seed | steps | SPS | ppox SPS whole train() | wall s (loop/learn) "
        "| train return (last 100 ep) | eval return (10 seeds) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['impl']} | {r['suite']} | {r['seed']} | {r['steps']} | {fmt(r['sps'], 0)} "
            f"| {fmt(r['sps_whole'], 0)} | {fmt(r['wall_s'], 2)} | {fmt(r['train_return'])} "
            f"| {fmt(r['eval_return'])} ± {fmt(r['eval_return_std'])} |"
        )
    return lines


def summary_table(summary: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| suite | ppox SPS (training loop) | ppox SPS (whole train() incl. final eval/plots) "
        "| SB3 SPS (learn()) | ratio ppox/SB3 | ppox train return | SB3 train return "
        "| ppox eval return | SB3 eval return | env only SPS (ceiling) | ppox / ceiling | SB3 / ceiling |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for suite, s in summary.items():
        lines.append(
            f"| {suite} | {fmt(s['ppox_sps'], 0)} | {fmt(s['ppox_sps_whole'], 0)} "
            f"| {fmt(s['sb3_sps'], 0)} | {fmt(s['sps_ratio_ppox_over_sb3'], 2)}× "
            f"| {fmt(s['ppox_train_return'])} | {fmt(s['sb3_train_return'])} "
            f"| {fmt(s['ppox_eval_return'])} | {fmt(s['sb3_eval_return'])} "
            f"| {fmt(s.get('env_sps'), 0)} | {pct(s.get('ppox_env_fraction'))} | {pct(s.get('sb3_env_fraction'))} |"
        )
    return lines


def to_markdown(result: dict[str, Any]) -> str:
    m, a = result["machine"], result["args"]
    return "\n".join(
        [
            *header(
                f"ppox vs Stable-Baselines3 PPO ({', '.join(a['suites'])})",
                result,
                f"torch {m['torch']}, SB3 {m['stable-baselines3']}, gymnasium {m['gymnasium']}, mujoco {m['mujoco']}, "
                f"ppox {m['ppox']}",
                "torch threads 1 and OMP_NUM_THREADS=1 in both",
            ),
            f"Medians over seeds {a['seeds']}, {a['steps']} steps per run. The ratio is ppox "
            "training-loop SPS over SB3 learn() SPS. Returns are raw (unnormalized): training = mean "
            "of the last 100 episodes, eval = deterministic, one episode per seed 1000000..1000009. "
            "The ceiling is the same vector env ppox trains on, stepped with random actions drawn "
            "beforehand (impl `env` in the per-run table).",
            "",
            *summary_table(result["summary"]),
            "",
            "Per run:",
            "",
            *run_table(result["runs"]),
            "",
            "SB3 settings aligned with ppox:",
            "",
            *(f"- {x}" for x in result["alignment"]),
            "",
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", choices=[*SUITES, "all"], default="all")
    p.add_argument("--steps", type=int, default=100_000, help="environment steps per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument(
        "--out",
        type=Path,
        help="results JSON (default "
        "benchmarks/results/compare_sb3_<suite>.json; the .md goes beside it)",
    )
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)  # IMPL SUITE SEED STEPS RESULT
    return p.parse_args(argv)


def worker(impl: str, suite: str, seed: str, steps: str, result: str) -> None:
    run = {"ppox": run_ppox, "sb3": run_sb3, "env": run_env}[impl]
    Path(result).write_text(json.dumps(run(suite, int(seed), int(steps))))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        return worker(*args.worker)
    suites = list(SUITES) if args.suite == "all" else [args.suite]
    out = args.out or Path(__file__).parent / "results" / f"compare_sb3_{args.suite}.json"
    machine = machine_info()
    rows = run_all(suites, args.seeds, args.steps)
    result = dict(
        command=shlex.join(["python", *sys.argv]),
        machine=machine,
        args=dict(suites=suites, steps=args.steps, seeds=args.seeds),
        hyperparameters={s: SUITES[s] for s in suites},
        alignment=ALIGNMENT,
        summary=summarize(rows),
        runs=rows,
    )
    write_results(out, result, to_markdown(result))
    print(f"wrote {out} and {out.with_suffix('.md')}", file=sys.stderr)


if __name__ == "__main__":
    main()
