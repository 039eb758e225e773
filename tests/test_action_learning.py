"""PPO learns tiny one-step tasks where the right action is known, for every action space.

Each run goes through the whole pipeline (vector env, collector with masks, learner, greedy
evaluation on fixed seeds, checkpoint, ``load_policy().predict``) in a few seconds. Thresholds
sit well above what a random policy gets and were checked over several seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
import toy_envs

import ppox
from ppox.config import Config

FAST = dict(
    num_envs=8, num_steps=16, num_epochs=4, num_minibatches=2, learning_rate=3e-3, anneal_lr=False,
    hidden_sizes=(64,), gamma=0.9, eval_every=0, eval_episodes=40, tensorboard=False, progress=False,
)  # fmt: skip

# (env id, overrides, total steps, eval threshold, random policy's mean reward)
CASES = {
    "multidiscrete": ("PpoxToyMultiDiscreteBandit-v0", {}, 4096, 0.95, 0.29),
    "multidiscrete-flat": ("PpoxToyMultiDiscreteBandit-v0", {"multi_discrete": "flat"}, 4096, 0.95, 0.29),
    "multibinary": ("PpoxToyMultiBinaryBandit-v0", {}, 4096, 0.95, 0.5),
    "hybrid": ("PpoxToyHybridBandit-v0", {}, 8192, 0.85, 0.2),
    "hybrid-autoregressive": ("PpoxToyHybridBandit-v0", {"hybrid_mode": "autoregressive"}, 8192, 0.85, 0.2),
    "hybrid-type-given-params": ("PpoxToyHybridBandit-v0", {"hybrid_mode": "type_given_params"}, 8192, 0.85, 0.2),
    "hybrid-type-given-params-nodetach": (
        "PpoxToyHybridBandit-v0", {"hybrid_mode": "type_given_params", "hybrid_detach": False}, 8192, 0.85, 0.2,
    ),
    "nested-dict": ("PpoxToyNestedDictBandit-v0", {}, 8192, 0.85, 0.4),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_learns_the_right_action(name, tmp_path):
    env_id, overrides, steps, threshold, random_level = CASES[name]
    cfg = Config().replace(env_id=env_id, total_steps=steps, seed=1, **{**FAST, **overrides})
    summary = ppox.train(cfg, run_dir=tmp_path / name)
    assert summary["eval_return_mean"] > threshold > random_level, summary["eval_return_mean"]
    # the saved policy acts in the env's own format
    policy = ppox.load_policy(tmp_path / name)
    env = toy_envs.gym.make(env_id)
    obs, info = env.reset(seed=5)
    action = policy.predict(obs, mask=info.get("action_mask"))
    assert env.action_space.contains(action)
    env.close()


def test_hybrid_policy_uses_the_parameter_of_the_chosen_type(tmp_path):
    """After training, the greedy parameter of the chosen type tracks its target c_k."""
    cfg = Config().replace(env_id="PpoxToyHybridBandit-v0", total_steps=8192, seed=2, **FAST)
    ppox.train(cfg, run_dir=tmp_path / "h")
    policy = ppox.load_policy(tmp_path / "h")
    rng = np.random.default_rng(0)
    for k in (0, 1):
        c = rng.uniform(-0.8, 0.8, (20, 2)).astype(np.float32)
        obs = np.concatenate([np.tile(np.eye(3, dtype=np.float32)[k], (20, 1)), c], 1)
        types, params = policy.predict(obs)
        assert (types == k).all()
        assert np.abs(params[:, k] - c[:, k]).mean() < 0.15
