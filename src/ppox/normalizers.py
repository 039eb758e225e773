"""Observation normalization and reward scaling, batched over the vector env (SPEC §5.3).

They run at the env boundary in the collector (one NumPy op per step for all envs, instead of
one wrapper per env) and their statistics are part of the policy: they are saved in every
checkpoint and used unchanged by evaluation and ``predict``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ppox.core.normalize import Moments, merge_moments, moments_of, normalize


class ObsNormalizer:
    """Running mean/std of observations; identity when disabled (SPEC §3.5, §5.3).

    ``shape`` says what is normalized: ``[*obs_shape]`` for a plain array observation (a
    vector Box); a dict of leaf path → shape for structured observations (the vector Box
    leaves, each with its own statistics; other leaves, such as images and discrete values,
    pass through unchanged); or None (nothing to normalize: the observation passes unchanged).
    :meth:`ppox.types.ObsLayout.norm_shape` gives the right one for a space.
    """

    def __init__(self, shape: tuple[int, ...] | dict[str, tuple[int, ...]] | None, *, enabled: bool, clip: float) -> None:
        self.enabled, self.clip = enabled, clip
        self.leaves: dict[str, ObsNormalizer] | None = None
        self.passthrough = shape is None
        if isinstance(shape, dict):
            self.leaves = {k: ObsNormalizer(s, enabled=enabled, clip=clip) for k, s in shape.items()}
        self.moments = Moments(0.0, np.zeros(shape), np.zeros(shape)) if isinstance(shape, tuple) else Moments(0.0, 0.0, 0.0)

    def update(self, obs: Any) -> None:
        """Add a batch ``[B, *obs_shape]`` (or a dict of leaf batches) to the statistics."""
        if self.leaves is not None:
            for k, norm in self.leaves.items():
                norm.update(obs[k])
        elif self.enabled and not self.passthrough:
            self.moments = merge_moments(self.moments, moments_of(obs.astype(np.float64)))

    def __call__(self, obs: Any) -> Any:
        """Normalized float32 copy of ``obs`` (leaves not tracked are returned as they are)."""
        if self.leaves is not None:
            return {k: self.leaves[k](v) if k in self.leaves else v for k, v in obs.items()}
        if self.passthrough:
            return obs
        if not self.enabled:
            return obs.astype(np.float32, copy=False)
        return normalize(obs, self.moments, clip=self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        if self.leaves is not None:
            return {"leaves": {k: n.state_dict() for k, n in self.leaves.items()}}
        if self.passthrough:
            return {}
        return {"count": self.moments.count, "mean": self.moments.mean.tolist(), "m2": self.moments.m2.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.leaves is not None:
            if set(state["leaves"]) != set(self.leaves):
                raise ValueError(f"observation statistics for keys {sorted(state['leaves'])}, expected {sorted(self.leaves)}")
            for k, n in self.leaves.items():
                n.load_state_dict(state["leaves"][k])
        elif not self.passthrough:
            self.moments = Moments(float(state["count"]), np.asarray(state["mean"]), np.asarray(state["m2"]))


class RewardScaler:
    """Divides rewards by the running std of each env's discounted return (no centering).

    ``ret ← γ·ret + r`` per env (reset at episode ends); the std is over all returns seen.
    """

    def __init__(self, num_envs: int, *, enabled: bool, gamma: float, clip: float) -> None:
        self.enabled, self.gamma, self.clip = enabled, gamma, clip
        self.ret = np.zeros(num_envs)
        self.moments = Moments(0.0, np.zeros(()), np.zeros(()))

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return reward.astype(np.float32, copy=False)
        self.ret = self.ret * self.gamma + reward
        self.moments = merge_moments(self.moments, moments_of(self.ret))
        self.ret = np.where(done, 0.0, self.ret)
        scaled = reward / np.sqrt(self.moments.var + 1e-8)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        m = self.moments
        return {"count": m.count, "mean": float(m.mean), "m2": float(m.m2), "ret": self.ret.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.moments = Moments(float(state["count"]), np.asarray(state["mean"]), np.asarray(state["m2"]))
        self.ret = np.asarray(state["ret"], dtype=np.float64)
