"""Initialization: the "笨鸟先飞" (network initialization) realm of the PPO × Family course's
"seven realms" tuning lecture (docs/design/course_map.md).

The default is orthogonal weights with the gain recommended for the activation (√2 for ReLU,
5/3 for tanh) and zero biases; the policy output layer gets a small gain (0.01) so the initial
policy is close to uniform / zero-mean, and the value output gain 1 (Andrychowicz et al. 2021,
arXiv 2006.05990). The alternatives apply the same gains to another weight distribution:

- ``xavier``: Glorot-uniform, ``U(−a, a)`` with ``a = gain·√(6 / (fan_in + fan_out))``;
- ``normal``: Gaussian ``N(0, gain² / fan_in)`` (variance scaling, the "Gaussian" scheme the
  lecture compares);
- ``torch``: PyTorch's own default for every layer (Kaiming-uniform weights with ``a = √5``,
  uniform biases); gains are not applied.
"""

from __future__ import annotations

import math
from typing import Any, cast

from torch import nn

SCHEMES = ("orthogonal", "xavier", "normal", "torch")


def init_layer(layer: nn.Module, scheme: str, gain: float) -> None:
    """Initialize one ``nn.Linear`` / ``nn.Conv2d`` in place: weights by ``scheme`` with ``gain``,
    biases zero (``torch``: leave PyTorch's default)."""
    weight = cast(nn.Parameter, layer.weight)
    if scheme == "torch":
        return
    if scheme == "orthogonal":
        nn.init.orthogonal_(weight, gain)
    elif scheme == "xavier":
        nn.init.xavier_uniform_(weight, gain)
    elif scheme == "normal":
        fan_in = weight[0].numel()
        nn.init.normal_(weight, 0.0, gain / math.sqrt(fan_in))
    else:
        raise ValueError(f"init scheme must be one of {SCHEMES} (got {scheme!r})")
    bias = getattr(layer, "bias", None)
    if bias is not None:
        nn.init.zeros_(bias)


def init_layers(module: nn.Module, scheme: str, gain: float) -> None:
    """:func:`init_layer` on every ``nn.Linear`` and ``nn.Conv2d`` inside ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            init_layer(m, scheme, gain)


def orthogonal_(layer: nn.Linear, gain: float) -> None:
    init_layer(layer, "orthogonal", gain)


def init_actor_critic(
    trunks: nn.Module,
    policy_outputs: list[nn.Linear],
    value_out: nn.Linear,
    *,
    activation: str,
    policy_gain: float,
    value_gain: float,
    hidden: list[nn.Linear] | None = None,
    scheme: str = "orthogonal",
) -> None:
    """Initialize every ``nn.Linear`` in ``trunks`` and the ``hidden`` layers inside the head
    with the activation's gain, then the output layers with theirs (``scheme`` as above)."""
    if scheme == "torch":
        return
    gain = nn.init.calculate_gain(cast(Any, "relu" if activation == "elu" else activation))
    for module in [*trunks.modules(), *(hidden or [])]:
        if isinstance(module, nn.Linear):
            init_layer(module, scheme, gain)
    for layer in policy_outputs:
        init_layer(layer, scheme, policy_gain)
    init_layer(value_out, scheme, value_gain)


def init_memory(cores: nn.Module, scheme: str) -> None:
    """Initialize the recurrent layers inside ``cores`` (:mod:`ppox.nn.memory`): every weight
    matrix (input-to-hidden and hidden-to-hidden, all gates stacked) by ``scheme`` with gain 1 and
    every bias zero, as CleanRL's recurrent PPO does for ``orthogonal``; ``torch`` keeps
    PyTorch's default (uniform in ±1/√size)."""
    if scheme == "torch":
        return
    for m in cores.modules():
        if isinstance(m, nn.RNNBase):
            for name, p in m.named_parameters():
                if name.startswith("bias"):
                    nn.init.zeros_(p)
                elif scheme == "orthogonal":
                    nn.init.orthogonal_(p, 1.0)
                elif scheme == "xavier":
                    nn.init.xavier_uniform_(p, 1.0)
                else:
                    nn.init.normal_(p, 0.0, 1.0 / math.sqrt(p.shape[1]))
