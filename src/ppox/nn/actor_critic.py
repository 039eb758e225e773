"""Actor-critic: observation encoder → memory core (optional) → MLP trunks (shared or
separate) → head and value (docs/design/networks.md).

A single float Box observation goes straight into the trunks (the fast path, unchanged);
any other observation space first passes through an :class:`~ppox.nn.encoders.ObsEncoder`
(per-leaf encoders, docs/observations.md), which the actor and the critic share. With
``memory`` an LSTM or GRU core (:mod:`ppox.nn.memory`, one shared or one each) sits between the
encoder and the trunks; the heads read the trunks as they always do, so every action head works
with memory unchanged (docs/memory.md).
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
from ppox.nn.init import init_actor_critic, init_memory
from ppox.nn.memory import MemoryCore, Recurrence, cut_sequences
from ppox.types import Obs, ObsLayout, obs_map

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
        self.memory: nn.ModuleDict | None = None
        if cfg.memory != "none":
            names = ("actor",) if cfg.memory_shared else ("actor", "critic")
            self.memory = nn.ModuleDict(
                {n: MemoryCore(cfg.memory, in_features, cfg.memory_size) for n in names}
            )
            init_memory(self.memory, cfg.init)
            in_features = cfg.memory_size
        width = cfg.hidden_sizes[-1] if cfg.hidden_sizes else in_features
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

    # --- memory ---------------------------------------------------------------------------------
    @property
    def state_size(self) -> int:
        """Width of the flat recurrent state (0 without memory)."""
        if self.memory is None:
            return 0
        return sum(core.state_size for core in self.memory.values())  # type: ignore[misc]

    def initial_state(self, batch: int) -> Tensor:
        """``[batch, state_size]`` zeros: the state at an episode's start."""
        return torch.zeros(batch, self.state_size, device=self.value_out.weight.device)

    def _memory(
        self, x: Tensor, rec: Recurrence | None, need_final: bool = False
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """The trunks' inputs (actor's, critic's) and, with ``need_final``, the state after the
        last step of every sequence."""
        if self.memory is None:
            return x, x, None
        if rec is None:
            raise ValueError(
                "this policy has memory: it needs its recurrent state (Recurrence) at every call"
            )
        K = rec.length
        C = x.shape[0] // K
        xs = x.reshape(C, K, -1).transpose(0, 1)
        starts = rec.starts.reshape(C, K).t()
        cut = cut_sequences(xs, starts)  # the same for every core
        outs, finals, at = [], [], 0
        for core in self.memory.values():
            assert isinstance(core, MemoryCore)
            state = rec.state[:, at : at + core.state_size]
            at += core.state_size
            out, final = core.sequence(xs, state, starts, need_final=need_final, cut=cut)
            outs.append(out.transpose(0, 1).reshape(C * K, -1))
            finals.append(final)
        final_state = torch.cat(finals, dim=1) if need_final else None  # type: ignore[arg-type]
        return outs[0], outs[-1], final_state

    @torch.no_grad()
    def sequence_states(self, obs: Obs, state: Tensor, starts: Tensor, length: int) -> Tensor:
        """The state carried into the first step of every ``length``-step sequence of a
        ``[T, N]`` rollout (``obs`` ``[T, N, ...]``, ``starts`` ``[T, N]``) by this network, from
        ``state`` ``[N, D]`` at step 0: ``[T / length, N, D]`` (see
        :meth:`ppox.nn.memory.MemoryCore.carried_states`)."""
        assert self.memory is not None
        T, N = starts.shape
        x = self.encode(obs_map(lambda o: o.flatten(0, 1), obs)).reshape(T, N, -1)
        parts, at = [], 0
        for core in self.memory.values():
            assert isinstance(core, MemoryCore)
            parts.append(
                core.carried_states(x, state[:, at : at + core.state_size], starts, length)
            )
            at += core.state_size
        return torch.cat(parts, dim=2)

    # --- the passes ------------------------------------------------------------------------------
    def forward(
        self, obs: Obs, mask: Tensor | None = None, rec: Recurrence | None = None
    ) -> tuple[ActionDist, Tensor]:
        """``(dist, value)``; a policy with memory reads ``obs`` as ``rec``'s sequences."""
        actor_x, critic_x, _ = self._memory(self.encode(obs), rec)
        return self._outputs(actor_x, critic_x, mask)

    def _outputs(
        self, actor_x: Tensor, critic_x: Tensor, mask: Tensor | None
    ) -> tuple[ActionDist, Tensor]:
        features = run_mlp(self.trunks["actor"], actor_x)
        critic_features = features if self.shared else run_mlp(self.trunks["critic"], critic_x)
        return self.head(features, mask), self._value_out(critic_features)

    def step(
        self, obs: Obs, mask: Tensor | None, state: Tensor, start: Tensor
    ) -> tuple[ActionDist, Tensor, Tensor]:
        """One step of a policy with memory: ``obs`` ``[N, ...]``, ``state`` ``[N, D]`` as carried,
        ``start`` ``[N]`` bool (an episode begins here: the state is reset first) →
        ``(dist, value, state after the step)``."""
        actor_x, critic_x, new = self._memory(self.encode(obs), Recurrence(state, start, 1), True)
        dist, value = self._outputs(actor_x, critic_x, mask)
        assert new is not None
        return dist, value, new

    def _value_out(self, features: Tensor) -> Tensor:
        return F.linear(features, self.value_out.weight, self.value_out.bias).squeeze(-1)

    def value(self, obs: Obs, rec: Recurrence | None = None) -> Tensor:
        _, critic_x, _ = self._memory(self.encode(obs), rec)
        trunk = self.trunks["actor"] if self.shared else self.trunks["critic"]
        return self._value_out(run_mlp(trunk, critic_x))

    def dist(
        self, obs: Obs, mask: Tensor | None = None, rec: Recurrence | None = None
    ) -> ActionDist:
        actor_x, _, _ = self._memory(self.encode(obs), rec)
        return self.head(run_mlp(self.trunks["actor"], actor_x), mask)

    def n_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
