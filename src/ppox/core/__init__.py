"""Pure math: tensors in, tensors out. No modules, no config objects, no mutation of inputs."""

from ppox.core.advantages import discounted_returns, gae, next_values, nstep_returns
from ppox.core.losses import (
    adaptive_kl_coef,
    clip_fraction,
    clipped_surrogate,
    explained_variance,
    kl_estimate,
    kl_penalty,
    normalize_advantages,
    reinforce_loss,
    surrogate,
    value_loss,
)
from ppox.core.normalize import Moments, merge_moments, moments_of, normalize
from ppox.core.schedules import schedule_value

__all__ = [
    "Moments",
    "adaptive_kl_coef",
    "clip_fraction",
    "clipped_surrogate",
    "discounted_returns",
    "explained_variance",
    "gae",
    "kl_estimate",
    "kl_penalty",
    "merge_moments",
    "moments_of",
    "normalize",
    "normalize_advantages",
    "next_values",
    "nstep_returns",
    "reinforce_loss",
    "schedule_value",
    "surrogate",
    "value_loss",
]
