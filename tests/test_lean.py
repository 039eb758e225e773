"""The NumPy acting path (ppox.nn.lean): the same numbers as the torch model, correct sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from ppox.config import PolicyConfig
from ppox.nn.actor_critic import ActorCritic
from ppox.nn.lean import LeanActor

BOX = spaces.Box(-5.0, 5.0, (6,), np.float32)


def model_for(action_space: spaces.Space, **policy) -> ActorCritic:
    torch.manual_seed(0)
    cfg = PolicyConfig(policy_init_gain=1.0, **policy)
    m = ActorCritic(BOX, action_space, cfg)
    with torch.no_grad():  # non-zero biases and a non-trivial σ, so every term is exercised
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


CASES = [
    (spaces.Discrete(5), {}),
    (spaces.Discrete(3, start=-1), {"temperature": 0.5, "activation": "relu"}),
    (spaces.Discrete(4), {"shared_trunk": True, "activation": "elu"}),
    (spaces.Box(-1.0, 1.0, (3,), np.float32), {"sigma_mode": "independent", "init_log_std": -0.5}),
    (spaces.Box(-1.0, 1.0, (2,), np.float32), {"sigma_mode": "fixed", "init_log_std": 0.3}),
    (spaces.Box(-1.0, 1.0, (3,), np.float32), {"sigma_mode": "state", "hidden_sizes": (32, 16, 8)}),
]


@pytest.mark.parametrize("space, policy", CASES)
def test_lean_actor_matches_the_torch_model(space, policy):
    model = model_for(space, **policy)
    lean = LeanActor(model)
    lean.refresh()
    obs = np.random.default_rng(1).normal(size=(7, 6)).astype(np.float32)
    noise = lean.noise(3, 7, torch.Generator().manual_seed(2))[0]
    action, logp, value = lean.act(obs, noise)
    with torch.no_grad():
        dist, v = model(torch.from_numpy(obs))
        np.testing.assert_allclose(value, v.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            logp, dist.log_prob(torch.from_numpy(action)).numpy(), rtol=1e-5, atol=1e-5
        )
        if isinstance(space, spaces.Box):  # the draw is mean + σ·ε with the given ε
            expected = dist.mean + torch.from_numpy(noise) * dist.log_std.exp()
            np.testing.assert_allclose(action, expected.numpy(), rtol=1e-5, atol=1e-6)
            assert action.dtype == np.float32 and logp.dtype == np.float32


def test_refresh_picks_up_new_weights():
    model = model_for(spaces.Discrete(3))
    lean = LeanActor(model)
    lean.refresh()
    obs = np.ones((2, 6), np.float32)
    u = np.full(2, 0.5)
    before = lean.act(obs, u)[2]
    with torch.no_grad():
        model.value_out.bias.add_(1.0)
    np.testing.assert_allclose(lean.act(obs, u)[2], before)  # a snapshot until refreshed
    lean.refresh()
    np.testing.assert_allclose(lean.act(obs, u)[2], before + 1.0, rtol=1e-6)


def test_categorical_draws_follow_the_probabilities():
    model = model_for(spaces.Discrete(4))
    lean = LeanActor(model)
    lean.refresh()
    n = 40_000
    obs = np.tile(np.linspace(-1, 1, 6, dtype=np.float32), (n, 1))
    action, _, _ = lean.act(obs, lean.noise(1, n, torch.Generator().manual_seed(0))[0])
    with torch.no_grad():
        probs = model.dist(torch.from_numpy(obs[:1])).probs[0].numpy()
    freq = np.bincount(action, minlength=4) / n
    # 4 standard errors of a binomial frequency
    assert np.all(np.abs(freq - probs) < 4 * np.sqrt(probs * (1 - probs) / n) + 1e-9), (freq, probs)


def test_masked_actions_are_never_drawn_even_at_the_ends_of_the_unit_interval():
    model = model_for(spaces.Discrete(5))
    lean = LeanActor(model)
    lean.refresh()
    mask = np.array([[False, True, False, True, False]] * 6)
    obs = np.zeros((6, 6), np.float32)
    u = np.array([0.0, 1e-300, 0.3, 0.7, 1 - 2**-53, np.nextafter(1.0, 0.0)])
    action, logp, _ = lean.act(obs, u, mask)
    assert set(action.tolist()) <= {1, 3}
    assert action[0] == 1 and action[-1] == 3
    assert np.all(np.isfinite(logp))
    with torch.no_grad():
        dist = model.dist(torch.from_numpy(obs), torch.from_numpy(mask))
        np.testing.assert_allclose(
            logp, dist.log_prob(torch.from_numpy(action)).numpy(), rtol=1e-5, atol=1e-6
        )


def test_models_the_lean_path_does_not_serve_fall_back_to_torch(make_collector):
    multi = ActorCritic(BOX, spaces.MultiDiscrete([2, 3]), PolicyConfig())
    assert not LeanActor.supports(multi)
    with pytest.raises(ValueError, match="LeanActor needs"):
        LeanActor(multi)
    image = ActorCritic(spaces.Box(0, 255, (8, 8, 1), np.uint8), spaces.Discrete(2), PolicyConfig())
    assert not LeanActor.supports(image)
    assert make_collector("CartPole-v1").lean is not None
    assert make_collector("CartPole-v1", act_backend="torch").lean is None
    assert make_collector("PpoxToyMultiDiscreteBandit-v0").lean is None
