"""Presets for partially observed tasks, with a recurrent policy (docs/memory.md)."""

from __future__ import annotations

from typing import Any

_LSTM = {"memory": "lstm", "memory_size": 64, "hidden_sizes": (64,), "activation": "relu"}

MEMORY: dict[str, tuple[str, dict[str, Any]]] = {
    # The RL Zoo's CartPoleNoVel-v1 entry for sb3-contrib's RecurrentPPO (rl-zoo3 2.9.2,
    # hyperparams/ppo_lstm.yml): 8 envs × 32 steps, one minibatch of the whole batch, 20 epochs,
    # γ 0.98, λ 0.8, learning rate 1e-3 annealed linearly, normalized observations and rewards, an
    # LSTM of 64 for the actor and another for the critic, then one ReLU layer of 64 each. Not
    # followed: the Zoo also anneals the clip range (ppox keeps 0.2) and uses PyTorch's default
    # initialization (ppox: orthogonal). ppox's change: a learning rate of 5e-4. With the Zoo's
    # 1e-3, seed 1 reached 500 at 20k steps and fell back to ~220 by 100k; shorter sequences
    # (K = 8) with fresh states at 1e-3 left seed 2 at 267. At 5e-4 with the Zoo's whole 32-step
    # sequences and stored states, seeds 1-5 ended at 500 (benchmarks/results/memory).
    "cartpole-novel": (
        "CartPole-v1 with the velocities hidden, LSTM policy: ≥475 within 100k steps",
        {
            "env_id": "ppox/CartPoleNoVel-v1", **_LSTM, "num_envs": 8, "num_steps": 32, "num_epochs": 20,
            "num_minibatches": 1, "learning_rate": 5e-4, "gamma": 0.98, "lam": 0.8, "normalize_obs": True,
            "scale_reward": True, "total_steps": 100_000, "eval_every": 10_000,
        },
    ),
    # The control: the same network and settings without the memory stage.
    "cartpole-novel-mlp": (
        "CartPole-v1 with the velocities hidden, the same network without memory (a control: it should fail)",
        {
            "env_id": "ppox/CartPoleNoVel-v1", "hidden_sizes": (64,), "activation": "relu", "num_envs": 8,
            "num_steps": 32, "num_epochs": 20, "num_minibatches": 1, "learning_rate": 5e-4, "gamma": 0.98,
            "lam": 0.8, "normalize_obs": True, "scale_reward": True, "total_steps": 100_000, "eval_every": 10_000,
        },
    ),
    # After the RL Zoo's PendulumNoVel-v1 entry (4 envs × 1024 steps, 10 epochs, lr 1e-3, γ 0.9,
    # λ 0.95) without the entry's gSDE (`sigma_mode=sde`, not measured on this task). The entry leaves RecurrentPPO's minibatch of
    # 128 steps and a constant learning rate; ppox trains on minibatches of one 64-step sequence
    # (K = 64) and anneals the learning rate (its default).
    "pendulum-novel": (
        "Pendulum-v1 with the angular velocity hidden, LSTM policy: ≥ -250 within 100k steps",
        {
            "env_id": "ppox/PendulumNoVel-v1", **_LSTM, "num_envs": 4, "num_steps": 1024, "bptt": 64,
            "num_epochs": 10, "num_minibatches": 64, "learning_rate": 1e-3, "gamma": 0.9, "lam": 0.95,
            "normalize_obs": True, "scale_reward": True, "total_steps": 100_000, "eval_every": 10_000,
        },
    ),
    # POPGym's RepeatFirst (Morad et al. 2023, "POPGym: Benchmarking Partially Observable
    # Reinforcement Learning"): say the episode's first card (4 suits) at each of its 51 steps;
    # +1/51 when right, -1/51 when wrong, so a return of 1 is perfect and a policy without memory
    # gets about -0.5. Every episode lasts exactly 51 steps, so rollouts of 102 steps cut into
    # K = 51 hold whole episodes and the gradient reaches from every answer back to the first
    # card. The reward of a step depends on that step's action only: γ 0.5 keeps the
    # advantages close to it. A run either finds the memory or stays at the memoryless level for
    # a while, then climbs to 1.0 within ~50k steps: at this 1M budget seeds 2 and 3 reached 1.0
    # at 200k and 500k steps; with a 300k budget (the learning rate annealed 3x faster) seed 1
    # did at 210k, seed 2 reached 0.4 and seed 3 never took off.
    "popgym-repeat-first": (
        "POPGym RepeatFirstEasy (say the first card of the episode, 51 steps later): GRU, ≥0.9 within 1M steps",
        {
            "env_id": "popgym-RepeatFirstEasy-v0", "memory": "gru", "memory_size": 64, "hidden_sizes": (64,),
            "num_envs": 16, "num_steps": 102, "bptt": 51, "num_epochs": 4, "num_minibatches": 4,
            "learning_rate": 1e-3, "gamma": 0.5, "lam": 0.9, "total_steps": 1_000_000, "eval_every": 100_000,
        },
    ),
}  # fmt: skip
"""Name → (description, overrides); see :mod:`ppox.presets`."""
