"""Traffic-signal preset: ``ppox/Traffic-v0`` (docs/traffic.md), a MultiDiscrete action with a
phase mask, on SUMO (``pip install "ppox[traffic]"``).

sumo-rl's 2x2 grid (four lights, four green phases each). The reward is sumo-rl's ``queue``
(minus the number of halted vehicles, summed over the lights, every 5 simulated seconds), so an
episode's return is the congestion it saw; the env's default ``diff-waiting-time`` telescopes
over an episode to minus the waiting time left at its end, which says little about the episode.
Rewards are scaled by the running std of the discounted return (``scale_reward``): raw
returns are in the thousands, and without scaling the critic's gradient (value loss ~3e5) owns
the clipped global gradient norm, so the policy barely moves (the flat head did not learn at all
in 150k steps that way). Four envs in worker processes, each running SUMO in-process
(``backend="auto"`` picks libsumo there); ≈ 900 steps/s on a 2-core machine. 200-step episodes
(1000 simulated seconds).
"""

from __future__ import annotations

from typing import Any

TRAFFIC: dict[str, tuple[str, dict[str, Any]]] = {
    "traffic": (
        "ppox/Traffic-v0 (multi-discrete, phase mask; needs ppox[traffic]): 4 lights on SUMO",
        {
            "env_id": "ppox/Traffic-v0",
            "env_kwargs": {"backend": "auto", "reward_fn": "queue"},
            "num_envs": 4,
            "vectorization": "async",
            "num_steps": 200,
            "num_epochs": 10,
            "num_minibatches": 4,
            "learning_rate": 3e-4,
            "gamma": 0.99,
            "lam": 0.95,
            "ent_coef": 0.01,
            "scale_reward": True,
            "hidden_sizes": (128, 128),
            "total_steps": 200_000,
            "eval_every": 20_000,
            "eval_episodes": 10,
        },
    ),
}
