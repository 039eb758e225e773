"""Hand-computed checks of the PPO loss terms (src/ppox/core/losses.py) and of their NumPy
twins with gradients (src/ppox/core/loss_grads.py), on the same tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ppox.core.loss_grads import clipped_surrogate_grad, value_loss_grad
from ppox.core.losses import (
    adaptive_kl_coef,
    clip_fraction,
    clipped_surrogate,
    explained_variance,
    kl_estimate,
    normalize_advantages,
    value_loss,
)


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# clipped_surrogate, eps = 0.2 -> ratio clipped to [0.8, 1.2]
# --------------------------------------------------------------------------------------------

ADV = t(2.0, 2.0, 2.0, -1.0, -1.0, -1.0)
RATIO = t(1.1, 1.5, 0.5, 1.1, 1.5, 0.5)
# loss = -min(rho*A, clip(rho)*A):
#   A=+2, rho=1.1 (inside):        min(2.2, 2.2)        =  2.2 -> -2.2
#   A=+2, rho=1.5 (above):         min(3.0, 1.2*2=2.4)  =  2.4 -> -2.4   (clipped)
#   A=+2, rho=0.5 (below):         min(1.0, 0.8*2=1.6)  =  1.0 -> -1.0   (not clipped)
#   A=-1, rho=1.1 (inside):        min(-1.1, -1.1)      = -1.1 ->  1.1
#   A=-1, rho=1.5 (above):         min(-1.5, -1.2)      = -1.5 ->  1.5   (not clipped)
#   A=-1, rho=0.5 (below):         min(-0.5, -0.8)      = -0.8 ->  0.8   (clipped)
EXPECTED = [-2.2, -2.4, -1.0, 1.1, 1.5, 0.8]


def test_clipped_surrogate_hand_values():
    loss = clipped_surrogate(ADV, RATIO.log(), clip_coef=0.2)
    assert loss.tolist() == pytest.approx(EXPECTED, abs=1e-12)


def test_clipped_surrogate_gradient_zero_where_clipped():
    lr = RATIO.log().requires_grad_(True)
    clipped_surrogate(ADV, lr, clip_coef=0.2).sum().backward()
    # d/dlogrho of -rho*A is -rho*A where the unclipped branch is active, 0 where clipped:
    #   [-2.2, 0, -1.0, 1.1, 1.5, 0]
    assert lr.grad.tolist() == pytest.approx([-2.2, 0.0, -1.0, 1.1, 1.5, 0.0], abs=1e-12)


def test_dual_clip_bounds_negative_advantage_with_huge_ratio():
    adv = t(-1.0, 2.0, -1.0)
    ratio = t(10.0, 10.0, 1.5)
    plain = clipped_surrogate(adv, ratio.log(), clip_coef=0.2)
    dual = clipped_surrogate(adv, ratio.log(), clip_coef=0.2, dual_clip=3.0)
    # A=-1, rho=10:  plain min(-10, -1.2) = -10 -> 10;   dual max(-10, 3*(-1)) = -3 -> 3
    # A=+2, rho=10:  min(20, 2.4) = 2.4 -> -2.4 in both (dual clip only acts on A<0)
    # A=-1, rho=1.5: min(-1.5, -1.2) = -1.5; max(-1.5, -3) = -1.5 -> 1.5 in both
    assert plain.tolist() == pytest.approx([10.0, -2.4, 1.5], abs=1e-12)
    assert dual.tolist() == pytest.approx([3.0, -2.4, 1.5], abs=1e-12)


def test_dual_clip_gradient_zero_where_dual_bound_active():
    lr = t(10.0, 1.5).log().requires_grad_(True)
    clipped_surrogate(t(-1.0, -1.0), lr, clip_coef=0.2, dual_clip=3.0).sum().backward()
    # sample 0 is held at the constant -c*A = 3 -> grad 0; sample 1 unclipped: -rho*A = 1.5
    assert lr.grad.tolist() == pytest.approx([0.0, 1.5], abs=1e-12)


@pytest.mark.parametrize("c", [1.0, 0.5, -2.0])
def test_dual_clip_must_exceed_one(c):
    with pytest.raises(ValueError):
        clipped_surrogate(ADV, RATIO.log(), clip_coef=0.2, dual_clip=c)


# --------------------------------------------------------------------------------------------
# value_loss
# --------------------------------------------------------------------------------------------


def test_value_loss_unclipped():
    # 0.5*(1-2)^2 = 0.5;  0.5*(3-0)^2 = 4.5
    loss = value_loss(t(1.0, 3.0), t(100.0, -100.0), t(2.0, 0.0))
    assert loss.tolist() == pytest.approx([0.5, 4.5], abs=1e-12)


def test_value_loss_clipped_term_larger_is_picked():
    # V_old=0, V=2, R=2, eps=0.5: unclipped (2-2)^2 = 0;  V_clip = 0 + 0.5 = 0.5,
    # (0.5-2)^2 = 2.25;  max -> 0.5*2.25 = 1.125
    loss = value_loss(t(2.0), t(0.0), t(2.0), clip=0.5)
    assert loss.tolist() == pytest.approx([1.125], abs=1e-12)


def test_value_loss_clipped_term_smaller_is_ignored():
    # V_old=0, V=2, R=0, eps=0.5: unclipped (2-0)^2 = 4;  V_clip = 0.5 -> 0.25;  0.5*4 = 2
    loss = value_loss(t(2.0), t(0.0), t(0.0), clip=0.5)
    assert loss.tolist() == pytest.approx([2.0], abs=1e-12)


def test_value_loss_clip_is_noop_when_values_equal_old_values():
    v, r = t(1.0, -2.0), t(3.0, 0.5)
    # 0.5*(1-3)^2 = 2;  0.5*(-2-0.5)^2 = 3.125
    assert value_loss(v, v.clone(), r, clip=0.1).tolist() == pytest.approx([2.0, 3.125], abs=1e-12)
    assert torch.equal(value_loss(v, v.clone(), r, clip=0.1), value_loss(v, v.clone(), r))


def test_value_loss_gradient():
    v = t(2.0, 2.0).requires_grad_(True)
    value_loss(v, t(0.0, 0.0), t(2.0, 0.0), clip=0.5).sum().backward()
    # sample 0: clipped term wins, V_clip = const 0.5 -> grad 0
    # sample 1: unclipped wins, d/dV 0.5*(V-R)^2 = V - R = 2
    assert v.grad.tolist() == pytest.approx([0.0, 2.0], abs=1e-12)


# --------------------------------------------------------------------------------------------
# The NumPy twins (the fast update's loss gradients) on the same tables
# --------------------------------------------------------------------------------------------


def n(x: torch.Tensor) -> np.ndarray:
    return x.numpy()


def test_numpy_clipped_surrogate_hand_values_and_gradient():
    loss, grad, ratio = clipped_surrogate_grad(n(ADV), n(RATIO.log()), clip_coef=0.2, scale=0.5)
    assert loss.tolist() == pytest.approx(EXPECTED, abs=1e-12)
    # the autograd test above: [-2.2, 0, -1.0, 1.1, 1.5, 0], times the sample weight 0.5
    assert grad.tolist() == pytest.approx([-1.1, 0.0, -0.5, 0.55, 0.75, 0.0], abs=1e-12)
    assert ratio.tolist() == pytest.approx(RATIO.tolist(), abs=1e-12)


def test_numpy_dual_clip_values_and_gradient():
    adv, ratio = t(-1.0, 2.0, -1.0, -1.0), t(10.0, 10.0, 1.5, 10.0)
    loss, grad, _ = clipped_surrogate_grad(n(adv), n(ratio.log()), clip_coef=0.2, dual_clip=3.0)
    # as test_dual_clip_bounds_negative_advantage_with_huge_ratio, plus a repeat of sample 0
    assert loss.tolist() == pytest.approx([3.0, -2.4, 1.5, 3.0], abs=1e-12)
    # held at -cA: 0; A>0 clipped above: 0; A<0 unclipped: -rho*A = 1.5
    assert grad.tolist() == pytest.approx([0.0, 0.0, 1.5, 0.0], abs=1e-12)
    plain_loss, plain_grad, _ = clipped_surrogate_grad(n(adv), n(ratio.log()), clip_coef=0.2)
    assert plain_loss.tolist() == pytest.approx([10.0, -2.4, 1.5, 10.0], abs=1e-12)
    assert plain_grad.tolist() == pytest.approx([10.0, 0.0, 1.5, 10.0], abs=1e-12)


def test_numpy_value_loss_hand_values_and_gradient():
    # the four value_loss tables above, in one batch: unclipped twice, clipped term larger,
    # clipped term smaller
    v, old, ret = t(1.0, 3.0, 2.0, 2.0), t(100.0, -100.0, 0.0, 0.0), t(2.0, 0.0, 2.0, 0.0)
    loss, grad = value_loss_grad(n(v[:2]), n(old[:2]), n(ret[:2]), scale=2.0)
    assert loss.tolist() == pytest.approx([0.5, 4.5], abs=1e-12)
    assert grad.tolist() == pytest.approx([-2.0, 6.0], abs=1e-12)  # 2·(V − R)
    loss, grad = value_loss_grad(n(v[2:]), n(old[2:]), n(ret[2:]), clip=0.5)
    assert loss.tolist() == pytest.approx([1.125, 2.0], abs=1e-12)
    assert grad.tolist() == pytest.approx([0.0, 2.0], abs=1e-12)  # as test_value_loss_gradient


@pytest.mark.parametrize("dual_clip", [None, 3.0])
def test_numpy_surrogate_gradient_is_autograds_on_random_inputs(dual_clip):
    g = torch.Generator().manual_seed(0)
    adv, lr = (
        torch.randn(500, generator=g, dtype=torch.float64) * 2,
        torch.randn(500, generator=g, dtype=torch.float64),
    )
    x = lr.clone().requires_grad_(True)
    ref = clipped_surrogate(adv, x, clip_coef=0.2, dual_clip=dual_clip)
    ref.sum().backward()
    loss, grad, _ = clipped_surrogate_grad(n(adv), n(lr), clip_coef=0.2, dual_clip=dual_clip)
    np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("clip", [None, 0.3])
def test_numpy_value_gradient_is_autograds_on_random_inputs(clip):
    g = torch.Generator().manual_seed(1)
    v, old, ret = (torch.randn(500, generator=g, dtype=torch.float64) for _ in range(3))
    x = v.clone().requires_grad_(True)
    ref = value_loss(x, old, ret, clip=clip)
    ref.sum().backward()
    loss, grad = value_loss_grad(n(v), n(old), n(ret), clip=clip)
    np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# KL estimators and the adaptive coefficient
# --------------------------------------------------------------------------------------------

LN2 = math.log(2.0)
LR = t(0.0, LN2, -LN2)  # rho = 1, 2, 0.5


def test_kl_k1():
    assert kl_estimate(LR, "k1").tolist() == pytest.approx([0.0, -LN2, LN2], abs=1e-12)


def test_kl_k2():
    # 0.5*(ln 2)^2 = 0.5*0.480453 = 0.2402265
    k2 = kl_estimate(LR, "k2").tolist()
    assert k2 == pytest.approx([0.0, 0.5 * LN2**2, 0.5 * LN2**2], abs=1e-12)
    assert k2[1] == pytest.approx(0.2402265, abs=1e-6)


def test_kl_k3_is_default():
    # rho=2: (2-1) - ln2 = 0.306853;  rho=0.5: (0.5-1) + ln2 = 0.193147
    k3 = kl_estimate(LR).tolist()
    assert k3 == pytest.approx([0.0, 1 - LN2, LN2 - 0.5], abs=1e-12)
    assert k3[1:] == pytest.approx([0.306853, 0.193147], abs=1e-6)


def test_kl_k3_nonnegative_on_random_inputs():
    g = torch.Generator().manual_seed(0)
    lr = torch.randn(10_000, generator=g, dtype=torch.float64) * 3
    assert (kl_estimate(lr, "k3") >= 0).all()
    assert (kl_estimate(lr.float(), "k3") >= 0).all()


def test_kl_unknown_kind_raises():
    with pytest.raises(ValueError):
        kl_estimate(LR, "k4")


def test_adaptive_kl_coef():
    # target 0.02, tolerance 2 -> band [0.01, 0.04]
    assert adaptive_kl_coef(1.0, 0.05, target=0.02, tolerance=2.0) == 2.0  # above: doubles
    assert adaptive_kl_coef(1.0, 0.005, target=0.02, tolerance=2.0) == 0.5  # below: halves
    assert adaptive_kl_coef(1.0, 0.02, target=0.02, tolerance=2.0) == 1.0  # inside: keeps
    assert adaptive_kl_coef(1.0, 0.04, target=0.02, tolerance=2.0) == 1.0  # band edges: keeps
    assert adaptive_kl_coef(1.0, 0.01, target=0.02, tolerance=2.0) == 1.0
    # defaults tolerance 1.5, factor 2: 0.02 > 1.5*0.01 -> 0.3*2;  0.005 < 0.01/1.5 -> 0.3/2
    assert adaptive_kl_coef(0.3, 0.02, target=0.01) == pytest.approx(0.6)
    assert adaptive_kl_coef(0.3, 0.005, target=0.01) == pytest.approx(0.15)
    assert adaptive_kl_coef(0.3, 0.02, target=0.01, factor=1.5) == pytest.approx(0.45)


# --------------------------------------------------------------------------------------------
# normalize_advantages, explained_variance, clip_fraction
# --------------------------------------------------------------------------------------------


def test_normalize_advantages_known_numbers():
    adv = t(1.0, 2.0, 3.0)
    out = normalize_advantages(adv)
    # mean 2, population var (1+0+1)/3 = 2/3, std 0.816497 -> (x-2)/0.816497 = -1.2247, 0, 1.2247
    assert out.tolist() == pytest.approx([-1.2247449, 0.0, 1.2247449], abs=1e-6)
    assert adv.tolist() == [1.0, 2.0, 3.0]  # not mutated


def test_normalize_advantages_single_sample_unchanged():
    adv = t(5.0)
    out = normalize_advantages(adv)
    assert out.tolist() == [5.0]
    assert out is not adv


def test_normalize_advantages_all_equal_gives_zeros():
    out = normalize_advantages(t(3.0, 3.0, 3.0, 3.0))
    assert torch.isfinite(out).all()
    assert out.tolist() == [0.0, 0.0, 0.0, 0.0]
    out32 = normalize_advantages(torch.full((7,), 0.1, dtype=torch.float32))
    assert torch.isfinite(out32).all() and out32.abs().max().item() < 1e-3


def test_explained_variance_hand_numbers():
    y = t(1.0, 2.0, 3.0)  # population var 2/3
    assert explained_variance(y.clone(), y).item() == pytest.approx(1.0)  # perfect critic
    # constant prediction: residual = y - c has the same variance as y -> 0
    assert explained_variance(t(2.0, 2.0, 2.0), y).item() == pytest.approx(0.0, abs=1e-12)
    # reversed: residual [-2, 0, 2], var 8/3 -> 1 - (8/3)/(2/3) = -3
    assert explained_variance(t(3.0, 2.0, 1.0), y).item() == pytest.approx(-3.0)
    # pred [1, 2, 4]: residual [0, 0, -1], mean -1/3, var (1/9 + 1/9 + 4/9)/3 = 2/9
    #   -> 1 - (2/9)/(2/3) = 2/3
    assert explained_variance(t(1.0, 2.0, 4.0), y).item() == pytest.approx(2 / 3)


def test_explained_variance_constant_target_is_nan():
    # Documented contract: "NaN when Var[target] = 0".
    # 0/0 case: residual [0, 0] also has zero variance -> 1 - 0/0 = NaN
    assert math.isnan(explained_variance(t(4.0, 4.0), t(4.0, 4.0)).item())
    # x/0 case: residual [3, 2] has variance 0.25 -> 1 - 0.25/0 = -inf, not NaN as documented
    assert math.isnan(explained_variance(t(1.0, 2.0), t(4.0, 4.0)).item())


def test_clip_fraction():
    lr = t(1.0, 1.1, 1.3, 0.7, 0.85).log()
    # |rho - 1| = [0, 0.1, 0.3, 0.3, 0.15]; > 0.2 for 2 of 5 -> 0.4
    assert clip_fraction(lr, 0.2).item() == pytest.approx(0.4)
    # with eps = 0.12: 0.3, 0.3, 0.15 exceed -> 3/5 = 0.6
    assert clip_fraction(lr, 0.12).item() == pytest.approx(0.6)
    assert clip_fraction(lr, 0.5).item() == 0.0


def test_adaptive_kl_coef_stays_within_its_limits():
    # doubling forever would reach inf (and β·KL a non-finite loss); halving forever 0
    beta = 1.0
    for _ in range(2000):
        beta = adaptive_kl_coef(beta, 1.0, target=0.01)
    assert beta == 1e6
    for _ in range(4000):
        beta = adaptive_kl_coef(beta, 0.0, target=0.01)
    assert beta == 1e-10
    assert adaptive_kl_coef(3.0, 1.0, target=0.01, limits=(0.5, 4.0)) == 4.0
    assert adaptive_kl_coef(0.6, 0.0, target=0.01, limits=(0.5, 4.0)) == 0.5
