"""Hand-computed checks of ``gae`` and ``discounted_returns`` (src/ppox/core/advantages.py).

Shared small rollout, T=3, N=1, gamma=0.9, lam=0.8 (so gamma*lam = 0.72):
    rewards = [1, 0, 2], values V(s_t) = [0.5, 0.5, 0.5].
"""

from __future__ import annotations

import pytest
import torch

from ppox.core.advantages import discounted_returns, gae

G, L = 0.9, 0.8


def col(*xs: float) -> torch.Tensor:
    """A ``[T, 1]`` float64 column."""
    return torch.tensor(xs, dtype=torch.float64).unsqueeze(1)


R = col(1.0, 0.0, 2.0)
V = col(0.5, 0.5, 0.5)
ZERO = col(0.0, 0.0, 0.0)


def run_gae(next_values, terminated=ZERO, done=ZERO, *, gamma=G, lam=L, rewards=R, values=V):
    return gae(rewards, values, next_values, terminated, done, gamma=gamma, lam=lam)


# --------------------------------------------------------------------------------------------
# GAE
# --------------------------------------------------------------------------------------------


def test_gae_no_episode_end_bootstraps_from_last_next_value():
    nv = col(0.5, 0.5, 1.0)  # V(s_3) = 1.0 is the bootstrap at the end of the rollout
    adv, ret = run_gae(nv)
    # delta_2 = 2 + 0.9*1.0 - 0.5 = 2.4
    # delta_1 = 0 + 0.9*0.5 - 0.5 = -0.05
    # delta_0 = 1 + 0.9*0.5 - 0.5 = 0.95
    # A_2 = 2.4
    # A_1 = -0.05 + 0.72*2.4 = 1.678
    # A_0 = 0.95 + 0.72*1.678 = 0.95 + 1.20816 = 2.15816
    assert adv.squeeze(1).tolist() == pytest.approx([2.15816, 1.678, 2.4], abs=1e-12)
    # returns = A + V
    assert ret.squeeze(1).tolist() == pytest.approx([2.65816, 2.178, 2.9], abs=1e-12)


def test_gae_truncation_bootstraps_from_final_obs_but_cuts_trace():
    # Episode truncated at t=1 (done=1, terminated=0). next_values[1] = 2.0 is V(final obs),
    # deliberately different from values[2] = 0.5 (the value of the reset observation).
    nv = col(0.5, 2.0, 1.0)
    done = col(0.0, 1.0, 0.0)
    adv, _ = run_gae(nv, terminated=ZERO, done=done)
    # delta_2 = 2.4 (as before);  A_2 = 2.4
    # delta_1 = 0 + 0.9*2.0 - 0.5 = 1.3;  trace cut: A_1 = 1.3 (not 1.3 + 0.72*2.4)
    # A_0 = 0.95 + 0.72*1.3 = 0.95 + 0.936 = 1.886
    assert adv.squeeze(1).tolist() == pytest.approx([1.886, 1.3, 2.4], abs=1e-12)


def test_gae_termination_no_bootstrap_and_cuts_trace():
    nv = col(0.5, 2.0, 1.0)  # next_values[1] must be ignored
    ends = col(0.0, 1.0, 0.0)
    adv, _ = run_gae(nv, terminated=ends, done=ends)
    # delta_1 = 0 + 0 - 0.5 = -0.5;  A_1 = -0.5
    # A_0 = 0.95 + 0.72*(-0.5) = 0.95 - 0.36 = 0.59;  A_2 = 2.4
    assert adv.squeeze(1).tolist() == pytest.approx([0.59, -0.5, 2.4], abs=1e-12)


def test_gae_accepts_bool_flags():
    nv = col(0.5, 2.0, 1.0)
    ends = torch.tensor([[False], [True], [False]])
    adv, _ = run_gae(nv, terminated=ends, done=ends)
    assert adv.squeeze(1).tolist() == pytest.approx([0.59, -0.5, 2.4], abs=1e-12)


def test_gae_lambda_zero_is_one_step_td_error():
    adv, _ = run_gae(col(0.5, 0.5, 1.0), lam=0.0)
    # A_t = delta_t = [0.95, -0.05, 2.4] (deltas computed in the first test)
    assert adv.squeeze(1).tolist() == pytest.approx([0.95, -0.05, 2.4], abs=1e-12)


def test_gae_lambda_one_gamma_one_is_monte_carlo():
    v = col(0.5, 1.0, 3.0)
    nv = col(1.0, 3.0, 7.0)  # 7.0 must be ignored: the episode terminates at t=2
    term = col(0.0, 0.0, 1.0)
    adv, ret = run_gae(nv, terminated=term, done=term, gamma=1.0, lam=1.0, values=v)
    # Monte Carlo returns G = [1+0+2, 0+2, 2] = [3, 2, 2];  A = G - V = [2.5, 1.0, -1.0]
    assert adv.squeeze(1).tolist() == pytest.approx([2.5, 1.0, -1.0], abs=1e-12)
    assert ret.squeeze(1).tolist() == pytest.approx([3.0, 2.0, 2.0], abs=1e-12)


def test_gae_does_not_mutate_inputs_and_returns_equal_adv_plus_values():
    nv, ends = col(0.5, 2.0, 1.0), col(0.0, 1.0, 0.0)
    inputs = [R, V, nv, ends, ends]
    copies = [x.clone() for x in inputs]
    adv, ret = gae(*inputs, gamma=G, lam=L)
    for x, c in zip(inputs, copies):
        assert torch.equal(x, c)
    assert torch.allclose(ret, adv + V)
    assert adv.dtype == V.dtype and adv.shape == V.shape


def test_gae_columns_are_independent():
    # column 0 = the no-end case, column 1 = the termination case; each must equal its N=1 result
    rewards = torch.cat([R, R], 1)
    values = torch.cat([V, V], 1)
    nv = torch.cat([col(0.5, 0.5, 1.0), col(0.5, 2.0, 1.0)], 1)
    ends = torch.cat([ZERO, col(0.0, 1.0, 0.0)], 1)
    adv, ret = gae(rewards, values, nv, ends, ends, gamma=G, lam=L)
    assert adv[:, 0].tolist() == pytest.approx([2.15816, 1.678, 2.4], abs=1e-12)
    assert adv[:, 1].tolist() == pytest.approx([0.59, -0.5, 2.4], abs=1e-12)
    assert torch.allclose(ret, adv + values)


def test_gae_float32_keeps_dtype():
    adv, ret = gae(
        R.float(), V.float(), col(0.5, 0.5, 1.0).float(), ZERO.float(), ZERO.float(), gamma=G, lam=L
    )
    assert adv.dtype == torch.float32 and ret.dtype == torch.float32
    assert adv.squeeze(1).tolist() == pytest.approx([2.15816, 1.678, 2.4], abs=1e-5)


def test_gae_infinite_horizon_truncation_property():
    """SB3-style check: reward 1 every step, an infinite-horizon task cut every 8 steps.

    The true value of every state is sum_k 0.98^k = 1/(1-0.98) = 50, and the critic says exactly
    that. Then every TD error is delta = 1 + 0.98*50 - 50 = 0 -- including at the truncation
    steps, *provided* they bootstrap from V(final obs) = 50. Treating truncation as termination
    would give delta = 1 - 50 = -49 there, so the advantages would be far from 0.
    """
    gamma, T = 0.98, 20
    rewards = torch.ones(T, 1, dtype=torch.float64)
    values = torch.full((T, 1), 50.0, dtype=torch.float64)
    next_values = values.clone()
    done = torch.zeros(T, 1, dtype=torch.float64)
    done[7] = done[15] = 1.0  # truncated at t=7 and t=15; still running at t=19
    terminated = torch.zeros_like(done)

    adv, ret = gae(rewards, values, next_values, terminated, done, gamma=gamma, lam=1.0)
    assert adv[7, 0].item() == pytest.approx(0.0, abs=1e-9)
    assert adv[15, 0].item() == pytest.approx(0.0, abs=1e-9)
    assert adv.abs().max().item() < 1e-9
    assert torch.allclose(ret, values)

    # Sanity check that the property discriminates: as termination, A_7 = 1 - 50 = -49.
    wrong, _ = gae(rewards, values, next_values, done, done, gamma=gamma, lam=1.0)
    assert wrong[7, 0].item() == pytest.approx(-49.0, abs=1e-9)


# --------------------------------------------------------------------------------------------
# discounted_returns, rewards [1, 3, 2], gamma 0.9
# --------------------------------------------------------------------------------------------

R3 = col(1.0, 3.0, 2.0)


def test_discounted_returns_no_end_no_bootstrap():
    out = discounted_returns(R3, ZERO, gamma=G)
    # G_2 = 2;  G_1 = 3 + 0.9*2 = 4.8;  G_0 = 1 + 0.9*4.8 = 5.32
    assert out.squeeze(1).tolist() == pytest.approx([5.32, 4.8, 2.0], abs=1e-12)


def test_discounted_returns_no_end_with_bootstrap():
    out = discounted_returns(R3, ZERO, gamma=G, bootstrap=torch.tensor([10.0], dtype=torch.float64))
    # G_2 = 2 + 0.9*10 = 11;  G_1 = 3 + 0.9*11 = 12.9;  G_0 = 1 + 0.9*12.9 = 12.61
    assert out.squeeze(1).tolist() == pytest.approx([12.61, 12.9, 11.0], abs=1e-12)


def test_discounted_returns_episode_end_no_bootstrap():
    out = discounted_returns(R3, col(0.0, 1.0, 0.0), gamma=G)
    # G_2 = 2;  G_1 = 3 (sum restarts);  G_0 = 1 + 0.9*3 = 3.7
    assert out.squeeze(1).tolist() == pytest.approx([3.7, 3.0, 2.0], abs=1e-12)


def test_discounted_returns_episode_end_with_bootstrap():
    boot = torch.tensor([10.0], dtype=torch.float64)
    out = discounted_returns(R3, col(0.0, 1.0, 0.0), gamma=G, bootstrap=boot)
    # G_2 = 2 + 9 = 11 (episode still running);  G_1 = 3;  G_0 = 3.7
    assert out.squeeze(1).tolist() == pytest.approx([3.7, 3.0, 11.0], abs=1e-12)
    # an episode ending at the last step ignores the bootstrap: [5.32, 4.8, 2]
    out = discounted_returns(R3, col(0.0, 0.0, 1.0), gamma=G, bootstrap=boot)
    assert out.squeeze(1).tolist() == pytest.approx([5.32, 4.8, 2.0], abs=1e-12)
    assert boot.tolist() == [10.0]  # not mutated


def test_discounted_returns_two_columns():
    rewards = torch.cat([R3, R3], 1)
    done = torch.cat([ZERO, col(0.0, 1.0, 0.0)], 1)
    boot = torch.tensor([10.0, 0.0], dtype=torch.float64)
    out = discounted_returns(rewards, done, gamma=G, bootstrap=boot)
    assert out[:, 0].tolist() == pytest.approx([12.61, 12.9, 11.0], abs=1e-12)
    assert out[:, 1].tolist() == pytest.approx([3.7, 3.0, 2.0], abs=1e-12)


def test_next_values_by_hand():
    from ppox.core.advantages import next_values

    values = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])  # [T=3, N=2]
    done = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])  # env 1 ends at t=0, env 0 at t=1
    last = torch.tensor([4.0, 40.0])
    # env 0 was truncated at t=1 (flat index 1·2 + 0 = 2) with V(final obs) = 9; env 1 terminated
    out = next_values(values, last, done, torch.tensor([2]), torch.tensor([9.0]))
    torch.testing.assert_close(out, torch.tensor([[2.0, 0.0], [9.0, 30.0], [4.0, 40.0]]))
    assert torch.equal(
        values, torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    )  # inputs untouched
