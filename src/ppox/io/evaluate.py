"""Evaluation on a fixed, reported set of seeds (SPEC §5.4, §7).

Each evaluation episode ``i`` starts from ``reset(seed=seeds[i])`` in a fresh environment, so
evaluations are comparable across checkpoints and runs, and they never touch the training
envs or the training RNGs (stochastic evaluation draws from its own generator).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from ppox.config import EnvConfig
from ppox.envs.make import make_env
from ppox.errors import EnvError
from ppox.io.policy import Policy
from ppox.training.rollout import MASK_KEY


def evaluate(
    policy: Policy,
    env_cfg: EnvConfig,
    seeds: list[int],
    *,
    deterministic: bool = True,
) -> np.ndarray:
    """Undiscounted raw returns ``[len(seeds)]``, one episode per seed, run side by side."""
    envs = SyncVectorEnv(
        [lambda: make_env(env_cfg)] * len(seeds), autoreset_mode=AutoresetMode.SAME_STEP
    )
    generator = torch.Generator().manual_seed(seeds[0])
    returns = np.zeros(len(seeds))
    running = np.ones(len(seeds), dtype=bool)
    try:
        obs, info = envs.reset(seed=list[int | None](seeds))
        while running.any():
            action = policy.predict(
                obs, deterministic=deterministic, mask=info.get(MASK_KEY), generator=generator
            )
            obs, reward, terminated, truncated, info = envs.step(action)
            returns += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
    finally:
        envs.close()
    return returns


def _render(env: Any, env_id: str) -> Any:
    try:
        return env.render()
    except Exception as exc:  # missing display / OpenGL platform: say what to install or set
        raise EnvError(
            f"env_id={env_id!r} cannot render frames here ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
            "MuJoCo needs an OpenGL platform, e.g. MUJOCO_GL=egl (a GPU driver) or MUJOCO_GL=osmesa "
            "(Debian package libosmesa6)"
        ) from None


def record_gif(
    policy: Policy,
    env_cfg: EnvConfig,
    seed: int,
    path: Path,
    *,
    deterministic: bool = True,
    fps: int = 30,
) -> float:
    """Render one episode from ``seed`` to an animated GIF; returns the episode's return."""
    import imageio.v2 as imageio

    env = make_env(env_cfg, render_mode="rgb_array")
    frames: list = []
    total = 0.0
    try:
        obs, info = env.reset(seed=seed)
        frames.append(_render(env, env_cfg.env_id))
        done = False
        while not done:
            action = policy.predict(obs, deterministic=deterministic, mask=info.get(MASK_KEY))
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            frames.append(_render(env, env_cfg.env_id))
            done = terminated or truncated
    finally:
        env.close()
    imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    return total
