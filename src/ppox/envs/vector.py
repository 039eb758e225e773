"""A lean synchronous vector env with SAME_STEP autoreset.

Gymnasium's ``SyncVectorEnv`` merges every key of every sub-env's ``info`` into batched arrays
on each step and copies observations through the space's generic ``concatenate``; for the
small, fast environments PPO is usually run on, that bookkeeping is a sizeable share of each
step. This class steps Box-observation envs into one
preallocated array and forwards only what ppox reads from ``info``: ``final_obs`` (with its
``_final_obs`` mask) for episodes that ended, ``action_mask`` when the envs provide one, and
``life_lost`` for Atari episodes that ended at a lost life.
Semantics otherwise match ``SyncVectorEnv(autoreset_mode=SAME_STEP)``, which a test checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, iterate

MASK_KEY = "action_mask"
LIFE_LOST_KEY = "life_lost"
"""``info`` key of a step that ended the training episode at a lost life while the game goes on
(:mod:`ppox.envs.atari`); forwarded as ``[N]`` bool."""


class LeanSyncVectorEnv(VectorEnv):
    """``num_envs`` envs stepped in this process; observations must be a Box."""

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]]) -> None:
        self.envs = [fn() for fn in env_fns]
        self.num_envs = len(self.envs)
        first = self.envs[0]
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(first.observation_space, self.num_envs)
        self.action_space = batch_space(first.action_space, self.num_envs)
        self.metadata = {**first.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = first.render_mode
        space = first.observation_space
        assert isinstance(space, gym.spaces.Box)
        self._obs = np.zeros((self.num_envs, *space.shape), dtype=space.dtype)
        self._reward = np.zeros(self.num_envs)
        self._terminated = np.zeros(self.num_envs, dtype=bool)
        self._truncated = np.zeros(self.num_envs, dtype=bool)
        # arrays of actions index per env; Dict / Tuple actions are split with `iterate`
        self._indexable = not isinstance(first.action_space, (gym.spaces.Dict, gym.spaces.Tuple))

    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        seeds = (
            seed
            if isinstance(seed, Sequence)
            else [None if seed is None else seed + i for i in range(self.num_envs)]
        )
        options = dict(options or {})
        # as Gymnasium's vector envs: reset only the envs where options["reset_mask"] is True
        # (the others keep their current observation; their mask rows are placeholders)
        which = options.pop("reset_mask", np.ones(self.num_envs, dtype=bool))
        masks = []
        for i, (env, s) in enumerate(zip(self.envs, seeds)):
            info: dict[str, Any] = {}
            if which[i]:
                self._obs[i], info = env.reset(seed=s, options=options or None)
            masks.append(info.get(MASK_KEY))
        if not which.all() and any(m is not None for m in masks):
            fill = next(m for m in masks if m is not None)
            masks = [fill if m is None else m for m in masks]
        return self._obs.copy(), _mask_info(masks)

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        info: dict[str, Any] = {}
        masks = []
        per_env = actions if self._indexable else list(iterate(self.action_space, actions))
        for i, env in enumerate(self.envs):
            obs, reward, terminated, truncated, env_info = env.step(per_env[i])
            if terminated or truncated:
                if env_info.get(LIFE_LOST_KEY):  # the game goes on (ppox.envs.atari)
                    if LIFE_LOST_KEY not in info:
                        info[LIFE_LOST_KEY] = np.zeros(self.num_envs, dtype=bool)
                    info[LIFE_LOST_KEY][i] = True
                if "final_obs" not in info:
                    info["final_obs"] = np.full(self.num_envs, None, dtype=object)
                    info["_final_obs"] = np.zeros(self.num_envs, dtype=bool)
                info["final_obs"][i], info["_final_obs"][i] = obs, True
                obs, env_info = env.reset()
            self._obs[i], self._reward[i] = obs, reward
            self._terminated[i], self._truncated[i] = terminated, truncated
            masks.append(env_info.get(MASK_KEY))
        info.update(_mask_info(masks))
        return (
            self._obs.copy(),
            self._reward.copy(),
            self._terminated.copy(),
            self._truncated.copy(),
            info,
        )

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        out = []
        for env in self.envs:
            attr = env.get_wrapper_attr(name)
            out.append(attr(*args, **kwargs) if callable(attr) else attr)
        return tuple(out)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()


def _mask_info(masks: list[Any]) -> dict[str, Any]:
    if all(m is None for m in masks):
        return {}
    if any(m is None for m in masks):
        raise ValueError(f"some envs put '{MASK_KEY}' in info and others do not")
    return {MASK_KEY: _stack(masks)}


def _stack(items: list[Any]) -> Any:
    """Stack per-env masks: arrays into ``[N, ...]``, dicts key by key (structured actions)."""
    if isinstance(items[0], dict):
        return {k: _stack([m[k] for m in items]) for k in items[0]}
    return np.stack([np.asarray(m, dtype=bool) for m in items])
