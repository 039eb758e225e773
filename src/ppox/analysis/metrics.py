"""Reliability metrics and robust aggregates for learning curves, in pure NumPy.

The metrics follow the taxonomy of Chan et al. 2020, "Measuring the Reliability of Reinforcement
Learning Algorithms" (ICLR, arXiv 1912.05663); the aggregates and their confidence intervals follow
Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice" (NeurIPS, arXiv 2108.13264).
docs/metrics.md explains each number and where ppox departs from the reference code.

Conventions (every function):

- A *curve* is ``values[T]`` sampled on an increasing, evenly spaced step grid (``align_curves``
  puts curves with different grids on one). Higher values are better (returns).
- ``iqr`` = 75th − 25th percentile, percentiles by linear interpolation (NumPy's default).
- ``cvar(x, alpha)`` is the mean of the worst ``alpha`` fraction of the *empirical distribution* of
  ``x``: the integral of its quantile function over ``[0, alpha]`` divided by ``alpha``. When
  ``alpha·n`` is not a whole number the boundary sample counts with its fractional weight; when
  ``alpha·n < 1`` the result is the single worst sample. ``tail="lower"`` (default) treats low
  values as bad (returns, return changes); ``tail="upper"`` treats high values as bad (drawdowns).
- Inputs with NaN or infinite values, empty inputs and impossible parameters raise ``ValueError``
  with a message that says what to change. Constant curves give 0 for every dispersion and risk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def _finite(x: ArrayLike, name: str, ndim: int | tuple[int, ...] = 1) -> Array:
    a = np.asarray(x, dtype=np.float64)
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if a.ndim not in dims:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, dims))} dimension(s), got shape {a.shape}"
        )
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    bad = int(np.count_nonzero(~np.isfinite(a)))
    if bad:
        raise ValueError(
            f"{name} holds {bad} NaN/inf value(s); drop them first (align_curves does)"
        )
    return a


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha={alpha} must lie in (0, 1]")


def quantile_weights(n: int, lo: float, hi: float) -> Array:
    """Weights ``[n]`` (summing to 1) that average the sorted samples over quantiles ``[lo, hi]``.

    Sample ``k`` (0-based, ascending) owns the quantile interval ``[k/n, (k+1)/n]``; its weight is
    the length of that interval's overlap with ``[lo, hi]``, divided by ``hi − lo``. So
    ``sorted(x) @ quantile_weights(n, 0, a)`` is the lower CVaR at level ``a`` and
    ``quantile_weights(n, 0.25, 0.75)`` gives the interquartile mean.
    """
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"quantile range [{lo}, {hi}] must satisfy 0 ≤ lo < hi ≤ 1")
    k = np.arange(n, dtype=np.float64)
    overlap = np.minimum(hi, (k + 1) / n) - np.maximum(lo, k / n)
    return np.clip(overlap, 0.0, None) / (hi - lo)


# --- building blocks ------------------------------------------------------------------------------
def iqr(x: ArrayLike) -> float:
    """Interquartile range ``P75 − P25`` of ``x[n]`` (linear interpolation; 0 for one sample)."""
    a = _finite(x, "x")
    q25, q75 = np.percentile(a, [25, 75])
    return float(q75 - q25)


def cvar(x: ArrayLike, alpha: float = 0.05, *, tail: str = "lower") -> float:
    """Conditional value at risk of ``x[n]``: the mean of its worst ``alpha`` fraction.

    ``tail="lower"``: worst = lowest (``cvar ≤ mean``); ``tail="upper"``: worst = highest
    (``cvar ≥ mean``). See the module docstring for fractional tails; ``alpha=1`` gives the mean.
    """
    _check_alpha(alpha)
    if tail not in ("lower", "upper"):
        raise ValueError(f"tail={tail!r} must be 'lower' or 'upper'")
    a = np.sort(_finite(x, "x"))
    lo, hi = (0.0, alpha) if tail == "lower" else (1.0 - alpha, 1.0)
    return float(a @ quantile_weights(a.size, lo, hi))


def iqm(x: ArrayLike) -> float:
    """Interquartile mean of ``x[n]``: the mean of the quantile function over ``[0.25, 0.75]``.

    With ``n`` a multiple of 4 this is the mean of the middle half (as in rliable); otherwise the
    two boundary samples count with fractional weights instead of being dropped or kept whole.
    """
    a = np.sort(_finite(x, "x"))
    return float(a @ quantile_weights(a.size, 0.25, 0.75))


def first_differences(values: ArrayLike) -> Array:
    """``values[T]`` → ``[T-1]``: ``values[t+1] − values[t]``, the change per grid interval.

    This is the detrending step of the within-run metrics. Unlike the reference code ppox does not
    divide by the step spacing, so the result stays in return units (per evaluation interval).
    """
    return np.diff(_finite(values, "values"))


def drawdown(values: ArrayLike) -> Array:
    """``values[T]`` → ``[T]``: ``max(values[:t+1]) − values[t]`` ≥ 0, the drop below the running
    peak (0 everywhere for a non-decreasing curve)."""
    a = _finite(values, "values")
    return np.maximum.accumulate(a) - a


def moving_average(values: ArrayLike, width: int = 5) -> Array:
    """Low-pass filter: centred moving average over ``width`` (odd) points, along the last axis.

    ``values`` is ``[T]`` or ``[R, T]``. Near the ends the window shrinks *symmetrically* (point
    ``t`` averages ``t−r … t+r`` with ``r = min(width//2, t, T−1−t)``), so the filter works for any
    ``T ≥ 1``, keeps constant and straight-line curves exactly, and leaves the end points as they
    are (no edge bias in the final performance), unlike a Butterworth filter whose settling time
    exceeds a short curve (docs/metrics.md).
    """
    a = _finite(values, "values", (1, 2))
    if width < 1 or width % 2 == 0:
        raise ValueError(f"width={width} must be an odd number ≥ 1")
    n = a.shape[-1]
    t = np.arange(n)
    r = np.minimum(width // 2, np.minimum(t, n - 1 - t))
    c = np.concatenate([np.zeros(a.shape[:-1] + (1,)), np.cumsum(a, axis=-1)], axis=-1)
    return np.asarray((c[..., t + r + 1] - c[..., t - r]) / (2 * r + 1), dtype=np.float64)


# --- within one run -------------------------------------------------------------------------------
def dispersion_within_run(values: ArrayLike, window: int = 5) -> float:
    """DT: the median over sliding windows of the IQR of the first differences in the window.

    ``values[T]``; the windows are every run of ``window`` consecutive first differences (stride 1,
    ``T − window`` of them). Lower is more stable. Raises ``ValueError`` when ``window < 2`` or the
    curve has fewer than ``window`` differences (``T < window + 1``).
    """
    d = first_differences(values)
    if window < 2:
        raise ValueError(f"window={window} must be ≥ 2 (the IQR of one difference is always 0)")
    if d.size < window:
        raise ValueError(
            f"a curve of {d.size + 1} points has {d.size} differences, fewer than window={window}"
        )
    w = sliding_window_view(d, window)
    q25, q75 = np.percentile(w, [25, 75], axis=1)
    return float(np.median(q75 - q25))


def short_term_risk(values: ArrayLike, alpha: float = 0.05) -> float:
    """SRT: lower CVaR of the first differences of ``values[T]`` (``T ≥ 2``): the mean of the worst
    ``alpha`` fraction of step-to-step changes. Negative = the curve drops; higher is better."""
    d = first_differences(values)
    if d.size == 0:
        raise ValueError("short-term risk needs a curve of at least 2 points")
    return cvar(d, alpha)


def long_term_risk(values: ArrayLike, alpha: float = 0.05) -> float:
    """LRT: upper CVaR of the drawdown of ``values[T]``: the mean of the *largest* ``alpha`` fraction
    of drops below the running peak. ≥ 0, 0 for a non-decreasing curve; lower is better.

    The reference configuration averages the *smallest* drawdowns (lower tail of a non-negative
    quantity), which is ~0 for almost any curve; Chan et al. mean the worst drops, so ppox takes the
    upper tail.
    """
    return cvar(drawdown(values), alpha, tail="upper")


class WithinRun(NamedTuple):
    dispersion: float
    short_term_risk: float
    long_term_risk: float


def within_run(values: ArrayLike, *, window: int = 5, alpha: float = 0.05) -> WithinRun:
    """The three within-run metrics of one curve ``values[T]``."""
    return WithinRun(
        dispersion_within_run(values, window),
        short_term_risk(values, alpha),
        long_term_risk(values, alpha),
    )


# --- across runs ----------------------------------------------------------------------------------
def dispersion_across_runs(curves: ArrayLike, *, width: int = 5) -> float:
    """DR: ``curves[R, T]`` (R ≥ 2 runs on a common grid) → the median over the T points of the IQR
    across runs of the low-passed curves (:func:`moving_average` with ``width``). Lower is better."""
    a = _finite(curves, "curves", 2)
    if a.shape[0] < 2:
        raise ValueError("dispersion across runs needs at least 2 runs")
    q25, q75 = np.percentile(moving_average(a, width), [25, 75], axis=0)
    return float(np.median(q75 - q25))


def risk_across_runs(final: ArrayLike, alpha: float = 0.05) -> float:
    """RR: lower CVaR across runs of the final performance: ``final[R]``, or ``curves[R, T]`` whose
    last column is used (the low-pass filter leaves end points unchanged, so filtering first would
    not change it). With ``alpha·R < 1`` this is the worst run. Higher is better."""
    a = _finite(final, "final", (1, 2))
    return cvar(a[:, -1] if a.ndim == 2 else a, alpha)


class AcrossRuns(NamedTuple):
    dispersion: float
    risk: float


def across_runs(curves: ArrayLike, *, width: int = 5, alpha: float = 0.05) -> AcrossRuns:
    """Both across-run metrics of ``curves[R, T]`` (risk on the last column)."""
    return AcrossRuns(dispersion_across_runs(curves, width=width), risk_across_runs(curves, alpha))


# --- across rollouts of a fixed policy ------------------------------------------------------------
class AcrossRollouts(NamedTuple):
    dispersion: float
    risk: float


def across_rollouts(returns: ArrayLike, alpha: float = 0.05) -> AcrossRollouts:
    """DF and RF: IQR and lower CVaR of the returns ``[E]`` of one fixed policy's episodes."""
    return AcrossRollouts(iqr(returns), cvar(returns, alpha))


# --- aggregates with stratified-bootstrap confidence intervals ------------------------------------
RowStatistic = Callable[[Array], Array]
"""A statistic over the last axis: ``[..., N]`` → ``[...]``."""


def _iqm_rows(a: Array) -> Array:
    return np.asarray(
        np.sort(a, axis=-1) @ quantile_weights(a.shape[-1], 0.25, 0.75), dtype=np.float64
    )


STATISTICS: dict[str, RowStatistic] = {
    "median": lambda a: np.asarray(np.median(a, axis=-1), dtype=np.float64),
    "iqm": _iqm_rows,
    "mean": lambda a: np.asarray(np.mean(a, axis=-1), dtype=np.float64),
}


class Estimate(NamedTuple):
    """A point estimate and its confidence interval ``[low, high]``."""

    value: float
    low: float
    high: float


Scores = ArrayLike | Mapping[str, ArrayLike]
"""``[runs]`` (one task), ``[runs, tasks]``, or ``{task: [runs_k]}`` (tasks with different run counts)."""


def _strata(scores: Scores) -> list[Array]:
    """The scores of each task (stratum) as its own 1-D array."""
    if isinstance(scores, Mapping):
        if not scores:
            raise ValueError("scores is empty")
        return [_finite(s, f"scores[{k!r}]") for k, s in scores.items()]
    a = _finite(scores, "scores", (1, 2))
    return [a] if a.ndim == 1 else [a[:, k] for k in range(a.shape[1])]


def stratified_resample(scores: Scores, reps: int, rng: np.random.Generator) -> Array:
    """``reps`` bootstrap samples ``[reps, N]`` (N = all runs of all tasks, task by task).

    Every task (stratum) is resampled on its own: its ``n_k`` runs are drawn ``n_k`` times with
    replacement, so each sample keeps every task's size and mixes no scores across tasks.
    """
    blocks = [s[rng.integers(0, s.size, size=(reps, s.size))] for s in _strata(scores)]
    return np.concatenate(blocks, axis=1)


def bootstrap_ci(
    scores: Scores,
    statistic: str | RowStatistic = "iqm",
    *,
    reps: int = 2000,
    level: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> Estimate:
    """A statistic of the pooled scores with a stratified-bootstrap percentile interval.

    ``scores``: ``[runs]``, ``[runs, tasks]`` or ``{task: [runs_k]}`` (normalize scores first when
    tasks differ in scale). ``statistic``: ``"median"``, ``"iqm"``, ``"mean"`` (of all
    scores pooled) or a function over the last axis. The interval holds the central ``level`` mass
    of the statistic over ``reps`` resamples (:func:`stratified_resample`) drawn from ``seed``.
    """
    if reps < 1 or not 0 < level < 1:
        raise ValueError(f"reps={reps} must be ≥ 1 and level={level} in (0, 1)")
    fn = STATISTICS[statistic] if isinstance(statistic, str) else statistic
    pooled = np.concatenate(_strata(scores))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    boot = fn(stratified_resample(scores, reps, rng))
    low, high = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    return Estimate(float(fn(pooled[None])[0]), float(low), float(high))


def aggregate(
    scores: Scores, *, reps: int = 2000, level: float = 0.95, seed: int = 0
) -> dict[str, Estimate]:
    """Median, IQM and mean of ``scores`` (see :func:`bootstrap_ci`), each with its interval."""
    return {
        name: bootstrap_ci(scores, name, reps=reps, level=level, seed=seed) for name in STATISTICS
    }


def mean_band(
    curves: ArrayLike, *, reps: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[Array, Array, Array]:
    """``curves[R, T]`` → (mean, low, high), each ``[T]``: the mean over runs and a bootstrap
    percentile band (whole runs are resampled, so the band is consistent along the curve)."""
    a = _finite(curves, "curves", 2)
    idx = np.random.default_rng(seed).integers(0, a.shape[0], size=(reps, a.shape[0]))
    boot = a[idx].mean(axis=1)
    low, high = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return a.mean(axis=0), low, high


# --- a common step grid ---------------------------------------------------------------------------
def align_curves(
    curves: Sequence[tuple[ArrayLike, ArrayLike]], num: int | None = None
) -> tuple[Array, Array]:
    """Put curves ``(steps[T_i], values[T_i])`` on one grid → ``(grid[T], values[R, T])``.

    Points whose value is NaN are dropped first. When every curve then has the same steps, those
    steps are the grid (nothing is interpolated). Otherwise the grid is ``num`` evenly spaced steps
    (default: the fewest points any curve has inside the range) over the range all curves cover,
    and each curve is linearly interpolated onto it. Raises ``ValueError`` for a curve without
    finite points, steps that do not increase, or curves whose step ranges do not overlap.
    """
    clean: list[tuple[Array, Array]] = []
    for i, (s, v) in enumerate(curves):
        steps, vals = np.asarray(s, dtype=np.float64), np.asarray(v, dtype=np.float64)
        if steps.shape != vals.shape or steps.ndim != 1:
            raise ValueError(
                f"curve {i}: steps {steps.shape} and values {vals.shape} must be equal-length 1-D arrays"
            )
        keep = np.isfinite(vals) & np.isfinite(steps)
        if not keep.any():
            raise ValueError(f"curve {i} has no finite points")
        steps, vals = steps[keep], vals[keep]
        if np.any(np.diff(steps) <= 0):
            raise ValueError(f"curve {i}: steps must increase")
        clean.append((steps, vals))
    if not clean:
        raise ValueError("no curves to align")
    if all(c[0].shape == clean[0][0].shape and np.array_equal(c[0], clean[0][0]) for c in clean):
        return clean[0][0], np.stack([v for _, v in clean])
    lo, hi = max(s[0] for s, _ in clean), min(s[-1] for s, _ in clean)
    if lo > hi:
        raise ValueError(
            f"the curves share no step range (latest start {lo:g} > earliest end {hi:g})"
        )
    n = num or max(2, min(int(np.count_nonzero((s >= lo) & (s <= hi))) for s, _ in clean))
    grid = np.linspace(lo, hi, 1 if lo == hi else n)
    return grid, np.stack([np.interp(grid, s, v) for s, v in clean])
