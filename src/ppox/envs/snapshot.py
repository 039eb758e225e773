"""Saving and restoring the exact state of a running environment, for exact resume.

Most Gymnasium environments pickle with their whole state. MuJoCo environments pickle as their
constructor arguments only (``EzPickle``), so their simulator state (``mj_getState`` with the
full integration state, which includes the warm start) and their reset RNG are saved beside.
Other environments that pickle as constructor arguments only (``EzPickle`` without MuJoCo,
such as Box2D's) or cannot be pickled at all return ``None``: their simulator state would be
lost, so the collector restarts their episodes on resume and says so.
"""

from __future__ import annotations

import pickle
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import EzPickle


def _mujoco_state(base: Any) -> dict[str, Any] | None:
    if not (
        hasattr(base, "model")
        and hasattr(base, "data")
        and type(base.data).__module__.startswith("mujoco")
    ):
        return None
    import mujoco

    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(base.model, spec))
    mujoco.mj_getState(base.model, base.data, state, spec)
    return {"spec": int(spec), "state": state}


def get_state(env: gym.Env) -> bytes | None:
    """Serialize ``env`` (with its wrappers) so :func:`set_state` rebuilds it exactly."""
    base = env.unwrapped
    mujoco_state = _mujoco_state(base)
    if isinstance(base, EzPickle) and mujoco_state is None:
        return None  # pickles as its constructor arguments: the episode in flight would be lost
    extra = {
        "mujoco": mujoco_state,
        "np_random": base.np_random.bit_generator.state if base._np_random is not None else None,
    }
    try:
        return pickle.dumps((env, extra))
    except Exception:  # Box2D and other unpicklable simulators
        return None


def set_state(blob: bytes) -> gym.Env:
    """Inverse of :func:`get_state`; returns the restored environment."""
    env, extra = pickle.loads(blob)
    base = env.unwrapped
    if extra["np_random"] is not None:
        base.np_random.bit_generator.state = extra["np_random"]
    if extra["mujoco"] is not None:
        import mujoco

        m = extra["mujoco"]
        mujoco.mj_setState(base.model, base.data, m["state"], mujoco.mjtState(m["spec"]))
        mujoco.mj_forward(base.model, base.data)
    return env


class Snapshot(gym.Wrapper):
    """Outermost wrapper that lets a vector env (sync or async) save and restore each sub-env
    through ``envs.call("ppox_get_state")`` / ``envs.call("ppox_set_state", blobs)``."""

    def ppox_get_state(self) -> bytes | None:
        return get_state(self.env)

    def ppox_set_state(self, blob: bytes) -> bool:
        self.env = set_state(blob)
        return True
