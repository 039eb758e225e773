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
    """Running mean/std of observations ``[*obs_shape]``; identity when disabled."""

    def __init__(self, shape: tuple[int, ...], *, enabled: bool, clip: float) -> None:
        self.enabled, self.clip = enabled, clip
        self.moments = Moments(0.0, np.zeros(shape), np.zeros(shape))

    def update(self, obs: np.ndarray) -> None:
        if self.enabled:
            self.moments = merge_moments(self.moments, moments_of(obs.astype(np.float64)))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return obs.astype(np.float32, copy=False)
        return normalize(obs, self.moments, clip=self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.moments.count, "mean": self.moments.mean.tolist(), "m2": self.moments.m2.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
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
