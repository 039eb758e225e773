"""TRPO's step: the natural gradient by conjugate gradient, scaled to the trust region, and the
backtracking line search ("Trust Region Policy Optimization", Schulman et al. 2015, §6 and
Appendix C).

The policy step maximizes the surrogate ``L(θ) = E[ρ_θ · A]`` subject to
``KL(π_old ‖ π_θ) ≤ δ`` (``max_kl``). With ``g = ∇L`` and ``F`` the Fisher matrix (the Hessian
of the KL at ``θ_old``), the quadratic model's solution is the direction ``s = F⁻¹ g``, found by
conjugate gradient from Fisher-vector products alone (``F`` is never formed), scaled so that
``½ sᵀF s`` equals δ: ``Δθ = √(2δ / sᵀF s) · s``. The line search then tries ``Δθ``,
``shrink·Δθ``, ``shrink²·Δθ``, … and takes the first that improves the surrogate and keeps the
exact KL within δ; when none does, the policy stays where it was.

Pure functions on tensors; the learner (:mod:`ppox.training.trpo`) supplies the products and
the evaluations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["LineSearch", "conjugate_gradient", "line_search", "trust_region_step"]


def conjugate_gradient(
    fvp: Callable[[Tensor], Tensor], b: Tensor, iters: int, tol: float = 1e-10
) -> Tensor:
    """Approximately solve ``F x = b`` for a symmetric positive-definite ``F`` given only
    ``fvp(v) = F v``: at most ``iters`` conjugate-gradient iterations from ``x = 0``, stopping
    once the squared residual is below ``tol`` (exact after ``dim`` iterations in exact
    arithmetic)."""
    x = torch.zeros_like(b)
    r = b.clone()  # the residual b − F x
    p = b.clone()
    rr = torch.dot(r, r)
    for _ in range(iters):
        if float(rr) < tol:
            break
        fp = fvp(p)
        alpha = rr / torch.dot(p, fp)
        x += alpha * p
        r -= alpha * fp
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


class Step(NamedTuple):
    """The full step of the trust region and what the quadratic model expects of it."""

    step: Tensor  # Δθ, scaled so that ½ Δθᵀ F Δθ = max_kl
    expected_improvement: float  # gᵀ Δθ: the surrogate's first-order gain along the full step
    shs: float  # ½ sᵀ F s of the unscaled direction (0: no step is possible)


def trust_region_step(direction: Tensor, f_direction: Tensor, g: Tensor, max_kl: float) -> Step:
    """Scale the natural-gradient ``direction`` ``s`` (with ``f_direction = F s``) to the
    boundary of the trust region: ``Δθ = √(2·max_kl / sᵀF s) · s``."""
    shs = 0.5 * float(torch.dot(direction, f_direction))
    if not math.isfinite(shs) or shs <= 0.0:
        return Step(torch.zeros_like(direction), 0.0, 0.0)
    scale = math.sqrt(max_kl / shs)
    step = direction * scale
    return Step(step, float(torch.dot(g, step)), shs)


class LineSearch(NamedTuple):
    """The outcome of :func:`line_search`."""

    fraction: float  # of the full step taken (0: none accepted)
    tries: int  # evaluations made
    improvement: float  # surrogate gain of the step taken (0 when none)
    kl: float  # KL(π_old ‖ π_new) of the step taken (0 when none)


def line_search(
    evaluate: Callable[[float], tuple[float, float]],
    max_kl: float,
    steps: int,
    shrink: float,
) -> LineSearch:
    """Backtracking line search along the full step.

    ``evaluate(fraction)`` puts the policy at ``θ_old + fraction·Δθ`` and returns the surrogate's
    improvement over ``θ_old`` and ``KL(π_old ‖ π_θ)`` there. Fractions ``1, shrink, shrink², …``
    (``steps`` of them) are tried in turn; the first with a finite, positive improvement and a KL
    at most ``max_kl`` is accepted. Returns fraction 0 when none is (the caller restores θ_old).
    """
    fraction = 1.0
    for tries in range(1, steps + 1):
        improvement, kl = evaluate(fraction)
        if math.isfinite(improvement) and math.isfinite(kl) and improvement > 0.0 and kl <= max_kl:
            return LineSearch(fraction, tries, improvement, kl)
        fraction *= shrink
    return LineSearch(0.0, steps, 0.0, 0.0)
