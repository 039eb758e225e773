"""Environment construction: Gymnasium ids to vectorized environments with fixed semantics."""

from ppox.envs import (
    hybrid,  # noqa: F401  (registers ppox/Moving-v0, ppox/Sliding-v0, ppox/HardMove-v0)
    minatar,  # noqa: F401  (registers ppox/MinAtar-{Game}-v1; minatar is imported only when made)
    partial,  # noqa: F401  (registers ppox/CartPoleNoVel-v1, ppox/PendulumNoVel-v1, ppox/LunarLanderNoVel-v3)
    traffic,  # noqa: F401  (registers ppox/Traffic-v0; SUMO is imported only when it is made)
)
from ppox.envs.make import make_env, make_vec_env, probe_spaces
from ppox.envs.snapshot import Snapshot

__all__ = ["Snapshot", "make_env", "make_vec_env", "probe_spaces"]
