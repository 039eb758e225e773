"""Schedules of a coefficient over training progress: the learning-rate annealing and the
entropy schedules of docs/design/losses.md.

``progress`` runs from 0 (start of training) to 1 (end of the budget).
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "exponential")


def schedule_value(kind: str, start: float, end: float, progress: float) -> float:
    """Value of a schedule at ``progress`` ∈ [0, 1] (clamped).

    - ``"constant"``: always ``start``.
    - ``"linear"``: ``start + (end − start)·progress``.
    - ``"exponential"``: geometric interpolation ``start·(end/start)^progress``; needs
      ``start`` and ``end`` of the same sign and non-zero.
    """
    p = min(max(progress, 0.0), 1.0)
    if kind == "constant":
        return start
    if kind == "linear":
        return start + (end - start) * p
    if kind == "exponential":
        if start == 0 or end == 0 or (start > 0) != (end > 0):
            raise ValueError(
                f"an exponential schedule needs non-zero start and end of one sign (got {start}, {end})"
            )
        return start * math.exp(p * math.log(end / start))
    raise ValueError(f"schedule kind must be one of {SCHEDULES} (got {kind!r})")
