"""Classic-control presets (Box2D's are in :mod:`ppox.presets.box2d`)."""

from __future__ import annotations

from typing import Any

CLASSIC: dict[str, tuple[str, dict[str, Any]]] = {
    # ppox's library defaults are tuned for CartPole (hyperparameters after the RL Zoo's
    # CartPole-v1 PPO entry: 8 envs × 32 steps, 20 epochs, γ 0.98, λ 0.8, linear 1e-3).
    "cartpole": ("CartPole-v1 (discrete): the default; ≥475 within 100k steps", {"env_id": "CartPole-v1"}),
    # Pendulum: the RL Zoo's Pendulum-v1 PPO entry without gSDE (4 envs x 1024, 10 epochs,
    # minibatch 64, lr 1e-3, γ 0.9, λ 0.95) and σ starting at 1; with observation normalization and
    # σ starting at 0.6 it stalled near -570 (seed 1, 200k steps).
    "pendulum": (
        "Pendulum-v1 (continuous): swing-up (≈ -150) within 100k steps",
        {
            "env_id": "Pendulum-v1", "num_envs": 4, "num_steps": 1024, "num_epochs": 10,
            "num_minibatches": 64, "learning_rate": 1e-3, "gamma": 0.9, "lam": 0.95,
            "ent_coef": 0.0, "init_log_std": 0.0, "total_steps": 100_000, "eval_every": 10_000,
        },
    ),
    # The rest of the family on CartPole (benchmarks/family/). PPO-Penalty needs nothing but the
    # switch. REINFORCE takes one gradient step per batch of whole episodes: 8 envs × 512 steps
    # (an episode lasts at most 500), a learned critic as the baseline, advantages standardized
    # per batch, γ 0.99 (credit over long episodes) and a large learning rate (1e-2: with 3e-3 only 1
    # of 5 seeds reached 500 within 300k steps; with 1e-2 seeds 3 and 4 did by 150k).
    "cartpole-penalty": (
        "CartPole-v1 with PPO-Penalty (adaptive KL β)",
        {"env_id": "CartPole-v1", "algo": "ppo-penalty"},
    ),
    "cartpole-reinforce": (
        "CartPole-v1 with REINFORCE (reward-to-go, critic baseline): 300k steps",
        {
            "env_id": "CartPole-v1", "algo": "reinforce", "baseline": "critic", "num_envs": 8, "num_steps": 512,
            "num_epochs": 1, "num_minibatches": 1, "learning_rate": 1e-2, "norm_adv": "batch", "gamma": 0.99,
            "total_steps": 300_000, "eval_every": 25_000,
        },
    ),
}  # fmt: skip
