"""The hand-written PPO-Clip gradient (ppox.nn.fused) against autograd on the same loss."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from gymnasium import spaces

from ppox.config import Config, PolicyConfig
from ppox.core.losses import (
    clip_fraction,
    clipped_surrogate,
    kl_estimate,
    normalize_advantages,
    value_loss,
)
from ppox.nn.actor_critic import ActorCritic
from ppox.nn.fused import FusedClipStep
from ppox.training.learner import Experience, Learner
from ppox.training.optim import FlatParams
from ppox.types import Batch

B = 48
DUAL = 4  # samples of batch_for where a dual clip of 3 is active


def model_for(
    action_space: spaces.Space, obs_shape: tuple[int, ...] = (6,), **policy
) -> ActorCritic:
    torch.manual_seed(0)
    m = ActorCritic(
        spaces.Box(-5.0, 5.0, obs_shape, np.float32),
        action_space,
        PolicyConfig(policy_init_gain=1.0, **policy),
    )
    with (
        torch.no_grad()
    ):  # non-zero biases, a non-trivial σ: every term of the gradient is exercised
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return m


def batch_for(
    model: ActorCritic, obs_shape: tuple[int, ...], masked: bool = False, seed: int = 1
) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(B, *obs_shape, generator=g)
    mask = None
    if masked:
        n = model.head.mask_shape[0]  # type: ignore[index]
        mask = torch.rand(B, n, generator=g) < 0.6
        mask[torch.arange(B), torch.randint(0, n, (B,), generator=g)] = (
            True  # at least one legal action
        )
    with torch.no_grad():
        dist, value = model(obs, mask)
        action, logp = dist.sample_log_prob(g)
    logp = logp + 0.3 * torch.randn(B, generator=g)  # ratios on both sides of the clip range
    adv = torch.randn(B, generator=g) * 2
    logp[:DUAL] -= (
        2.0  # ratios near e² ≈ 7 on strongly negative advantages: where a dual clip of 3 binds
    )
    adv[:DUAL] = -4.0 - adv[:DUAL].abs()
    return Batch(obs, action, logp, value + 0.5 * torch.randn(B, generator=g), adv, value + torch.randn(B, generator=g),
                 mask)  # fmt: skip


CASES = [
    ("discrete", spaces.Discrete(5), {}, (6,), False),
    ("temperature-relu-masked", spaces.Discrete(4), {"temperature": 0.5, "activation": "relu"}, (6,), True),
    ("shared-elu", spaces.Discrete(3), {"shared_trunk": True, "activation": "elu"}, (6,), False),
    ("box-independent", spaces.Box(-1.0, 1.0, (3,), np.float32), {"init_log_std": -0.5}, (6,), False),
    ("box-fixed-3-layers", spaces.Box(-1.0, 1.0, (2,), np.float32), {"sigma_mode": "fixed", "hidden_sizes": (16, 8, 8)}, (6,), False),
    ("image-like-box-obs", spaces.Discrete(2), {"hidden_sizes": (16,)}, (2, 3), False),
]  # fmt: skip
LOSSES = [
    {"clip_coef": 0.2, "dual_clip": None, "value_clip": None, "vf_coef": 0.5, "ent_coef": 0.0},
    {"clip_coef": 0.1, "dual_clip": 3.0, "value_clip": 0.2, "vf_coef": 0.7, "ent_coef": 0.05},
]


@pytest.mark.parametrize("loss", LOSSES, ids=["plain", "dual-valueclip-entropy"])
@pytest.mark.parametrize("name, space, policy, obs_shape, masked", CASES, ids=[c[0] for c in CASES])
def test_fused_gradient_is_autograds(name, space, policy, obs_shape, masked, loss):
    model = model_for(space, obs_shape, **policy)
    assert FusedClipStep.supports(model)
    flat = FlatParams([p for p in model.parameters() if p.requires_grad])
    mb = batch_for(model, obs_shape, masked)
    adv = normalize_advantages(mb.adv)
    fused = FusedClipStep(model)
    fb = fused.batch(mb._replace(adv=adv))
    f = fused.forward(fb)
    flat.zero_grad()
    *terms, clipped = fused.backward(f, fb, **loss)
    ours = flat.grad.clone()

    flat.zero_grad()
    dist, value = model(mb.obs, mb.mask)
    log_ratio = dist.log_prob(mb.action) - mb.logp
    pg = clipped_surrogate(
        adv, log_ratio, clip_coef=loss["clip_coef"], dual_clip=loss["dual_clip"]
    ).mean()
    vl = value_loss(value, mb.value, mb.ret, clip=loss["value_clip"]).mean()
    entropy = dist.entropy().mean()
    (pg + loss["vf_coef"] * vl - loss["ent_coef"] * entropy).backward()

    torch.testing.assert_close(
        torch.from_numpy(f.log_ratio), log_ratio.detach(), rtol=1e-5, atol=1e-5
    )
    assert f.approx_kl() == pytest.approx(kl_estimate(log_ratio).mean().item(), rel=1e-4, abs=1e-7)
    torch.testing.assert_close(
        torch.tensor(terms), torch.stack([pg, vl, entropy]).detach(), rtol=1e-5, atol=1e-5
    )
    assert clipped == pytest.approx(clip_fraction(log_ratio, loss["clip_coef"]).item())
    assert 0.0 < clipped < 1.0  # the batch puts ratios on both sides of the clip range
    if loss["dual_clip"] is not None:  # the dual clip's bound is the objective on some samples
        ratio = log_ratio.detach().exp()
        floored = (adv < 0) & (
            loss["dual_clip"] * adv
            > torch.minimum(
                ratio * adv, ratio.clamp(1 - loss["clip_coef"], 1 + loss["clip_coef"]) * adv
            )
        )
        assert floored.sum() >= DUAL // 2
    torch.testing.assert_close(ours, flat.grad, rtol=1e-4, atol=2e-6)
    assert ours.abs().sum() > 0


@pytest.mark.parametrize(
    "space", [spaces.Discrete(3), spaces.Box(-1.0, 1.0, (2,), np.float32)], ids=["discrete", "box"]
)
@pytest.mark.parametrize("num_minibatches", [4, 1], ids=["4-minibatches", "whole-batch"])
def test_a_learner_trains_the_same_with_either_backend(space, num_minibatches):
    cfg = Config().replace(num_steps=B, num_envs=1, num_epochs=3, num_minibatches=num_minibatches, learning_rate=1e-2,
                           ent_coef=0.01, value_clip=0.2).validate()  # fmt: skip
    out = {}
    for backend in ("auto", "autograd"):
        model = model_for(space, hidden_sizes=(16, 16))
        learner = Learner(
            model, cfg.replace(update_backend=backend), torch.Generator().manual_seed(0)
        )
        assert (learner.fused is not None) == (backend == "auto")
        metrics = learner.update(batch_for(model, (6,)), progress=0.0)
        assert metrics["updates"] == 3 * num_minibatches
        out[backend] = (learner.flat.flat.detach().clone(), metrics)
    torch.testing.assert_close(out["auto"][0], out["autograd"][0], rtol=1e-4, atol=1e-5)
    for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm"):
        assert out["auto"][1][k] == pytest.approx(out["autograd"][1][k], rel=1e-3, abs=1e-6), k


@pytest.mark.parametrize(
    "order, recompute, norm_adv",
    [
        ("fixed", False, "minibatch"),
        ("trajectories", False, "batch"),
        ("transitions", True, "minibatch"),
    ],
)
def test_either_backend_trains_the_same_on_a_rollout(make_collector, order, recompute, norm_adv):
    """Every way of cutting minibatches out of a collected rollout (the fused step takes them
    out of one NumPy copy of the epoch's batch) steps the parameters as autograd does."""
    c = make_collector(
        "CartPole-v1", num_envs=2, num_steps=32, policy=PolicyConfig(hidden_sizes=(16,))
    )
    r = c.collect()
    cfg = Config().replace(num_steps=32, num_envs=2, num_epochs=3, num_minibatches=4, learning_rate=1e-2,
                           minibatch_order=order, recompute_adv=recompute, norm_adv=norm_adv).validate()  # fmt: skip
    out = {}
    for backend in ("auto", "autograd"):
        model = copy.deepcopy(c.model)
        learner = Learner(
            model, cfg.replace(update_backend=backend), torch.Generator().manual_seed(0)
        )
        assert (learner.fused is not None) == (backend == "auto")
        m = learner.update(r, progress=0.0)
        out[backend] = (learner.flat.flat.detach().clone(), m)
    torch.testing.assert_close(out["auto"][0], out["autograd"][0], rtol=1e-4, atol=1e-5)
    assert out["auto"][1]["updates"] == out["autograd"][1]["updates"] >= 12
    assert out["auto"][1]["policy_loss"] == pytest.approx(
        out["autograd"][1]["policy_loss"], rel=1e-3, abs=1e-6
    )


@pytest.mark.parametrize("backend", ["auto", "autograd"])
@pytest.mark.parametrize("norm_adv", ["minibatch", "batch", "off"])
def test_the_whole_batch_shortcut_trains_as_an_indexed_minibatch(backend, norm_adv):
    """One minibatch of the whole batch skips the shuffle and the copy by index (and, for the
    fused step, converts the batch once per update): the same steps as the general path."""
    cfg = Config().replace(num_steps=B, num_envs=1, num_epochs=4, num_minibatches=1, learning_rate=1e-2,
                           norm_adv=norm_adv, update_backend=backend).validate()  # fmt: skip
    out = []
    for shortcut in (True, False):
        model = model_for(spaces.Discrete(3), hidden_sizes=(16,))
        learner = Learner(model, cfg, torch.Generator().manual_seed(0))
        batch = batch_for(model, (6,))
        assert learner._minibatches(Experience(batch, None, None)) == [None]
        if not shortcut:
            learner._minibatches = lambda exp: [torch.arange(B)]  # type: ignore[method-assign,assignment]
        m = learner.update(batch, progress=0.0)
        out.append((learner.flat.flat.detach().clone(), m))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-5, atol=1e-6)
    assert out[0][1]["policy_loss"] == pytest.approx(out[1][1]["policy_loss"], rel=1e-4, abs=1e-7)


def test_a_ready_made_float64_batch_trains_as_float32():
    """Learner.update takes a ready-made Batch: other float types are converted, not refused."""
    cfg = Config().replace(num_steps=B, num_envs=1, num_epochs=2, num_minibatches=2).validate()
    out = []
    for dtype in (torch.float32, torch.float64):
        model = model_for(spaces.Box(-1.0, 1.0, (2,), np.float32), hidden_sizes=(16,))
        learner = Learner(model, cfg, torch.Generator().manual_seed(0))
        assert learner.fused is not None
        batch = batch_for(model, (6,))
        batch = Batch(*(x if x is None else x.to(dtype) for x in batch))
        learner.update(batch, progress=0.0)
        out.append(learner.flat.flat.detach().clone())
    torch.testing.assert_close(out[0], out[1])


def test_what_the_fused_step_does_not_serve_goes_through_autograd():
    cfg = Config().validate()
    state_sigma = model_for(spaces.Box(-1.0, 1.0, (2,), np.float32), sigma_mode="state")
    assert not FusedClipStep.supports(state_sigma)
    multi = model_for(spaces.MultiDiscrete([2, 3]))
    assert not FusedClipStep.supports(multi)
    with pytest.raises(ValueError, match="FusedClipStep needs"):
        FusedClipStep(multi)
    plain = model_for(spaces.Discrete(2))
    assert FusedClipStep.supports(plain, cfg.ppo)
    assert not FusedClipStep.supports(plain, cfg.replace(algo="ppo-penalty").ppo)
    assert Learner(plain, cfg.replace(algo="reinforce"), torch.Generator()).fused is None
