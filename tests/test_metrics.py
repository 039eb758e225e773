"""Reliability metrics and aggregates (src/ppox/analysis/metrics.py): hand-computed numbers and properties.

Shared curve Y = [0, 1, 3, 2, 5, 5]:
    first differences D = [1, 2, -1, 3, 0]
    running max         = [0, 1, 3, 3, 5, 5]  →  drawdown = [0, 0, 0, 1, 0, 0]
"""

from __future__ import annotations

import numpy as np
import pytest

from ppox.analysis import metrics as m

Y = [0.0, 1.0, 3.0, 2.0, 5.0, 5.0]
RNG = np.random.default_rng(12345)
RANDOM = [RNG.normal(size=int(RNG.integers(1, 40))) * RNG.uniform(0.1, 100) for _ in range(200)]


# --- building blocks ------------------------------------------------------------------------------
def test_iqr_by_hand_and_of_a_constant():
    # sorted [-1, 2, 3, 5, 7]: P25 at position 1 = 2, P75 at position 3 = 5  → 3
    assert m.iqr([-1, 2, 5, 7, 3]) == 3.0
    # sorted [1, 2, 5, 6, 34]: P25 = 2, P75 = 6 → 4 (the outlier 34 does not matter)
    assert m.iqr([6, 5, 1, 34, 2]) == 4.0
    # sorted [1, 2, 3, 4]: P25 at position 0.75 = 1.75, P75 at 2.25 = 3.25 → 1.5
    assert m.iqr([4, 1, 3, 2]) == pytest.approx(1.5)
    assert m.iqr([7.5] * 9) == 0.0
    assert m.iqr([3.0]) == 0.0


def test_cvar_by_hand():
    # alpha·n = 0.15 < 1: the tail is the single worst value
    assert m.cvar([3, 7, 10], 0.05) == 3.0
    # sorted [1, 2, 3, 4, 10], alpha·n = 1.5: (1·1 + 0.5·2) / 1.5 = 4/3
    assert m.cvar([4, 1, 3, 2, 10], 0.3) == pytest.approx(4 / 3)
    # alpha·n = 2 exactly: mean(1, 2)
    assert m.cvar([4, 1, 3, 2], 0.5) == pytest.approx(1.5)
    # upper tail (worst = largest): mean(3, 4)
    assert m.cvar([4, 1, 3, 2], 0.5, tail="upper") == pytest.approx(3.5)
    # alpha = 1 is the mean
    assert m.cvar([4, 1, 3, 2, 10], 1.0) == pytest.approx(4.0)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.25, 0.5, 1.0])
def test_cvar_bounds_the_mean_and_grows_with_alpha(alpha):
    for x in RANDOM:
        lower, upper = m.cvar(x, alpha), m.cvar(x, alpha, tail="upper")
        assert x.min() - 1e-9 <= lower <= x.mean() + 1e-9
        assert x.mean() - 1e-9 <= upper <= x.max() + 1e-9
        assert lower <= m.cvar(x, min(1.0, alpha * 2)) + 1e-9  # a wider tail is less bad


def test_iqm_by_hand():
    # quantile weights over [0.25, 0.75] for n = 5: samples 2, 3, 4 own [0.2,0.4], [0.4,0.6],
    # [0.6,0.8] → overlaps 0.15, 0.2, 0.15 → (0.15·2 + 0.2·4 + 0.15·8) / 0.5 = 4.6
    assert m.iqm([16, 1, 8, 2, 4]) == pytest.approx(4.6)
    # rliable's own examples (n a multiple of 4, so the middle half exactly):
    assert m.iqm(np.array([[1, 2], [2, 2], [1, 1], [2, 1]]).ravel()) == pytest.approx(1.5)
    z = np.array([[0.1, 0.5, 2.0], [0.3, 0.9, 1.5], [0.2, 0.8, 3.0], [0.0, 0.7, 1.2]])
    assert m.iqm(z.ravel()) == pytest.approx((0.3 + 0.5 + 0.7 + 0.8 + 0.9 + 1.2) / 6)


def test_quantile_weights_sum_to_one():
    for n in (1, 2, 3, 7, 40):
        for lo, hi in ((0, 0.05), (0.25, 0.75), (0.95, 1.0), (0, 1)):
            assert m.quantile_weights(n, lo, hi).sum() == pytest.approx(1.0)


def test_first_differences_and_drawdown_by_hand():
    assert m.first_differences(Y).tolist() == [1, 2, -1, 3, 0]
    assert m.drawdown(Y).tolist() == [0, 0, 0, 1, 0, 0]
    # running max [0.3, 0.3, 0.3, 1] → [0, 0.2, 0.8, 0]
    assert m.drawdown([0.3, 0.1, -0.5, 1.0]) == pytest.approx([0, 0.2, 0.8, 0])


def test_drawdown_is_non_negative_and_zero_for_monotone_curves():
    for x in RANDOM:
        assert (m.drawdown(x) >= 0).all()
        assert not m.drawdown(np.sort(x)).any()
        assert m.long_term_risk(np.sort(x)) == 0.0


def test_moving_average_keeps_lines_and_shrinks_symmetrically():
    # width 3: ends unchanged; middle (1+5+1)/3, (5+1+5)/3, (1+5+1)/3
    assert m.moving_average([1, 5, 1, 5, 1], 3) == pytest.approx([1, 7 / 3, 11 / 3, 7 / 3, 1])
    line = 2.0 * np.arange(12) - 3.0
    assert m.moving_average(line, 7) == pytest.approx(line)
    assert m.moving_average([[4.0] * 5, [1.0] * 5], 99) == pytest.approx(
        np.array([[4.0] * 5, [1.0] * 5])
    )
    assert m.moving_average([2.0], 5).tolist() == [2.0]
    with pytest.raises(ValueError, match="odd"):
        m.moving_average(line, 4)


# --- within a run ---------------------------------------------------------------------------------
def test_within_run_metrics_by_hand():
    # windows of 3 differences: [1,2,-1] → sorted [-1,1,2]: P25 0, P75 1.5 → 1.5
    #                           [2,-1,3] → [-1,2,3]: 0.5, 2.5 → 2.0;  [-1,3,0] → [-1,0,3]: -0.5, 1.5 → 2.0
    # median(1.5, 2, 2) = 2
    assert m.dispersion_within_run(Y, window=3) == pytest.approx(2.0)
    # D sorted [-1, 0, 1, 2, 3]; alpha·n = 2 → mean(-1, 0)
    assert m.short_term_risk(Y, alpha=0.4) == pytest.approx(-0.5)
    # drawdown sorted desc [1, 0, 0, 0, 0, 0]; alpha·n = 2 → mean(1, 0); alpha·n < 1 → the largest
    assert m.long_term_risk(Y, alpha=1 / 3) == pytest.approx(0.5)
    assert m.within_run(Y, window=3) == (pytest.approx(2.0), -1.0, 1.0)


def test_long_term_risk_measures_the_largest_drops_not_the_smallest():
    # The reference configuration averages the smallest drawdowns (≈ 0 for any curve); a curve that
    # collapses from 100 to 10 must report a large risk.
    curve = [0, 50, 100, 100, 10, 20, 30, 40, 50, 60]
    assert m.long_term_risk(curve, alpha=0.1) == pytest.approx(90.0)
    assert m.cvar(m.drawdown(curve), 0.1, tail="lower") == 0.0  # the degenerate reading


def test_a_constant_curve_is_perfectly_reliable():
    flat = [7.0] * 10
    assert m.within_run(flat) == (0.0, 0.0, 0.0)
    assert m.across_runs([flat, flat, flat]) == (0.0, 7.0)


def test_edge_cases_raise_clear_errors():
    with pytest.raises(ValueError, match="fewer than window=5"):
        m.dispersion_within_run([1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="window=1"):
        m.dispersion_within_run(Y, window=1)
    with pytest.raises(ValueError, match="NaN"):
        m.within_run([1.0, np.nan, 2.0, 3.0, 4.0, 5.0, 6.0])
    with pytest.raises(ValueError, match="alpha=0"):
        m.cvar([1.0, 2.0], 0.0)
    with pytest.raises(ValueError, match="empty"):
        m.iqr([])
    with pytest.raises(ValueError, match="at least 2 points"):
        m.short_term_risk([1.0])
    with pytest.raises(ValueError, match="at least 2 runs"):
        m.dispersion_across_runs([[1.0, 2.0]])


# --- across runs and rollouts ---------------------------------------------------------------------
def test_across_runs_by_hand():
    # IQR of [0, 1, 2, 3] at every point: P75 2.25 - P25 0.75 = 1.5
    parallel = [[k] * 4 for k in range(4)]
    assert m.dispersion_across_runs(parallel) == pytest.approx(1.5)
    # width 3 smooths run 0 to [0, 2/3, 0]; IQR of two runs = |a - b| / 2 → [0.5, 1/6, 0.5]
    assert m.dispersion_across_runs([[0, 2, 0], [1, 1, 1]], width=3) == pytest.approx(0.5)
    assert m.dispersion_across_runs([[0, 2, 0], [1, 1, 1]], width=1) == pytest.approx(0.5)
    # risk: the last column [10, 3, 7], alpha·n < 1 → the worst run
    assert m.risk_across_runs([[0, 10], [5, 3], [1, 7]]) == 3.0
    assert m.risk_across_runs([10, 3, 7], alpha=2 / 3) == pytest.approx(5.0)


def test_across_rollouts_by_hand():
    # IQR 3 (as above); CVaR at 0.4 of sorted [-1, 2, 3, 5, 7] = mean(-1, 2)
    assert m.across_rollouts([-1, 2, 5, 7, 3], alpha=0.4) == (3.0, pytest.approx(0.5))
    assert m.across_rollouts([-1, 2, 5, 7, 3]) == (3.0, -1.0)


# --- aggregates and the bootstrap -----------------------------------------------------------------
def test_bootstrap_ci_contains_the_point_estimate():
    for k, x in enumerate(RANDOM[:60]):
        if x.size < 3:
            continue
        for stat in ("median", "iqm", "mean"):
            est = m.bootstrap_ci(x, stat, reps=500, seed=k)
            assert est.low - 1e-12 <= est.value <= est.high + 1e-12, (stat, x)


def test_aggregate_values_by_hand_and_reproducible():
    agg = m.aggregate([1.0, 2.0, 4.0, 8.0, 16.0], reps=300, seed=3)
    assert agg["median"].value == 4.0
    assert agg["iqm"].value == pytest.approx(4.6)
    assert agg["mean"].value == pytest.approx(6.2)
    assert agg == m.aggregate([1.0, 2.0, 4.0, 8.0, 16.0], reps=300, seed=3)
    assert agg != m.aggregate([1.0, 2.0, 4.0, 8.0, 16.0], reps=300, seed=4)
    assert m.bootstrap_ci([5.0] * 6, "mean") == (5.0, 5.0, 5.0)


def test_ci_narrows_with_more_runs():
    x = np.random.default_rng(0).normal(size=200)
    few, many = m.bootstrap_ci(x[:10], "mean"), m.bootstrap_ci(x, "mean")
    assert many.high - many.low < few.high - few.low


def test_stratified_resample_keeps_each_tasks_runs_and_size():
    tasks = {"a": [1.0, 2.0, 3.0], "b": [10.0, 20.0, 30.0, 40.0, 50.0]}
    boot = m.stratified_resample(tasks, 400, np.random.default_rng(0))
    assert boot.shape == (400, 8)
    assert set(np.unique(boot[:, :3])) <= {
        1.0,
        2.0,
        3.0,
    }  # task a's 3 slots hold only task a's runs
    assert set(np.unique(boot[:, 3:])) <= {10.0, 20.0, 30.0, 40.0, 50.0}
    # a [runs, tasks] matrix is stratified by column
    mat = np.array([[1.0, 100.0], [2.0, 200.0], [3.0, 300.0]])
    boot = m.stratified_resample(mat, 200, np.random.default_rng(1))
    assert set(np.unique(boot[:, :3])) <= {1.0, 2.0, 3.0} and set(np.unique(boot[:, 3:])) <= {
        100.0,
        200.0,
        300.0,
    }


def test_mean_band_brackets_the_mean():
    curves = np.random.default_rng(2).normal(size=(5, 30)).cumsum(axis=1)
    mean, low, high = m.mean_band(curves, reps=500)
    assert mean == pytest.approx(curves.mean(axis=0))
    assert (low <= mean + 1e-12).all() and (mean <= high + 1e-12).all()
    assert m.mean_band(curves[:1])[1] == pytest.approx(curves[0])  # one run: zero-width band


# --- common grid ----------------------------------------------------------------------------------
def test_align_curves_keeps_a_shared_grid_and_interpolates_otherwise():
    grid, vals = m.align_curves([([0, 10, 20], [1, 2, 3]), ([0, 10, 20], [4, 5, 6])])
    assert grid.tolist() == [0, 10, 20] and vals.tolist() == [[1, 2, 3], [4, 5, 6]]
    # overlap [5, 20]; fewest points inside it: curve 0 has 10, 20 → 2 points
    grid, vals = m.align_curves(
        [([0, 10, 20], [0, 10, 20]), ([5, 8, 12, 16, 20], [0, 3, 7, 11, 15])]
    )
    assert grid.tolist() == [5, 20]
    assert vals.tolist() == [[5, 20], [0, 15]]
    # NaN points are dropped before the grids are compared
    grid, vals = m.align_curves([([1, 2, 3], [np.nan, 2, 3]), ([2, 3], [5, 6])])
    assert grid.tolist() == [2, 3] and vals.tolist() == [[2, 3], [5, 6]]
    with pytest.raises(ValueError, match="share no step range"):
        m.align_curves([([0, 1], [0, 1]), ([2, 3], [0, 1])])
    with pytest.raises(ValueError, match="no finite points"):
        m.align_curves([([0, 1], [np.nan, np.nan])])
