"""Making environments from Gymnasium ids, with clear errors and explicit autoreset semantics.

Vector envs always use ``AutoresetMode.SAME_STEP``: the step that ends an episode returns the
reset observation and puts the true final observation in ``info["final_obs"]``, so every
transition in the rollout is a real one and truncated episodes can bootstrap from their final
observation (Gymnasium ≥ 1.1 defaults to NEXT_STEP, which inserts a junk transition per
episode; see shared research §4.6).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from ppox.config import EnvConfig
from ppox.envs.envpool_backend import EnvPoolVectorEnv, resolve_backend
from ppox.envs.snapshot import Snapshot
from ppox.envs.vector import LeanSyncVectorEnv
from ppox.errors import EnvError


def make_env(cfg: EnvConfig, render_mode: str | None = None) -> gym.Env:
    """One environment from ``cfg.env_id`` (raises :class:`EnvError` for an unknown id)."""
    kwargs: dict[str, Any] = dict(cfg.env_kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        return gym.make(cfg.env_id, **kwargs)
    except gym.error.Error as exc:  # NameNotFound, VersionNotFound, NamespaceNotFound, ...
        raise EnvError(_unknown_env_message(cfg.env_id, exc)) from None
    except ModuleNotFoundError as exc:
        # Gymnasium re-raises a bare ModuleNotFoundError (name None) for `module:Id` ids
        module = exc.name or cfg.env_id.partition(":")[0]
        raise EnvError(
            f"env_id={cfg.env_id!r} needs the module {module!r}, which cannot be imported ({exc})"
        ) from None
    except TypeError as exc:
        raise EnvError(
            f"env_kwargs={cfg.env_kwargs!r} do not fit env_id={cfg.env_id!r}: {exc}"
        ) from None


def _unknown_env_message(env_id: str, exc: Exception) -> str:
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"env_id={env_id!r} is not a registered Gymnasium environment ({exc}){hint}"


def _thunk(cfg: EnvConfig) -> Callable[[], gym.Env]:
    return lambda: Snapshot(make_env(cfg))


def make_vec_env(cfg: EnvConfig, num_envs: int | None = None) -> VectorEnv:
    """``num_envs`` (default ``cfg.num_envs``) copies of the env, SAME_STEP autoreset.

    ``cfg.env_backend`` picks Gymnasium or EnvPool (:mod:`ppox.envs.envpool_backend`). On
    Gymnasium, ``sync`` uses :class:`LeanSyncVectorEnv` for Box observations (Gymnasium's
    ``SyncVectorEnv`` otherwise); ``async`` uses Gymnasium's ``AsyncVectorEnv``.
    """
    n = cfg.num_envs if num_envs is None else num_envs
    backend = resolve_backend(cfg)
    probe = make_env(cfg)  # fail here, in this process, with a clear message
    box_obs = isinstance(probe.observation_space, gym.spaces.Box)
    probe.close()
    if backend == "envpool":
        limit = probe.spec.max_episode_steps if probe.spec is not None else None
        return EnvPoolVectorEnv(cfg, n, probe.observation_space, probe.action_space, limit)
    fns = [_thunk(cfg) for _ in range(n)]
    if cfg.vectorization == "async":
        return AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    if box_obs:
        return LeanSyncVectorEnv(fns)
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def probe_spaces(cfg: EnvConfig) -> tuple[gym.Space, gym.Space]:
    """(observation_space, action_space) of one env, without keeping it."""
    env = make_env(cfg)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()
