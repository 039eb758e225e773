"""Box2D presets: LunarLander (discrete and continuous) and BipedalWalker (normal and hardcore).

Sources: the RL Baselines3 Zoo's PPO entries (``hyperparams/ppo.yml``), mapped to ppox's fields
as docs/presets.md lists; results in benchmarks/results/suite.
"""

from __future__ import annotations

from typing import Any

# The RL Zoo's LunarLander entry (16 envs × 1024 steps, minibatch 64, 4 epochs, γ 0.999, λ 0.98,
# entropy 0.01) with 10 epochs instead of 4. With the Zoo's 4 epochs ppox ended at 200 and 234
# (seeds 1, 2; final evaluations at 1M steps), with 10 at 279 and 278; normalized observations
# (272, seed 1) and an entropy weight decaying to 0 (211, 226) helped less. With minibatches of
# 256 (4x fewer gradient steps) the 4-epoch entry reached only ~120 (training) at 850k steps.
_LUNAR: dict[str, Any] = {
    "num_envs": 16, "num_steps": 1024, "num_epochs": 10, "num_minibatches": 256, "learning_rate": 3e-4,
    "gamma": 0.999, "lam": 0.98, "ent_coef": 0.01, "total_steps": 1_000_000, "eval_every": 50_000,
}  # fmt: skip

BOX2D: dict[str, tuple[str, dict[str, Any]]] = {
    "lunarlander": (
        "LunarLander-v3 (discrete, Box2D): ≥250 within 1M steps",
        {**_LUNAR, "env_id": "LunarLander-v3"},
    ),
    # The same entry in the Zoo; ppox's Gaussian starts from σ = 1 as SB3's does.
    "lunarlander-continuous": (
        "LunarLanderContinuous-v3 (continuous, Box2D): 1M steps",
        {**_LUNAR, "env_id": "LunarLanderContinuous-v3"},
    ),
    # BipedalWalker: the Zoo's entry (32 envs × 2048 steps, minibatch 64, 10 epochs, γ 0.999,
    # λ 0.95, clip 0.18, normalized observations and rewards) and its budget of 5M steps.
    "bipedalwalker": (
        "BipedalWalker-v3 (continuous, Box2D): 5M steps",
        {
            "env_id": "BipedalWalker-v3", "num_envs": 32, "num_steps": 2048, "num_minibatches": 1024,
            "num_epochs": 10, "learning_rate": 3e-4, "anneal_lr": False, "gamma": 0.999, "lam": 0.95,
            "clip_coef": 0.18, "ent_coef": 0.0, "normalize_obs": True, "scale_reward": True,
            "total_steps": 5_000_000, "eval_every": 250_000,
        },
    ),
    # BipedalWalkerHardcore: the Zoo's entry (16 envs × 2048, minibatch 64, 10 epochs, γ 0.99,
    # λ 0.95, entropy 0.001, learning rate 2.5e-4 annealed linearly, normalized) and its budget of
    # 100M steps. Not followed: the Zoo also anneals the clip range from 0.2 (ppox keeps 0.2).
    "bipedalwalker-hardcore": (
        "BipedalWalkerHardcore-v3 (continuous, Box2D): 100M steps",
        {
            "env_id": "BipedalWalkerHardcore-v3", "num_envs": 16, "num_steps": 2048, "num_minibatches": 512,
            "num_epochs": 10, "learning_rate": 2.5e-4, "anneal_lr": True, "gamma": 0.99, "lam": 0.95,
            "clip_coef": 0.2, "ent_coef": 0.001, "normalize_obs": True, "scale_reward": True,
            "total_steps": 100_000_000, "eval_every": 2_000_000,
        },
    ),
}  # fmt: skip
"""Name → (description, overrides); see :mod:`ppox.presets`."""
