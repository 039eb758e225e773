"""TRPO side by side: ppox's TRPO presets vs sb3-contrib's TRPO with the RL Zoo's tuned settings.

Both sides run the same hyperparameters (the RL Baselines3 Zoo's ``hyperparams/trpo.yml``
entries, which ppox's ``cartpole-trpo``, ``halfcheetah-trpo`` and ``hopper-trpo`` presets carry
over; src/ppox/presets/trpo.py lists the mapping), the same budget and seeds, one process per run
with one thread, ppox and sb3-contrib of a (task, seed) back to back (alternating which goes
first), and are evaluated the same way (benchmarks/defaults_sb3.py)::

    .venv/bin/python benchmarks/trpo_sb3.py run --seeds 1 2 3 --jobs 2 \\
        --runs-dir runs/trpo_sb3 --out-dir benchmarks/results/trpo_sb3

Each task runs its preset's budget (CartPole 100k steps, MuJoCo 1M) unless ``--steps`` is given.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from defaults_sb3 import Pairing, main  # noqa: E402

PRESETS = {
    "CartPole-v1": "cartpole-trpo",
    "HalfCheetah-v5": "halfcheetah-trpo",
    "Hopper-v5": "hopper-trpo",
}
ZOO_MUJOCO = dict(n_steps=1024, batch_size=128, gamma=0.99, gae_lambda=0.95, sub_sampling_factor=1,
                  cg_max_steps=25, cg_damping=0.1, n_critic_updates=20, learning_rate=1e-3)  # fmt: skip
ZOO = {
    "CartPole-v1": dict(n_steps=512, batch_size=512, cg_damping=1e-3, gae_lambda=0.98, gamma=0.99,
                        learning_rate=1e-3, n_critic_updates=20),
    "HalfCheetah-v5": {**ZOO_MUJOCO, "target_kl": 0.04},
    "Hopper-v5": ZOO_MUJOCO,
}  # fmt: skip
"""The Zoo's entries (CartPole-v1, and HalfCheetah-v4 / Hopper-v4 run on v5), 2 envs each; the
MuJoCo ones under VecNormalize (observations and rewards, as the Zoo's ``normalize: true``)."""


def zoo_trpo(task: str, seed: int) -> Any:
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env = make_vec_env(task, n_envs=2, seed=seed)
    if task != "CartPole-v1":
        env = VecNormalize(env, gamma=0.99)
    return TRPO("MlpPolicy", env, seed=seed, device="cpu", **ZOO[task])


def ppox_args(task: str, seed: int, steps: int) -> list[str]:
    return ["--preset", PRESETS[task], "--seed", str(seed), "--total-steps", str(steps)]


TRPO_PAIRING = Pairing(
    script=__file__,
    title="TRPO: ppox vs sb3-contrib, the RL Zoo's settings on both",
    how="ppox runs its preset (`--preset cartpole-trpo | halfcheetah-trpo | hopper-trpo`); sb3-contrib is "
    '`TRPO("MlpPolicy", env, **zoo)` with the Zoo\'s entry for the task on 2 envs (VecNormalize for MuJoCo).',
    tasks=list(PRESETS),
    ppox_args=ppox_args,
    sb3_model=zoo_trpo,
    default_steps=0,  # each task's preset budget
    budget={"CartPole-v1": 100_000, "HalfCheetah-v5": 1_000_000, "Hopper-v5": 1_000_000},
    runs_dir="runs/trpo_sb3",
    out_dir="benchmarks/results/trpo_sb3",
)

if __name__ == "__main__":
    main(TRPO_PAIRING, __doc__)
