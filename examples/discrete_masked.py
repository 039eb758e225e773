"""Discrete actions with an action mask read from ``info["action_mask"]``.

The environment below offers 6 actions, of which a random 2 are legal at each step; legal
action ``a`` pays ``a / 5`` and illegal ones pay nothing. ppox reads the mask from ``info``,
stores it with each transition, and never samples an illegal action (its probability is 0).

    python examples/discrete_masked.py
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import ppox


class TwoLegal(gym.Env):
    observation_space = gym.spaces.Box(0, 1, (6,), np.float32)
    action_space = gym.spaces.Discrete(6)

    def _draw(self):
        self.legal = np.zeros(6, bool)
        self.legal[self.np_random.choice(6, 2, replace=False)] = True
        return self.legal.astype(np.float32), {"action_mask": self.legal.copy()}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._draw()

    def step(self, action):
        reward = int(action) / 5 if self.legal[int(action)] else 0.0
        obs, info = self._draw()
        return obs, reward, False, False, info


gym.register("examples/TwoLegal-v0", entry_point=TwoLegal, max_episode_steps=10)

if __name__ == "__main__":
    cfg = ppox.Config().replace(env_id="examples/TwoLegal-v0", total_steps=20_000, eval_every=5_000)
    summary = ppox.train(cfg, run_dir="runs/examples/discrete_masked")
    print(
        f"greedy return {summary['eval_return_mean']:.2f} (the best policy averages ≈ 7.3 per 10 steps)"
    )
    policy = ppox.load_policy("runs/examples/discrete_masked")
    obs, info = TwoLegal().reset(seed=0)
    print(
        "legal:",
        np.flatnonzero(info["action_mask"]),
        "→ chosen:",
        policy.predict(obs, mask=info["action_mask"]),
    )
