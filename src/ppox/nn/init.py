"""Initialization (SPEC §4; seed 001 "笨鸟先飞").

Orthogonal weights with the gain recommended for the activation (√2 for ReLU, 5/3 for tanh),
zero biases; the policy output layer gets a small gain (0.01) so the initial policy is close to
uniform / zero-mean, and the value output gain 1 (Andrychowicz et al. 2021, arXiv 2006.05990).
"""

from __future__ import annotations

from typing import Any, cast

from torch import nn


def orthogonal_(layer: nn.Linear, gain: float) -> None:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)


def init_actor_critic(
    trunks: nn.Module,
    policy_outputs: list[nn.Linear],
    value_out: nn.Linear,
    *,
    activation: str,
    policy_gain: float,
    value_gain: float,
    hidden: list[nn.Linear] | None = None,
) -> None:
    """Orthogonal init of every ``nn.Linear`` in ``trunks`` and of the ``hidden`` layers inside
    the head with the activation's gain, then of the output layers."""
    gain = nn.init.calculate_gain(cast(Any, "relu" if activation == "elu" else activation))
    for module in [*trunks.modules(), *(hidden or [])]:
        if isinstance(module, nn.Linear):
            orthogonal_(module, gain)
    for layer in policy_outputs:
        orthogonal_(layer, policy_gain)
    orthogonal_(value_out, value_gain)
