"""The EnvPool backend: a SAME_STEP vector env over ``envpool.make(..., env_type="gymnasium")``.

EnvPool (``pip install envpool``) steps whole batches of environments in C++. For the ids in
:data:`ENVPOOL_IDS` (checked to be the same task as the Gymnasium id of the same name:
spaces, time limit, reward and termination statistics; docs/envpool.md) this module gives ppox
the same vector-env contract as :func:`ppox.envs.make.make_vec_env`'s Gymnasium envs:

- **SAME_STEP autoreset.** EnvPool resets an ended env on the *next* ``step`` (NEXT_STEP). The
  adapter resets the envs that ended right away (``reset(env_ids)``), returns their reset
  observations, and puts the true final observations in ``info["final_obs"]`` (with the
  ``_final_obs`` mask), like ``LeanSyncVectorEnv``.
- **Terminated vs truncated.** EnvPool reports an episode that ends by its dynamics *on* the
  time-limit step as truncated only (``terminated = done & ~trunc``), which would bootstrap a
  terminal state. The adapter therefore gives EnvPool a time limit it never reaches and applies
  Gymnasium's ``TimeLimit`` itself (``cfg.max_episode_steps`` or the registered limit), so both
  flags are exactly Gymnasium's, and both can be true on one step.
- **Seeds.** ``reset(seed=[s_0, …, s_{N-1}])`` (how the collector starts) rebuilds the pool with
  EnvPool's per-env seeds ``seed=[…]``: env ``i`` is seeded with ``s_i``, later episodes continue
  its own generator. An int seeds env ``i`` with ``seed + i``; ``None`` continues. EnvPool draws
  start states with its own generators, so seed ``s`` does not give the Gymnasium env's start
  state for ``s``: the two backends agree in distribution, not episode by episode. Evaluation
  stays on Gymnasium envs (``ppox.io.evaluate``), so its seeded episodes are the same whichever
  backend trained.
- **No snapshots.** EnvPool envs cannot be pickled: ``call("ppox_get_state")`` answers ``None``
  per env, so a resumed run restarts its episodes from fresh seeds and ``summary.json`` says
  ``resumed_env_state_exactly: false``, as for Box2D.

``vectorization`` picks EnvPool's worker threads: ``sync`` one thread (the envs step one after
another, like ppox's in-process envs), ``async`` up to one thread per env (at most the CPU
count). The pool always runs in EnvPool's synchronous mode (every env steps every call).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ppox.config import EnvConfig
from ppox.envs.atari import is_atari
from ppox.errors import EnvError

INSTALL_HINT = 'pip install envpool (or pip install -e ".[envpool]")'

_MUJOCO_V5 = ("Ant", "HalfCheetah", "Hopper", "Humanoid", "HumanoidStandup", "InvertedDoublePendulum",
              "InvertedPendulum", "Pusher", "Reacher", "Swimmer", "Walker2d")  # fmt: skip
_MUJOCO_V4 = ("Ant", "HalfCheetah", "Hopper", "InvertedDoublePendulum", "InvertedPendulum", "Reacher",
              "Swimmer", "Walker2d")  # fmt: skip

ENVPOOL_IDS: dict[str, str] = {
    # classic control
    "CartPole-v1": "CartPole-v1",
    "Acrobot-v1": "Acrobot-v1",
    "MountainCar-v0": "MountainCar-v0",
    "MountainCarContinuous-v0": "MountainCarContinuous-v0",
    # Box2D
    "LunarLander-v3": "LunarLander-v3",
    "LunarLanderContinuous-v3": "LunarLanderContinuous-v3",
    "BipedalWalker-v3": "BipedalWalker-v3",
    "BipedalWalkerHardcore-v3": "BipedalWalkerHardcore-v3",
    # MuJoCo (v2/v3 need mujoco-py, which Gymnasium 1.x moved out)
    **{f"{name}-v5": f"{name}-v5" for name in _MUJOCO_V5},
    **{f"{name}-v4": f"{name}-v4" for name in _MUJOCO_V4},
}
"""Gymnasium id → EnvPool task id of the same task. Only these run on EnvPool; ``auto`` uses
EnvPool for them when it is installed (docs/envpool.md has the table and the differences)."""

NOT_THE_SAME: dict[str, str] = {
    "Pendulum-v1": "EnvPool 1.2's Pendulum-v1 advances the angle with the angular velocity before "
    "clipping it to ±8, Gymnasium's with the clipped one: trajectories part once the pendulum spins fast",
    "Humanoid-v4": "EnvPool's Humanoid-v4 observations hold zeros for the contact forces (cfrc_ext), "
    "Gymnasium's (with MuJoCo ≥ 3) hold the forces",
    "HumanoidStandup-v4": "EnvPool's HumanoidStandup-v4 observations hold zeros for the contact forces "
    "(cfrc_ext), Gymnasium's (with MuJoCo ≥ 3) hold the forces",
    "Pusher-v4": "Gymnasium runs Pusher-v4 only with mujoco<3",
    "LunarLander-v2": "Gymnasium 1.x has only LunarLander-v3 (EnvPool has both)",
    "LunarLanderContinuous-v2": "Gymnasium 1.x has only LunarLanderContinuous-v3 (EnvPool has both)",
}
"""Ids EnvPool has under the same name that are not the same task here, and why."""

ATARI_NOT_THE_SAME = (
    "EnvPool 1.2's Atari tasks restart the game when an env that lost a life is reset at once, "
    "which ppox's same-step autoreset does, so its end-of-life episodes are not the Gymnasium "
    "path's; docs/pixels.md"
)
_POOL_KEYS = {"num_envs", "batch_size", "num_threads", "max_num_players", "thread_affinity_offset",
              "base_path", "seed", "env_seed", "gym_reset_return_info", "max_episode_steps"}  # fmt: skip
_NEVER_REACHED = 2**30  # EnvPool's own time limit; the adapter applies Gymnasium's


def envpool_installed() -> bool:
    """Whether ``import envpool`` would find the package (without importing it)."""
    return importlib.util.find_spec("envpool") is not None


def resolve_backend(cfg: EnvConfig) -> str:
    """The backend ``cfg`` runs on: ``gymnasium`` or ``envpool``.

    ``auto`` is EnvPool when it is installed and ``cfg.env_id`` is in :data:`ENVPOOL_IDS` with
    ``env_kwargs`` it can take, Gymnasium otherwise. An explicit ``envpool`` that cannot be
    honoured raises :class:`EnvError` saying why.
    """
    if cfg.env_backend == "gymnasium":
        return "gymnasium"
    if cfg.env_backend == "auto":
        if not envpool_installed() or cfg.env_id not in ENVPOOL_IDS:
            return "gymnasium"
        try:
            _envpool_kwargs(cfg)
        except EnvError:
            return "gymnasium"
        return "envpool"
    if cfg.env_backend != "envpool":
        raise EnvError(
            f"env_backend={cfg.env_backend!r} is not one of 'gymnasium', 'envpool', 'auto'"
        )
    if not envpool_installed():
        raise EnvError(
            f"env_backend='envpool' needs the envpool package, which is not installed: "
            f"{INSTALL_HINT}"
        )
    if cfg.env_id not in ENVPOOL_IDS:
        why = f" ({NOT_THE_SAME[cfg.env_id]})" if cfg.env_id in NOT_THE_SAME else ""
        if is_atari(cfg.env_id):
            why = f" ({ATARI_NOT_THE_SAME})"
        raise EnvError(
            f"env_id={cfg.env_id!r} has no EnvPool counterpart that is the same task{why}; "
            f"env_backend='envpool' supports: {', '.join(ENVPOOL_IDS)} (use env_backend='gymnasium' "
            "or 'auto' for other ids)"
        )
    _envpool_kwargs(cfg)
    return "envpool"


def _spec_config(task_id: str) -> dict[str, Any]:
    import envpool

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dict(envpool.make_spec(task_id).config._asdict())


def _envpool_kwargs(cfg: EnvConfig) -> dict[str, Any]:
    """``cfg.env_kwargs`` as EnvPool task options: each must be an option of the EnvPool task
    of the same name (Gymnasium and EnvPool name MuJoCo's weights and flags alike)."""
    if not cfg.env_kwargs:
        return {}
    task_id = ENVPOOL_IDS[cfg.env_id]
    options = set(_spec_config(task_id)) - _POOL_KEYS - {"xml_file"}
    bad = sorted(set(cfg.env_kwargs) - options)
    if bad:
        raise EnvError(
            f"env_kwargs {bad} cannot be passed to EnvPool's {task_id!r} (its options: "
            f"{', '.join(sorted(options)) or 'none'}); use env_backend='gymnasium' for them"
        )
    return dict(cfg.env_kwargs)


class EnvPoolVectorEnv(VectorEnv):
    """``num_envs`` copies of ``cfg.env_id`` in one EnvPool, with ppox's SAME_STEP contract.

    The spaces are the Gymnasium env's (``single_observation_space`` / ``single_action_space``
    of ``gym.make(cfg.env_id)``), so models built from either backend are interchangeable;
    observations are returned in the Gymnasium space's dtype.
    """

    def __init__(
        self,
        cfg: EnvConfig,
        num_envs: int,
        single_observation_space: gym.Space,
        single_action_space: gym.Space,
        max_episode_steps: int | None,
    ) -> None:
        resolve_backend(dataclasses.replace(cfg, env_backend="envpool"))  # clear errors first
        self.cfg = cfg
        self.task_id = ENVPOOL_IDS[cfg.env_id]
        self.task_kwargs = _envpool_kwargs(cfg)
        self.num_envs = num_envs
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.observation_space = batch_space(single_observation_space, num_envs)
        self.action_space = batch_space(single_action_space, num_envs)
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = None
        self.max_episode_steps = max_episode_steps
        cpus = os.cpu_count() or 1
        self.num_threads = 1 if cfg.vectorization == "sync" else max(1, min(num_envs, cpus))
        assert isinstance(single_observation_space, gym.spaces.Box)
        self._obs_dtype, self._obs_shape = (
            single_observation_space.dtype,
            single_observation_space.shape,
        )
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        self._pool: Any = None
        self.seeds: list[int] | None = None

    # --- pool ---------------------------------------------------------------------------------
    def _build(self, seeds: list[int]) -> None:
        import envpool

        if self._pool is not None:
            self._pool.close()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # EnvPool's MuJoCo XML deprecation notes
            self._pool = envpool.make(
                self.task_id, env_type="gymnasium", num_envs=self.num_envs, batch_size=self.num_envs,
                num_threads=self.num_threads, seed=seeds, max_episode_steps=_NEVER_REACHED, **self.task_kwargs,
            )  # fmt: skip
            shape = tuple(
                self._pool.single_observation_space.shape
            )  # (building it warns about bounds)
        self.seeds = list(seeds)
        if shape != self._obs_shape:  # pragma: no cover - every mapped id is checked by a test
            raise EnvError(
                f"EnvPool's {self.task_id!r} observations are {shape}, Gymnasium's {self._obs_shape}"
            )

    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int] | None:
        if seed is None:
            return None if self._pool is not None else _fresh_seeds(self.num_envs)
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset got {len(seeds)} seeds for {self.num_envs} envs")
        fresh = _fresh_seeds(self.num_envs)
        return [fresh[i] if s is None else int(s) for i, s in enumerate(seeds)]

    # --- VectorEnv ----------------------------------------------------------------------------
    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if options:
            raise EnvError(f"reset options {sorted(options)} cannot be passed to EnvPool")
        seeds = self._seeds(seed)
        if seeds is not None:
            self._build([s % 2**31 for s in seeds])
        obs, _ = self._pool.reset()
        self._elapsed[:] = 0
        return np.array(obs, dtype=self._obs_dtype), {}

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._pool is None:
            raise RuntimeError("reset() the EnvPool vector env before stepping it")
        obs, reward, terminated, _, _ = self._pool.step(np.asarray(actions))
        obs = np.array(obs, dtype=self._obs_dtype)  # a copy: EnvPool may reuse its buffers
        terminated = np.array(terminated, dtype=bool)
        self._elapsed += 1
        if self.max_episode_steps is None:
            truncated = np.zeros(self.num_envs, dtype=bool)
        else:
            truncated = self._elapsed >= self.max_episode_steps
        done = terminated | truncated
        info: dict[str, Any] = {}
        if done.any():
            ids = np.flatnonzero(done).astype(np.int32)
            final = np.full(self.num_envs, None, dtype=object)
            for i in ids:
                final[i] = obs[i].copy()
            info["final_obs"], info["_final_obs"] = final, done.copy()
            reset_obs, reset_info = self._pool.reset(ids)
            obs[np.asarray(reset_info["env_id"])] = reset_obs  # rows come back in env_id order
            self._elapsed[ids] = 0
        return obs, np.asarray(reward, dtype=np.float64), terminated, truncated, info

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Only ``ppox_get_state``: ``None`` per env (EnvPool envs cannot be snapshotted)."""
        if name == "ppox_get_state":
            return (None,) * self.num_envs
        raise AttributeError(f"the EnvPool backend has no per-env attribute {name!r}")

    def close_extras(self, **kwargs: Any) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _fresh_seeds(n: int) -> list[int]:
    """Seeds from OS entropy, as Gymnasium seeds an env reset with ``seed=None``."""
    return [int(s) for s in np.random.SeedSequence().generate_state(n, dtype=np.uint32) % 2**31]
