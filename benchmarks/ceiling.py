"""How close ppox's training loop runs to the environment alone, per preset, and where the rest goes.

For each preset, in one process with one thread, rounds interleave three measurements on the
same kind of vector env the run trains on (``make_vec_env`` of the preset's env settings):

- **env only**: the vector env stepped with random actions drawn beforehand (the ceiling: no
  policy, no storage, no learning);
- **collection**: ``Collector.collect()``, a whole rollout (acting, storage, episode statistics,
  normalizers, truncation bootstraps);
- **update**: ``Learner.update()`` on those rollouts (advantages and every epoch and minibatch).

The training loop's steps/s is ``steps / (collection + update)`` (logging and checkpoints add a
little more in a real run; ``ppox train`` reports its own loop in ``summary.json``). Medians over
rounds::

    .venv/bin/python benchmarks/ceiling.py --presets cartpole halfcheetah lunarlander \\
        --out benchmarks/results/ceiling
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ppox
from ppox.envs.make import make_vec_env
from ppox.training.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whole_process import write_info  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def measure(preset: str, rounds: int, min_steps: int) -> dict[str, Any]:
    cfg = ppox.get_preset(preset).config().replace(progress=False, tensorboard=False, eval_every=0)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer.create(cfg, Path(tmp) / "run")
        c, learner = trainer.collector, trainer.learner
        T, N = c.T, c.N
        iters = max(1, -(-min_steps // (T * N)))
        envs = make_vec_env(cfg.env)
        envs.reset(seed=list(range(N)))
        envs.single_action_space.seed(0)
        actions = [
            np.stack([envs.single_action_space.sample() for _ in range(N)]) for _ in range(64)
        ]
        learner.update(c.collect(), progress=0.0)  # warm: first-call costs out of the numbers
        samples: dict[str, list[float]] = {"env": [], "collect": [], "update": []}
        for _ in range(rounds):
            t = time.perf_counter()
            for i in range(iters * T):
                envs.step(actions[i % 64])
            samples["env"].append(time.perf_counter() - t)
            rollouts, t = [], time.perf_counter()
            for _ in range(iters):
                rollouts.append(c.collect())
            samples["collect"].append(time.perf_counter() - t)
            t = time.perf_counter()
            for r in rollouts:
                learner.update(r, progress=0.5)
            samples["update"].append(time.perf_counter() - t)
        envs.close()
        backends = trainer.backends()
        trainer.envs.close()
        trainer.release_run_dir()
    steps = iters * T * N
    med = {k: statistics.median(v) for k, v in samples.items()}
    sps = {
        "env": steps / med["env"],
        "collect": steps / med["collect"],
        "loop": steps / (med["collect"] + med["update"]),
    }
    return {
        "preset": preset, "env_id": cfg.env.env_id, "num_envs": N, "num_steps": T, "steps_per_round": steps,
        "epochs": cfg.ppo.num_epochs, "minibatches": cfg.ppo.num_minibatches, "hidden_sizes": list(cfg.policy.hidden_sizes),
        "seconds": samples, "median_s": med, "sps": sps,
        "collect_fraction": sps["collect"] / sps["env"], "loop_fraction": sps["loop"] / sps["env"],
        "update_share": med["update"] / (med["collect"] + med["update"]),
        "policy_and_bookkeeping_us_per_vector_step": (med["collect"] - med["env"]) / (iters * T) * 1e6,
        "backends": backends,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=["cartpole", "halfcheetah", "lunarlander"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-steps", type=int, default=20_000, help="env steps per measurement")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ceiling")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    load0 = os.getloadavg()
    rows = [measure(name, a.rounds, a.min_steps) for name in a.presets]
    info = write_info(a.out, load0, torch=torch.__version__, rounds=a.rounds, presets=rows)
    lines = [
        "# The training loop against the environment alone",
        "",
        f"`benchmarks/ceiling.py --presets {' '.join(a.presets)}` · {info['generated']} · commit `{info['commit']}` · "
        f"{info['machine']}, load {load0[0]:.2f} at start, {info['load_at_end'][0]:.2f} at end · one thread · "
        f"medians of {a.rounds} interleaved rounds.",
        "",
        "| preset | envs × steps, epochs × minibatches | env only steps/s | collection steps/s | loop steps/s "
        "| collection / env | loop / env | update's share of the loop | policy + bookkeeping µs per vector step |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r["sps"]
        lines.append(
            f"| {r['preset']} | {r['num_envs']} × {r['num_steps']}, {r['epochs']} × {r['minibatches']} | {s['env']:,.0f} | "
            f"{s['collect']:,.0f} | {s['loop']:,.0f} | {100 * r['collect_fraction']:.0f}% | {100 * r['loop_fraction']:.0f}% | "
            f"{100 * r['update_share']:.0f}% | {r['policy_and_bookkeeping_us_per_vector_step']:.1f} |"
        )
    (a.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
