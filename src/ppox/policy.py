"""A trained policy for inference: network + observation statistics + the head's env mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppox.checkpoint import load_checkpoint
from ppox.config import Config
from ppox.envs.make import probe_spaces
from ppox.errors import CheckpointError
from ppox.nn.actor_critic import ActorCritic
from ppox.normalizers import ObsNormalizer


class Policy:
    """``predict(obs)`` → an action the environment accepts (bounded, offset, shaped).

    The observation statistics are the ones the policy was trained with, frozen.
    """

    def __init__(self, model: ActorCritic, obs_norm: ObsNormalizer, config: Config) -> None:
        self.model = model.eval()
        self.obs_norm = obs_norm
        self.config = config
        self.device = next(model.parameters()).device

    @torch.inference_mode()
    def predict(
        self,
        obs: Any,
        *,
        deterministic: bool = True,
        mask: Any = None,
        generator: torch.Generator | None = None,
    ) -> Any:
        """One observation ``[*obs_shape]`` or a batch ``[B, *obs_shape]`` → env action(s).

        ``mask`` is what the env put in ``info["action_mask"]`` (for one env or the batch).
        Actions come back as the env takes them: arrays, or a tuple / dict of arrays for
        Tuple / Dict action spaces.
        """
        x = np.asarray(obs, dtype=np.float32)
        single = x.ndim == len(self.model.obs_shape)
        if single:
            x = x[None]
        t = torch.from_numpy(self.obs_norm(x)).to(self.device)
        head = self.model.head
        m = None if mask is None or head.mask_shape is None else torch.from_numpy(head.read_mask(mask, t.shape[0])).to(self.device)
        dist = self.model.dist(t, m)
        action = dist.mode() if deterministic else dist.sample(generator)
        out = head.to_env(action.cpu().numpy())
        return _first(out) if single else out


def _first(action: Any) -> Any:
    """The first env's action out of a batch (tuples and dicts part by part)."""
    if isinstance(action, dict):
        return {k: _first(v) for k, v in action.items()}
    if isinstance(action, tuple):
        return tuple(_first(v) for v in action)
    return action[0]


def build_model(cfg: Config, device: torch.device | str = "cpu") -> tuple[ActorCritic, ObsNormalizer]:
    obs_space, action_space = probe_spaces(cfg.env)
    model = ActorCritic(obs_space, action_space, cfg.policy).to(device)
    obs_norm = ObsNormalizer(model.obs_shape, enabled=cfg.env.normalize_obs, clip=cfg.env.obs_clip)
    return model, obs_norm


def policy_from_state(state: dict[str, Any], device: str = "cpu") -> Policy:
    cfg = Config.from_dict(state["config"])
    model, obs_norm = build_model(cfg, device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not fit the network its config describes: {exc}") from None
    obs_norm.load_state_dict(state["obs_norm"])
    return Policy(model, obs_norm, cfg)


def load_policy(path: str | Path, device: str = "cpu") -> Policy:
    """Load the policy of a run directory (or a ``checkpoint.pt``) for ``predict``."""
    return policy_from_state(load_checkpoint(path, map_location=device), device)
