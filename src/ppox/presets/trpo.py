"""TRPO presets (``algo="trpo"``; docs/design/losses.md): the RL Baselines3 Zoo's tuned entries for
sb3-contrib's TRPO (``hyperparams/trpo.yml``), in ppox's fields, so that a comparison with
sb3-contrib runs the same settings. sb3-contrib's names map as: ``target_kl`` → max_kl,
``cg_max_steps`` → cg_iters, ``cg_damping`` → cg_damping, ``line_search_max_iter`` (10) →
line_search_steps, ``line_search_shrinking_factor`` (0.8) → line_search_shrink,
``n_critic_updates`` → num_epochs (the critic's passes over the batch), ``batch_size`` → the
critic's minibatch (num_minibatches = batch / batch_size), ``learning_rate`` → the critic's Adam
learning rate (constant), ``normalize`` → normalize_obs and scale_reward. Both libraries
standardize advantages over the batch and train the critic without gradient clipping; the
network is SB3's default (64 × 64 tanh, orthogonal initialization, σ starting at 1), as ppox's.
Results: benchmarks/family/.
"""

from __future__ import annotations

from typing import Any

_TRPO: dict[str, Any] = {
    "algo": "trpo", "norm_adv": "batch", "anneal_lr": False, "max_grad_norm": None, "learning_rate": 1e-3,
}  # fmt: skip

# The Zoo's MuJoCo entry (its "mujoco-defaults"): 2 envs × 1024 steps, 20 critic epochs of
# minibatches of 128, 25 conjugate-gradient iterations, damping 0.1.
_MUJOCO: dict[str, Any] = {
    **_TRPO, "num_envs": 2, "num_steps": 1024, "num_epochs": 20, "num_minibatches": 16, "cg_iters": 25,
    "cg_damping": 0.1, "gamma": 0.99, "lam": 0.95, "normalize_obs": True, "scale_reward": True,
    "total_steps": 1_000_000, "eval_every": 50_000,
}  # fmt: skip

TRPO: dict[str, tuple[str, dict[str, Any]]] = {
    "cartpole-trpo": (
        "CartPole-v1 with TRPO (the RL Zoo's tuned entry): 100k steps",
        {
            **_TRPO, "env_id": "CartPole-v1", "num_envs": 2, "num_steps": 512, "num_epochs": 20,
            "num_minibatches": 2, "cg_damping": 1e-3, "gamma": 0.99, "lam": 0.98, "total_steps": 100_000,
            "eval_every": 10_000,
        },
    ),
    # the Zoo tunes HalfCheetah's trust region wider (target_kl 0.04)
    "halfcheetah-trpo": (
        "HalfCheetah-v5 with TRPO (the RL Zoo's tuned entry): 1M steps",
        {**_MUJOCO, "env_id": "HalfCheetah-v5", "max_kl": 0.04},
    ),
    "hopper-trpo": ("Hopper-v5 with TRPO (the RL Zoo's tuned entry): 1M steps", {**_MUJOCO, "env_id": "Hopper-v5"}),
}  # fmt: skip
"""Name → (description, overrides); see :mod:`ppox.presets`."""
