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

import functools
from abc import ABC, abstractmethod
from typing import Any, NamedTuple, Protocol

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


class KernelPass(NamedTuple):
    """What a NumPy kernel's training forward pass keeps: ``logp`` and ``entropy`` ``[B]``, and
    whatever its backward pass needs (``cache``)."""

    logp: np.ndarray
    entropy: np.ndarray
    cache: tuple[Any, ...]


class NumpyKernel(Protocol):
    """The NumPy twin of a head's distribution math, for the fast paths (docs/performance.md).

    ``out`` is the head's output layers (:attr:`out_layers`, ``Linear`` maps of the features)
    applied to the features and concatenated, ``[B, Σ out_features]``; everything after those
    layers (temperature, masks, σ, clamping) is the kernel's. A kernel must give the same
    numbers as the head's torch distribution (a differential test per kernel checks it).

    A kernel whose acting needs the actor's last hidden features (gSDE's noise is a function of
    them) sets ``reads_features = True``; its :meth:`act` is then called with ``features=`` ``[B,
    F]`` as well (absent means False)."""

    out_layers: list[nn.Linear]

    def refresh(self) -> None:
        """Re-read views of the head's own parameters outside its output layers (e.g. log σ)."""

    def noise(self, steps: int, num_envs: int, generator: torch.Generator) -> np.ndarray:
        """The randomness of a rollout of ``steps × num_envs`` actions, drawn at once."""
        ...

    def act(
        self, out: np.ndarray, noise: np.ndarray, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(action, log π(action) [B] float32)`` for one step's ``noise``."""
        ...

    def encode(self, action: np.ndarray) -> tuple[np.ndarray, ...]:
        """Stored actions ``[B, *action_shape]`` as :meth:`forward` reads them (arrays of
        ``B`` rows, so a minibatch is the rows at its indices)."""
        ...

    def forward(
        self, out: np.ndarray, encoded: tuple[np.ndarray, ...], mask: np.ndarray | None
    ) -> KernelPass:
        """log π(a) and the entropy of each sample under ``out``."""
        ...

    def backward(
        self,
        p: KernelPass,
        encoded: tuple[np.ndarray, ...],
        mask: np.ndarray | None,
        g_logp: np.ndarray,
        g_entropy: float,
    ) -> np.ndarray:
        """d loss / d ``out`` for ``d loss / d log π(a) = g_logp [B]`` and ``d loss / d H =
        g_entropy``; gradients of the head's own parameters outside ``out_layers`` are written
        into their ``.grad``."""
        ...


@functools.lru_cache(maxsize=64)
def float32_ones(n: int) -> np.ndarray:
    """``[n]`` float32 ones, read-only: a sum over a batch or a row as one BLAS dot product,
    about 4× faster than a NumPy reduction at a few hundred elements."""
    ones = np.ones(n, np.float32)
    ones.flags.writeable = False
    return ones


def numpy_kernel_of(head: nn.Module) -> type | None:
    """The NumPy kernel class ``type(head)`` itself declares (``numpy_kernel`` in its class
    body), or None. Never inherited: a subclass may change the math its parent's kernel
    computes, so it gets the fast paths only by declaring a kernel of its own."""
    kernel = type(head).__dict__.get("numpy_kernel")
    return kernel if isinstance(kernel, type) else None


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
    numpy_kernel: type | None = None
    """The class of this head's NumPy kernel (:class:`NumpyKernel`), declared in the head's own
    class body; read only through :func:`numpy_kernel_of` (exact class, never inherited)."""
    noise_every: int | None = None
    """Heads whose exploration noise is state held across steps (gSDE) set this to the steps
    between fresh draws (0: once per rollout) and implement :meth:`draw_noise`; None for the
    rest, whose noise is drawn per sample."""

    @abstractmethod
    def forward(self, features: Tensor, mask: Tensor | None = None) -> ActionDist:
        """The distribution for a batch of features."""

    def draw_noise(self, t: int, batch: int, generator: torch.Generator | None) -> None:
        """Called for this head and every head inside it (see :func:`noisy_heads`) before step
        ``t`` of a rollout of ``batch`` envs, when :attr:`noise_every` is not None: draw the
        held noise where a new draw is due."""

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

    def from_env(self, action: Any) -> np.ndarray:
        """The stored form ``[N, *action_shape]`` of a batch of env actions (the inverse of
        :meth:`to_env` where that is one-to-one; behaviour cloning trains on it). A head whose
        env actions do not map back raises :class:`EnvError`."""
        raise EnvError(f"{type(self).__name__} cannot read env actions back (not supported yet)")

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


def noisy_heads(head: nn.Module) -> list[ActionHead]:
    """``head`` and the heads inside it whose noise is held across steps (``noise_every`` not
    None): the collector calls their :meth:`ActionHead.draw_noise` before every step."""
    return [m for m in head.modules() if isinstance(m, ActionHead) and m.noise_every is not None]


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
