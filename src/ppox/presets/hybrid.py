"""Hybrid-action presets: ppox's gym-hybrid ports (docs/envs.md), H-PPO heads.

One setup for the three tasks, after DI-engine's H-PPO config for gym-hybrid (8 envs, 10
epochs, lr 3e-4, entropy 0.01-0.03, small σ) with ppox's defaults elsewhere: 8 envs × 256 steps,
minibatches of 256, γ 0.99, λ 0.95, entropy 0.01 (on the type; σ starts at e^-1 ≈ 0.37 and is
learned), 128×128 tanh trunks, parameters mapped from [-1, 1] to the env's bounds
(``action_bound="rescale"``). The type→parameter mask comes from the env's ``info``.
"""

from __future__ import annotations

from typing import Any

_BASE: dict[str, Any] = {
    "num_envs": 8, "num_steps": 256, "num_epochs": 10, "num_minibatches": 8, "learning_rate": 3e-4,
    "gamma": 0.99, "lam": 0.95, "ent_coef": 0.01, "hidden_sizes": (128, 128), "action_bound": "rescale",
    "init_log_std": -1.0, "total_steps": 500_000, "eval_every": 50_000, "eval_episodes": 100,
}  # fmt: skip

HYBRID: dict[str, tuple[str, dict[str, Any]]] = {
    "moving": (
        "ppox/Moving-v0 (hybrid: type + parameters): reach the target and stop",
        {**_BASE, "env_id": "ppox/Moving-v0"},
    ),
    "sliding": ("ppox/Sliding-v0 (hybrid, with inertia)", {**_BASE, "env_id": "ppox/Sliding-v0"}),
    "hardmove": (
        "ppox/HardMove-v0 (hybrid: 16 actuator patterns × 4 parameters)",
        {**_BASE, "env_id": "ppox/HardMove-v0"},
    ),
}
