"""Mergeable running moments (Welford's update and the parallel merge of Chan, Golub &
LeVeque, "Updating Formulae and a Pairwise Algorithm for Computing Sample Variances";
docs/design/normalization.md).

Statistics are a ``Moments(count, mean, m2)`` triple where ``m2`` is the sum of squared
deviations from the mean. Two triples merge exactly, so per-worker or per-step statistics
combine into the statistics of the concatenated data regardless of how it was split.
The functions use only arithmetic, so they accept NumPy arrays or torch tensors alike
(``moments_of`` needs the array's own ``mean``); they never mutate their arguments.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Moments(NamedTuple):
    """Running statistics of a stream of vectors with feature shape ``[*F]``.

    count: number of samples seen (a float, so merging huge counts stays exact enough; an array
    of counts when each row of ``mean`` / ``m2`` is a statistic of its own, see ``merge_moments``);
    mean: ``[*F]`` running mean; m2: ``[*F]`` sum of squared deviations from the mean.
    """

    count: Any  # type: ignore[assignment]  # shadows tuple.count on purpose: the paper name
    mean: Any
    m2: Any

    @property
    def var(self) -> Any:
        """Population variance ``m2 / count`` (zero-count statistics give zeros)."""
        return self.m2 / max(self.count, 1.0)


def moments_of(x: Any) -> Moments:
    """Moments of a batch ``x`` of shape ``[B, *F]`` (statistics over the leading axis)."""
    n = x.shape[0]
    mean = x.sum(0) / n  # sum/n rather than .mean(): NumPy's mean wrapper costs more than the math
    d = x - mean
    return Moments(float(n), mean, (d * d).sum(0))


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Moments of the concatenation of the data behind ``a`` and ``b`` (Chan et al. 1979).

    ``n = n_a + n_b``, ``δ = μ_b − μ_a``, ``μ = μ_a + δ·n_b/n``,
    ``M2 = M2_a + M2_b + δ²·n_a·n_b/n``.

    Counts may also be arrays (one per row of a batch of statistics); where both counts are 0
    the result is ``a``'s moments with count 0.
    """
    n = a.count + b.count
    safe = n + (n == 0)  # n, or 1 where n is 0 (for scalar and array counts alike)
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / safe)
    m2 = a.m2 + b.m2 + delta**2 * (a.count * b.count / safe)
    return Moments(n, mean, m2)


def normalize(x: Any, m: Moments, *, clip: float | None = None, eps: float = 1e-8) -> Any:
    """``(x − μ) / sqrt(σ² + eps)``, optionally clipped to ``[−clip, clip]``. Shape of ``x``."""
    out = (x - m.mean) / (m.var + eps) ** 0.5
    if clip is not None:
        out = out.clip(-clip, clip)
    return out
