"""Hybrid (parameterized) actions on ppox/Moving-v0: a discrete type (accelerate, turn, break)
and continuous parameters, of which only the chosen type's count (the type→parameter mask in
``info["action_mask"]["params"]``).

    python examples/hybrid_moving.py [independent|autoregressive|type_given_params]
"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np

import ppox

if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "independent"
    cfg = ppox.get_preset("moving").config().replace(hybrid_mode=mode)
    run = f"runs/examples/moving-{mode}"
    summary = ppox.train(cfg, run_dir=run)
    policy = ppox.load_policy(run)
    env = gym.make("ppox/Moving-v0")
    wins = 0
    for seed in range(100):
        obs, info = env.reset(seed=10_000 + seed)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(
                policy.predict(obs, mask=info["action_mask"])
            )
            done = terminated or truncated
        wins += bool(info.get("success"))
    print(
        f"hybrid_mode={mode}: return {summary['eval_return_mean']:.2f}, reached the target in {wins}/100 episodes"
    )
    print("example action:", policy.predict(np.zeros(10, np.float32)))
