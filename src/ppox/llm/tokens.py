"""Token-level math of PPO for language models (docs/llm.md): masks, rewards, advantages, losses.

Shapes: ``B`` sequences (prompt × sample), ``R`` response positions. A response is right-padded:
``mask[b, t]`` is True for the tokens the policy generated, up to and including its end-of-sequence
token, and False on the padding after it. Every statistic, advantage and loss here reads only the
masked positions; padded positions come out as exact zeros, so nothing can leak from them.

The recursions and estimators are those of the rest of ppox (:func:`ppox.core.gae`,
:func:`ppox.core.kl_estimate`); this module only lays tokens out for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from ppox.core.advantages import gae
from ppox.core.losses import kl_estimate
from ppox.core.normalize import Moments, moments_of

Aggregation = Literal["token", "sequence", "constant"]


def masked_sum(x: Tensor, mask: Tensor) -> Tensor:
    """Sum of ``x`` over the masked entries (a scalar tensor)."""
    return torch.where(mask, x, torch.zeros_like(x)).sum()


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over the masked entries; 0 when nothing is masked in."""
    return masked_sum(x, mask) / mask.sum().clamp(min=1)


def masked_whiten(
    x: Tensor,
    mask: Tensor,
    *,
    shift_mean: bool = True,
    eps: float = 1e-8,
    merge: Callable[[Moments], Moments] | None = None,
) -> Tensor:
    """Standardize ``x`` with the mean and the population variance of its masked entries.

    Padded entries neither enter the statistics nor come out non-zero. With ``shift_mean=False``
    the mean is added back (scale only: the form used for token rewards, which must keep their
    sign). Fewer than two masked entries: returned as is (masked), as no scale can be estimated.
    ``merge``: combines these statistics with other workers' (``ppox.training.distributed.
    merge_across_ranks``), so every worker whitens with the whole batch's.
    """
    picked = x[mask].double()
    m = moments_of(picked) if picked.numel() else Moments(0.0, 0.0, 0.0)
    if merge is not None:
        m = merge(m)
    if m.count < 2:
        return torch.where(mask, x, torch.zeros_like(x))
    mean, var = float(m.mean), float(m.var)
    out = (x - mean) / math.sqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(mask, out, torch.zeros_like(out))


def last_index(mask: Tensor) -> Tensor:
    """``[B]`` index of each response's last token (its EOS, or its last token when cut at
    ``max_new_tokens``). Every response holds at least one token."""
    return mask.sum(dim=1) - 1


def token_kl(logp: Tensor, ref_logp: Tensor, mask: Tensor, kind: str = "k1") -> Tensor:
    """``[B, R]`` per-token estimate of ``KL(π ‖ π_ref)`` from the sampled tokens (which π drew):
    ``k1 = log π − log π_ref``, ``k3 = (r − 1) − log r`` with ``r = π_ref / π`` (Schulman,
    "Approximating KL Divergence", 2020); 0 on padding."""
    kl = kl_estimate(ref_logp - logp, kind)
    return torch.where(mask, kl, torch.zeros_like(kl))


def token_rewards(score: Tensor, kl: Tensor, mask: Tensor, *, kl_coef: float) -> Tensor:
    """``[B, R]`` rewards of RLHF with a KL penalty per token ("Fine-Tuning Language Models from
    Human Preferences", Ziegler et al. 2019): ``−β·KL_t`` on every response token, plus the
    sequence's score on its last token, 0 on padding.

    Args:
        score: ``[B]`` the reward model's (or function's) score of each whole response.
        kl: ``[B, R]`` per-token KL estimates (:func:`token_kl`), 0 on padding.
        mask: ``[B, R]`` response tokens.
        kl_coef: β.
    """
    rewards = -kl_coef * kl
    rewards = rewards.scatter_add(1, last_index(mask).unsqueeze(1), score.unsqueeze(1).to(kl))
    return torch.where(mask, rewards, torch.zeros_like(rewards))


def token_gae(
    rewards: Tensor, values: Tensor, mask: Tensor, *, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """GAE over the tokens of each response (:func:`ppox.core.gae`), the response's last token
    being a terminal step: nothing is bootstrapped past it and nothing flows back from the
    padding. Returns ``(advantages, returns)`` ``[B, R]``, 0 on padding."""
    zero = torch.zeros_like(values)
    r = torch.where(mask, rewards, zero)
    v = torch.where(mask, values, zero)
    end = torch.zeros_like(mask)
    end.scatter_(1, last_index(mask).unsqueeze(1), True)
    end = end | ~mask
    nxt = torch.cat([v[:, 1:], zero[:, :1]], dim=1)
    adv, ret = gae(r.T, v.T, nxt.T, end.T, end.T, gamma=gamma, lam=lam)
    return torch.where(mask, adv.T, zero), torch.where(mask, ret.T, zero)


def rloo_advantages(scores: Tensor, k: int) -> Tensor:
    """REINFORCE Leave-One-Out ("Buy 4 REINFORCE Samples, Get a Baseline for Free!", Kool et al.
    2019; Ahmadian et al. 2024): each of the ``k`` samples of a prompt is baselined by the mean
    score of the other ``k − 1``. ``scores`` is ``[P·k]``, the samples of a prompt contiguous."""
    if k < 2:
        raise ValueError(f"RLOO needs at least 2 samples per prompt (got {k})")
    g = scores.view(-1, k)
    baseline = (g.sum(dim=1, keepdim=True) - g) / (k - 1)
    return (g - baseline).reshape(-1)


def grpo_advantages(
    scores: Tensor, k: int, *, scale: Literal["group", "batch", "none"] = "group", eps: float = 1e-4
) -> Tensor:
    """Group-relative advantages of GRPO ("DeepSeekMath", Shao et al. 2024): a sample's score
    minus its prompt's mean score, divided by the group's standard deviation (``scale="group"``),
    by the whole batch's (``"batch"``), or not at all (``"none"``, as "Understanding R1-Zero-Like
    Training: A Critical Perspective", Liu et al. 2025, recommends). The standard deviation is the
    sample one (``n − 1``), as TRL computes it; ``eps`` keeps an all-equal group at 0."""
    if k < 2:
        raise ValueError(f"GRPO needs at least 2 samples per prompt (got {k})")
    g = scores.view(-1, k)
    centred = g - g.mean(dim=1, keepdim=True)
    if scale == "group":
        centred = centred / (g.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        centred = centred / (scores.std() + eps)
    return centred.reshape(-1)


def loss_weights(mask: Tensor, how: Aggregation, max_new_tokens: int) -> Tensor:
    """``[B, R]`` weights that turn per-token losses into one number by a weighted sum.

    ``token``: every response token of the batch weighs the same (1 / tokens; DAPO's
    token-level loss). ``sequence``: every response weighs the same, its tokens sharing it
    (1 / (B · length); the GRPO paper's form, which favours short responses' tokens).
    ``constant``: 1 / (B · max_new_tokens) (Dr. GRPO's length-unbiased form).

    Computed once per minibatch, so gradient accumulation over micro-batches sums to the same
    loss as one pass over the whole minibatch.
    """
    m = mask.to(torch.float64)
    if how == "token":
        w = m / m.sum().clamp(min=1)
    elif how == "sequence":
        w = m / (m.sum(dim=1, keepdim=True).clamp(min=1) * mask.shape[0])
    elif how == "constant":
        w = m / (mask.shape[0] * max_new_tokens)
    else:
        raise ValueError(f"unknown loss aggregation {how!r}")
    return w.to(torch.float32)
