"""PPO loss terms and diagnostics (docs/design/losses.md): "Proximal Policy Optimization
Algorithms" (Schulman et al. 2017) and the family around it.

Every loss here is *per sample* (shape ``[B]``) and is a quantity to minimize, so weighting,
masking and reduction stay with the caller. ``B`` is the minibatch size.
"""

from __future__ import annotations

import torch
from torch import Tensor


def clipped_surrogate(
    adv: Tensor,
    log_ratio: Tensor,
    *,
    clip_coef: float,
    dual_clip: float | None = None,
) -> Tensor:
    """PPO-Clip policy loss, optionally with dual clip (Ye et al. 2020, "Mastering Complex
    Control in MOBA Games with Deep Reinforcement Learning"; the "亡羊补牢" (extra clip) realm of the
    PPO × Family course's seven realms).

    Args:
        adv: ``[B]`` advantages (already normalized if the caller wants that).
        log_ratio: ``[B]`` ``log π_θ(a|s) − log π_θk(a|s)``.
        clip_coef: ε; the ratio is clipped to ``[1 − ε, 1 + ε]``.
        dual_clip: c > 1, or None. For ``A < 0`` the objective is further bounded below by
            ``c·A`` so that a huge ratio cannot produce an unbounded loss.

    Returns:
        ``[B]`` loss ``−min(ρA, clip(ρ)A)`` (with the dual bound applied where ``A < 0``).
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1 (got {dual_clip})")
    ratio = log_ratio.exp()
    objective = torch.minimum(ratio * adv, ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef) * adv)
    if dual_clip is not None:
        objective = torch.where(adv < 0, torch.maximum(objective, dual_clip * adv), objective)
    return -objective


def surrogate(adv: Tensor, log_ratio: Tensor) -> Tensor:
    """The unclipped importance-sampled policy loss of PPO-Penalty, ``−ρ·A`` ``[B]``."""
    return -log_ratio.exp() * adv


def reinforce_loss(adv: Tensor, logp: Tensor) -> Tensor:
    """REINFORCE (Williams 1992; the PPO × Family course's policy-gradient tutorial):
    ``−(G_t − b)·log π(a_t|s_t)`` ``[B]``, where ``adv`` holds ``G_t − b`` (reward-to-go minus the
    baseline, no gradient) and ``logp`` is the current policy's log-probability of the taken action
    (with gradient)."""
    return -adv.detach() * logp


def value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    *,
    clip: float | None = None,
) -> Tensor:
    """Critic loss ``0.5·(V − R̂)²``, or with value clipping ``0.5·max((V − R̂)², (V_clip − R̂)²)``.

    Args:
        values: ``[B]`` current critic output V.
        old_values: ``[B]`` critic output stored at collection time.
        returns: ``[B]`` targets R̂.
        clip: ε_v in return units, or None for no clipping.
            ``V_clip = V_old + clip(V − V_old, −ε_v, ε_v)``; note it is a *max*, so the clipped
            term can only make the loss larger (the PPO2 form; the course's extra-clip realm).

    Returns:
        ``[B]`` per-sample loss.
    """
    loss = (values - returns).square()
    if clip is not None:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        loss = torch.maximum(loss, (clipped - returns).square())
    return 0.5 * loss


def kl_estimate(log_ratio: Tensor, kind: str = "k3") -> Tensor:
    """Per-sample estimators of ``KL(π_old ‖ π_new)`` from samples of π_old (Schulman, 2020).

    Args:
        log_ratio: ``[B]`` ``log π_new(a|s) − log π_old(a|s)`` for ``a ~ π_old``.
        kind: ``"k1"`` = ``−log ρ`` (unbiased, high variance, can be negative);
            ``"k2"`` = ``½ (log ρ)²`` (biased, low variance);
            ``"k3"`` = ``(ρ − 1) − log ρ`` (unbiased, non-negative, low variance).

    Returns:
        ``[B]`` estimates; average them for the batch KL.
    """
    if kind == "k1":
        return -log_ratio
    if kind == "k2":
        return 0.5 * log_ratio.square()
    if kind == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"kl_estimate kind must be one of 'k1', 'k2', 'k3' (got {kind!r})")


def adaptive_kl_coef(
    coef: float,
    kl: float,
    *,
    target: float,
    tolerance: float = 1.5,
    factor: float = 2.0,
    lower_factor: float | None = None,
    limits: tuple[float, float] = (1e-10, 1e6),
) -> float:
    """The adaptive KL-penalty rule of PPO-Penalty (Schulman et al. 2017, §4; DPPO, Heess et al.
    2017).

    If the measured ``kl > tolerance·target`` the coefficient β is multiplied by ``factor``; if
    ``kl < target / tolerance`` it is divided by ``lower_factor`` (default: ``factor``);
    otherwise it is unchanged. The result is kept within ``limits``: left alone the rule can
    double β every update until it overflows to infinity (or halve it to 0), and β·KL then
    turns the loss non-finite.
    """
    lo, hi = limits
    if kl > tolerance * target:
        return min(coef * factor, max(coef, hi))
    if kl < target / tolerance:
        return max(coef / (factor if lower_factor is None else lower_factor), min(coef, lo))
    return coef


def kl_penalty(
    kl: Tensor,
    mean_kl: Tensor,
    *,
    coef: float,
    margin: float | None = None,
    margin_coef: float = 0.0,
) -> Tensor:
    """PPO-Penalty's KL term, per sample, with DPPO's hinge beyond a margin (Heess et al. 2017,
    "Emergence of Locomotion Behaviours in Rich Environments").

    Args:
        kl: ``[B]`` per-sample KL estimates (e.g. :func:`kl_estimate` ``k3``, which is ≥ 0 and
            differentiable).
        mean_kl: ``[]`` the minibatch's mean KL, which the hinge reads.
        coef: β.
        margin: the KL above which the hinge switches on (DPPO: ``2·KL_target``), or None.
        margin_coef: ξ, the hinge's weight (DPPO: 1000).

    Returns:
        ``[B]`` ``β·kl + ξ·max(0, mean_kl − margin)²``; the hinge is a per-minibatch quantity, so
        its value is added to every sample (its mean over the minibatch is the hinge itself).
    """
    out = coef * kl
    if margin is not None:
        out = out + margin_coef * torch.relu(mean_kl - margin).square()
    return out


def normalize_advantages(adv: Tensor, eps: float = 1e-8) -> Tensor:
    """Standardize ``[B]`` advantages to zero mean and unit (population) standard deviation.

    Never produces NaN or Inf: with fewer than two samples the input is returned unchanged
    (a scale cannot be estimated from one number), and with all-equal advantages the result is
    all zeros (``0 / (0 + eps)``). The population std is used because the unbiased one is NaN
    for a single sample (SB3 issues #325, #440).
    """
    if adv.numel() < 2:
        return adv.clone()
    std, mean = torch.std_mean(adv, correction=0)
    return (adv - mean) / (std + eps)


def explained_variance(pred: Tensor, target: Tensor) -> Tensor:
    """``1 − Var[target − pred] / Var[target]`` over all elements; NaN when ``Var[target] = 0``.

    1 is a perfect critic, 0 a critic no better than a constant, negative worse than that.
    """
    var = target.var(correction=0)
    if var == 0:
        return torch.full_like(var, float("nan"))
    return 1.0 - (target - pred).var(correction=0) / var


def clip_fraction(log_ratio: Tensor, clip_coef: float) -> Tensor:
    """Fraction of samples whose ratio lies outside ``[1 − ε, 1 + ε]`` (a scalar tensor)."""
    return ((log_ratio.exp() - 1.0).abs() > clip_coef).float().mean()
