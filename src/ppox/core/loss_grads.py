"""The PPO loss terms of :mod:`ppox.core.losses` with their gradients, in NumPy.

Each function returns the same per-sample loss as its torch twin in ``losses.py`` (so the
hand-computed tables of ``tests/test_core_losses.py`` check both) together with the derivative
of the weighted loss with respect to its input, ``scale · d loss_i / d input_i`` ``[B]``. The
NumPy update (:mod:`ppox.training.update_step`) chains these with a head's kernel and the MLP's
backward pass; ``scale`` is each sample's weight in the minibatch loss (``1/B`` for a mean) and is
folded in here to save a pass over the arrays.

Where a ``max``/``min``/``clip`` is flat (a tie, or the clipped side), the derivative follows
torch's autograd convention, so the two backends agree exactly: ``torch.minimum`` and
``torch.maximum`` split a tie's gradient evenly, ``clamp`` passes the gradient at its bounds.
"""

from __future__ import annotations

import numpy as np

__all__ = ["clipped_surrogate_grad", "value_loss_grad"]


def clipped_surrogate_grad(
    adv: np.ndarray,
    log_ratio: np.ndarray,
    *,
    clip_coef: float,
    dual_clip: float | None = None,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PPO-Clip's loss (:func:`ppox.core.losses.clipped_surrogate`) and its derivative.

    Args:
        adv: ``[B]`` advantages.
        log_ratio: ``[B]`` ``log π_θ(a|s) − log π_θk(a|s)``.
        clip_coef: ε.
        dual_clip: c > 1, or None (Ye et al. 2020, "Mastering Complex Control in MOBA Games
            with Deep Reinforcement Learning").
        scale: the weight of each sample's loss (``1/B`` for the minibatch mean).

    Returns:
        ``(loss [B], scale · d loss / d log_ratio [B], ratio [B])``. Inside the clip range the
        objective is ``ρA`` whose derivative in ``log ρ`` is ``ρA``; where the clipped term is
        the smaller one, or the dual bound ``cA`` binds, it is 0. At ``ρA = clip(ρ)A`` (always
        true inside the range) both terms carry ``ρA``.
    """
    ratio = np.exp(log_ratio)
    surr1 = ratio * adv
    surr2 = np.minimum(np.maximum(ratio, 1.0 - clip_coef), 1.0 + clip_coef)
    surr2 *= adv
    objective = np.minimum(surr1, surr2)
    live = surr1 <= surr2
    if dual_clip is not None:
        bound = dual_clip * adv
        floored = (adv < 0) & (bound > objective)
        objective = np.where(floored, bound, objective)
        live &= ~floored
    grad = np.where(live, surr1, 0.0)
    grad *= -scale
    np.negative(objective, out=objective)
    return objective, grad, ratio


def value_loss_grad(
    values: np.ndarray,
    old_values: np.ndarray,
    returns: np.ndarray,
    *,
    clip: float | None = None,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The critic's loss (:func:`ppox.core.losses.value_loss`) and its derivative.

    Args:
        values: ``[B]`` current critic output V.
        old_values: ``[B]`` critic output at collection time.
        returns: ``[B]`` targets R̂.
        clip: ε_v, or None for no value clipping.
        scale: the weight of each sample's loss (``1/B`` for the minibatch mean).

    Returns:
        ``(loss [B], scale · d loss / d values [B])``. Unclipped, ``d/dV ½(V − R̂)² = V − R̂``.
        With clipping the larger square is the loss; its derivative is ``V − R̂`` when the
        unclipped square is the larger (or equal), else ``V_clip − R̂`` where ``V − V_old`` lies
        inside ``[−ε_v, ε_v]`` and 0 where the clip is active.
    """
    err = values - returns
    if clip is None:
        loss = np.square(err)
        loss *= 0.5
        err *= scale
        return loss, err
    delta = values - old_values
    err_c = old_values + np.clip(delta, -clip, clip) - returns
    sq, sq_c = np.square(err), np.square(err_c)
    grad = np.where(sq >= sq_c, err, err_c * (np.abs(delta) <= clip))
    grad *= scale
    loss = np.maximum(sq, sq_c)
    loss *= 0.5
    return loss, grad
