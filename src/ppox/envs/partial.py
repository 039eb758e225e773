"""Partially observed tasks: classic tasks with their velocities hidden, for policies with memory.

Each id keeps the dynamics, rewards and time limit of its original and removes the velocity
entries from the observation, so a feed-forward policy sees positions only and must guess the
motion, while a recurrent policy can infer it from successive observations. These are the
"NoVel" tasks of the RL Zoo's recurrent-PPO benchmarks (sb3-contrib's ``RecurrentPPO``), under
ppox's namespace:

========================  ==================  ====================================================
id                        original            observation kept
========================  ==================  ====================================================
``ppox/CartPoleNoVel-v1``   ``CartPole-v1``     cart position, pole angle (cart and pole velocities hidden)
``ppox/PendulumNoVel-v1``   ``Pendulum-v1``     cos θ, sin θ (angular velocity hidden)
``ppox/LunarLanderNoVel-v3`` ``LunarLander-v3`` x, y, angle, both leg contacts (x/y and angular velocities hidden)
========================  ==================  ====================================================

The wrapper, :class:`HideVelocity`, is a plain observation wrapper and works on any Box
observation: ``HideVelocity(env, keep=(0, 2))``.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["NO_VELOCITY", "HideVelocity", "register_envs"]


class HideVelocity(gym.ObservationWrapper[np.ndarray, Any, np.ndarray]):
    """Keep only the observation entries at ``keep`` (a flat Box observation)."""

    def __init__(self, env: gym.Env, keep: tuple[int, ...]) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"HideVelocity needs a flat Box observation (got {space})")
        if not keep or any(not 0 <= i < space.shape[0] for i in keep):
            raise ValueError(f"keep={keep} must name entries 0 … {space.shape[0] - 1}")
        self.keep = list(keep)
        self.observation_space = spaces.Box(
            low=space.low[self.keep],
            high=space.high[self.keep],
            dtype=space.dtype,  # type: ignore[arg-type]
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.keep]


NO_VELOCITY: dict[str, tuple[str, str, tuple[int, ...], int]] = {
    "ppox/CartPoleNoVel-v1": (
        "gymnasium.envs.classic_control.cartpole", "CartPoleEnv", (0, 2), 500,
    ),
    "ppox/PendulumNoVel-v1": (
        "gymnasium.envs.classic_control.pendulum", "PendulumEnv", (0, 1), 200,
    ),
    "ppox/LunarLanderNoVel-v3": (
        "gymnasium.envs.box2d.lunar_lander", "LunarLander", (0, 1, 4, 6, 7), 1000,
    ),
}  # fmt: skip
"""id → (module of the original env, its class, the entries kept, the original's time limit)."""


def _maker(module: str, name: str, keep: tuple[int, ...]) -> Any:
    def make(**kwargs: Any) -> gym.Env:
        cls = getattr(importlib.import_module(module), name)  # one of the fixed names above
        return HideVelocity(cls(**kwargs), keep)

    return make


def register_envs() -> None:
    """Register the ids above with Gymnasium (idempotent)."""
    for env_id, (module, name, keep, limit) in NO_VELOCITY.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=_maker(module, name, keep), max_episode_steps=limit)


register_envs()
