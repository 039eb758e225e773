"""Masked categorical distribution with temperature, and the Discrete head (SPEC §3.1; seed 000).

Masked actions get logit ``finfo.min`` (not −inf, which turns softmax into NaN when combined
with other terms, and not −1e8, which overflows in half precision), so their probability is
exactly 0 after softmax, and entropy sums only over legal actions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppox.distributions.base import ActionHead, require_legal


def check_mask(mask: Tensor) -> None:
    """Raise :class:`EnvError` if some state has no legal action (``mask`` ``[..., n]`` bool)."""
    require_legal(mask.cpu(), "action")


class MaskedCategorical:
    """Categorical over ``n`` actions for a batch of states (any number of batch axes).

    Args:
        logits: ``[*batch, n]`` unnormalized log-probabilities (already divided by the temperature).
        mask: optional ``[*batch, n]`` bool, True where the action is legal.
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
        probs = self.probs
        flat = probs.reshape(-1, probs.shape[-1])
        return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])

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


class CategoricalHead(ActionHead):
    """Logits over ``n`` actions, divided by a sampling temperature, with optional masks."""

    action_dtype = torch.int64

    def __init__(self, in_features: int, n: int, start: int = 0, temperature: float = 1.0) -> None:
        super().__init__()
        self.logits = nn.Linear(in_features, n)
        self.start = start
        self.temperature = temperature
        self.action_shape = ()
        self.mask_shape = (n,)

    def forward(self, features: Tensor, mask: Tensor | None = None) -> MaskedCategorical:
        logits = F.linear(features, self.logits.weight, self.logits.bias)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return MaskedCategorical(logits, mask)

    def output_layers(self) -> list[nn.Linear]:
        return [self.logits]

    def to_env(self, action: np.ndarray) -> np.ndarray:
        return action + self.start if self.start else action
