"""Named containers passed between the collector, the advantage step and the learner.

Shape glossary: ``T`` rollout steps, ``N`` envs, ``B`` samples in a (mini)batch, ``A`` the
action shape of the head (``()`` for Discrete, ``(d,)`` for Box), ``M`` the mask shape.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class Rollout(NamedTuple):
    """One iteration of experience, time-major ``[T, N, ...]``."""

    obs: Tensor  # [T, N, *obs_shape] normalized observations the policy saw
    action: Tensor  # [T, N, *A] unclipped actions as sampled
    logp: Tensor  # [T, N] log π_old(action | obs)
    value: Tensor  # [T, N] V_old(obs)
    next_value: Tensor  # [T, N] V_old of the true next observation (final obs at an episode end)
    reward: Tensor  # [T, N] (scaled) reward
    terminated: Tensor  # [T, N] float, 1 where the episode reached a terminal state
    done: Tensor  # [T, N] float, 1 where the episode ended (terminated or truncated)
    mask: Tensor | None  # [T, N, *M] action masks, or None


class Batch(NamedTuple):
    """A flattened rollout with advantages, ``[B, ...]``."""

    obs: Tensor
    action: Tensor
    logp: Tensor
    value: Tensor
    adv: Tensor
    ret: Tensor
    mask: Tensor | None

    def take(self, idx: Tensor) -> Batch:
        return Batch(*(None if x is None else x[idx] for x in self))  # type: ignore[arg-type]
