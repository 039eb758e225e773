"""Masked categorical distribution with temperature (SPEC §3.1; seed 000).

Masked actions get logit ``finfo.min`` (not −inf, which turns softmax into NaN when combined
with other terms, and not −1e8, which overflows in half precision), so their probability is
exactly 0 after softmax, and entropy sums only over legal actions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ppox.errors import EnvError


def check_mask(mask: Tensor) -> None:
    """Raise if some state has no legal action (``mask`` is ``[B, n]`` bool)."""
    if not bool(mask.any(-1).all()):
        rows = (~mask.any(-1)).nonzero().flatten().tolist()
        raise EnvError(
            f"action mask leaves no legal action in batch row(s) {rows[:10]}; every state must "
            "allow at least one action"
        )


class MaskedCategorical:
    """Categorical over ``n`` actions for a batch ``[B]`` of states.

    Args:
        logits: ``[B, n]`` unnormalized log-probabilities (already divided by the temperature).
        mask: optional ``[B, n]`` bool, True where the action is legal.
    """

    def __init__(self, logits: Tensor, mask: Tensor | None = None) -> None:
        if mask is not None:
            logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        self.mask = mask
        self.logp_all = logits.log_softmax(-1)

    @property
    def probs(self) -> Tensor:
        return self.logp_all.exp()

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return torch.multinomial(self.probs, 1, generator=generator).squeeze(-1)

    def sample_log_prob(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        action = self.sample(generator)
        return action, self.log_prob(action)

    def mode(self) -> Tensor:
        return self.logp_all.argmax(-1)

    def log_prob(self, action: Tensor) -> Tensor:
        return self.logp_all.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        plogp = self.probs * self.logp_all
        if self.mask is not None:
            plogp = torch.where(self.mask, plogp, torch.zeros_like(plogp))
        return -plogp.sum(-1)

    def kl(self, other: MaskedCategorical) -> Tensor:
        terms = self.probs * (self.logp_all - other.logp_all)
        if self.mask is not None:
            terms = torch.where(self.mask, terms, torch.zeros_like(terms))
        return terms.sum(-1)

    def histograms(self) -> dict[str, Tensor]:
        return {"action_probs": self.probs}
