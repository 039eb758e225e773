"""A trained policy for inference: network + observation statistics + the head's env mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppox.config import Config
from ppox.envs.make import probe_spaces
from ppox.errors import CheckpointError
from ppox.io.checkpoint import config_of, load_checkpoint, resolve
from ppox.io.trust import check_imports
from ppox.io.validate import check_policy_state
from ppox.nn.actor_critic import ActorCritic
from ppox.training.normalizers import ObsNormalizer
from ppox.types import MASK_KEY, ObsArrays, nest_map, obs_map


class Policy:
    """``predict(obs)`` → an action the environment accepts (bounded, offset, shaped).

    The observation statistics are the ones the policy was trained with, frozen. A policy with
    memory (``memory`` lstm / gru) is stepped as in sb3-contrib:
    ``action, state = policy.predict(obs, state=state, episode_start=done)``.
    """

    def __init__(self, model: ActorCritic, obs_norm: ObsNormalizer, config: Config) -> None:
        self.model = model.eval()
        self.obs_norm = obs_norm
        self.config = config
        self.device = next(model.parameters()).device

    def flat_mask(self, mask: Any, n: int) -> np.ndarray | None:
        """The env's action mask for ``n`` observations as the head reads it (flat bool
        ``[n, M]``), or None: no mask given, or an action head that takes none."""
        head = self.model.head
        return None if mask is None or head.mask_shape is None else head.read_mask(mask, n)

    @torch.inference_mode()
    def predict(
        self,
        obs: Any,
        *,
        deterministic: bool = True,
        mask: Any = None,
        generator: torch.Generator | None = None,
        state: Any = None,
        episode_start: Any = None,
    ) -> Any:
        """One observation or a batch of ``B`` → env action(s).

        ``obs`` is ``[*obs_shape]`` or ``[B, *obs_shape]`` for a Box; for Dict / Tuple spaces it
        is the env's nested observation (dicts / tuples of arrays), one, or a batch with a
        leading ``B`` on every leaf (as a vector env returns it). ``mask`` is what the env put
        in ``info["action_mask"]`` (for one env or the batch); a Dict observation with an
        ``action_mask`` key carries its own, which is used instead. Actions come back as the
        env takes them: arrays, or a tuple / dict of arrays for Tuple / Dict action spaces.

        A policy with memory returns ``(action, state)``: ``state`` is the recurrent state to
        pass back with the next observation (``[D]`` for one observation, ``[B, D]`` for a batch,
        float32), and ``episode_start`` (bool, one per observation) says where an episode begins,
        resetting the state there. ``state=None`` starts every episode afresh. A policy without
        memory returns the action alone, or ``(action, None)`` when ``state`` or
        ``episode_start`` is given, so code written for recurrent policies runs both.
        """
        layout = self.model.obs_layout
        if layout.fast:
            arr = np.asarray(obs, dtype=np.float32)
            single = arr.ndim == len(self.model.obs_shape)
            x: ObsArrays = arr[None] if single else arr
        else:
            single = layout.is_single(obs)
            if single:
                obs = _batch_of_one(obs)
            x = layout.flatten(obs)
            if layout.mask_in_obs:
                mask = obs[MASK_KEY]
        t = obs_map(lambda a: torch.from_numpy(a).to(self.device), self.obs_norm(x))
        n = next(iter(x.values())).shape[0] if isinstance(x, dict) else x.shape[0]
        flat = self.flat_mask(mask, n)
        m = None if flat is None else torch.from_numpy(flat).to(self.device)
        recurrent = self.model.memory is not None
        if recurrent:
            h, start = self._memory_input(state, episode_start, n, single)
            dist, _, new_state = self.model.step(t, m, h, start)
        else:
            dist = self.model.dist(t, m)
        action = dist.mode() if deterministic else dist.sample(generator)
        out = self.model.head.to_env(action.cpu().numpy())
        out = _first(out) if single else out
        if recurrent:
            h_out = new_state.cpu().numpy()
            return out, (h_out[0] if single else h_out)
        if state is not None or episode_start is not None:
            return out, None
        return out

    def _memory_input(
        self, state: Any, episode_start: Any, n: int, single: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrent state ``[n, D]`` and episode starts ``[n]`` for :meth:`predict`, checked."""
        d = self.model.state_size
        if state is None:
            h = np.zeros((n, d), dtype=np.float32)
            begin = np.ones(n, dtype=bool) if episode_start is None else episode_start
        else:
            h = np.asarray(state, dtype=np.float32)
            h = h[None] if single and h.ndim == 1 else h
            if h.shape != (n, d) or not np.isfinite(h).all():
                raise ValueError(
                    f"state has shape {tuple(np.shape(state))}; this policy's state is "
                    f"{'[' if single else f'[{n}, '}{d}] finite float32 (the state predict returned)"
                )
            begin = np.zeros(n, dtype=bool) if episode_start is None else episode_start
        start = np.asarray(begin, dtype=bool).reshape(-1)
        if start.shape != (n,):
            raise ValueError(
                f"episode_start has {start.size} entries; one per observation ({n}) is needed"
            )
        return (
            torch.from_numpy(h).to(self.device),
            torch.from_numpy(start.copy()).to(self.device),
        )


def _batch_of_one(obs: Any) -> Any:
    """A single nested observation with a batch axis of 1 added to every leaf."""
    return nest_map(lambda a: np.asarray(a)[None], obs)


def _first(action: Any) -> Any:
    """The first env's action out of a batch (tuples and dicts part by part)."""
    return nest_map(lambda a: a[0], action)


def build_model(
    cfg: Config, device: torch.device | str = "cpu"
) -> tuple[ActorCritic, ObsNormalizer]:
    """The network for ``cfg``'s env and its observation normalizer (per vector leaf)."""
    obs_space, action_space = probe_spaces(cfg.env)
    model = ActorCritic(obs_space, action_space, cfg.policy).to(device)
    obs_norm = ObsNormalizer(
        model.obs_layout.norm_shape,
        enabled=cfg.env.normalize_obs,
        clip=cfg.env.obs_clip,
        sparse=cfg.env.obs_sparse,
        until=cfg.env.obs_norm_until,
    )
    return model, obs_norm


def policy_from_state(
    state: dict[str, Any],
    device: str = "cpu",
    *,
    trust_imports: bool = False,
    source: str | Path = "the checkpoint",
) -> Policy:
    """The policy in a loaded checkpoint ``state`` (read from ``source``, named in errors).

    A config that would import a module (an ``env_id`` ``module:Id``, an encoder
    ``module:callable``) is refused unless ``trust_imports`` (:mod:`ppox.io.trust`); the weights
    and statistics are checked against the network the config describes before they are loaded
    (:func:`ppox.io.validate.check_policy_state`)."""
    cfg = config_of(state, source)
    check_imports(cfg, str(source), trust_imports)
    model, obs_norm = build_model(cfg, device)
    check_policy_state(state, str(source), model=model, obs_norm=obs_norm.state_dict())
    try:
        model.load_state_dict(state["model"])
        obs_norm.load_state_dict(state["obs_norm"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint weights do not fit the network its config describes: {exc}"
        ) from None
    return Policy(model, obs_norm, cfg)


def load_policy(path: str | Path, device: str = "cpu", *, trust_imports: bool = False) -> Policy:
    """Load the policy of a run directory (or a ``checkpoint.pt``) for ``predict``.

    ``trust_imports=True`` lets the checkpoint's config import the module it names (an
    ``env_id`` of the form ``module:Id`` or an encoder ``module:callable``); without it such a
    checkpoint is refused before anything is imported (docs/trust.md)."""
    p = resolve(path)
    state = load_checkpoint(p, map_location=device)
    return policy_from_state(state, device, trust_imports=trust_imports, source=p)
