"""LeanSyncVectorEnv behaves like Gymnasium's SyncVectorEnv with SAME_STEP autoreset."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from ppox.config import EnvConfig
from ppox.envs import make_vec_env
from ppox.envs.vector import LeanSyncVectorEnv


@pytest.mark.parametrize(("env_id", "limit"), [("CartPole-v1", 30), ("Pendulum-v1", 17)])
def test_lean_env_matches_gymnasium_sync_env(env_id: str, limit: int) -> None:
    fns = [lambda: gym.make(env_id, max_episode_steps=limit)] * 3
    ref = SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    lean = LeanSyncVectorEnv(fns)
    seeds = [11, 12, 13]
    o1, _ = ref.reset(seed=seeds)
    o2, _ = lean.reset(seed=seeds)
    np.testing.assert_array_equal(o1, o2)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(200):
        action = np.stack([ref.single_action_space.sample() for _ in range(3)])
        if env_id == "CartPole-v1":
            action = rng.integers(0, 2, 3)
        a, b = ref.step(action), lean.step(action)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_array_equal(x, y)
        done = a[2] | a[3]
        if done.any():
            ended += int(done.sum())
            np.testing.assert_array_equal(a[4]["_final_obs"], b[4]["_final_obs"])
            for i in np.flatnonzero(done):
                np.testing.assert_array_equal(a[4]["final_obs"][i], b[4]["final_obs"][i])
        else:
            assert "final_obs" not in b[4]
    assert ended > 5  # the comparison really crossed episode ends (time limits and failures)
    ref.close()
    lean.close()


def test_sync_vectorization_uses_the_lean_env_for_box_observations() -> None:
    envs = make_vec_env(EnvConfig(env_id="CartPole-v1", num_envs=2))
    assert isinstance(envs, LeanSyncVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    envs.close()
