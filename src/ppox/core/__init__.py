"""Pure math: tensors in, tensors out. No modules, no config objects, no mutation of inputs."""

from ppox.core.advantages import discounted_returns, gae
from ppox.core.losses import (
    adaptive_kl_coef,
    clip_fraction,
    clipped_surrogate,
    explained_variance,
    kl_estimate,
    normalize_advantages,
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
    "merge_moments",
    "moments_of",
    "normalize",
    "normalize_advantages",
    "schedule_value",
    "value_loss",
]
