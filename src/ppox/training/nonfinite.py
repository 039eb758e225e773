"""Finding non-finite observations and rewards from environments (``env.nonfinite_env``).

A single NaN reward used to flow into the advantages, the gradient and every parameter, and the
run ended "successfully" with a corrupted policy. The collector checks what each vector step
returns before anything reads it (:func:`all_finite`, two reductions per step), and only when
that fails looks for the rows to blame (:func:`bad_rows`) and reports or skips them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["all_finite", "bad_rows", "describe", "merge_rows"]


def _float_leaves(obs: Any) -> list[np.ndarray]:
    """The floating-point arrays of a (nested dict / tuple) batch of observations."""
    if isinstance(obs, dict):
        return [x for v in obs.values() for x in _float_leaves(v)]
    if isinstance(obs, tuple):
        return [x for v in obs for x in _float_leaves(v)]
    arr = np.asarray(obs)
    return [arr] if arr.dtype.kind == "f" else []


def all_finite(obs: Any, reward: np.ndarray) -> bool:
    """Whether every observation and reward is finite. A quick sum first: a non-finite element
    makes it non-finite (a sum that overflows makes it so too; :func:`bad_rows` then finds no
    row to blame and the step goes on)."""
    total = float(np.add.reduce(reward))
    if isinstance(obs, np.ndarray):
        if obs.dtype.kind == "f":
            total += float(np.add.reduce(obs, axis=None))
    else:
        total += sum(float(np.add.reduce(x, axis=None)) for x in _float_leaves(obs))
    return math.isfinite(total) or not bad_rows(obs, reward).any()


def bad_rows(obs: Any, reward: np.ndarray) -> np.ndarray:
    """``[N]`` bool: the envs whose observation or reward holds a NaN or an infinity."""
    bad = ~np.isfinite(reward)
    for leaf in _float_leaves(obs):
        bad |= ~np.isfinite(leaf.reshape(leaf.shape[0], -1)).all(1)
    return bad


def describe(obs: Any, reward: np.ndarray, i: int) -> str:
    """What is non-finite for env ``i``: ``"reward nan"``, ``"observation (3 of 4 values)"``."""
    parts = []
    if not math.isfinite(float(reward[i])):
        parts.append(f"reward {float(reward[i])}")
    leaves = _float_leaves(obs)
    if leaves:
        row = np.concatenate([leaf[i].reshape(-1) for leaf in leaves])
        n = int((~np.isfinite(row)).sum())
        if n:
            parts.append(f"observation ({n} of {row.size} values non-finite)")
    return " and ".join(parts)


def merge_rows(into: Any, source: Any, rows: np.ndarray) -> Any:
    """``into`` with the rows ``rows`` (``[N]`` bool) taken from ``source``, leaf by leaf (nested
    dicts / tuples of ``[N, ...]`` arrays); new arrays, the inputs are left as they are."""
    if isinstance(into, dict):
        return {k: merge_rows(v, source[k], rows) for k, v in into.items()}
    if isinstance(into, tuple):
        return tuple(merge_rows(v, s, rows) for v, s in zip(into, source))
    out = np.array(into, copy=True)
    out[rows] = np.asarray(source)[rows]
    return out
