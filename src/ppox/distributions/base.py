"""The contracts every action head and every action distribution follow.

Shapes: ``B`` is the batch of states. A head stores each action as one flat tensor of
``action_shape`` after ``B`` (``()`` for Discrete, ``(d,)`` for Box and MultiDiscrete, the
concatenation of the parts for Dict, Tuple and hybrid spaces), so the rollout, the learner and the
losses never look inside an action. ``log_prob`` and ``entropy`` are joint over the action's
components, ``[B]``.

Masks follow the same idea: a head with a mask reads whatever the environment put in
``info["action_mask"]`` (an array, or a dict for structured spaces) and turns it into one flat
bool tensor ``[B, mask_size]`` that is stored with the transition and reused at update time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from ppox.errors import EnvError


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


class ActionHead(nn.Module, ABC):
    """Maps features ``[B, F]`` (and an optional flat mask) to an :class:`ActionDist`.

    Attributes:
        action_shape: shape of one action as stored in the rollout (after the batch axes).
        action_dtype: dtype of stored actions.
        mask_shape: ``(mask_size,)`` of one flat action mask, or None when the space has none.
    """

    action_shape: tuple[int, ...]
    action_dtype: torch.dtype
    mask_shape: tuple[int, ...] | None = None

    @abstractmethod
    def forward(self, features: Tensor, mask: Tensor | None = None) -> ActionDist:
        """The distribution for a batch of features."""

    def output_layers(self) -> list[nn.Linear]:
        """Layers that get the small policy-output init gain."""
        return []

    def hidden_layers(self) -> list[nn.Linear]:
        """Hidden layers inside the head (initialized like the trunk)."""
        return []

    def to_env(self, action: np.ndarray) -> Any:
        """The env-facing copy of a batch of stored actions ``[N, *action_shape]``: an array,
        or a tuple / dict of arrays for Tuple / Dict spaces (what a vector env takes)."""
        return action

    @property
    def mask_size(self) -> int:
        return 0 if self.mask_shape is None else int(np.prod(self.mask_shape))

    def read_mask(self, raw: Any, batch: int) -> np.ndarray:
        """``info["action_mask"]`` for ``batch`` envs → a checked flat bool array ``[batch, M]``.

        The default takes an array of ``batch × M`` booleans in any shape (``[batch, M]``, or
        ``[batch, d, n]`` for a MultiDiscrete with equal sizes). Structured heads override it.
        """
        if self.mask_shape is None:
            raise EnvError("the environment gives an action mask, but this action space takes none")
        mask = np.asarray(raw, dtype=bool)
        if mask.size != batch * self.mask_size:
            raise EnvError(
                f"action mask has shape {mask.shape}; expected {batch} × {self.mask_size} booleans "
                f"(one flat mask of {self.mask_size} per env)"
            )
        mask = mask.reshape(batch, self.mask_size)
        self.check_mask(mask)
        return mask

    def check_mask(self, mask: np.ndarray) -> None:
        """Raise :class:`EnvError` if some state has no legal action (``mask`` ``[B, M]``)."""
        require_legal(mask, "action")


def require_legal(mask: np.ndarray | Tensor, what: str, part: str = "") -> None:
    """Raise :class:`EnvError` naming the rows of ``mask [..., n]`` that allow nothing
    (``part`` says which part of a structured mask, e.g. " in dimension 2")."""
    legal = mask.any(-1)
    if not bool(legal.all()):
        illegal = ~np.asarray(legal)
        bad = (
            np.flatnonzero(illegal).tolist() if illegal.ndim == 1 else np.argwhere(illegal).tolist()
        )
        raise EnvError(
            f"{what} mask leaves no legal {what}{part} at batch index(es) {bad[:10]}; every state must "
            f"allow at least one"
        )
