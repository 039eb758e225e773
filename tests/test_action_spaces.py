"""Contract tests for every action space through the one head registry (docs/action_spaces.md).

For each space: samples lie in the space, log-prob and entropy are ``[B]``, the joint log-prob
is the sum of its parts, masked actions are never sampled and have zero probability, the entropy
is that of the renormalized legal set, and inactive hybrid parameters contribute nothing. Hand
numbers are derived in the tests' docstrings and comments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space, iterate
from torch.distributions import Categorical

from ppox.config import PolicyConfig
from ppox.distributions.composite import CompositeHead, HybridDist, HybridHead
from ppox.distributions.heads import make_head
from ppox.distributions.multi_categorical import JointCategoricalHead, MultiCategoricalHead
from ppox.errors import EnvError

FEAT, B = 6, 64
LOG_N01 = -0.5 * math.log(2 * math.pi)  # log N(0; 0, 1) = -0.91894


def feats(b: int = B, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, FEAT, generator=torch.Generator().manual_seed(seed))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


BOX = spaces.Box(np.array([0.0, -1.0], np.float32), np.array([1.0, 1.0], np.float32))
HYBRID = spaces.Tuple((spaces.Discrete(3), BOX))
HYBRID_DICT = spaces.Dict({"type": spaces.Discrete(3), "args": BOX})  # Dict sorts: args first
NESTED = spaces.Dict({
    "move": HYBRID,
    "keys": spaces.MultiBinary(3),
    "gear": spaces.Discrete(4, start=1),
    "aim": spaces.Tuple((spaces.Box(-2.0, 2.0, (2,), np.float32), spaces.MultiDiscrete([2, 5]))),
})  # fmt: skip

CASES = {
    "discrete": (spaces.Discrete(5, start=2), PolicyConfig()),
    "box-independent": (BOX, PolicyConfig(sigma_mode="independent")),
    "box-fixed": (BOX, PolicyConfig(sigma_mode="fixed")),
    "box-state": (BOX, PolicyConfig(sigma_mode="state")),
    "multidiscrete": (spaces.MultiDiscrete([3, 2, 4], start=[0, 1, -2]), PolicyConfig()),
    "multidiscrete-2d": (spaces.MultiDiscrete([[2, 3], [4, 2]]), PolicyConfig()),
    "multidiscrete-flat": (spaces.MultiDiscrete([3, 2, 4]), PolicyConfig(multi_discrete="flat")),
    "multibinary": (spaces.MultiBinary(4), PolicyConfig()),
    "multibinary-flat": (spaces.MultiBinary((2, 2)), PolicyConfig(multi_discrete="flat")),
    "hybrid": (HYBRID, PolicyConfig()),
    "hybrid-state-sigma": (HYBRID, PolicyConfig(sigma_mode="state")),
    "hybrid-autoregressive": (HYBRID, PolicyConfig(hybrid_mode="autoregressive")),
    "hybrid-autoregressive-state": (
        HYBRID,
        PolicyConfig(hybrid_mode="autoregressive", sigma_mode="state"),
    ),
    "hybrid-type-given-params": (HYBRID, PolicyConfig(hybrid_mode="type_given_params")),
    "hybrid-type-given-params-nodetach": (
        HYBRID,
        PolicyConfig(hybrid_mode="type_given_params", hybrid_detach=False),
    ),
    "hybrid-dict": (HYBRID_DICT, PolicyConfig()),
    "nested-dict": (NESTED, PolicyConfig()),
}


@pytest.mark.parametrize("name", list(CASES))
def test_contract(name):
    space, cfg = CASES[name]
    head = make_head(space, FEAT, cfg)
    dist = head(feats())
    a, logp = dist.sample_log_prob(gen(1))
    assert a.shape == (B, *head.action_shape) and a.dtype == head.action_dtype
    assert dist.sample(gen(1)).shape == a.shape and dist.mode().shape == a.shape
    assert (
        logp.shape == dist.log_prob(a).shape == dist.entropy().shape == dist.kl(dist).shape == (B,)
    )
    torch.testing.assert_close(logp, dist.log_prob(a), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dist.kl(dist), torch.zeros(B), rtol=0, atol=1e-6)
    assert torch.isfinite(dist.entropy()).all()
    # the same generator gives the same samples
    assert torch.equal(dist.sample(gen(5)), dist.sample(gen(5)))
    # every env action (random sample and mode) lies in the space, after the head's mapping
    for act in (a, dist.mode()):
        env_actions = head.to_env(act.detach().numpy())
        for one in iterate(batch_space(space, B), env_actions):
            assert space.contains(one), (name, one)


def _composite_parts(head: CompositeHead, dist, a: torch.Tensor) -> torch.Tensor:
    total = torch.zeros(a.shape[0])
    for child, part, sl in zip(head.children_, dist.parts, head.layout.slices):
        total += part.log_prob(
            a[:, sl].reshape(a.shape[0], *child.action_shape).to(child.action_dtype)
        )
    return total


def test_nested_dict_log_prob_entropy_are_sums_of_parts():
    head = make_head(NESTED, FEAT, PolicyConfig(policy_init_gain=1.0))
    assert isinstance(head, CompositeHead)
    assert head.keys == ["aim", "gear", "keys", "move"]  # Gymnasium sorts Dict keys
    dist = head(feats())
    a = dist.sample(gen(2))
    torch.testing.assert_close(dist.log_prob(a), _composite_parts(head, dist, a))
    torch.testing.assert_close(dist.entropy(), sum(p.entropy() for p in dist.parts))
    # the nested Tuple is itself a composite whose log-prob is the sum of its own parts
    aim = head.children_[0]
    assert isinstance(aim, CompositeHead) and isinstance(head.children_[3], HybridHead)
    # integer parts survive storage as float32 exactly
    env = head.to_env(a.detach().numpy())
    assert env["gear"].dtype == np.int64 and set(np.unique(env["gear"])) <= {1, 2, 3, 4}


def test_multidiscrete_log_prob_and_entropy_are_sums_of_per_dimension_categoricals():
    head = make_head(spaces.MultiDiscrete([3, 2, 4]), FEAT, PolicyConfig(policy_init_gain=1.0))
    assert isinstance(head, MultiCategoricalHead)
    x = feats()
    dist = head(x)
    a = dist.sample(gen(3))
    logits = head.logits(x).detach().split([3, 2, 4], -1)
    refs = [Categorical(logits=lg) for lg in logits]
    torch.testing.assert_close(
        dist.log_prob(a), sum(r.log_prob(a[:, i]) for i, r in enumerate(refs))
    )
    torch.testing.assert_close(dist.entropy(), sum(r.entropy() for r in refs))


def test_multidiscrete_hand_example_with_masks():
    """nvec [3, 2], head 1 logits 0 with mask [1, 0, 1] (two legal actions, ½ each), head 2 logits
    0 with mask [1, 1] (½ each): action (2, 0) → log π = ln ½ + ln ½ = −1.38629, entropy = 2 ln 2
    = 1.38629 (the masked entry counts neither in the probability nor in the entropy)."""
    head = make_head(spaces.MultiDiscrete([3, 2]), FEAT, PolicyConfig())
    with torch.no_grad():
        head.logits.weight.zero_()
        head.logits.bias.zero_()
    mask = torch.tensor([[True, False, True, True, True]])
    dist = head(feats(1), mask)
    torch.testing.assert_close(
        dist.log_prob(torch.tensor([[2, 0]])), torch.tensor([-1.38629]), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(dist.entropy(), torch.tensor([1.38629]), atol=1e-5, rtol=0)


MASKED = {
    "discrete": (spaces.Discrete(5), PolicyConfig()),
    "multidiscrete": (spaces.MultiDiscrete([3, 4]), PolicyConfig()),
    "multidiscrete-flat": (spaces.MultiDiscrete([3, 4]), PolicyConfig(multi_discrete="flat")),
}


def _random_mask(head, b: int, seed: int) -> torch.Tensor:
    m = torch.rand(b, head.mask_size, generator=gen(seed)) < 0.5
    m = torch.from_numpy(np.asarray(m))
    # keep at least one legal choice in every dimension
    nvec = getattr(head, "nvec", [head.mask_size])
    start = 0
    for n in nvec:
        m[:, start] |= ~m[:, start : start + int(n)].any(-1)
        start += int(n)
    return m


@pytest.mark.parametrize("name", list(MASKED))
def test_masked_actions_are_never_sampled_and_entropy_is_over_the_legal_set(name):
    space, cfg = MASKED[name]
    head = make_head(space, FEAT, cfg.__class__(**{**cfg.__dict__, "policy_init_gain": 2.0}))
    mask = _random_mask(head, B, 7)
    x = feats()
    dist = head(x, mask)
    samples = torch.stack([dist.sample(gen(s)) for s in range(50)])  # [50, B, ...]
    env = np.stack([head.to_env(s.numpy()) for s in samples])  # [50, B, *shape]
    legal = mask.numpy()
    if isinstance(space, spaces.Discrete):
        assert legal[np.arange(B)[None], env].all()
    else:
        offsets = np.concatenate([[0], np.cumsum(space.nvec)[:-1]])
        assert legal[np.arange(B)[None, :, None], env + offsets].all()
    # probability of every illegal action is exactly zero; entropy equals the renormalized one
    with torch.no_grad():
        if isinstance(head, JointCategoricalHead):
            joint = head.joint_mask(mask)
            assert (dist.probs[~joint] == 0).all()
            ref = Categorical(logits=head.logits(x).masked_fill(~joint, -math.inf))
            torch.testing.assert_close(dist.entropy(), ref.entropy())
        elif isinstance(head, MultiCategoricalHead):
            logits = head.logits(x).masked_fill(~mask, -math.inf).split([3, 4], -1)
            probs = torch.cat([dist.cat.probs[:, 0, :3], dist.cat.probs[:, 1, :4]], -1)  # unpad
            assert (probs[~mask] == 0).all()
            ref = sum(_legal_entropy(lg) for lg in logits)
            torch.testing.assert_close(dist.entropy(), ref)
        else:
            assert (dist.probs[~mask] == 0).all()
            torch.testing.assert_close(
                dist.entropy(), _legal_entropy(head.logits(x).masked_fill(~mask, -math.inf))
            )


def _legal_entropy(logits: torch.Tensor) -> torch.Tensor:
    p = logits.softmax(-1)
    return -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(-1)


def test_flat_multidiscrete_joint_mask_is_the_product_of_dimension_masks():
    head = make_head(spaces.MultiDiscrete([2, 3]), FEAT, PolicyConfig(multi_discrete="flat"))
    mask = torch.tensor([[True, False, False, True, True]])  # dim0: {0}, dim1: {1, 2}
    joint = head.joint_mask(mask)
    # row-major index i*3 + j legal iff i ∈ {0} and j ∈ {1, 2}
    assert joint.tolist() == [[False, True, True, False, False, False]]
    assert head.to_env(np.array([0, 1, 2, 3, 4, 5])).tolist() == [
        [0, 0],
        [0, 1],
        [0, 2],
        [1, 0],
        [1, 1],
        [1, 2],
    ]


def test_flat_multidiscrete_refuses_huge_product_spaces():
    with pytest.raises(EnvError, match="multi_discrete='factored'"):
        make_head(spaces.MultiDiscrete([4] * 16), FEAT, PolicyConfig(multi_discrete="flat"))


# --------------------------------------------------------------------------------------------
# Hybrid actions: masked log-prob, entropy, KL. Worked example: type probabilities
# p = [½, ¼, ¼], parameter means μ = [0.2, −0.4], σ = 1, and the type → parameter mask
# [[1, 0], [0, 1], [0, 0]] (as in H-PPO's parameterized actions: each type owns its parameters).
# log N(x; μ, 1) = −0.91894 − (x − μ)²/2, so (k=0, x=[0.2, 5.0]) → masked ln ½ − 0.91894 = −1.61209;
# unmasked it adds the irrelevant log N(5.0; −0.4, 1) = −0.91894 − 14.58, giving −17.1110.
# Entropies: H_cat = 1.03972, H(N(·, 1)) = 1.41894 (see test_hybrid_entropy_hand_numbers).
# --------------------------------------------------------------------------------------------

P_TYPES = torch.tensor([0.5, 0.25, 0.25])
PARAM_MASK = torch.tensor([[True, False], [False, True], [False, False]])


def _hand_dist(param_mask: torch.Tensor | None = PARAM_MASK) -> HybridDist:
    from ppox.distributions.categorical import MaskedCategorical

    types = MaskedCategorical(P_TYPES.log().unsqueeze(0))
    mean = torch.tensor([[[0.2, -0.4]]])
    log_std = torch.zeros(1, 1, 2)
    return HybridDist(types, mean, log_std, None if param_mask is None else param_mask.unsqueeze(0))


@pytest.mark.parametrize(
    "action, masked, unmasked",
    [
        ([0, 0.2, 5.0], -1.61209, -17.1110),
        ([1, 3.0, -0.4], -2.30523, -7.14420),
        ([2, 9.0, 9.0], -1.38629, -86.1242),
    ],
)
def test_hybrid_masked_log_prob_hand_numbers(action, masked, unmasked):
    a = torch.tensor([action])
    torch.testing.assert_close(_hand_dist().log_prob(a), torch.tensor([masked]), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        _hand_dist(None).log_prob(a), torch.tensor([unmasked]), atol=1e-3, rtol=0
    )


def test_hybrid_entropy_hand_numbers():
    # H_cat = 1.03972; each N(·, 1) has entropy 1.41894; expected masked 1.03972 + 0.75·1.41894
    torch.testing.assert_close(_hand_dist().entropy(), torch.tensor([2.10392]), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        _hand_dist(None).entropy(), torch.tensor([3.87760]), atol=1e-4, rtol=0
    )


def test_hybrid_inactive_parameters_get_no_gradient_and_do_not_change_log_prob():
    head = make_head(HYBRID, FEAT, PolicyConfig(policy_init_gain=1.0))
    mask = torch.cat(
        [torch.ones(4, 3, dtype=torch.bool), PARAM_MASK.reshape(1, -1).expand(4, -1)], -1
    )
    dist = head(feats(4), mask)
    a = torch.tensor([[2.0, 0.3, -0.2]] * 4)  # BREAK: no parameter in use
    b = torch.tensor([[2.0, 9.0, 9.0]] * 4)
    torch.testing.assert_close(dist.log_prob(a), dist.log_prob(b))
    head.zero_grad()
    dist.log_prob(a).sum().backward()
    assert head.mean.weight.grad is not None and head.mean.weight.grad.abs().sum() == 0
    assert head.log_std.grad is not None and head.log_std.grad.abs().sum() == 0
    # ACCELERATE uses parameter 0 only: the gradient reaches row 0 of the mean layer, not row 1
    head.zero_grad()
    dist = head(feats(4), mask)
    dist.log_prob(torch.tensor([[0.0, 0.3, -0.2]] * 4)).sum().backward()
    g = head.mean.weight.grad
    assert g[0].abs().sum() > 0 and g[1].abs().sum() == 0


def test_hybrid_kl_matches_enumeration_over_types():
    cfg = PolicyConfig(hybrid_mode="autoregressive", sigma_mode="state", policy_init_gain=1.0)
    head = make_head(HYBRID, FEAT, cfg)
    mask = torch.cat(
        [torch.ones(B, 3, dtype=torch.bool), PARAM_MASK.reshape(1, -1).expand(B, -1)], -1
    )
    p, q = head(feats(seed=1), mask), head(feats(seed=2), mask)
    # KL = KL(types) + Σ_k p(k) Σ_p M[k,p] KL(N_p,k ‖ N_q,k)
    expected = p.types.kl(q.types)
    for k in range(3):
        mp, sp = p.mean[:, k], p.log_std.expand_as(p.mean)[:, k]
        mq, sq = q.mean[:, k], q.log_std.expand_as(q.mean)[:, k]
        kl_k = (
            sq - sp + (sp.exp() ** 2 + (mp - mq) ** 2) / (2 * sq.exp() ** 2) - 0.5
        ) * PARAM_MASK[k]
        expected = expected + p.types.probs[:, k] * kl_k.sum(-1)
    torch.testing.assert_close(p.kl(q), expected, atol=1e-5, rtol=1e-5)


def test_autoregressive_parameters_depend_on_the_stored_type():
    head = make_head(HYBRID, FEAT, PolicyConfig(hybrid_mode="autoregressive", policy_init_gain=1.0))
    dist = head(feats(8))
    assert dist.mean.shape == (8, 3, 2)
    assert not torch.allclose(dist.mean[:, 0], dist.mean[:, 1])
    x = torch.zeros(8, 2)
    for k in range(3):
        a = torch.cat([torch.full((8, 1), float(k)), x], -1)
        expected = dist.types.log_prob(torch.full((8,), k)) + torch.distributions.Normal(
            dist.mean[:, k], 1.0
        ).log_prob(x).sum(-1)
        torch.testing.assert_close(dist.log_prob(a), expected)
    # sampling draws the parameters of the sampled type
    a = dist.sample(gen(0))
    m = dist.mode()
    torch.testing.assert_close(m[:, 1:], dist.mean[torch.arange(8), m[:, 0].long()])
    assert a.shape == (8, 3)


@pytest.mark.parametrize("detach", [True, False])
def test_type_given_params_detach_controls_gradient_into_parameter_head(detach):
    head = make_head(
        HYBRID,
        FEAT,
        PolicyConfig(hybrid_mode="type_given_params", hybrid_detach=detach, policy_init_gain=1.0),
    )
    dist = head(feats(8))
    head.zero_grad()
    dist.types.log_prob(torch.zeros(8, dtype=torch.long)).sum().backward()
    reached = head.mean.weight.grad is not None and bool(head.mean.weight.grad.abs().sum() > 0)
    assert reached is (not detach)


# --------------------------------------------------------------------------------------------
# Reading masks from the env
# --------------------------------------------------------------------------------------------


def test_hybrid_mask_from_dict_and_flat_forms_agree():
    head = make_head(HYBRID, FEAT, PolicyConfig())
    pm = PARAM_MASK.numpy()
    from_dict = head.read_mask({"type": np.ones((2, 3), bool), "params": np.stack([pm, pm])}, 2)
    flat = np.concatenate([np.ones(3, bool), pm.reshape(-1)])
    np.testing.assert_array_equal(from_dict, np.stack([flat, flat]))
    np.testing.assert_array_equal(head.read_mask(np.stack([flat, flat]), 2), from_dict)
    only_params = head.read_mask({"params": np.stack([pm, pm]), "_params": np.ones(2, bool)}, 2)
    np.testing.assert_array_equal(only_params, from_dict)


@pytest.mark.parametrize(
    "raw, match",
    [
        ({"type": np.zeros((2, 3), bool)}, "no legal action type at batch index"),
        ({"params": np.ones((2, 3), bool)}, r"'params' has shape \(2, 3\); expected \[K, P\]"),
        ({"kind": np.ones((2, 3), bool)}, "key.*'kind'.*allowed: 'type'"),
        (np.ones((2, 4), bool), "expected 2 × 9 booleans"),
    ],
)
def test_bad_hybrid_masks_are_clear_errors(raw, match):
    head = make_head(HYBRID, FEAT, PolicyConfig())
    with pytest.raises(EnvError, match=match):
        head.read_mask(raw, 2)


def test_multidiscrete_all_masked_dimension_names_the_dimension():
    head = make_head(spaces.MultiDiscrete([2, 3]), FEAT, PolicyConfig())
    with pytest.raises(EnvError, match="in dimension 1 at batch index"):
        head.read_mask(np.array([[True, False, False, False, False]]), 1)


def test_composite_mask_by_key_fills_missing_parts_with_all_legal():
    space = spaces.Dict(
        {
            "a": spaces.Discrete(3),
            "b": spaces.Box(-1, 1, (2,), np.float32),
            "c": spaces.MultiDiscrete([2, 2]),
        }
    )
    head = make_head(space, FEAT, PolicyConfig())
    assert head.mask_shape == (3 + 4,)
    m = head.read_mask({"c": np.array([[True, False, False, True]])}, 1)
    assert m.tolist() == [[True, True, True, True, False, False, True]]
    with pytest.raises(EnvError, match=r"key\(s\) \['z'\]"):
        head.read_mask({"z": np.ones(3, bool)}, 1)
