"""MuJoCo presets (Gymnasium's v5 tasks; continuous actions, observation and reward normalization).

Sources: the RL Baselines3 Zoo's tuned PPO entries (``hyperparams/ppo.yml``, Optuna searches of
its PR #155 and #335, written for the v2/v4 tasks; ppox runs them on v5), and the PPO paper's
MuJoCo setup where the Zoo has nothing better. Stable-Baselines3 names map to ppox's fields as
docs/presets.md lists: ``n_steps`` → num_steps, ``batch_size`` → the minibatch (num_minibatches =
num_envs · num_steps / batch_size), ``log_std_init`` → init_log_std, ``ortho_init=False`` →
init="torch", a constant learning rate → anneal_lr=False, ``normalize`` → normalize_obs and
scale_reward. Results: benchmarks/results/suite.
"""

from __future__ import annotations

from typing import Any

# The PPO paper's MuJoCo setup (Schulman et al. 2017, Table 3: 2048 steps, 10 epochs, minibatch
# 64, lr 3e-4, γ 0.99, λ 0.95) with normalization as in Huang et al. 2022 ("The 37
# implementation details of PPO").
_BASE: dict[str, Any] = {
    "num_envs": 1, "num_steps": 2048, "num_epochs": 10, "num_minibatches": 32,
    "learning_rate": 3e-4, "gamma": 0.99, "lam": 0.95, "ent_coef": 0.0, "clip_coef": 0.2,
    "normalize_obs": True, "scale_reward": True, "total_steps": 1_000_000, "eval_every": 50_000,
}  # fmt: skip

# The same batch of 2048 steps from 8 envs × 256 steps (faster on CPU) and a smaller initial σ
# (log σ = -0.5, σ ≈ 0.6; Tianshou's MuJoCo PPO default). On Walker2d-v5 the plain setup reached
# only ~1300 at 1M steps (seed 1), the Zoo's tuned Walker2d entry ~900 (seeds 1, 2), this one
# 3000-4000 (benchmarks/results/walker2d).
_STANDARD: dict[str, Any] = {**_BASE, "init_log_std": -0.5, "num_envs": 8, "num_steps": 256}

# The Zoo's tuned entries share this network: ReLU 256 × 256 for actor and critic, PyTorch's
# default initialization, σ starting at e⁻² ≈ 0.14.
_ZOO_NET: dict[str, Any] = {
    "hidden_sizes": (256, 256), "activation": "relu", "init": "torch", "init_log_std": -2.0,
}  # fmt: skip


def _zoo(env_id: str, n_steps: int, batch: int, **ppo: Any) -> dict[str, Any]:
    """A tuned Zoo entry (one env, normalized, constant learning rate) in ppox's fields."""
    return {
        **_BASE, "env_id": env_id, "num_envs": 1, "num_steps": n_steps,
        "num_minibatches": n_steps // batch, "anneal_lr": False, **ppo,
    }  # fmt: skip


# HalfCheetah: the standard setup plateaus around 1.5-3k at 1M steps (CleanRL's published
# HalfCheetah-v4 results: 1442 ± 46 and 2906 ± 1129 over two 3-seed draws). The Zoo's tuned
# entry: short rollouts, many epochs, a small initial σ and the wider ReLU network, with its
# small constant learning rate (2.06e-5) replaced: its runs were still climbing at 1M steps
# (median 5593 over 5 seeds), 3e-5 constant did not help (4880, 5177, 5326 on seeds 1-3), and
# 6e-5 annealed linearly to 0 (faster early, steadier late) reached 4728, 6030, 6553, 5655, 6671
# on seeds 1-5 (median 6030; benchmarks/results/suite).
_HALFCHEETAH = _zoo(
    "HalfCheetah-v5", 512, 64, num_epochs=20, learning_rate=6e-5, anneal_lr=True, gamma=0.98, lam=0.92,
    clip_coef=0.1, ent_coef=4.01762e-4, vf_coef=0.58096, max_grad_norm=0.8, **_ZOO_NET,
)  # fmt: skip

MUJOCO: dict[str, tuple[str, dict[str, Any]]] = {
    "halfcheetah": ("HalfCheetah-v5 (continuous, MuJoCo): 1M steps", _HALFCHEETAH),
    # Hopper: the PPO paper's setup beat the Zoo's tuned Hopper entry here (3287 vs the Zoo's
    # published 2410 at 1M steps; benchmarks/results/hopper).
    "hopper": ("Hopper-v5 (continuous, MuJoCo): 1M steps", {**_BASE, "env_id": "Hopper-v5"}),
    # Walker2d: the standard setup (4250, 4606, 4481, 672, 2076 on seeds 1-5). Without the
    # normalization, as for Ant: 3639, 1159, 1944 on seeds 1, 4, 5 (kept).
    "walker2d": ("Walker2d-v5 (continuous, MuJoCo): 1M steps", {**_STANDARD, "env_id": "Walker2d-v5"}),
    # Ant: ppox's standard setup without observation or reward normalization. With them (the
    # Zoo's active Ant entry is the PPO paper's setup with normalization; its tuned entry is
    # commented out, for 10M steps) Ant-v5 ended at 1552, 1192, 812, 1386, 763 at 1M steps
    # (seeds 1-5, IQM 1136, below the Zoo's published 1327); without, 2272, 2340, 1807, 2647,
    # 2490 (IQM 2364). The Zoo's own layout (one env × 2048, σ starting at 1, constant learning rate,
    # normalized) ended at 223 and 141 (seeds 1-2). benchmarks/results/suite, results/ant.
    "ant": (
        "Ant-v5 (continuous, MuJoCo): 1M steps",
        {**_STANDARD, "env_id": "Ant-v5", "normalize_obs": False, "scale_reward": False},
    ),
    # Humanoid: the standard setup with its 78 contact forces scaled, not standardized
    # (obs_sparse 0.1, as base-continuous): 671, 583, 948, 649, 779 on seeds 1-5 (IQM 697), where
    # the standard setup ended at 637, 638, 826, 580, 613 (IQM 630; benchmarks/results/suite and
    # bases/obs_sparse). The Zoo's tuned entry (written for 10M steps) ended at 784, 686, 539, 507
    # at 1M (seeds 1-4, median 612); without the normalization, 422 on seed 1.
    "humanoid": (
        "Humanoid-v5 (continuous, MuJoCo): 1M steps",
        {**_STANDARD, "env_id": "Humanoid-v5", "obs_sparse": 0.1},
    ),
    # HumanoidStandup: the same (its observation holds the same contact forces): 134474, 157459,
    # 156994, 98038, 146240 on seeds 1-5 (IQM 145936), in 7.3 min a run here. The Zoo's tuned entry
    # (one env × 512, 20 epochs, the wider ReLU network, lr 2.6e-5 constant) ended at 150555,
    # 108699, 157969, 148914, 88077 (IQM 137342) in 15.9 min. Within each other's spread; the
    # simpler, faster setup has the higher IQM. benchmarks/results/suite. It was base-continuous's
    # setup until that base took 4 envs × 1024 steps and obs_norm_until (151674, 147508, 158464 on
    # seeds 1-3; benchmarks/results/bases/layout_4x1024_obs_until).
    "humanoidstandup": (
        "HumanoidStandup-v5 (continuous, MuJoCo): 1M steps",
        {**_STANDARD, "env_id": "HumanoidStandup-v5", "obs_sparse": 0.1},
    ),
    # InvertedPendulum: the Zoo's tuned entry (32-step rollouts, clip 0.4, constant learning rate)
    # reached 1000 and then fell back: final evaluations 33.9 and 13.7 at 1M steps (seeds 1, 2;
    # best along the way 1000 for both), as the per-seed Zoo agents on the Hugging Face hub (some
    # at 1000, some at 11). The standard setup ends at 1000 on both seeds (benchmarks/results/inverted_pendulums).
    "invertedpendulum": (
        "InvertedPendulum-v5 (continuous, MuJoCo): 1M steps",
        {**_STANDARD, "env_id": "InvertedPendulum-v5"},
    ),
    # InvertedDoublePendulum: the standard setup without observation normalization. Every setup
    # tried reaches the ceiling (~9360) early; what differs is whether a run keeps it.
    # With the observations standardized, runs fall from it later: the standard setup ended at
    # 9339, 7570, 8614, 9356, 8458 (seeds 1-5), with the constraint force scaled (obs_sparse 0.1,
    # the base's setup before it took 4 x 1024 and obs_norm_until) at 9352, 9355, 8507, 9357,
    # 9327, 9327, 9359, 6749, 7529, 8451 (seeds 1-10, IQM 9083). Without the normalization every
    # one of seeds 1-10 stayed at 9343-9360 from 100k steps on and ended at 9358-9360
    # (docs/presets.md, "InvertedDoublePendulum-v5, where the base fell short"). The Zoo's tuned
    # entry reached 9360 on the way and ended at 2416 and 5636 (seeds 1, 2).
    # benchmarks/results/inverted_pendulums, suite, bases/idp_obs_norm.
    "inverteddoublependulum": (
        "InvertedDoublePendulum-v5 (continuous, MuJoCo): 1M steps",
        {**_STANDARD, "env_id": "InvertedDoublePendulum-v5", "normalize_obs": False},
    ),
    # Reacher: the Zoo's tuned entry, with SB3's default network (64 × 64 tanh, orthogonal, σ
    # starting at 1).
    "reacher": (
        "Reacher-v5 (continuous, MuJoCo): 1M steps",
        _zoo("Reacher-v5", 512, 32, num_epochs=5, learning_rate=1.04019e-4, gamma=0.9, lam=1.0,
             clip_coef=0.3, ent_coef=7.52585e-8, vf_coef=0.950368, max_grad_norm=0.9),
    ),
    # Swimmer: the Zoo's tuned entry (γ 0.9999: the reward is forward speed and episodes are
    # 1000 steps; a shorter horizon learns to wiggle in place).
    "swimmer": (
        "Swimmer-v5 (continuous, MuJoCo): 1M steps",
        {**_BASE, "env_id": "Swimmer-v5", "num_envs": 4, "num_steps": 1024, "num_minibatches": 16,
         "learning_rate": 6e-4, "anneal_lr": False, "gamma": 0.9999, "lam": 0.98},
    ),
    # Pusher: no Zoo entry; the standard setup (CleanRL's published Pusher-v4: -40 at 1M steps).
    "pusher": ("Pusher-v5 (continuous, MuJoCo): 1M steps", {**_STANDARD, "env_id": "Pusher-v5"}),
}  # fmt: skip
"""Name → (description, overrides); see :mod:`ppox.presets`."""
