"""gSDE (sigma_mode="sde"): the math by hand, the NumPy acting kernel against the torch head,
the collector's draws (when the exploration matrices change), the fall-backs, and exact resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

import ppox
from ppox.config import Config, PolicyConfig
from ppox.distributions.base import noisy_heads
from ppox.distributions.normal import SDE_VARIANCE_FLOOR, GaussianHead, SDENormal, sde_log_std
from ppox.errors import ConfigError
from ppox.io.checkpoint import load_checkpoint
from ppox.nn.actor_critic import ActorCritic
from ppox.nn.numpy_policy import NumpyActorCritic
from ppox.training import backends
from ppox.training.trainer import Trainer

BOX3 = spaces.Box(-1.0, 1.0, (3,), np.float32)
OBS6 = spaces.Box(-5.0, 5.0, (6,), np.float32)


def sde_model(**policy) -> ActorCritic:
    torch.manual_seed(0)
    cfg = PolicyConfig(**{"sigma_mode": "sde", "init_log_std": -0.5, **policy})
    model = ActorCritic(OBS6, BOX3, cfg)
    with torch.no_grad():  # a matrix of scales that is not constant, so every entry matters
        model.head.log_std.add_(0.3 * torch.randn_like(model.head.log_std))
    return model


def test_sde_log_std_by_hand():
    latent = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    log_scale = torch.tensor([[0.0, math.log(2.0)], [math.log(3.0), 0.0]])  # σ = [[1, 2], [3, 1]]
    got = sde_log_std(latent, log_scale)
    # state 1: dim 0: 1²·1² + 2²·3² = 37, dim 1: 1²·2² + 2²·1² = 8; state 2: the floor only
    want = 0.5 * torch.log(torch.tensor([[37.0, 8.0], [0.0, 0.0]]) + SDE_VARIANCE_FLOOR)
    torch.testing.assert_close(got, want)


def test_a_sample_is_the_mean_plus_the_features_times_the_scaled_matrix():
    head = GaussianHead(2, spaces.Box(-1.0, 1.0, (1,), np.float32), PolicyConfig(sigma_mode="sde"))
    with torch.no_grad():
        head.mean.weight.zero_()
        head.mean.bias.fill_(0.5)
        head.log_std.copy_(torch.log(torch.tensor([[2.0], [3.0]])))
    head.eps = torch.tensor([[[1.0], [-1.0]]])  # one env, F = 2, d = 1
    dist = head(torch.tensor([[1.0, 2.0]]))
    assert isinstance(dist, SDENormal)
    action = dist.sample()
    assert action.item() == pytest.approx(0.5 + (1 * 2 * 1 + 2 * 3 * -1))  # μ + Σ_f φ_f σ_f ε_f
    # its log-density is that of N(μ, φ²·σ²) = N(0.5, 1·4 + 4·9 = 40)
    var = 40.0 + SDE_VARIANCE_FLOOR
    want = -0.5 * (action.item() - 0.5) ** 2 / var - 0.5 * math.log(2 * math.pi * var)
    assert dist.log_prob(action).item() == pytest.approx(want, rel=1e-6)


def test_the_noise_of_one_state_has_the_variance_the_log_prob_uses():
    head = GaussianHead(3, BOX3, PolicyConfig(sigma_mode="sde", init_log_std=-0.7))
    g = torch.Generator().manual_seed(0)
    n = 200_000
    head.eps = head._draw(n, g)
    with torch.no_grad():
        dist = head(torch.tensor([[0.5, -1.5, 2.0]]).expand(n, 3))
        noise = dist.sample() - dist.mean
    np.testing.assert_allclose(noise.std(0).numpy(), dist.log_std[0].exp().numpy(), rtol=0.01)


@pytest.mark.parametrize(
    "policy",
    [
        {},
        {"hidden_sizes": (200, 200)},
        {"shared_trunk": True},
        {"activation": "relu", "sde_learn_features": True},
    ],
    ids=["joint-plan", "wide", "shared", "relu"],
)
def test_numpy_acting_matches_the_torch_head(policy):
    model = sde_model(**policy)
    net = NumpyActorCritic(model)
    net.refresh()
    obs = np.random.default_rng(1).normal(size=(7, 6)).astype(np.float32)
    noise = net.noise(8, 7, torch.Generator().manual_seed(2))
    action, logp, value = net.act(obs, noise[5])
    with torch.no_grad():
        model.head.eps = torch.from_numpy(noise[5])
        dist, v = model(torch.from_numpy(obs))
        np.testing.assert_allclose(
            action, dist.sample().numpy(), rtol=1e-5, atol=1e-5
        )  # sums over 200 features
        np.testing.assert_allclose(
            logp, dist.log_prob(torch.from_numpy(action)).numpy(), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(value, v.numpy(), rtol=1e-5, atol=1e-6)
    assert action.dtype == np.float32 and logp.dtype == np.float32


@pytest.mark.parametrize(
    "every, draws", [(0, [0]), (4, [0, 4, 8]), (5, [0, 5, 10]), (1, list(range(12)))]
)
def test_the_collector_draws_the_matrices_where_due_on_either_path(make_collector, every, draws):
    policy = PolicyConfig(sigma_mode="sde", sde_sample_freq=every, hidden_sizes=(16, 16))
    seen: dict[str, list[int]] = {}
    rollouts = {}
    for backend in ["torch", "auto"]:
        c = make_collector(
            "Pendulum-v1", num_envs=3, num_steps=12, policy=policy, act_backend=backend
        )
        assert (c.lean is not None) == (backend == "auto")
        head = c.model.head
        calls: list[int] = []
        real = head.draw_noise

        def spy(t, batch, generator, real=real, calls=calls, head=head):
            before = head.eps
            real(t, batch, generator)
            if head.eps is not before:
                calls.append(t)

        head.draw_noise = spy
        rollouts[backend] = c.collect()
        seen[backend] = calls
        if backend == "torch":
            eps = head.eps
    assert seen["torch"] == draws and seen["auto"] == []  # the NumPy path draws the rollout at once
    a, b = rollouts["torch"], rollouts["auto"]
    torch.testing.assert_close(a.action, b.action, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.logp, b.logp, rtol=1e-5, atol=1e-5)
    assert eps is not None and eps.shape == (3, 16, 1)  # one matrix per env
    assert len({tuple(x) for x in eps.reshape(3, -1).tolist()}) == 3


def test_gsde_acts_in_numpy_and_updates_with_autograd():
    model = sde_model()
    cfg = Config().replace(env_id="Pendulum-v1", sigma_mode="sde").validate()
    assert backends.act_backend("auto", model) == ("numpy", None)
    name, reason = backends.update_backend(cfg, model)
    assert name == "autograd" and "sigma_mode='sde'" in (reason or "")


def test_the_sde_switches_need_sigma_mode_sde():
    with pytest.raises(ConfigError, match="sde_sample_freq=4 needs sigma_mode='sde'"):
        Config().replace(sde_sample_freq=4).validate()
    with pytest.raises(ConfigError, match="sde_learn_features=True needs sigma_mode='sde'"):
        Config().replace(sde_learn_features=True).validate()


def test_a_head_without_gsde_says_so():
    hybrid = spaces.Tuple([spaces.Discrete(2), spaces.Box(-1.0, 1.0, (2,), np.float32)])
    with pytest.raises(ConfigError, match="sigma_mode='sde' is not available for the HybridHead"):
        ActorCritic(OBS6, hybrid, PolicyConfig(sigma_mode="sde"))


def test_gsde_inside_a_dict_space_draws_for_each_box():
    space = spaces.Dict(
        {"a": BOX3, "b": spaces.Box(-1.0, 1.0, (2,), np.float32), "c": spaces.Discrete(2)}
    )
    model = ActorCritic(OBS6, space, PolicyConfig(sigma_mode="sde"))
    heads = noisy_heads(model.head)
    assert len(heads) == 2
    g = torch.Generator().manual_seed(0)
    for h in heads:
        h.draw_noise(0, 4, g)
    with torch.no_grad():
        action, logp = model(torch.zeros(4, 6))[0].sample_log_prob(g)
    assert action.shape == (4, 3 + 2 + 1) and torch.isfinite(logp).all()


def test_resume_with_gsde_is_exact(tmp_path: Path, interrupted_run):
    cfg = ppox.get_preset("pendulum").config().replace(
        sigma_mode="sde", sde_sample_freq=16, init_log_std=-1.0, total_steps=4 * 64 * 6, num_envs=4,
        num_steps=64, num_minibatches=4, num_epochs=2, eval_every=512, eval_episodes=2,
        eval_deterministic=False, tensorboard=False, progress=False, checkpoint_every=100,
    )  # fmt: skip
    full, cut = tmp_path / "full", tmp_path / "cut"
    ppox.train(cfg, full)
    interrupted_run(cfg, cut, 3, lost=1)
    Trainer.resume(cut).train()
    a, b = load_checkpoint(full)["model"], load_checkpoint(cut)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert a["head.log_std"].shape == (64, 1)
    rows = [(full / "metrics.csv").read_text(), (cut / "metrics.csv").read_text()]
    evals = [[line.split(",") for line in r.splitlines()] for r in rows]
    col = evals[0][0].index("eval_return_mean")
    assert [r[col] for r in evals[0]] == [r[col] for r in evals[1]]  # stochastic evaluations too
