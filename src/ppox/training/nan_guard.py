"""The NaN guard: no non-finite step is ever applied, and a run of them rolls the update back.

The PPO × Family course's Q&A on NaN in training (a zero-variance advantage batch, a probability
that reaches 0, an exploding value loss) asks for a library that detects and explains numerical
failure instead of hiding it. ppox checks every minibatch step: when a loss term or the
gradient norm (taken after the workers' average, so every worker decides alike) is not finite,
the step is skipped and counted (``nonfinite_updates``). With ``nan_guard="error"`` the run stops
there with one line naming the iteration, epoch, minibatch and terms. With ``"rollback"``,
``nan_patience`` such steps in a row restore the policy and the optimizer to their state at the
start of the update (taken by :meth:`NanGuard.begin_update`), multiply the learning rate by
``nan_lr_factor`` and end the update (``rollbacks``); ``nan_max_rollbacks`` rollbacks with no
completed update between them stop the run. docs/numerics.md describes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ppox.config import PPOConfig
from ppox.errors import NumericalError
from ppox.training.optim import FlatAdam, FlatParams

__all__ = ["NanGuard"]


class NanGuard:
    """Counts non-finite steps of one learner and restores its last finite state.

    Args:
        cfg: the ``ppo`` section (``nan_guard``, ``nan_patience``, ``nan_lr_factor``,
            ``nan_max_rollbacks``).
        flat: the learner's flat parameters.
        optimizer: the learner's Adam over ``flat``.
    """

    def __init__(self, cfg: PPOConfig, flat: FlatParams, optimizer: FlatAdam) -> None:
        self.cfg, self.flat, self.optimizer = cfg, flat, optimizer
        self.lr_scale = 1.0
        self.rollbacks_in_a_row = 0
        self.in_a_row = 0  # non-finite steps in a row, within this update
        self.count = 0  # non-finite steps in this update
        self._saved: dict[str, torch.Tensor] = {}
        self._saved_keys: set[str] = set()  # what existed at the start of the update

    # --- state carried by checkpoints ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"lr_scale": self.lr_scale, "rollbacks_in_a_row": self.rollbacks_in_a_row}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr_scale = float(state["lr_scale"])
        self.rollbacks_in_a_row = int(state["rollbacks_in_a_row"])

    # --- one update ----------------------------------------------------------------------------
    def begin_update(self) -> None:
        """Remember the parameters and the optimizer state (copied into buffers kept across
        updates), and fail if they are not finite: nothing non-finite is trained on."""
        self.in_a_row = self.count = 0
        if self.cfg.nan_guard != "rollback":
            self._check_finite("at the start of an update")
            return
        current = self._tensors()
        for k, t in current.items():
            if k not in self._saved or self._saved[k].shape != t.shape:
                self._saved[k] = torch.empty_like(t)
            self._saved[k].copy_(t)
        self._saved_keys = set(current)
        self._check_finite("at the start of an update")

    def allow(self, grad_norm: float, terms_finite: bool, where: Callable[[], str]) -> bool:
        """Whether the step with this (post-average) gradient norm may be applied. Counts a
        non-finite one; raises :class:`NumericalError` with ``nan_guard="error"`` (``where()``
        names the step in the message)."""
        if terms_finite and math.isfinite(grad_norm):
            self.in_a_row = 0
            return True
        self.count += 1
        self.in_a_row += 1
        if self.cfg.nan_guard == "error":
            raise NumericalError(
                f"non-finite {'loss' if not terms_finite else 'gradient'} ({where()}, gradient norm {grad_norm}); "
                "nothing was applied and the last checkpoint is intact; nan_guard='rollback' skips such steps "
                "and rolls back (docs/numerics.md)"
            )
        return False

    @property
    def rollback_due(self) -> bool:
        return self.cfg.nan_guard == "rollback" and self.in_a_row >= self.cfg.nan_patience

    def rollback(self, where: str) -> None:
        """Restore the state of the start of the update and lower the learning rate."""
        self.rollbacks_in_a_row += 1
        if self.rollbacks_in_a_row > self.cfg.nan_max_rollbacks:
            raise NumericalError(
                f"{self.rollbacks_in_a_row - 1} rollbacks in a row did not get rid of non-finite gradients ({where}, "
                f"learning rate scaled by {self.lr_scale:g}); the data or the settings make the loss non-finite: "
                "check the rewards' scale (scale_reward), the observations (normalize_obs) and the coefficients"
            )
        state = self.optimizer.state.setdefault(self.flat.flat, {})
        for k, t in self._tensors().items():
            if k in self._saved_keys:
                t.copy_(self._saved[k])
            else:  # Adam's state began during this update (its first steps): back to none
                state.pop(k, None)
        self.lr_scale *= self.cfg.nan_lr_factor
        print(
            f"ppox: warning: {self.in_a_row} non-finite steps in a row ({where}); policy and optimizer rolled back "
            f"to the start of the update, learning rate scaled by {self.lr_scale:g}",
            flush=True,
        )
        self.in_a_row = 0

    def end_update(self, rolled_back: bool) -> None:
        """After an update: one that completed without a rollback ends a series of rollbacks;
        the parameters must be finite either way."""
        if not rolled_back:
            self.rollbacks_in_a_row = 0
        self._check_finite("after an update")

    # --- helpers -------------------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        """The flat parameters and every optimizer state tensor (by a stable name)."""
        out = {"param": self.flat.flat.data}
        state = self.optimizer.state.get(self.flat.flat, {})
        for k in ("step", "exp_avg", "exp_avg_sq"):
            if k in state:
                out[k] = state[k]
        return out

    def _check_finite(self, when: str) -> None:
        if not finite_tensor(self.flat.flat.data):
            raise NumericalError(
                f"the policy's parameters are not finite {when}; nothing was checkpointed from them "
                "(the last checkpoint is intact)"
            )


def finite_tensor(t: torch.Tensor) -> bool:
    """Whether every element of ``t`` is finite. The sum first (a NaN or an infinity makes it
    non-finite; on 140k parameters it costs a twentieth of ``isfinite(t).all()``), the
    element-wise check only when the sum is not finite (it may have overflowed)."""
    return math.isfinite(float(t.sum())) or bool(torch.isfinite(t).all())
