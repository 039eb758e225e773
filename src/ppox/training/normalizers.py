"""Observation normalization and reward scaling, batched over the vector env
(docs/design/normalization.md).

They run at the env boundary in the collector (one NumPy op per step for all envs, instead of
one wrapper per env) and their statistics are part of the policy: they are saved in every
checkpoint and used unchanged by evaluation and ``predict``.

With several workers (``ppox.training.distributed``) each worker updates its statistics every step, as
in one process, and also keeps the moments of the data it saw since the last :meth:`sync`
apart; after each collection ``sync`` merges every worker's new data into the statistics they
all held before it (DPPO: "after data collection the local changes are merged"), so all workers
end the iteration with the same statistics: those of all their data together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ppox.core.normalize import Moments, merge_moments, moments_of, normalize
from ppox.training.distributed import all_reduce_sum_, merge_across_ranks, rank, world_size

_EPS = 1e-8  # added to the variance before its square root (normalize()'s default)


class _Shared:
    """The statistics-merging part of both normalizers: ``moments`` (what normalizes now),
    ``base`` (the statistics all workers agreed on at the last sync) and ``fresh`` (the moments
    of this worker's data since then). ``fresh`` is kept only after :meth:`share`."""

    moments: Moments

    def _init_shared(self, shape: tuple[int, ...]) -> None:
        self.shared = False
        self._shape = shape
        self._base, self._fresh = self.moments, self._zero()

    def _zero(self) -> Moments:
        return Moments(0.0, np.zeros(self._shape), np.zeros(self._shape))

    def _add(self, batch: Moments) -> None:
        self.moments = merge_moments(self.moments, batch)
        if self.shared:
            self._fresh = merge_moments(self._fresh, batch)

    def _set(self, moments: Moments) -> None:
        self.moments = self._base = moments
        self._fresh = self._zero()

    def _sync(self) -> None:
        if self.shared:
            self._set(merge_moments(self._base, merge_across_ranks(self._fresh)))


class _NonZero:
    """How many observations had each entry non-zero: exact counts (integers in float64), added
    up across workers at each :meth:`sync` as the moments are merged."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.counts = np.zeros(shape)
        self.shared = False
        self._base, self._fresh = self.counts, np.zeros(shape)

    def update(self, obs: np.ndarray) -> None:
        seen = np.count_nonzero(obs, axis=0)
        self.counts = self.counts + seen
        if self.shared:
            self._fresh = self._fresh + seen

    def share(self) -> None:
        self.shared = True
        self._base, self._fresh = self.counts, np.zeros_like(self.counts)

    def sync(self) -> None:
        if self.shared:
            fresh = all_reduce_sum_(torch.from_numpy(self._fresh.copy())).numpy()
            self.counts = self._base = self._base + fresh
            self._fresh = np.zeros_like(self.counts)

    def load(self, counts: Any) -> None:
        self.counts = self._base = np.asarray(counts, dtype=np.float64)
        self._fresh = np.zeros_like(self.counts)


class ObsNormalizer(_Shared):
    """Running mean/std of observations; identity when disabled (docs/design/normalization.md).

    ``shape`` says what is normalized: ``[*obs_shape]`` for a plain array observation (a
    vector Box); a dict of leaf path → shape for structured observations (the vector Box
    leaves, each with its own statistics; other leaves, such as images and discrete values,
    pass through unchanged); or None (nothing to normalize: the observation passes unchanged).
    :meth:`ppox.types.ObsLayout.norm_shape` gives the right one for a space.

    ``sparse`` (``env.obs_sparse``, a fraction; 0 for none): an entry that was non-zero in
    fewer than this fraction of the observations so far is scaled, not standardized: divided
    by the root mean square of its non-zero values, not centred (:meth:`affine`). The counts of
    non-zero values are kept exactly, so "fewer than" is exact.

    ``until`` (``env.obs_norm_until``; 0 for never): the statistics stop updating once they
    hold this many observations; the batch that crosses the limit adds only its first rows. With
    several workers (:meth:`share`), the observations still missing at each :meth:`sync` are
    split among the workers in rank order (rank ``r`` of ``W`` takes ``⌊m / W⌋``, plus one if
    ``r < m mod W``), so the merged statistics too hold exactly ``until`` observations.
    """

    def __init__(
        self,
        shape: tuple[int, ...] | dict[str, tuple[int, ...]] | None,
        *,
        enabled: bool,
        clip: float,
        sparse: float = 0.0,
        until: int = 0,
    ) -> None:
        self.enabled, self.clip, self.sparse, self.until = enabled, clip, sparse, until
        self.leaves: dict[str, ObsNormalizer] | None = None
        self.passthrough = shape is None
        if isinstance(shape, dict):
            self.leaves = {
                k: ObsNormalizer(s, enabled=enabled, clip=clip, sparse=sparse, until=until)
                for k, s in shape.items()
            }
        self.moments = (
            Moments(0.0, np.zeros(shape), np.zeros(shape))
            if isinstance(shape, tuple)
            else Moments(0.0, 0.0, 0.0)
        )
        self._init_shared(shape if isinstance(shape, tuple) else ())
        self.nonzero = (
            _NonZero(shape) if isinstance(shape, tuple) and enabled and sparse > 0 else None
        )

    def share(self) -> None:
        """Prepare for :meth:`sync` (multi-worker training): keep this worker's new data apart."""
        for norm in (self.leaves or {}).values():
            norm.share()
        self._set(self.moments)
        self.shared = self.leaves is None and self.enabled and not self.passthrough
        self._rank_of = (rank(), world_size())  # fixed for the run: read once, not every step
        if self.nonzero is not None:
            self.nonzero.share()

    def sync(self) -> None:
        """Merge every worker's data since the last sync into the statistics (a collective: every
        worker calls it at the same point; nothing happens unless :meth:`share` was called)."""
        for norm in (self.leaves or {}).values():  # the same order on every worker
            norm.sync()
        self._sync()
        if self.nonzero is not None:
            self.nonzero.sync()

    def update(self, obs: Any) -> None:
        """Add a batch ``[B, *obs_shape]`` (or a dict of leaf batches) to the statistics."""
        if self.leaves is not None:
            for k, norm in self.leaves.items():
                norm.update(obs[k])
        elif self.enabled and not self.passthrough:
            if self.until:
                room = self._room()
                if room <= 0:
                    return
                obs = obs[:room]
            self._add(moments_of(obs.astype(np.float64)))
            if self.nonzero is not None:
                self.nonzero.update(obs)

    def _room(self) -> int:
        """How many more observations this worker may add under ``until``: what the statistics
        lack in one process; with several workers, this worker's share of what the agreed
        statistics lacked at the last sync, less what it has added since."""
        if not self.shared:
            return self.until - int(self.moments.count)
        (me, world), lack = self._rank_of, max(self.until - int(self._base.count), 0)
        share = lack // world + (1 if me < lack % world else 0)
        return share - int(self._fresh.count)

    def rare(self) -> np.ndarray | None:
        """Which entries were non-zero in fewer than ``sparse`` of the observations so far (None
        without ``sparse``)."""
        return None if self.nonzero is None else self._non_zero_fraction() < self.sparse

    def _non_zero_fraction(self) -> np.ndarray:
        assert self.nonzero is not None
        return self.nonzero.counts / max(self.moments.count, 1.0)

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """``(centre, scale)`` with ``normalized = clip((obs − centre) / scale)``: the running
        mean and ``sqrt(σ² + 1e-8)``; with ``sparse``, for each :meth:`rare` entry, non-zero in a
        fraction ``p`` of the observations, 0 and ``sqrt(E[x²] / p + 1e-8)``, the root mean square
        of its non-zero values (an entry never non-zero stays 0)."""
        m = self.moments
        centre, scale = np.asarray(m.mean), np.asarray((m.var + _EPS) ** 0.5)
        if self.nonzero is None:
            return centre, scale
        p = self._non_zero_fraction()
        rare = p < self.sparse
        rms = np.sqrt((m.var + m.mean**2) / np.maximum(p, 1e-300) + _EPS)
        return np.where(rare, 0.0, centre), np.where(rare, rms, scale)

    def __call__(self, obs: Any) -> Any:
        """Normalized float32 copy of ``obs`` (leaves not tracked are returned as they are)."""
        if self.leaves is not None:
            return {k: self.leaves[k](v) if k in self.leaves else v for k, v in obs.items()}
        if self.passthrough:
            return obs
        if not self.enabled:
            return obs.astype(np.float32, copy=False)
        if self.nonzero is None:
            return normalize(obs, self.moments, clip=self.clip, eps=_EPS).astype(np.float32)
        centre, scale = self.affine()
        return ((obs - centre) / scale).clip(-self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        if self.leaves is not None:
            return {"leaves": {k: n.state_dict() for k, n in self.leaves.items()}}
        if self.passthrough:
            return {}
        state = {
            "count": self.moments.count,
            "mean": self.moments.mean.tolist(),
            "m2": self.moments.m2.tolist(),
        }
        if self.nonzero is not None:
            state["nonzero"] = self.nonzero.counts.tolist()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.leaves is not None:
            if set(state["leaves"]) != set(self.leaves):
                raise ValueError(
                    f"observation statistics for keys {sorted(state['leaves'])}, expected {sorted(self.leaves)}"
                )
            for k, n in self.leaves.items():
                n.load_state_dict(state["leaves"][k])
        elif not self.passthrough:
            self._set(
                Moments(float(state["count"]), np.asarray(state["mean"]), np.asarray(state["m2"]))
            )
            if self.nonzero is not None:
                self.nonzero.load(state["nonzero"])


class RewardScaler(_Shared):
    """Divides rewards by the running std of each env's discounted return (no centering).

    ``ret ← γ·ret + r`` per env (reset at episode ends); the std is over all returns seen.
    """

    def __init__(self, num_envs: int, *, enabled: bool, gamma: float, clip: float) -> None:
        self.enabled, self.gamma, self.clip = enabled, gamma, clip
        self.ret = np.zeros(num_envs)
        self.moments = Moments(0.0, np.zeros(()), np.zeros(()))
        self._init_shared(())

    def share(self) -> None:
        """Prepare for :meth:`sync` (multi-worker training): keep this worker's new returns apart."""
        self._set(self.moments)
        self.shared = self.enabled

    def sync(self) -> None:
        """Merge every worker's returns since the last sync into the statistics (a collective)."""
        self._sync()

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return reward.astype(np.float32, copy=False)
        self.ret = self.ret * self.gamma + reward
        self._add(moments_of(self.ret))
        self.ret = np.where(done, 0.0, self.ret)
        scaled = reward / np.sqrt(self.moments.var + 1e-8)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        m = self.moments
        return {
            "count": m.count,
            "mean": float(m.mean),
            "m2": float(m.m2),
            "ret": self.ret.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._set(
            Moments(float(state["count"]), np.asarray(state["mean"]), np.asarray(state["m2"]))
        )
        self.ret = np.asarray(state["ret"], dtype=np.float64)
