"""Action-space benchmarks (issue 3): what masks buy, factored vs flat multi-discrete, hybrid tasks.

Every comparison trains the same config on the same seeds, changing one thing, and writes
``results.json``, ``results.md`` and ``curves.png`` (mean and min–max band over seeds of the
training return and of the greedy evaluation return) to ``--out-dir``::

    .venv/bin/python benchmarks/action_spaces.py mask --seeds 1 2 3 4 5
    .venv/bin/python benchmarks/action_spaces.py multidiscrete --seeds 1 2 3
    .venv/bin/python benchmarks/action_spaces.py hybrid --preset moving --seeds 1 2 3

``mask``: *MaskedPayoff*, a task defined here. Each step 3 of 24 actions are legal (the legal
set is in the observation, as 24 bits, and in ``info["action_mask"]``); a legal action ``a`` pays
``payoff[a]`` (a fixed permutation of 0.1…1.0), an illegal one pays 0 and does nothing. Episodes
last 20 steps. The best policy takes the legal action with the highest payoff (≈ 15.6 per
episode); picking uniformly among legal actions gets ≈ 11, uniformly among all 24 ≈ 1.4. With
the mask the policy only has to rank the actions; without it (the env keeps the mask out of
``info``) it must also learn from the observation which actions are legal.

``multidiscrete``: ``multi_discrete=factored`` against ``flat``. By default on *MultiPayoff*,
defined here: 4 dimensions of 6 choices each paying a fixed value plus a bonus when dimension
pairs agree; the flat head has 6⁴ = 1296 logits. ``--preset traffic`` runs it on
``ppox/Traffic-v0`` with that preset's config (needs ``ppox[traffic]``; use ``--jobs 1``: each
run has its own env worker processes)::

    .venv/bin/python benchmarks/action_spaces.py multidiscrete --preset traffic --jobs 1 \
        --level -4000 --steps 150000 --out-dir benchmarks/results/traffic

``hybrid``: trains ``--preset`` (moving, sliding, hardmove) on each seed and evaluates the final
policy on 100 fixed evaluation episodes, counting successes (``info["success"]``) next to a random
policy's success rate on the same episodes.

Runs go in parallel over ``--jobs`` processes (default 2), each with one torch thread.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

REPO = Path(__file__).resolve().parent.parent
N_ACTIONS, N_LEGAL, EPISODE = 24, 3, 20


class MaskedPayoffEnv(gym.Env):
    """See the module docstring; ``expose_mask=False`` keeps the mask out of ``info``."""

    def __init__(self, expose_mask: bool = True) -> None:
        self.expose_mask = expose_mask
        self.payoff = np.random.default_rng(0).permutation(np.linspace(0.1, 1.0, N_ACTIONS))
        self.observation_space = spaces.Box(0, 1, (N_ACTIONS,), np.float32)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self.legal = np.zeros(N_ACTIONS, bool)

    def _draw(self) -> tuple[np.ndarray, dict[str, Any]]:
        self.legal[:] = False
        self.legal[self.np_random.choice(N_ACTIONS, N_LEGAL, replace=False)] = True
        info = {"action_mask": self.legal.copy()} if self.expose_mask else {}
        return self.legal.astype(np.float32), info

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return self._draw()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = int(action)
        reward = float(self.payoff[a]) if self.legal[a] else 0.0
        obs, info = self._draw()
        return obs, reward, False, False, info


MP_NVEC = (6, 6, 6, 6)


class MultiPayoffEnv(gym.Env):
    """Four choices of 6 per step; each choice pays a fixed value, and each of the pairs (0, 1)
    and (2, 3) pays a bonus of 1 when both pick the same value (16 steps per episode)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(1)
        self.values = rng.uniform(0, 0.5, (len(MP_NVEC), MP_NVEC[0]))
        self.observation_space = spaces.Box(0, 1, (1,), np.float32)
        self.action_space = spaces.MultiDiscrete(MP_NVEC)

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action)
        reward = (
            float(self.values[np.arange(len(a)), a].sum())
            + float(a[0] == a[1])
            + float(a[2] == a[3])
        )
        return np.zeros(1, np.float32), reward, False, False, {}


def register() -> None:
    for env_id, entry, kwargs in (
        ("PpoxBench/MaskedPayoff-v0", MaskedPayoffEnv, {}),
        ("PpoxBench/MaskedPayoffNoMask-v0", MaskedPayoffEnv, {"expose_mask": False}),
        ("PpoxBench/MultiPayoff-v0", MultiPayoffEnv, {}),
    ):
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point=entry,
                kwargs=kwargs,
                max_episode_steps=EPISODE if "Masked" in env_id else 16,
            )


MASK_CFG: dict[str, Any] = {
    "num_envs": 8, "num_steps": 40, "num_epochs": 4, "num_minibatches": 4, "learning_rate": 1e-3,
    "gamma": 0.9, "lam": 0.9, "ent_coef": 0.01, "hidden_sizes": (64, 64), "total_steps": 100_000,
    "eval_every": 5_000, "eval_episodes": 20,
}  # fmt: skip
MULTI_CFG: dict[str, Any] = {
    "num_envs": 8, "num_steps": 64, "num_epochs": 4, "num_minibatches": 4, "learning_rate": 1e-3,
    "gamma": 0.9, "lam": 0.9, "ent_coef": 0.01, "hidden_sizes": (64, 64), "total_steps": 100_000,
    "eval_every": 5_000, "eval_episodes": 10,
}  # fmt: skip


def _train(job: tuple[str, dict[str, Any], str]) -> dict[str, Any]:
    """One run in this (worker) process: ``(label, overrides, run_dir)`` → its summary."""
    import torch

    import ppox

    register()
    torch.set_num_threads(1)
    label, overrides, run_dir = job
    cfg = ppox.Config().replace(
        **{**overrides, "tensorboard": False, "progress": False, "threads": 1}
    )
    summary = ppox.train(cfg, run_dir=run_dir)
    return {"label": label, "run_dir": run_dir, **summary}


def _run_all(jobs: list[tuple[str, dict[str, Any], str]], n_jobs: int) -> list[dict[str, Any]]:
    for _, overrides, run_dir in jobs:  # a finished run is reused only if it is the same experiment
        cfg_file = Path(run_dir) / "config.json"
        if cfg_file.is_file():
            done = {
                k: v
                for section in json.loads(cfg_file.read_text()).values()
                for k, v in section.items()
            }
            diff = {
                k
                for k, v in overrides.items()
                if k in done and done[k] != (list(v) if isinstance(v, tuple) else v)
            }
            if diff:
                sys.exit(
                    f"{run_dir} holds a run with other settings ({', '.join(sorted(diff))}); use another --runs-dir"
                )
    todo = [j for j in jobs if not (Path(j[2]) / "summary.json").is_file()]
    if todo and n_jobs == 1:  # in this process: runs may start env worker processes of their own
        for job in todo:
            _train(job)
    elif todo:
        with mp.get_context("spawn").Pool(n_jobs) as pool:
            pool.map(_train, todo, chunksize=1)
    out = []
    for label, _, run_dir in jobs:
        out.append(
            {
                "label": label,
                "run_dir": run_dir,
                **json.loads((Path(run_dir) / "summary.json").read_text()),
            }
        )
    return out


def _curves(groups: dict[str, list[str]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ppox.io.logging import read_csv

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for label, dirs in groups.items():
        for ax, key in zip(axes, ("train_return_mean", "eval_return_mean")):
            series = []
            for d in dirs:
                rows = [r for r in read_csv(Path(d) / "metrics.csv") if r.get(key)]
                series.append(
                    (
                        np.array([float(r["global_step"]) for r in rows]),
                        np.array([float(r[key]) for r in rows]),
                    )
                )
            n = min(len(x) for x, _ in series)
            xs = series[0][0][:n]
            ys = np.stack([y[:n] for _, y in series])
            (line,) = ax.plot(xs, ys.mean(0), label=f"{label} (mean of {len(dirs)})")
            ax.fill_between(xs, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.2)
    axes[0].set(
        title="training return (last 100 episodes)", xlabel="environment steps", ylabel="return"
    )
    axes[1].set(title="greedy evaluation return", xlabel="environment steps", ylabel="return")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _first_step_reaching(run_dir: str, key: str, level: float) -> float | None:
    from ppox.io.logging import read_csv

    for r in read_csv(Path(run_dir) / "metrics.csv"):
        if r.get(key) and float(r[key]) >= level:
            return float(r["global_step"])
    return None


def _command() -> str:
    """The command line, with absolute paths cut to their part from ``runs/`` or ``benchmarks/``
    on (results files must not name paths of the machine they were made on)."""

    def portable(arg: str) -> str:
        p = Path(arg)
        if not p.is_absolute():
            return arg
        for marker in ("runs", "benchmarks"):
            if marker in p.parts:
                return str(Path(*p.parts[p.parts.index(marker) :]))
        return p.name

    return " ".join(portable(a) for a in sys.argv)


def _machine() -> dict[str, Any]:
    import torch

    import ppox

    src = Path(ppox.__file__).resolve().parent

    def git(*cmd: str) -> str:
        return subprocess.run(
            ["git", "-C", str(src), *cmd], capture_output=True, text=True
        ).stdout.strip()

    return {"python": platform.python_version(), "torch": torch.__version__, "ppox": ppox.__version__,
            "commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--", ".")),
            "cpu": platform.processor() or platform.machine(), "cores": mp.cpu_count()}  # fmt: skip


def _compare(
    name: str,
    variants: dict[str, dict[str, Any]],
    seeds: list[int],
    args: argparse.Namespace,
    level: float,
    title: str,
) -> None:
    out_dir = Path(args.out_dir or REPO / "benchmarks" / "results" / name)
    runs_dir = Path(args.runs_dir) / getattr(args, "runs_name", name)
    jobs = [
        (label, {**ov, "seed": s}, str(runs_dir / f"{label}-s{s}"))
        for label, ov in variants.items()
        for s in seeds
    ]
    t0 = time.time()
    results = _run_all(jobs, args.jobs)
    rows = []
    for label in variants:
        mine = [r for r in results if r["label"] == label]
        reach = [_first_step_reaching(r["run_dir"], "train_return_mean", level) for r in mine]
        rows.append({
            "variant": label, "seeds": seeds,
            "final_eval": [round(r["eval_return_mean"], 3) for r in mine],
            "final_train": [round(r["train_return_mean"], 3) for r in mine],
            "median_final_eval": statistics.median(r["eval_return_mean"] for r in mine),
            f"steps_to_train_return_{level}": reach,
            "steps_per_second": statistics.median(r["steps_per_second"] for r in mine),
        })  # fmt: skip
    _curves(
        {label: [r["run_dir"] for r in results if r["label"] == label] for label in variants},
        out_dir / "curves.png",
        title,
    )
    payload = {"benchmark": name, "variants": variants, "results": rows, "machine": _machine(),
               "wall_s": round(time.time() - t0, 1), "command": _command()}  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    lines = [f"# {title}", "", f"Command: `{payload['command']}`", "",
             f"| variant | final eval per seed | median | final train per seed | steps until train return ≥ {level} | steps/s |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        reach = ", ".join(
            "never" if x is None else f"{int(x):,}" for x in r[f"steps_to_train_return_{level}"]
        )
        lines.append(
            f"| {r['variant']} | {r['final_eval']} | {r['median_final_eval']:.3f} | {r['final_train']} | {reach} | {r['steps_per_second']:,.0f} |"
        )
    (out_dir / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def cmd_mask(args: argparse.Namespace) -> None:
    base = {**MASK_CFG, "total_steps": args.steps or MASK_CFG["total_steps"]}
    variants = {
        "mask": {**base, "env_id": "PpoxBench/MaskedPayoff-v0"},
        "no-mask": {**base, "env_id": "PpoxBench/MaskedPayoffNoMask-v0"},
    }
    _compare(
        "mask",
        variants,
        args.seeds,
        args,
        level=13.0,
        title="MaskedPayoff: action masks vs none (3 of 24 legal)",
    )


def cmd_multidiscrete(args: argparse.Namespace) -> None:
    if args.preset:
        import ppox

        base = dict(ppox.get_preset(args.preset).overrides)
    else:
        base = {**MULTI_CFG, "env_id": args.env or "PpoxBench/MultiPayoff-v0"}
    if args.env:
        base["env_id"] = args.env
    if args.steps:
        base["total_steps"] = args.steps
    env_id = base["env_id"]
    args.runs_name = "multidiscrete" + (f"-{args.preset}" if args.preset else "")
    variants = {
        "factored": {**base, "multi_discrete": "factored"},
        "flat": {**base, "multi_discrete": "flat"},
    }
    _compare(
        "multidiscrete",
        variants,
        args.seeds,
        args,
        level=args.level,
        title=f"{env_id}: factored vs flat multi-discrete head",
    )


def success_rate(
    env_id: str, act: Any, seeds: list[int], env_kwargs: dict[str, Any] | None = None
) -> tuple[float, float]:
    """``(fraction of episodes ending with info["success"], mean return)`` over one episode per
    seed, each from ``reset(seed=s)``; ``act(obs, info) → action``."""
    env = gym.make(env_id, **(env_kwargs or {}))
    wins, total = 0, 0.0
    for s in seeds:
        obs, info = env.reset(seed=s)
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs, info))
            total += float(reward)
            done = terminated or truncated
        wins += bool(info.get("success", False))
    env.close()
    return wins / len(seeds), total / len(seeds)


def cmd_hybrid(args: argparse.Namespace) -> None:
    import ppox

    preset = ppox.get_preset(args.preset)
    base = dict(preset.overrides)
    if args.steps:
        base["total_steps"] = args.steps
    env_id = base["env_id"]
    args.runs_name = "multidiscrete" + (f"-{args.preset}" if args.preset else "")
    label = args.preset + (f"-{args.hybrid_mode}" if args.hybrid_mode else "")
    if args.hybrid_mode:
        base["hybrid_mode"] = args.hybrid_mode
    runs_dir = Path(args.runs_dir) / "hybrid"
    jobs = [(label, {**base, "seed": s}, str(runs_dir / f"{label}-s{s}")) for s in args.seeds]
    t0 = time.time()
    results = _run_all(jobs, args.jobs)
    eval_seeds = list(
        range(2_000_000, 2_000_000 + args.episodes)
    )  # disjoint from training and the run's own evals
    space = gym.make(env_id).action_space
    space.seed(0)
    rand_rate, rand_ret = success_rate(env_id, lambda o, i: space.sample(), eval_seeds)
    rows = []
    for r in results:
        policy = ppox.load_policy(r["run_dir"])
        rate, ret = success_rate(
            env_id, lambda o, i, p=policy: p.predict(o, mask=i.get("action_mask")), eval_seeds
        )
        rows.append({"seed": r["seed"], "success_rate": rate, "mean_return": ret, "eval_return_mean": r["eval_return_mean"],
                     "total_steps": r["total_steps"], "wall_time_s": r["wall_time_s"], "steps_per_second": r["steps_per_second"]})  # fmt: skip
    out_dir = Path(args.out_dir or REPO / "benchmarks" / "results" / "hybrid")
    _curves(
        {label: [r["run_dir"] for r in results]},
        out_dir / f"{label}.png",
        f"{env_id} ({label}): {len(results)} seeds",
    )
    payload = {"benchmark": "hybrid", "preset": args.preset, "env_id": env_id, "config": base, "eval_episodes": args.episodes,
               "eval_seeds": f"{eval_seeds[0]}…{eval_seeds[-1]}", "runs": rows,
               "median_success_rate": statistics.median(x["success_rate"] for x in rows),
               "random_policy": {"success_rate": rand_rate, "mean_return": rand_ret},
               "machine": _machine(), "wall_s": round(time.time() - t0, 1), "command": _command()}  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{label}.json").write_text(json.dumps(payload, indent=2, default=str))
    lines = [f"# {env_id}: preset `{args.preset}`" + (f", hybrid_mode={args.hybrid_mode}" if args.hybrid_mode else ""), "",
             f"Command: `{payload['command']}`. Greedy policy, {args.episodes} episodes from seeds {payload['eval_seeds']}.", "",
             "| seed | steps | success rate | mean return | wall time (s) | steps/s |", "|---|---|---|---|---|---|"]  # fmt: skip
    for x in rows:
        lines.append(
            f"| {x['seed']} | {x['total_steps']:,} | {x['success_rate']:.0%} | {x['mean_return']:.3f} | {x['wall_time_s']:.0f} | {x['steps_per_second']:,.0f} |"
        )
    lines += [f"| random policy | | {rand_rate:.0%} | {rand_ret:.3f} | | |", "",
              f"Median success rate over seeds: **{payload['median_success_rate']:.0%}**."]  # fmt: skip
    (out_dir / f"{label}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("mask", "multidiscrete"):
        s = sub.add_parser(name)
        s.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
        s.add_argument("--steps", type=int, default=None, help="environment steps per run")
        s.add_argument("--jobs", type=int, default=2)
        s.add_argument("--runs-dir", default="runs/bench-actions")
        s.add_argument("--out-dir", default=None)
    sub.choices["multidiscrete"].add_argument("--env", default=None)
    sub.choices["multidiscrete"].add_argument(
        "--preset",
        default=None,
        help="start from this preset's config (e.g. traffic) instead of MultiPayoff's",
    )
    sub.choices["multidiscrete"].add_argument(
        "--level", type=float, default=50.0, help="train-return level for steps-to-reach"
    )
    h = sub.add_parser("hybrid")
    h.add_argument("--preset", default="moving")
    h.add_argument("--hybrid-mode", default=None, help="override the preset's hybrid_mode")
    h.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    h.add_argument("--steps", type=int, default=None)
    h.add_argument("--episodes", type=int, default=100)
    h.add_argument("--jobs", type=int, default=2)
    h.add_argument("--runs-dir", default="runs/bench-actions")
    h.add_argument("--out-dir", default=None)
    args = p.parse_args(argv)
    {"mask": cmd_mask, "multidiscrete": cmd_multidiscrete, "hybrid": cmd_hybrid}[args.cmd](args)


if __name__ == "__main__":
    main()
