"""The optimizer side of an update: every trainable parameter as a view into one flat buffer
(:class:`FlatParams`) and Adam stepping that buffer with one kernel (:class:`FlatAdam`).

For networks this small the update's fixed costs dominate: zeroing, norming, clipping and
stepping a dozen tensors one by one. With one buffer each of those is a single call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ppox.config import Config

__all__ = ["FlatAdam", "FlatParams", "make_optimizer"]


class FlatParams:
    """All trainable parameters (and their gradients) as views into one flat buffer.

    For networks this small the update's fixed costs dominate: zeroing, norming, clipping and
    stepping a dozen tensors one by one. With one buffer each of those is a single kernel.
    Autograd accumulates into an existing ``.grad`` in place, so the views stay valid as long as
    gradients are zeroed (never set to None); ``load_state_dict`` copies in place as well.
    """

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = params
        self.flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
        self.flat.grad = torch.zeros_like(self.flat)
        offset = 0
        for p in params:
            n = p.numel()
            p.data = self.flat.data[offset : offset + n].view_as(p)
            p.grad = self.flat.grad[offset : offset + n].view_as(p)
            offset += n
        self._grad_np = self.flat.grad.numpy() if self.flat.device.type == "cpu" else None

    @property
    def grad(self) -> Tensor:
        assert self.flat.grad is not None
        return self.flat.grad

    def zero_grad(self) -> None:
        self.grad.zero_()

    def grad_norm(self, p: float = 2.0) -> Tensor:
        """The total p-norm of the gradient (``p = inf``: the largest absolute element)."""
        return torch.linalg.vector_norm(self.grad, ord=p)

    def clip_grad_norm(self, max_norm: float, p: float = 2.0) -> Tensor | float:
        """Scale the gradient to total p-norm ≤ ``max_norm``; return the pre-clip norm (a float
        on the CPU, where reading it costs nothing; a tensor elsewhere, to avoid a host sync)."""
        if (
            self._grad_np is not None
        ):  # the CPU: the 2-norm as one BLAS dot, a quarter of torch's norm kernel
            norm = (
                math.sqrt(float(np.dot(self._grad_np, self._grad_np)))
                if p == 2.0
                else float(self.grad_norm(p))
            )
            scale = max_norm / (norm + 1e-6)
            if scale < 1.0:
                self.grad.mul_(scale)
            return norm
        t = self.grad_norm(p)
        if max_norm != math.inf:
            self.grad.mul_((max_norm / (t + 1e-6)).clamp(max=1.0))
        return t

    def clip_grad_value(self, bound: float) -> None:
        """Clamp every gradient element to ``[-bound, bound]``."""
        self.grad.clamp_(-bound, bound)


_FUSED_ADAM: Callable[..., None] | None = getattr(torch, "_fused_adam_", None)
"""torch's fused Adam kernel (what ``torch.optim.Adam(fused=True)`` runs), when this build has it."""


_ADAM_GROUP = {"weight_decay": 0, "amsgrad": False, "maximize": False, "foreach": False, "capturable": False,
               "differentiable": False, "fused": None, "decoupled_weight_decay": False}  # fmt: skip
"""The rest of ``torch.optim.Adam``'s parameter group, so ``state_dict`` is the one torch writes."""


class FlatAdam:
    """Adam over one flat parameter buffer, one kernel per step.

    ``torch.optim.Adam(fused=True).step`` spends about 20 µs per call on bookkeeping (grouping
    tensors by device and dtype, hooks, capturable checks) around a kernel that takes 5 µs on a
    network of 10k parameters; PPO steps it once per minibatch. This calls the same fused
    kernel directly. Without it (a torch build that lacks the op) the step is Adam's arithmetic
    in seven in-place kernels (Kingma & Ba 2015, Algorithm 1, with ε added after the
    bias-corrected square root as torch does). Only plain Adam is served: one parameter, no
    weight decay, AMSGrad or maximize.

    It is not a ``torch.optim.Optimizer``: constructing one of those, and its ``state_dict`` and
    ``load_state_dict``, import torch's compiler stack on first use (about a second of every
    run's start-up), which an optimizer of one tensor does not need. The attributes the learner
    and the NaN guard read (``param_groups``, ``state`` keyed by the parameter) and the
    ``state_dict`` format are torch's Adam's, so checkpoints move between the two both ways.
    """

    def __init__(
        self, param: nn.Parameter, lr: float, eps: float, betas: tuple[float, float] = (0.9, 0.999)
    ) -> None:
        self.param = param
        self.param_groups: list[dict[str, Any]] = [
            {"lr": lr, "betas": betas, "eps": eps, **_ADAM_GROUP, "params": [param]}
        ]
        self.state: dict[nn.Parameter, dict[str, Tensor]] = {}

    def step(self, closure: Callable[[], float] | None = None) -> None:
        assert closure is None, "FlatAdam takes no closure"
        self.apply()

    def apply(self) -> None:
        """One Adam step of the flat buffer from its ``.grad``."""
        group = self.param_groups[0]
        param = self.param
        state = self.state.setdefault(param, {})
        p, grad = (
            param.data,
            param.grad,
        )  # .data: in place without autograd's no_grad context (~4 µs)
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        assert grad is not None
        state["step"] += 1
        beta1, beta2 = group["betas"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if _FUSED_ADAM is not None and p.device.type == "cpu":
            _FUSED_ADAM([p], [grad], [m], [v], [], [state["step"]], amsgrad=False, lr=group["lr"], beta1=beta1,
                        beta2=beta2, weight_decay=0.0, eps=group["eps"], maximize=False)  # fmt: skip
            return
        step = float(state["step"])
        m.lerp_(grad, 1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = v.sqrt().div_(math.sqrt(1 - beta2**step)).add_(group["eps"])
        p.addcdiv_(m, denom, value=-group["lr"] / (1 - beta1**step))

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Adam``'s format: the state by parameter index and the group with
        ``params: [0]`` (the tensors are the live ones, as torch returns them)."""
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        state = self.state.get(self.param)
        return {
            "state": {0: dict(state)} if state else {},
            "param_groups": [{**group, "params": [0]}],
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Take a state written by :meth:`state_dict` or by ``torch.optim.Adam`` over one
        parameter (checked beforehand by :mod:`ppox.io.validate` when it comes from a file)."""
        (saved,) = sd["param_groups"]
        self.param_groups[0].update({k: v for k, v in saved.items() if k != "params"})
        p = self.param.data
        state = sd["state"].get(0)
        if not state:
            self.state.pop(self.param, None)
            return
        self.state[self.param] = {
            "step": torch.tensor(float(state["step"])),
            "exp_avg": state["exp_avg"].to(p.device, p.dtype, copy=True),
            "exp_avg_sq": state["exp_avg_sq"].to(p.device, p.dtype, copy=True),
        }


def make_optimizer(flat: FlatParams, cfg: Config) -> FlatAdam:
    """Adam over the flat parameter buffer (:class:`FlatAdam`)."""
    return FlatAdam(flat.flat, lr=cfg.ppo.learning_rate, eps=cfg.ppo.adam_eps)
