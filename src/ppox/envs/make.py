"""Making environments from Gymnasium ids, with clear errors and explicit autoreset semantics.

Vector envs always use ``AutoresetMode.SAME_STEP``: the step that ends an episode returns the
reset observation and puts the true final observation in ``info["final_obs"]``, so every
transition in the rollout is a real one and truncated episodes can bootstrap from their final
observation (Gymnasium ≥ 1.1 defaults to NEXT_STEP, which inserts a junk transition per
episode; see Gymnasium's documentation of the vector autoreset modes).

Whatever goes wrong while an environment is made (an unknown id, a module that does not
import, keyword arguments the env refuses, an assertion in its constructor) is one
:class:`EnvError` naming ``env_id`` and ``env_kwargs``, raised before a run directory exists.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from ppox.config import EnvConfig
from ppox.envs.atari import AtariOptions, AtariPreprocessing, atari_kwargs, is_atari
from ppox.envs.envpool_backend import EnvPoolVectorEnv, resolve_backend
from ppox.envs.snapshot import Snapshot
from ppox.envs.vector import LeanSyncVectorEnv
from ppox.errors import EnvError, PpoxError

NOT_REGISTERED = (
    gym.error.NameNotFound,
    gym.error.VersionNotFound,
    gym.error.NamespaceNotFound,
    gym.error.DeprecatedEnv,
    gym.error.UnregisteredEnv,
)


def make_env(cfg: EnvConfig, render_mode: str | None = None, evaluation: bool = False) -> gym.Env:
    """One environment from ``cfg.env_id``; any failure to make it is an :class:`EnvError`
    naming the id and the keyword arguments. Atari ids get the preprocessing of
    :mod:`ppox.envs.atari` (with ``evaluation``, whole games: no end of episode at a lost life)."""
    kwargs: dict[str, Any] = dict(cfg.env_kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    register_popgym(cfg.env_id)
    opts = atari_options(cfg, evaluation)
    if opts is not None:
        kwargs = atari_kwargs(cfg.env_id, kwargs, opts)
    try:
        env = gym.make(cfg.env_id, **kwargs)
        return env if opts is None else AtariPreprocessing(env, opts)
    except PpoxError:  # ppox's own envs say what is wrong themselves
        raise
    except NOT_REGISTERED as exc:
        raise EnvError(_unknown_env_message(cfg.env_id, exc)) from None
    except ModuleNotFoundError as exc:
        # Gymnasium re-raises a bare ModuleNotFoundError (name None) for `module:Id` ids
        module = exc.name or cfg.env_id.partition(":")[0]
        raise EnvError(
            f"env_id={cfg.env_id!r} needs the module {module!r}, which cannot be imported ({_line(exc)})"
        ) from None
    except Exception as exc:  # the env's constructor or a wrapper refused its arguments
        raise EnvError(
            f"env_id={cfg.env_id!r} cannot be made with env_kwargs={_short(kwargs)}: "
            f"{type(exc).__name__}: {_line(exc)}"
        ) from None


def atari_options(cfg: EnvConfig, evaluation: bool = False) -> AtariOptions | None:
    """The Atari preprocessing ``cfg`` asks for (None: not an Atari id, or preprocessing off).
    ``atari_*`` fields changed from their defaults for an id that is not Atari are an error."""
    opts = AtariOptions(
        noop_max=cfg.atari_noop_max, frame_skip=cfg.atari_frame_skip,
        screen_size=cfg.atari_screen_size, grayscale=cfg.atari_grayscale,
        frame_stack=cfg.atari_frame_stack, fire_reset=cfg.atari_fire_reset,
        episodic_life=cfg.atari_episodic_life and not evaluation,
    )  # fmt: skip
    if is_atari(cfg.env_id):
        return opts if cfg.atari_preprocessing else None
    changed = [
        f"atari_{f.name}={getattr(cfg, 'atari_' + f.name)!r}"
        for f in dataclasses.fields(AtariOptions)
        if getattr(cfg, "atari_" + f.name) != f.default
    ]
    if changed:
        raise EnvError(
            f"{', '.join(changed)} set for env_id={cfg.env_id!r}, which is not an Atari id "
            "(the atari_* fields apply to ale-py's ids only; pip install 'ppox[atari]' for them)"
        )
    return None


def register_popgym(env_id: str) -> None:
    """Register the POPGym suite's ids (``popgym-…``) by importing the ``popgym`` package, a fixed
    name (never one read from a config), when such an id is asked for and not registered yet
    (docs/memory.md). Without the package: an :class:`EnvError` saying what to install."""
    if not env_id.startswith("popgym-") or env_id in gym.registry:
        return
    try:
        import popgym  # noqa: F401  (registers its ids with Gymnasium)
    except ImportError:
        raise EnvError(
            f"env_id={env_id!r} is a POPGym task, and the popgym package is not installed: "
            "pip install 'ppox[popgym]'"
        ) from None


def _line(exc: BaseException) -> str:
    """An exception's message on one line, at most 300 characters."""
    text = " ".join(str(exc).split()) or "(no message)"
    return text if len(text) <= 300 else text[:297] + "..."


def _short(kwargs: dict[str, Any]) -> str:
    text = " ".join(repr(kwargs).split())
    return text if len(text) <= 200 else text[:197] + "..."


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
    return sync_vector_env(fns, box_obs)


def sync_vector_env(fns: list[Callable[[], gym.Env]], box_obs: bool) -> VectorEnv:
    """Envs stepped in this process, SAME_STEP autoreset: :class:`LeanSyncVectorEnv` for Box
    observations, Gymnasium's ``SyncVectorEnv`` otherwise (training and evaluation alike)."""
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
