"""Actor-critic: observation encoder → MLP trunks (shared or separate) → head and value (docs/design/networks.md).

A single float Box observation goes straight into the trunks (the fast path, unchanged);
any other observation space first passes through an :class:`~ppox.nn.encoders.ObsEncoder`
(per-leaf encoders, docs/observations.md), which the actor and the critic share.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from ppox.config import PolicyConfig
from ppox.distributions.base import ActionDist
from ppox.distributions.heads import make_head
from ppox.nn.encoders import ObsEncoder, obs_features
from ppox.nn.init import init_actor_critic
from ppox.types import Obs, ObsLayout

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
_FUNCTIONAL = {nn.Tanh: torch.tanh, nn.ReLU: torch.relu, nn.ELU: F.elu}


def run_mlp(trunk: nn.Module, x: Tensor) -> Tensor:
    """``trunk(x)`` without ``Module.__call__`` per layer: for MLPs this small the per-call
    hook machinery costs more than the matmuls (docs/performance.md)."""
    for layer in trunk.children():
        if isinstance(layer, nn.Linear):
            x = F.linear(x, layer.weight, layer.bias)
        else:
            x = _FUNCTIONAL[type(layer)](x)
    return x


def obs_encoder_dim(space: spaces.Space, cfg: PolicyConfig | None = None) -> int:
    """Width of the features the MLP trunks read (a float Box: the product of its shape)."""
    return obs_features(space, cfg)


def mlp(in_features: int, sizes: tuple[int, ...], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in sizes:
        layers += [nn.Linear(in_features, width), _ACTIVATIONS[activation]()]
        in_features = width
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """``obs [B, *obs_shape]`` (or a dict of leaves, :data:`ppox.types.Obs`) →
    ``(ActionDist, value [B])``.

    With ``shared_trunk`` the actor and the critic read one MLP; otherwise each has its own
    (the default: a shared trunk couples the value loss scale to the policy's features).
    The observation encoder, when there is one, is shared.

    Attributes:
        obs_layout: the :class:`~ppox.types.ObsLayout` of the observation space.
        obs_shape: the shape of a single-leaf observation (``()`` for Dict / Tuple spaces).
        encoder: the :class:`~ppox.nn.encoders.ObsEncoder`, or None on the fast path.
    """

    def __init__(
        self, obs_space: spaces.Space, action_space: spaces.Space, cfg: PolicyConfig
    ) -> None:
        super().__init__()
        self.obs_layout = ObsLayout(obs_space)
        self.obs_shape = tuple(obs_space.shape or ()) if not self.obs_layout.structured else ()
        self.encoder: ObsEncoder | None = None
        if self.obs_layout.fast and not cfg.obs_encoders:
            in_features = math.prod(self.obs_shape)
        else:
            self.encoder = ObsEncoder(self.obs_layout, cfg)
            in_features = self.encoder.out_features
        width = cfg.hidden_sizes[-1]
        self.shared = cfg.shared_trunk
        actor = mlp(in_features, cfg.hidden_sizes, cfg.activation)
        critic = actor if self.shared else mlp(in_features, cfg.hidden_sizes, cfg.activation)
        self.trunks = nn.ModuleDict(
            {"actor": actor} if self.shared else {"actor": actor, "critic": critic}
        )
        self.head = make_head(action_space, width, cfg)
        self.value_out = nn.Linear(width, 1)
        init_actor_critic(
            self.trunks,
            self.head.output_layers(),
            self.value_out,
            activation=cfg.activation,
            policy_gain=cfg.policy_init_gain,
            value_gain=cfg.value_init_gain,
            hidden=self.head.hidden_layers(),
            scheme=cfg.init,
        )

    def encode(self, obs: Obs) -> Tensor:
        """The trunks' input ``[B, F]``: the encoder's features, or the flat Box observation."""
        if self.encoder is not None:
            return self.encoder(obs)  # type: ignore[no-any-return]
        assert isinstance(obs, Tensor)
        return obs.reshape(obs.shape[0], -1) if len(self.obs_shape) > 1 else obs

    def forward(self, obs: Obs, mask: Tensor | None = None) -> tuple[ActionDist, Tensor]:
        x = self.encode(obs)
        features = run_mlp(self.trunks["actor"], x)
        critic_features = features if self.shared else run_mlp(self.trunks["critic"], x)
        return self.head(features, mask), self._value_out(critic_features)

    def _value_out(self, features: Tensor) -> Tensor:
        return F.linear(features, self.value_out.weight, self.value_out.bias).squeeze(-1)

    def value(self, obs: Obs) -> Tensor:
        trunk = self.trunks["actor"] if self.shared else self.trunks["critic"]
        return self._value_out(run_mlp(trunk, self.encode(obs)))

    def dist(self, obs: Obs, mask: Tensor | None = None) -> ActionDist:
        return self.head(run_mlp(self.trunks["actor"], self.encode(obs)), mask)

    def n_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
