"""Action heads and distributions (src/ppox/distributions) and network init (src/ppox/nn).

Everything goes through ``make_head(space, in_features, PolicyConfig(...))`` as the rest of ppox
does. Reference numbers come from ``torch.distributions`` or are computed by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn
from torch.distributions import Categorical, Normal, kl_divergence

from ppox.config import PolicyConfig
from ppox.distributions.categorical import MaskedCategorical, check_mask
from ppox.distributions.heads import LOG_STD_MAX, LOG_STD_MIN, make_head
from ppox.distributions.normal import DiagNormal
from ppox.errors import EnvError
from ppox.nn.actor_critic import ActorCritic

FEAT = 6
B = 5


def feats(b: int = B, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, FEAT, generator=torch.Generator().manual_seed(seed))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


BOX = spaces.Box(
    low=np.array([-1.0, -2.0, 0.0], np.float32), high=np.array([1.0, 3.0, 10.0], np.float32)
)


# --------------------------------------------------------------------------------------------
# Shapes and dtypes of every head
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "space, cfg, shape, dtype",
    [
        (spaces.Discrete(4), PolicyConfig(), (B,), torch.int64),
        (spaces.Discrete(3, start=3), PolicyConfig(), (B,), torch.int64),
        (BOX, PolicyConfig(sigma_mode="independent"), (B, 3), torch.float32),
        (BOX, PolicyConfig(sigma_mode="fixed"), (B, 3), torch.float32),
        (BOX, PolicyConfig(sigma_mode="state"), (B, 3), torch.float32),
    ],
    ids=["discrete", "discrete-start3", "box-independent", "box-fixed", "box-state"],
)
def test_head_sample_shapes_and_dtypes(space, cfg, shape, dtype):
    head = make_head(space, FEAT, cfg)
    assert head.action_shape == shape[1:]
    assert head.action_dtype == dtype
    dist = head(feats())
    for a in (dist.sample(gen()), dist.sample_log_prob(gen())[0], dist.mode()):
        assert a.shape == shape
    assert dist.sample(gen()).dtype == dtype
    a, logp = dist.sample_log_prob(gen())
    assert a.dtype == dtype
    assert logp.shape == (B,)
    assert dist.log_prob(a).shape == (B,)
    assert dist.entropy().shape == (B,)
    assert dist.kl(dist).shape == (B,)
    # the sampled action lies where the env expects it after to_env
    env_a = head.to_env(a.detach().numpy())
    if isinstance(space, spaces.Discrete):
        assert np.all((env_a >= space.start) & (env_a < space.start + space.n))
    else:
        assert np.all((env_a >= space.low) & (env_a <= space.high))
        assert all(space.contains(x) for x in env_a)


def test_samples_follow_the_generator():
    head = make_head(spaces.Discrete(6), FEAT, PolicyConfig(policy_init_gain=1.0))
    dist = head(feats())
    assert torch.equal(dist.sample(gen(3)), dist.sample(gen(3)))
    box = make_head(BOX, FEAT, PolicyConfig())(feats())
    assert torch.equal(box.sample(gen(3)), box.sample(gen(3)))
    assert not torch.equal(box.sample(gen(3)), box.sample(gen(4)))


# --------------------------------------------------------------------------------------------
# DiagNormal against torch.distributions.Normal
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_diag_normal_log_prob_entropy_match_torch(seed):
    g = gen(seed)
    mean = torch.randn(7, 4, generator=g) * 3
    log_std = torch.randn(7, 4, generator=g)
    action = torch.randn(7, 4, generator=g) * 5
    d = DiagNormal(mean, log_std)
    ref = Normal(mean, log_std.exp())
    torch.testing.assert_close(
        d.log_prob(action), ref.log_prob(action).sum(-1), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(d.entropy(), ref.entropy().sum(-1), rtol=1e-5, atol=1e-5)


def test_diag_normal_state_independent_log_std_broadcasts():
    mean = torch.randn(4, 2, generator=gen())
    log_std = torch.tensor([-1.0, 0.5])
    d = DiagNormal(mean, log_std)
    # entropy of a normal: log σ + ½ log(2πe), summed over dims
    expected = (-1.0 + 0.5) + 2 * 0.5 * math.log(2 * math.pi * math.e)
    torch.testing.assert_close(d.entropy(), torch.full((4,), expected))
    # the density at the mean: -Σ (log σ + ½ log 2π)
    torch.testing.assert_close(d.log_prob(mean), torch.full((4,), 0.5 - math.log(2 * math.pi)))


@pytest.mark.parametrize("sigma_mode", ["independent", "fixed", "state"])
def test_gaussian_sample_log_prob_equals_log_prob_of_sample(sigma_mode):
    head = make_head(BOX, FEAT, PolicyConfig(sigma_mode=sigma_mode, init_log_std=-0.7))
    dist = head(feats(64))
    a, logp = dist.sample_log_prob(gen(1))
    torch.testing.assert_close(logp, dist.log_prob(a), rtol=1e-5, atol=1e-5)


def test_gaussian_samples_have_the_distribution_moments():
    mean = torch.tensor([[0.5, -2.0]])
    log_std = torch.tensor([[math.log(0.3), math.log(2.0)]])
    d = DiagNormal(mean.expand(20000, 2), log_std.expand(20000, 2))
    for a in (d.sample(gen(0)), d.sample_log_prob(gen(1))[0]):
        torch.testing.assert_close(a.mean(0), mean[0], atol=0.05, rtol=0)
        torch.testing.assert_close(a.std(0), log_std[0].exp(), atol=0.05, rtol=0.03)


# --------------------------------------------------------------------------------------------
# Categorical
# --------------------------------------------------------------------------------------------


def test_categorical_sample_log_prob_equals_log_prob_of_sample():
    head = make_head(spaces.Discrete(5), FEAT, PolicyConfig(policy_init_gain=2.0))
    dist = head(feats(64))
    a, logp = dist.sample_log_prob(gen(2))
    assert torch.equal(logp, dist.log_prob(a))
    ref = Categorical(logits=head.logits(feats(64)))
    torch.testing.assert_close(dist.log_prob(a), ref.log_prob(a))
    torch.testing.assert_close(dist.entropy(), ref.entropy())


def test_categorical_sample_frequencies_match_probabilities():
    logits = torch.tensor([[1.0, 0.0, -1.0, 2.0]])
    d = MaskedCategorical(logits.expand(40000, 4))
    counts = torch.bincount(d.sample(gen(0)), minlength=4).float() / 40000
    torch.testing.assert_close(counts, logits.softmax(-1)[0], atol=0.01, rtol=0)
    assert torch.equal(d.mode(), torch.full((40000,), 3))


def test_discrete_start_is_added_by_to_env_only():
    head = make_head(spaces.Discrete(3, start=3), FEAT, PolicyConfig())
    stored = np.array([0, 1, 2, 1])
    before = stored.copy()
    assert head.to_env(stored).tolist() == [3, 4, 5, 4]
    assert np.array_equal(stored, before)  # no in-place offset of the stored action
    plain = make_head(spaces.Discrete(3), FEAT, PolicyConfig())
    assert plain.to_env(stored).tolist() == [0, 1, 2, 1]


@pytest.mark.parametrize("t", [0.5, 2.0, 5.0])
def test_temperature_divides_logits(t):
    head = make_head(spaces.Discrete(4), FEAT, PolicyConfig(temperature=t, policy_init_gain=3.0))
    x = feats()
    raw = head.logits(x)
    dist = head(x)
    torch.testing.assert_close(dist.probs, torch.softmax(raw / t, -1))
    # T=2 on hand logits: softmax([0, 2]/2) = softmax([0, 1])
    with torch.no_grad():
        head.logits.weight.zero_()
        head.logits.bias.copy_(torch.tensor([0.0, 2.0, 0.0, 0.0]))
    p = head(x).probs[0]
    e = math.exp(2.0 / t)
    torch.testing.assert_close(p, torch.tensor([1, e, 1, 1]) / (3 + e))


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------


def test_masked_actions_have_zero_probability_and_are_never_sampled():
    g = gen(5)
    logits = torch.randn(64, 6, generator=g) * 4
    mask = torch.rand(64, 6, generator=g) < 0.5
    mask[torch.arange(64), torch.randint(0, 6, (64,), generator=g)] = True
    d = MaskedCategorical(logits, mask)
    assert torch.all(d.probs[~mask] == 0.0)
    torch.testing.assert_close(d.probs.sum(-1), torch.ones(64))
    for s in range(50):
        a = d.sample(gen(s))
        assert mask[torch.arange(64), a].all()
    a, logp = d.sample_log_prob(gen(99))
    assert mask[torch.arange(64), a].all()
    assert torch.isfinite(logp).all()
    # legal probabilities are the softmax over the legal set only
    ref = torch.where(mask, logits, torch.full_like(logits, -math.inf)).softmax(-1)
    torch.testing.assert_close(d.probs, ref)
    assert torch.isfinite(d.entropy()).all()


@pytest.mark.parametrize(
    "mask, expected",
    [
        ([True, False, True, False], math.log(2)),
        ([True, True, True, True], math.log(4)),
        ([False, False, True, False], 0.0),
        ([True, True, True, False], math.log(3)),
    ],
)
def test_masked_entropy_is_entropy_of_renormalized_legal_set(mask, expected):
    d = MaskedCategorical(torch.zeros(1, 4), torch.tensor([mask]))
    torch.testing.assert_close(d.entropy(), torch.tensor([expected]))
    legal = torch.tensor(mask)
    torch.testing.assert_close(
        d.probs[0][legal], torch.full((int(legal.sum()),), 1 / int(legal.sum()))
    )


def test_masked_entropy_hand_numbers_nonuniform():
    # logits [ln 1, ln 3, 100, ln 1] with action 2 masked → probs [0.2, 0.6, 0, 0.2]
    logits = torch.tensor([[0.0, math.log(3.0), 100.0, 0.0]])
    d = MaskedCategorical(logits, torch.tensor([[True, True, False, True]]))
    torch.testing.assert_close(d.probs, torch.tensor([[0.2, 0.6, 0.0, 0.2]]))
    h = -(0.2 * math.log(0.2) * 2 + 0.6 * math.log(0.6))
    torch.testing.assert_close(d.entropy(), torch.tensor([h]))
    torch.testing.assert_close(d.log_prob(torch.tensor([1])), torch.tensor([math.log(0.6)]))


def test_head_forward_applies_mask():
    head = make_head(spaces.Discrete(4), FEAT, PolicyConfig(policy_init_gain=1.0))
    mask = torch.tensor([[True, False, False, True]]).expand(B, 4)
    d = head(feats(), mask)
    assert torch.all(d.probs[:, 1:3] == 0)
    assert set(d.sample(gen()).tolist()) <= {0, 3}


def test_check_mask_rejects_row_without_legal_action():
    ok = torch.tensor([[True, False], [False, True]])
    check_mask(ok)  # no error
    bad = torch.tensor([[True, False], [False, False], [True, True]])
    with pytest.raises(EnvError, match=r"index\(es\) \[1\]"):
        check_mask(bad)


# --------------------------------------------------------------------------------------------
# KL divergences
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_categorical_kl_matches_torch(seed):
    g = gen(seed)
    p_logits, q_logits = torch.randn(2, 16, 5, generator=g) * 2
    p, q = MaskedCategorical(p_logits), MaskedCategorical(q_logits)
    ref = kl_divergence(Categorical(logits=p_logits), Categorical(logits=q_logits))
    torch.testing.assert_close(p.kl(q), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(p.kl(p), torch.zeros(16), atol=1e-7, rtol=0)
    assert (p.kl(q) >= -1e-6).all()


def test_masked_categorical_kl_matches_torch_on_legal_set():
    g = gen(11)
    p_logits, q_logits = torch.randn(2, 16, 5, generator=g)
    mask = torch.rand(16, 5, generator=g) < 0.6
    mask[:, 0] = True
    p, q = MaskedCategorical(p_logits, mask), MaskedCategorical(q_logits, mask)
    ninf = torch.full_like(p_logits, -math.inf)
    ref = kl_divergence(
        Categorical(logits=torch.where(mask, p_logits, ninf)),
        Categorical(logits=torch.where(mask, q_logits, ninf)),
    )
    torch.testing.assert_close(p.kl(q), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(p.kl(p), torch.zeros(16), atol=1e-7, rtol=0)


@pytest.mark.parametrize("seed", range(4))
def test_normal_kl_matches_torch(seed):
    g = gen(seed)
    m1, m2, s1, s2 = torch.randn(4, 16, 3, generator=g)
    p, q = DiagNormal(m1, s1), DiagNormal(m2, s2)
    ref = kl_divergence(Normal(m1, s1.exp()), Normal(m2, s2.exp())).sum(-1)
    torch.testing.assert_close(p.kl(q), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(p.kl(p), torch.zeros(16), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------
# σ modes
# --------------------------------------------------------------------------------------------


def test_fixed_sigma_is_a_buffer_without_gradient():
    head = make_head(BOX, FEAT, PolicyConfig(sigma_mode="fixed", init_log_std=-1.5))
    params = dict(head.named_parameters())
    buffers = dict(head.named_buffers())
    assert "log_std" not in params and "log_std" in buffers
    assert not buffers["log_std"].requires_grad
    assert set(params) == {"mean.weight", "mean.bias"}
    d = head(feats())
    torch.testing.assert_close(d.log_std, torch.full((B, 3), -1.5))
    # saved with the model (a buffer is in the state dict)
    assert "log_std" in head.state_dict()


def test_independent_sigma_is_a_learned_parameter():
    head = make_head(BOX, FEAT, PolicyConfig(sigma_mode="independent", init_log_std=0.3))
    assert isinstance(head.log_std, nn.Parameter)
    assert "log_std" in dict(head.named_parameters())
    torch.testing.assert_close(head.log_std.detach(), torch.full((3,), 0.3))
    d = head(feats())
    d.log_prob(torch.zeros(B, 3)).sum().backward()
    assert head.log_std.grad is not None and head.log_std.grad.abs().sum() > 0


def test_state_sigma_depends_on_features_and_is_clamped():
    head = make_head(BOX, FEAT, PolicyConfig(sigma_mode="state", init_log_std=-0.5))
    x = feats()
    # initial: weight zero, bias = init_log_std → constant log σ
    torch.testing.assert_close(head(x).log_std, torch.full((B, 3), -0.5))
    with torch.no_grad():
        head.log_std_layer.weight.normal_(generator=gen(1))
    ls = head(x).log_std
    assert ls.std(0).min() > 0  # state-dependent
    for bias, bound in ((100.0, LOG_STD_MAX), (-100.0, LOG_STD_MIN)):
        with torch.no_grad():
            head.log_std_layer.weight.zero_()
            head.log_std_layer.bias.fill_(bias)
        torch.testing.assert_close(head(x).log_std, torch.full((B, 3), bound))
    assert (LOG_STD_MIN, LOG_STD_MAX) == (-20.0, 2.0)


# --------------------------------------------------------------------------------------------
# Box actions to the env
# --------------------------------------------------------------------------------------------


def test_box_clip_to_env_clips_without_mutating_stored_action():
    head = make_head(BOX, FEAT, PolicyConfig(action_bound="clip"))
    stored = np.array([[-5.0, 0.5, 11.0], [0.2, -2.5, 3.0]], np.float32)
    before = stored.copy()
    out = head.to_env(stored)
    np.testing.assert_array_equal(out, np.array([[-1.0, 0.5, 10.0], [0.2, -2.0, 3.0]], np.float32))
    np.testing.assert_array_equal(stored, before)


def test_box_rescale_maps_unit_interval_to_bounds():
    head = make_head(BOX, FEAT, PolicyConfig(action_bound="rescale"))
    stored = np.array(
        [[-1, -1, -1], [1, 1, 1], [0, 0, 0], [0.5, -0.5, 7.0], [-3, 3, -1]], np.float32
    )
    before = stored.copy()
    out = head.to_env(stored)
    np.testing.assert_allclose(
        out,
        [
            [-1.0, -2.0, 0.0],  # -1 → low
            [1.0, 3.0, 10.0],  # 1 → high
            [0.0, 0.5, 5.0],  # 0 → midpoint
            [0.5, -0.75, 10.0],  # low + (u+1)/2 (high-low); 7 is clipped to 1 first
            [-1.0, 3.0, 0.0],
        ],
        rtol=0,
        atol=1e-6,
    )
    np.testing.assert_array_equal(stored, before)


def test_box_rescale_needs_finite_bounds():
    with pytest.raises(EnvError, match="finite"):
        make_head(
            spaces.Box(-np.inf, np.inf, (2,), np.float32),
            FEAT,
            PolicyConfig(action_bound="rescale"),
        )
    # clip accepts infinite bounds and leaves actions alone
    head = make_head(
        spaces.Box(-np.inf, np.inf, (2,), np.float32), FEAT, PolicyConfig(action_bound="clip")
    )
    a = np.array([[1e6, -1e6]], np.float32)
    np.testing.assert_array_equal(head.to_env(a), a)


# --------------------------------------------------------------------------------------------
# Unsupported spaces
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "space",
    [
        spaces.Text(5),
        spaces.Graph(spaces.Box(0, 1, (2,)), None),
        spaces.Tuple((spaces.Text(3), spaces.Discrete(2))),
    ],
    ids=["text", "graph", "tuple-with-text"],
)
def test_unsupported_action_space_names_supported_ones(space):
    with pytest.raises(EnvError) as e:
        make_head(space, FEAT, PolicyConfig())
    msg = str(e.value)
    assert "not supported" in msg and "Box" in msg and "Discrete" in msg


def test_two_dimensional_box_is_rejected():
    with pytest.raises(EnvError, match="one-dimensional"):
        make_head(spaces.Box(-1, 1, (2, 3), np.float32), FEAT, PolicyConfig())


# --------------------------------------------------------------------------------------------
# Network init (src/ppox/nn/init.py, actor_critic.py)
# --------------------------------------------------------------------------------------------

OBS = spaces.Box(-1, 1, (8,), np.float32)


def _check_orthogonal(w: torch.Tensor, gain: float) -> None:
    w = w.detach().double()
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w
    torch.testing.assert_close(
        gram, gain**2 * torch.eye(min(rows, cols), dtype=torch.float64), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize(
    "activation, gain", [("tanh", 5 / 3), ("relu", math.sqrt(2)), ("elu", math.sqrt(2))]
)
@pytest.mark.parametrize(
    "space", [spaces.Discrete(3), spaces.Box(-1, 1, (2,), np.float32)], ids=["discrete", "box"]
)
def test_ortho_init(activation, gain, space):
    torch.manual_seed(0)
    model = ActorCritic(OBS, space, PolicyConfig(hidden_sizes=(64, 32), activation=activation))
    for name in ("actor", "critic"):
        linears = [m for m in model.trunks[name] if isinstance(m, nn.Linear)]
        assert [tuple(m.weight.shape) for m in linears] == [(64, 8), (32, 64)]
        for m in linears:
            _check_orthogonal(m.weight, gain)
            assert torch.all(m.bias == 0)
    out = model.head.output_layers()
    assert len(out) == 1
    sv = torch.linalg.svdvals(out[0].weight.detach().double())
    torch.testing.assert_close(sv, torch.full_like(sv, 0.01), atol=1e-6, rtol=0)
    assert torch.all(out[0].bias == 0)
    torch.testing.assert_close(model.value_out.weight.norm().item(), 1.0, atol=1e-5, rtol=0)
    assert torch.all(model.value_out.bias == 0)
    # consequence: the initial policy is near uniform / near zero-mean
    x = torch.randn(16, 8, generator=gen())
    d, v = model(x)
    if isinstance(space, spaces.Discrete):
        torch.testing.assert_close(d.probs, torch.full((16, 3), 1 / 3), atol=0.02, rtol=0)
    else:
        assert d.mean.abs().max() < 0.05


def test_ortho_init_custom_gains_and_off():
    torch.manual_seed(0)
    m = ActorCritic(
        OBS,
        spaces.Discrete(3),
        PolicyConfig(hidden_sizes=(16,), policy_init_gain=0.5, value_init_gain=2.0),
    )
    sv = torch.linalg.svdvals(m.head.logits.weight.detach())
    torch.testing.assert_close(sv, torch.full_like(sv, 0.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(m.value_out.weight.norm().item(), 2.0, atol=1e-5, rtol=0)
    off = ActorCritic(OBS, spaces.Discrete(3), PolicyConfig(hidden_sizes=(16,), init="torch"))
    # PyTorch's default init: nonzero biases, non-orthogonal weights
    assert off.trunks["actor"][0].bias.abs().sum() > 0
    sv = torch.linalg.svdvals(off.head.logits.weight.detach())
    assert sv.max() > 0.05


def test_shared_trunk_has_one_trunk_and_fewer_parameters():
    torch.manual_seed(0)
    cfg = PolicyConfig(hidden_sizes=(32, 16))
    sep = ActorCritic(OBS, spaces.Discrete(3), cfg)
    shared = ActorCritic(
        OBS, spaces.Discrete(3), PolicyConfig(hidden_sizes=(32, 16), shared_trunk=True)
    )
    assert set(sep.trunks) == {"actor", "critic"} and set(shared.trunks) == {"actor"}
    trunk_params = (8 * 32 + 32) + (32 * 16 + 16)
    assert sep.n_params() - shared.n_params() == trunk_params
    assert shared.n_params() == trunk_params + (16 * 3 + 3) + (16 + 1)
    # the shared critic reads the actor's trunk: value() and forward() agree, and the value
    # gradient reaches the actor trunk
    x = torch.randn(4, 8, generator=gen())
    _, v = shared(x)
    torch.testing.assert_close(shared.value(x), v)
    shared.value(x).sum().backward()
    assert shared.trunks["actor"][0].weight.grad.abs().sum() > 0
    # with separate trunks the value gradient does not touch the actor trunk
    sep.value(x).sum().backward()
    assert sep.trunks["actor"][0].weight.grad is None
    _, v2 = sep(x)
    torch.testing.assert_close(sep.value(x), v2)


def test_dist_matches_forward():
    torch.manual_seed(0)
    model = ActorCritic(
        OBS, spaces.Discrete(3), PolicyConfig(hidden_sizes=(16,), policy_init_gain=1.0)
    )
    x = torch.randn(4, 8, generator=gen())
    d, _ = model(x)
    torch.testing.assert_close(model.dist(x).probs, d.probs)
    # functional MLP equals the nn.Sequential call
    ref_feat = model.trunks["actor"](x)
    torch.testing.assert_close(d.probs, F.softmax(model.head.logits(ref_feat), -1))
