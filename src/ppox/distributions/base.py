"""The action-distribution contract every head returns.

Shapes: ``B`` is the batch of states. ``action`` has the head's ``action_shape`` after ``B``.
``log_prob`` and ``entropy`` are joint over the action's components, ``[B]``.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor


class ActionDist(Protocol):
    """A batch of action distributions."""

    def sample(self, generator: torch.Generator | None = None) -> Tensor: ...

    def sample_log_prob(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(action, log_prob(action))`` in one go (the acting path's fast route)."""
        ...

    def mode(self) -> Tensor: ...

    def log_prob(self, action: Tensor) -> Tensor: ...

    def entropy(self) -> Tensor: ...

    def kl(self, other: Any) -> Tensor:
        """``KL(self ‖ other)`` per state, ``[B]``."""
        ...

    def histograms(self) -> dict[str, Tensor]:
        """Tensors worth a histogram in the logs (action probabilities, σ)."""
        ...
