"""ppox's own Gymnasium versions of the gym-hybrid environments (parameterized actions).

Three tasks on the square field [-1, 1]²: drive a point agent into a target circle of radius
0.1. ``ppox/Moving-v0`` and ``ppox/Sliding-v0`` (ACCELERATE, TURN, BREAK; Sliding has inertia)
and ``ppox/HardMove-v0`` (the HyAR paper's 2**n on/off patterns over n actuators). The actions
are ``Tuple((Discrete(K), Box(P)))``: an action type and one parameter vector, of which each
type reads only the entries in its row of ``param_mask`` ([K, P], bool).

A clean-room implementation from a description of the originals; what differs, and why:

- Every episode end (success, leaving the field, step limit) is ``terminated=True``: the
  observation shows ``step / max_step`` and the limit carries the -1 reward, so it is part of
  the MDP. The envs end episodes themselves; they are registered without a ``TimeLimit``.
- The observation space is honest: every observation the env can emit (including the terminal
  step, where the agent has just left the field) lies inside it. The originals declared a
  wrong Box.
- ``info["action_mask"] = {"type": ones(K), "params": param_mask}`` on reset and step (the
  convention ppox's hybrid policy heads read) and ``info["success"]`` on the step that ends an
  episode.
- Sliding resets its velocity direction φ to the heading at every reset (the original kept φ
  across episodes); ``reference=True`` keeps the quirk. The two behave identically, since speed
  is 0 at reset and the first ACCELERATE sets φ.
- HardMove clips its parameters to [-1, 1] (the original did not) and sets the heading with
  ``atan2(y, x)`` (the original's ``arctan(y / x)`` loses the quadrant for x < 0 and is
  undefined at x = 0); the heading enters only the observation.
- Invalid actions raise :class:`ValueError` instead of failing somewhere inside.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

__all__ = [
    "ACCELERATE",
    "BREAK",
    "ENV_IDS",
    "MOVING_PARAM_MASK",
    "TURN",
    "HardMoveEnv",
    "MovingEnv",
    "SlidingEnv",
    "register_envs",
]

ACCELERATE, TURN, BREAK = 0, 1, 2
"""Action types of Moving and Sliding."""

MOVING_PARAM_MASK: NDArray[np.bool_] = np.array([[1, 0], [0, 1], [0, 0]], dtype=bool)
"""Which parameter each Moving/Sliding action type reads: ACCELERATE p[0], TURN p[1], BREAK none."""
MOVING_PARAM_MASK.flags.writeable = False

ENV_IDS: dict[str, str] = {
    "ppox/Moving-v0": "ppox.envs.hybrid:MovingEnv",
    "ppox/Sliding-v0": "ppox.envs.hybrid:SlidingEnv",
    "ppox/HardMove-v0": "ppox.envs.hybrid:HardMoveEnv",
}

Obs = NDArray[Any]
"""A float32 observation of shape (10,)."""


def _up32(value: float) -> np.float32:
    """The smallest float32 >= ``value`` (a float32 Box bound that really contains ``value``)."""
    v = np.float32(value)
    return v if float(v) >= value else np.nextafter(v, np.float32(np.inf))


class _FieldEnv(gym.Env[Obs, tuple[Any, ...]], abc.ABC):
    """Shared field, target, reward, episode end, observation and rendering."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 50}

    field_size: ClassVar[float] = 1.0
    target_radius: ClassVar[float] = 0.1
    target_range: ClassVar[float] = 0.9
    step_penalty: ClassVar[float] = 0.001
    success_reward: ClassVar[float] = 1.0
    failure_reward: ClassVar[float] = -1.0

    param_mask: NDArray[np.bool_]

    def __init__(self, max_step: int, render_mode: str | None) -> None:
        if isinstance(max_step, bool) or not isinstance(max_step, int | np.integer) or max_step < 1:
            raise ValueError(f"max_step must be an integer >= 1, got {max_step!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; use None or 'rgb_array'"
            )
        self.max_step = int(max_step)
        self.render_mode = render_mode
        # the state, in plain attributes (tests and snapshots set and read them directly)
        self.x = 0.0
        self.y = 0.0
        self.theta = 0.0
        self.speed = 0.0
        self.target_x = 0.0
        self.target_y = 0.0
        self.current_step = 0

    # -- subclass hooks -------------------------------------------------------------------
    @abc.abstractmethod
    def _apply(self, kind: int, params: NDArray[np.float64]) -> None:
        """Apply action type ``kind`` with (unclipped) ``params``, including the move."""

    def _succeeded(self, distance: float) -> bool:
        return distance < self.target_radius

    # -- spaces ---------------------------------------------------------------------------
    def _observation_space(self, xy_overshoot: tuple[float, float], max_speed: float) -> spaces.Box:
        """Tight bounds. The agent is inside the field before every step, so it can end at most
        ``xy_overshoot`` beyond it; the target centre is within ``target_range``."""
        fx, fy = self.field_size + xy_overshoot[0], self.field_size + xy_overshoot[1]
        t = self.target_range
        max_dist = math.hypot(fx + t, fy + t)
        high = [
            fx,
            fy,
            max_speed,
            1.0,
            1.0,
            t,
            t,
            max_dist,
            1.0,
            (self.max_step + 1) / self.max_step,
        ]
        low = [-fx, -fy, 0.0, -1.0, -1.0, -t, -t, 0.0, 0.0, 0.0]
        return spaces.Box(
            low=-np.array([_up32(-v) for v in low], dtype=np.float32),
            high=np.array([_up32(v) for v in high], dtype=np.float32),
            dtype=np.float32,
        )

    # -- action parsing ---------------------------------------------------------------------
    def _parse_action(self, action: Sequence[Any]) -> tuple[int, NDArray[np.float64]]:
        if not isinstance(action, tuple | list) or len(action) != 2:
            raise ValueError(f"action must be a pair (type, parameters), got {action!r}")
        kind, params = action
        if isinstance(kind, np.ndarray) and kind.shape == ():
            kind = kind.item()
        num_types, num_params = self.param_mask.shape
        if isinstance(kind, bool | np.bool_) or not isinstance(kind, int | np.integer):
            raise ValueError(f"action type must be an integer in [0, {num_types}), got {kind!r}")
        if not 0 <= kind < num_types:
            raise ValueError(
                f"action type {int(kind)} is out of range: allowed are 0..{num_types - 1}"
            )
        try:
            p = np.asarray(params, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"action parameters must be {num_params} numbers, got {params!r}"
            ) from None
        if p.shape != (num_params,):
            raise ValueError(
                f"action parameters must have shape ({num_params},), got shape {p.shape}"
            )
        if not np.all(np.isfinite(p)):
            raise ValueError(f"action parameters must be finite, got {p.tolist()}")
        return int(kind), p

    # -- Gymnasium API --------------------------------------------------------------------
    @property
    def distance(self) -> float:
        """Distance from the agent to the target centre."""
        return math.hypot(self.x - self.target_x, self.y - self.target_y)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        r, f = self.target_range, self.field_size
        self.target_x, self.target_y = (float(v) for v in rng.uniform(-r, r, size=2))
        self.x, self.y = (float(v) for v in rng.uniform(-f, f, size=2))
        self.theta = float(rng.uniform(0.0, 2.0 * math.pi))
        self.speed = 0.0
        self.current_step = 0
        return self._obs(), self._info()

    def step(self, action: Sequence[Any]) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        kind, params = self._parse_action(action)
        before = self.distance
        self.current_step += 1
        self._apply(kind, params)
        distance = self.distance
        shaping = before - distance - self.step_penalty
        info = self._info()
        out = abs(self.x) > self.field_size or abs(self.y) > self.field_size
        if self._succeeded(distance):
            reward, terminated, info["success"] = shaping + self.success_reward, True, True
        elif out or self.current_step > self.max_step:
            reward, terminated, info["success"] = self.failure_reward, True, False
        else:
            reward, terminated = shaping, False
        return self._obs(), float(reward), terminated, False, info

    def _obs(self) -> Obs:
        distance = self.distance
        return np.array(
            [
                self.x,
                self.y,
                self.speed,
                math.cos(self.theta),
                math.sin(self.theta),
                self.target_x,
                self.target_y,
                distance,
                1.0 if distance < self.target_radius else 0.0,
                self.current_step / self.max_step,
            ],
            dtype=np.float32,
        )

    def _info(self) -> dict[str, Any]:
        mask = {
            "type": np.ones(self.param_mask.shape[0], dtype=bool),
            "params": self.param_mask.copy(),
        }
        return {"action_mask": mask}

    def render(self) -> NDArray[np.uint8] | None:
        """A 128×128 RGB image of the field (grey), target (green) and agent (red, with its
        heading) when ``render_mode="rgb_array"``; ``None`` otherwise."""
        if self.render_mode != "rgb_array":
            return None
        size = 128
        img = np.full((size, size, 3), 255, dtype=np.uint8)
        scale = (size - 1) / (2.0 * self.field_size)
        rows, cols = np.mgrid[0:size, 0:size]
        wx = cols / scale - self.field_size  # pixel centre -> field coordinates (y up)
        wy = self.field_size - rows / scale
        img[:, :] = (225, 225, 225)
        img[np.hypot(wx - self.target_x, wy - self.target_y) < self.target_radius] = (40, 170, 60)
        for t in np.linspace(0.0, 0.15, 16):
            hx, hy = self.x + t * math.cos(self.theta), self.y + t * math.sin(self.theta)
            c, r = round((hx + self.field_size) * scale), round((self.field_size - hy) * scale)
            if 0 <= r < size and 0 <= c < size:
                img[r, c] = (30, 30, 30)
        img[np.hypot(wx - self.x, wy - self.y) < 0.04] = (210, 40, 40)
        return img


class MovingEnv(_FieldEnv):
    """gym-hybrid's Moving-v0: ACCELERATE(p[0]), TURN(p[1]) or BREAK; the agent moves along its
    heading (no inertia). Success needs the agent inside the target *and* stopped (speed 0).

    Parameters are clipped here: acceleration ``0.5 * clip(p[0], 0, 1)``, rotation
    ``(π/2) * clip(p[1], -1, 1)``. Speed is not capped, but it grows by at most 0.5 a step, which
    bounds it in the observation space. ``max_step`` (200) is the episode limit.
    """

    param_mask = MOVING_PARAM_MASK

    dt: ClassVar[float] = 0.005
    max_acceleration: ClassVar[float] = 0.5
    max_turn: ClassVar[float] = math.pi / 2
    break_value: ClassVar[float] = 0.1

    def __init__(self, max_step: int = 200, render_mode: str | None = None) -> None:
        super().__init__(max_step, render_mode)
        self.action_space = spaces.Tuple(
            (
                spaces.Discrete(3),
                spaces.Box(
                    low=np.array([0.0, -1.0], np.float32),
                    high=np.array([1.0, 1.0], np.float32),
                    dtype=np.float32,
                ),
            )
        )
        max_speed = self.max_acceleration * (
            self.max_step + 1
        )  # |Δspeed| <= 0.5 a step (Sliding: triangle inequality)
        overshoot = self.dt * max_speed
        self.observation_space = self._observation_space((overshoot, overshoot), max_speed)

    def _apply(self, kind: int, params: NDArray[np.float64]) -> None:
        if kind == ACCELERATE:
            self._accelerate(self.max_acceleration * float(np.clip(params[0], 0.0, 1.0)))
        elif kind == TURN:
            self.theta = (self.theta + self.max_turn * float(np.clip(params[1], -1.0, 1.0))) % (
                2.0 * math.pi
            )
        else:
            self._break()
        direction = self._direction()
        self.x += self.dt * self.speed * math.cos(direction)
        self.y += self.dt * self.speed * math.sin(direction)

    def _accelerate(self, a: float) -> None:
        self.speed += a

    def _break(self) -> None:
        self.speed = 0.0 if self.speed < self.break_value else self.speed - self.break_value

    def _direction(self) -> float:
        return self.theta

    def _succeeded(self, distance: float) -> bool:
        return distance < self.target_radius and self.speed == 0.0


class SlidingEnv(MovingEnv):
    """gym-hybrid's Sliding-v0: Moving with inertia. The velocity has its own direction ``phi``:
    ACCELERATE adds the vector (a, θ) to (speed, φ), TURN changes only the heading θ, BREAK
    shortens the velocity (and sets φ = θ once it reaches 0).

    ``reference=True`` keeps the original's quirk of never resetting φ between episodes
    (initially 0); the default sets φ = θ at reset. Both give the same trajectories, because
    speed is 0 at reset and the first ACCELERATE sets φ.
    """

    def __init__(
        self, max_step: int = 200, reference: bool = False, render_mode: str | None = None
    ) -> None:
        super().__init__(max_step, render_mode)
        self.reference = bool(reference)
        self.phi = 0.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        if not self.reference:
            self.phi = self.theta
        return obs, info

    def _accelerate(self, a: float) -> None:
        s, d = self.speed, self.phi - self.theta
        self.speed = math.sqrt(max(0.0, a * a + s * s + 2.0 * a * s * math.cos(d)))
        self.phi = self.theta + math.atan2(s * math.sin(d), a + s * math.cos(d))

    def _break(self) -> None:
        super()._break()
        if self.speed == 0.0:
            self.phi = self.theta

    def _direction(self) -> float:
        return self.phi


class HardMoveEnv(_FieldEnv):
    """HyAR's HardMove: ``num_actuators`` n actuators at angles 2πi/n; action type k (of 2**n)
    switches them on or off by the k-th pattern of ``itertools.product([0, 1], repeat=n)``
    (first actuator = most significant bit) and moves the agent by
    ``Σ_i on_i · clip(p_i, -1, 1) · (cos 2πi/n, sin 2πi/n)`` directly (no speed, no dt).

    The heading is then ``atan2(y, x)`` (observation only). Success needs only the target, not
    a stop. ``param_mask`` row k is pattern k. ``max_step`` (25) is the episode limit.
    """

    def __init__(
        self, num_actuators: int = 4, max_step: int = 25, render_mode: str | None = None
    ) -> None:
        if (
            isinstance(num_actuators, bool)
            or not isinstance(num_actuators, int | np.integer)
            or num_actuators < 1
        ):
            raise ValueError(f"num_actuators must be an integer >= 1, got {num_actuators!r}")
        super().__init__(max_step, render_mode)
        n = self.num_actuators = int(num_actuators)
        self.patterns: NDArray[np.float64] = np.array(
            list(itertools.product([0, 1], repeat=n)), dtype=np.float64
        )
        self.patterns.flags.writeable = False
        self.param_mask = self.patterns.astype(bool)
        self.param_mask.flags.writeable = False
        angles = 2.0 * math.pi * np.arange(n) / n
        self.directions: NDArray[np.float64] = np.stack(
            [np.cos(angles), np.sin(angles)], axis=1
        )  # [n, 2]
        self.directions.flags.writeable = False
        self.action_space = spaces.Tuple(
            (spaces.Discrete(2**n), spaces.Box(-1.0, 1.0, (n,), np.float32))
        )
        reach = np.abs(self.directions).sum(axis=0)  # the largest |Δx|, |Δy| of one step
        # speed is always 0; a degenerate [0, 0] bound would make Gymnasium warn at every make
        self.observation_space = self._observation_space((float(reach[0]), float(reach[1])), 1.0)

    def _apply(self, kind: int, params: NDArray[np.float64]) -> None:
        push = self.patterns[kind] * np.clip(params, -1.0, 1.0)
        dx, dy = push @ self.directions
        self.x += float(dx)
        self.y += float(dy)
        self.theta = math.atan2(self.y, self.x)


def register_envs() -> None:
    """Register the ``ppox/`` ids with Gymnasium (idempotent; no TimeLimit: the envs end their
    episodes themselves)."""
    for env_id, entry_point in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=None)


register_envs()
