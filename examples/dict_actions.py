"""Nested Dict / Tuple action spaces: the product of one head per part (Discrete, Box,
MultiBinary, …); log-probs and entropies add up, each part reaches the env in its own format.

    python examples/dict_actions.py
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import ppox


class Console(gym.Env):
    """Pick a channel, set a level and flip two switches to match the targets shown."""

    observation_space = gym.spaces.Box(-1, 1, (6,), np.float32)
    action_space = gym.spaces.Dict(
        {
            "channel": gym.spaces.Discrete(3),
            "controls": gym.spaces.Tuple(
                (gym.spaces.Box(-1, 1, (1,), np.float32), gym.spaces.MultiBinary(2))
            ),
        }
    )

    def _obs(self):
        return np.concatenate([np.eye(3)[self.channel], [self.level], self.switches]).astype(
            np.float32
        )

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.channel, self.level = (
            int(self.np_random.integers(3)),
            float(self.np_random.uniform(-0.8, 0.8)),
        )
        self.switches = self.np_random.integers(0, 2, 2)
        return self._obs(), {}

    def step(self, action):
        level, switches = action["controls"]
        score = (int(action["channel"]) == self.channel) + 1 - abs(float(level[0]) - self.level)
        score += float(np.mean(np.asarray(switches) == self.switches))
        return self._obs(), score / 3, True, False, {}


gym.register("examples/Console-v0", entry_point=Console)

if __name__ == "__main__":
    cfg = ppox.Config().replace(
        env_id="examples/Console-v0",
        total_steps=10_000,
        num_epochs=4,
        num_minibatches=2,
        learning_rate=3e-3,
        eval_episodes=50,
    )
    summary = ppox.train(cfg, run_dir="runs/examples/dict_actions")
    print(f"score {summary['eval_return_mean']:.2f} of 1.0")
    print(
        "one action:",
        ppox.load_policy("runs/examples/dict_actions").predict(Console().reset(seed=1)[0]),
    )
