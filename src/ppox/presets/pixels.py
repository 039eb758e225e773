"""Presets for pixel observations: Atari through ale-py and MinAtar (docs/pixels.md)."""

from __future__ import annotations

from typing import Any

MINATAR_GAMES = ("Breakout", "SpaceInvaders", "Asterix", "Freeway", "Seaquest")
"""MinAtar's games, as ``ppox.envs.minatar.GAMES`` names them (a test keeps the two equal; spelled
out here so that listing presets needs no environment library)."""

# CleanRL's ppo_atari.py (Huang et al. 2022, "The 37 Implementation Details of Proximal Policy
# Optimization"; the settings of the PPO paper's Atari experiments, Schulman et al. 2017, Table 5):
# 8 envs × 128 steps, 4 epochs of 4 minibatches, Adam lr 2.5e-4 (eps 1e-5) annealed linearly to 0,
# γ 0.99, λ 0.95, clip 0.1 (not annealed), clipped value loss, vf 0.5, entropy 0.01, gradient norm
# 0.5, advantages normalized per minibatch, 10M steps; the Nature CNN with 512 features read
# directly by the policy and value layers (no MLP trunk between), orthogonal initialization (√2 in
# the CNN, 0.01 for the policy layer, 1 for the value layer); rewards clipped to their sign and
# the standard preprocessing (ppox's atari_* defaults). Evaluation plays whole games with the
# stochastic policy, as the published episodic returns are.
ATARI: dict[str, Any] = {
    "env_id": "BreakoutNoFrameskip-v4", "num_envs": 8, "num_steps": 128, "num_epochs": 4,
    "num_minibatches": 4, "learning_rate": 2.5e-4, "anneal_lr": True, "adam_eps": 1e-5, "gamma": 0.99,
    "lam": 0.95, "clip_coef": 0.1, "value_clip": 0.1, "vf_coef": 0.5, "ent_coef": 0.01, "max_grad_norm": 0.5,
    "norm_adv": "minibatch", "cnn": "nature", "cnn_features": 512, "hidden_sizes": (), "activation": "relu",
    "shared_trunk": True, "sign_reward": True, "total_steps": 10_000_000, "eval_every": 1_000_000,
    "eval_episodes": 8, "eval_deterministic": False,
}  # fmt: skip

# MinAtar: PureJaxRL's PPO settings for gymnax's MinAtar games ("briefly tuned" there: 64 envs ×
# 128 steps, 4 epochs of 8 minibatches, lr 5e-3 annealed linearly, γ 0.99, λ 0.95, clip 0.2,
# entropy 0.01, gradient norm 0.5) on the MinAtar paper's network (one 3×3 convolution of 16
# channels, a linear layer of 128, shared by the policy and the value). On MinAtar Breakout the
# learning rate decides it: at 1M steps 5e-3 reached 23 where 5e-4 and 1e-3 reached 9 and 8, and
# a gymnax-blines-like setup (separate 2×256 MLPs on the flattened grid, γ 0.999, constant 5e-4) 13.
# Evaluation samples from the policy, as the published MinAtar PPO returns do (docs/pixels.md).
MINATAR: dict[str, Any] = {
    "num_envs": 64, "num_steps": 128, "num_epochs": 4, "num_minibatches": 8, "learning_rate": 5e-3,
    "anneal_lr": True, "gamma": 0.99, "lam": 0.95, "clip_coef": 0.2, "vf_coef": 0.5, "ent_coef": 0.01,
    "max_grad_norm": 0.5, "cnn": "minatar", "cnn_features": 128, "hidden_sizes": (), "activation": "relu",
    "shared_trunk": True, "total_steps": 1_000_000, "eval_every": 250_000, "eval_episodes": 16,
    "eval_deterministic": False,
}  # fmt: skip

PIXELS: dict[str, tuple[str, dict[str, Any]]] = {
    "atari": (
        "Atari (any ale-py id; default BreakoutNoFrameskip-v4) with CleanRL's PPO Atari settings, 10M steps",
        ATARI,
    ),
    **{
        f"minatar-{name.lower()}": (
            f"MinAtar {name} (10×10 binary planes), MinAtar CNN, {MINATAR['total_steps'] // 1_000_000}M steps",
            {"env_id": f"ppox/MinAtar-{name}-v1", **MINATAR},
        )
        for name in MINATAR_GAMES
    },
}
"""Name → (description, overrides); see :mod:`ppox.presets`."""
