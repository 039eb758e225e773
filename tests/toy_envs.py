"""Tiny Gymnasium environments for the collector, env and learner tests.

Importing this module registers every env below under a ``PpoxToy*`` id (idempotently), so
tests can build them through ``make_vec_env`` / ``Trainer`` like any other Gymnasium id.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CounterEnv(gym.Env):
    """Reward 1 every step, never terminates (truncation comes from a ``TimeLimit``).

    The observation is ``[offset + steps, offset]`` with a random ``offset`` drawn at reset, so
    the final observation of an episode differs from the next reset observation and from the
    final observations of the other sub-envs (it identifies env and step).
    """

    def __init__(self, constant_obs: bool = False) -> None:
        self.observation_space = spaces.Box(-1e6, 1e6, (2,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.constant_obs = constant_obs
        self.offset = 0.0
        self.t = 0

    def _obs(self) -> Any:
        if self.constant_obs:
            return np.zeros(2, np.float32)
        return np.array([self.offset + self.t, self.offset], np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.offset = float(self.np_random.integers(0, 50))
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, False, False, {}


class TerminatingEnv(gym.Env):
    """Terminates after ``length`` steps (a true terminal state); reward = step index."""

    def __init__(self, length: int = 3) -> None:
        self.observation_space = spaces.Box(-100, 100, (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.length = length
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return (
            np.array([float(self.t)], np.float32),
            float(self.t),
            self.t >= self.length,
            False,
            {},
        )


class RecordingEnv(gym.Env):
    """Random observations and rewards, random terminations; logs everything it produced.

    ``self.log`` holds, in order, ``("reset", obs)`` and ``("step", action, obs, reward, done)``.
    """

    def __init__(self, p_end: float = 0.15) -> None:
        self.observation_space = spaces.Box(-10, 10, (3,), np.float32)
        self.action_space = spaces.Discrete(3)
        self.p_end = p_end
        self.log: list[tuple[Any, ...]] = []

    def _obs(self) -> np.ndarray:
        return self.np_random.normal(size=3).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs = self._obs()
        self.log.append(("reset", obs.copy()))
        return obs, {}

    def step(self, action):
        obs = self._obs()
        reward = float(self.np_random.normal())
        terminated = bool(self.np_random.random() < self.p_end)
        self.log.append(("step", int(action), obs.copy(), reward, terminated))
        return obs, reward, terminated, False, {}


class MaskedEnv(gym.Env):
    """Discrete(5) with a random legal set (in ``info["action_mask"]``) at every state.

    An illegal action is recorded in ``self.illegal`` (and gives reward −1).
    """

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1, 1, (5,), np.float32)
        self.action_space = spaces.Discrete(5)
        self.mask = np.ones(5, bool)
        self.illegal = 0
        self.steps = 0
        self.t = 0

    def _new_mask(self) -> tuple[np.ndarray, dict[str, Any]]:
        mask = self.np_random.random(5) < 0.4
        if not mask.any():
            mask[self.np_random.integers(5)] = True
        self.mask = mask
        # the observation shows the mask, so the policy *could* learn it (it does not need to)
        return mask.astype(np.float32), {"action_mask": mask.copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self._new_mask()

    def step(self, action):
        self.steps += 1
        self.t += 1
        legal = bool(self.mask[int(action)])
        self.illegal += not legal
        obs, info = self._new_mask()
        return obs, 1.0 if legal else -1.0, False, self.t >= 7, info


class OneHotBanditEnv(gym.Env):
    """One-step contextual bandit: obs = one-hot target in 4 classes, reward 1 iff action == target."""

    def __init__(self, n: int = 4) -> None:
        self.n = n
        self.observation_space = spaces.Box(0, 1, (n,), np.float32)
        self.action_space = spaces.Discrete(n)
        self.target = 0

    def _obs(self) -> np.ndarray:
        return np.eye(self.n, dtype=np.float32)[self.target]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.target = int(self.np_random.integers(self.n))
        return self._obs(), {}

    def step(self, action):
        return self._obs(), float(int(action) == self.target), True, False, {}


class ContinuousBanditEnv(gym.Env):
    """One-step regression bandit: obs = target ∈ [-1, 1], reward = −(a − target)², a ∈ [-2, 2]."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1, 1, (1,), np.float32)
        self.action_space = spaces.Box(-2, 2, (1,), np.float32)
        self.target = 0.0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.target = float(self.np_random.uniform(-1, 1))
        return np.array([self.target], np.float32), {}

    def step(self, action):
        a = float(np.asarray(action).reshape(-1)[0])
        return np.array([self.target], np.float32), -((a - self.target) ** 2), True, False, {}


class MultiDiscreteBanditEnv(gym.Env):
    """One step: obs = one-hot targets for dimensions of sizes ``nvec``; reward = fraction of
    dimensions whose action equals its target (MultiDiscrete, or MultiBinary with ``binary``)."""

    def __init__(self, nvec: tuple[int, ...] = (3, 4), binary: bool = False) -> None:
        self.nvec = np.array([2] * 4 if binary else nvec)
        self.observation_space = spaces.Box(0, 1, (int(self.nvec.sum()),), np.float32)
        self.action_space = spaces.MultiBinary(4) if binary else spaces.MultiDiscrete(self.nvec)
        self.target = np.zeros(len(self.nvec), np.int64)

    def _obs(self) -> np.ndarray:
        return np.concatenate(
            [np.eye(n, dtype=np.float32)[t] for n, t in zip(self.nvec, self.target)]
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.target = self.np_random.integers(0, self.nvec)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), float(np.mean(np.asarray(action) == self.target)), True, False, {}


HYBRID_PARAM_MASK = np.array([[True, False], [False, True], [False, False]])


class HybridBanditEnv(gym.Env):
    """One step, Tuple(Discrete(3), Box(-1, 1, (2,))) like gym-hybrid's Moving: obs = one-hot
    target type and two target values c. Right type k gives 1 − |x_k − c_k| for k ∈ {0, 1} (each
    type uses its own parameter) and 1 for k = 2 (no parameter); a wrong type gives 0. The
    type→parameter mask is in ``info["action_mask"]["params"]``."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1, 1, (5,), np.float32)
        self.action_space = spaces.Tuple((spaces.Discrete(3), spaces.Box(-1, 1, (2,), np.float32)))
        self.k, self.c = 0, np.zeros(2)

    def _obs(self) -> np.ndarray:
        return np.concatenate([np.eye(3)[self.k], self.c]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        return {"action_mask": {"type": np.ones(3, bool), "params": HYBRID_PARAM_MASK.copy()}}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.k = int(self.np_random.integers(3))
        self.c = self.np_random.uniform(-0.8, 0.8, 2)
        return self._obs(), self._info()

    def step(self, action):
        k, x = int(action[0]), np.asarray(action[1])
        reward = 0.0 if k != self.k else (1.0 if k == 2 else 1.0 - abs(float(x[k]) - self.c[k]))
        return self._obs(), reward, True, False, self._info()


class NestedDictBanditEnv(gym.Env):
    """One step, Dict(choice: Discrete(3), level: Box(-1, 1, (1,)), keys: MultiBinary(2)):
    obs = one-hot target choice, target level, target keys; reward = mean of the three scores."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1, 1, (6,), np.float32)
        self.action_space = spaces.Dict({
            "choice": spaces.Discrete(3), "level": spaces.Box(-1, 1, (1,), np.float32), "keys": spaces.MultiBinary(2),
        })  # fmt: skip
        self.choice, self.level, self.keys = 0, 0.0, np.zeros(2, np.int64)

    def _obs(self) -> np.ndarray:
        return np.concatenate([np.eye(3)[self.choice], [self.level], self.keys]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.choice = int(self.np_random.integers(3))
        self.level = float(self.np_random.uniform(-0.8, 0.8))
        self.keys = self.np_random.integers(0, 2, 2)
        return self._obs(), {}

    def step(self, action):
        score = (
            float(int(action["choice"]) == self.choice)
            + 1.0 - abs(float(np.asarray(action["level"])[0]) - self.level)
            + float(np.mean(np.asarray(action["keys"]) == self.keys))
        )  # fmt: skip
        return self._obs(), score / 3.0, True, False, {}


IDS = {
    "PpoxToyCounter-v0": (CounterEnv, 5),
    "PpoxToyTerminating-v0": (TerminatingEnv, None),
    "PpoxToyRecording-v0": (RecordingEnv, None),
    "PpoxToyMasked-v0": (MaskedEnv, None),
    "PpoxToyBandit-v0": (OneHotBanditEnv, None),
    "PpoxToyContinuousBandit-v0": (ContinuousBanditEnv, None),
    "PpoxToyMultiDiscreteBandit-v0": (MultiDiscreteBanditEnv, None),
    "PpoxToyMultiBinaryBandit-v0": (lambda: MultiDiscreteBanditEnv(binary=True), None),
    "PpoxToyHybridBandit-v0": (HybridBanditEnv, None),
    "PpoxToyNestedDictBandit-v0": (NestedDictBanditEnv, None),
}

for _id, (_cls, _steps) in IDS.items():
    if _id not in gym.registry:
        gym.register(_id, entry_point=_cls, max_episode_steps=_steps, disable_env_checker=True)


# --------------------------------------------------------------------------------------------
# Structured observations (tests/test_observations.py)
# --------------------------------------------------------------------------------------------


class NestedObsEnv(CounterEnv):
    """Every leaf kind in a nested Dict / Tuple observation; Discrete(3) actions (``reset`` is
    :class:`CounterEnv`'s).

    ``pos`` is ``[offset + t, offset]`` (a random offset at reset, as in :class:`CounterEnv`), so
    a final observation identifies its env and step; the other leaves are random. Reward:
    1 when the action equals ``mode − 1``, plus ``lidar[0] / 10``; episodes terminate with
    probability 0.05 per step (a ``TimeLimit`` of 6 truncates the others). With ``image`` an
    HWC uint8 ``camera`` joins; with ``mask_in_obs`` the observation has an ``action_mask`` key
    (a random legal set; illegal actions are counted in ``self.illegal``).
    """

    def __init__(self, image: bool = False, mask_in_obs: bool = False) -> None:
        parts: dict[str, spaces.Space] = {
            "pos": spaces.Box(-1e3, 1e3, (2,), np.float32),
            "mode": spaces.Discrete(3, start=1),
            "sensors": spaces.Dict({"lidar": spaces.Box(0.0, 5.0, (3,), np.float64), "bump": spaces.MultiBinary(2)}),
            "grid": spaces.Tuple((spaces.MultiDiscrete([2, 3]), spaces.Box(-1, 1, (2, 2), np.float32))),
        }  # fmt: skip
        if image:
            parts["camera"] = spaces.Box(0, 255, (6, 6, 3), np.uint8)
        if mask_in_obs:
            parts["action_mask"] = spaces.MultiBinary(3)
        self.observation_space = spaces.Dict(parts)
        self.action_space = spaces.Discrete(3)
        self.image, self.mask_in_obs = image, mask_in_obs
        self.offset, self.t, self.illegal = 0.0, 0, 0
        self.obs: dict[str, Any] = {}

    def _obs(self) -> dict[str, Any]:
        r = self.np_random
        obs: dict[str, Any] = {
            "pos": np.array([self.offset + self.t, self.offset], np.float32),
            "mode": int(r.integers(1, 4)),
            "sensors": {"lidar": r.uniform(0, 5, 3), "bump": r.integers(0, 2, 2).astype(np.int8)},
            "grid": (r.integers(0, [2, 3]), r.uniform(-1, 1, (2, 2)).astype(np.float32)),
        }
        if self.image:
            obs["camera"] = r.integers(0, 256, (6, 6, 3)).astype(np.uint8)
        if self.mask_in_obs:
            mask = r.random(3) < 0.5
            mask[r.integers(3)] = True
            obs["action_mask"] = mask.astype(np.int8)
        self.obs = obs
        return obs

    def step(self, action):
        if self.mask_in_obs:
            self.illegal += not bool(self.obs["action_mask"][int(action)])
        reward = (
            float(int(action) == self.obs["mode"] - 1) + float(self.obs["sensors"]["lidar"][0]) / 10
        )
        self.t += 1
        return self._obs(), reward, bool(self.np_random.random() < 0.05), False, {}


class TwoKeyBanditEnv(gym.Env):
    """One step; obs = Dict(cue: Discrete(2), level: Box(-1, 1, (1,))), Discrete(4) actions.
    The right action is ``2·cue + (level > 0)``: it needs both keys (reward 1, else 0)."""

    def __init__(self) -> None:
        self.observation_space = spaces.Dict(
            {"cue": spaces.Discrete(2), "level": spaces.Box(-1, 1, (1,), np.float32)}
        )
        self.action_space = spaces.Discrete(4)
        self.target = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        cue = int(self.np_random.integers(2))
        level = float(self.np_random.uniform(0.2, 1.0) * self.np_random.choice([-1, 1]))
        self.target = 2 * cue + int(level > 0)
        return {"cue": cue, "level": np.array([level], np.float32)}, {}

    def step(self, action):
        obs = {
            "cue": self.target // 2,
            "level": np.array([0.5 if self.target % 2 else -0.5], np.float32),
        }
        return obs, float(int(action) == self.target), True, False, {}


class ImageBanditEnv(gym.Env):
    """One step; a uint8 image with one bright 4×4 patch in the left or the right half, on
    noise; Discrete(2): reward 1 for naming the side. ``layout`` is ``chw`` (3×12×12, a
    top-level Box), ``hwc`` (12×12×3) or ``dict`` (HWC inside a Dict beside a Box)."""

    def __init__(self, layout: str = "chw") -> None:
        self.layout = layout
        shape = (3, 12, 12) if layout == "chw" else (12, 12, 3)
        image = spaces.Box(0, 255, shape, np.uint8)
        self.observation_space = (
            spaces.Dict({"image": image, "noise": spaces.Box(-1, 1, (2,), np.float32)}) if layout == "dict" else image
        )  # fmt: skip
        self.action_space = spaces.Discrete(2)
        self.side = 0

    def _obs(self) -> Any:
        r = self.np_random
        img = r.integers(0, 60, (12, 12, 3)).astype(np.uint8)
        row, col = int(r.integers(0, 9)), int(r.integers(0, 3)) + 6 * self.side
        img[row : row + 4, col : col + 4] = 255
        if self.layout == "chw":
            return np.ascontiguousarray(img.transpose(2, 0, 1))
        if self.layout == "dict":
            return {"image": img, "noise": r.uniform(-1, 1, 2).astype(np.float32)}
        return img

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.side = int(self.np_random.integers(2))
        return self._obs(), {}

    def step(self, action):
        return self._obs(), float(int(action) == self.side), True, False, {}


class SetBanditEnv(gym.Env):
    """One step; a variable-size set of 1–5 items padded to 5, as a graph/set observation is:
    obs = Dict(set: Dict(items: Box(-5, 5, (5, 2)), valid: MultiBinary(5))). Padding rows hold
    large junk values. Discrete(2): reward 1 for saying whether the valid items' first features
    sum to more than 0 (the padding's would flip the answer half of the time)."""

    def __init__(self) -> None:
        self.observation_space = spaces.Dict({
            "set": spaces.Dict({"items": spaces.Box(-5, 5, (5, 2), np.float32), "valid": spaces.MultiBinary(5)}),
        })  # fmt: skip
        self.action_space = spaces.Discrete(2)
        self.answer = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        r = self.np_random
        n = int(r.integers(1, 6))
        items = r.uniform(-1, 1, (5, 2)).astype(np.float32)
        items[n:] = r.uniform(-5, 5, (5 - n, 2))
        valid = (np.arange(5) < n).astype(np.int8)
        perm = r.permutation(5)
        items, valid = items[perm], valid[perm]
        self.answer = int(items[valid == 1, 0].sum() > 0)
        return {"set": {"items": items, "valid": valid}}, {}

    def step(self, action):
        obs = {"set": {"items": np.zeros((5, 2), np.float32), "valid": np.ones(5, np.int8)}}
        return obs, float(int(action) == self.answer), True, False, {}


class NestedObsImageEnv(NestedObsEnv):
    """:class:`NestedObsEnv` with the ``camera`` image (a class, so that it pickles for resume)."""

    def __init__(self) -> None:
        super().__init__(image=True)


class NestedObsMaskEnv(NestedObsEnv):
    """:class:`NestedObsEnv` with the ``action_mask`` observation key."""

    def __init__(self) -> None:
        super().__init__(mask_in_obs=True)


OBS_IDS = {
    "PpoxToyNestedObs-v0": (NestedObsEnv, 6),
    "PpoxToyNestedObsImage-v0": (NestedObsImageEnv, 6),
    "PpoxToyNestedObsMask-v0": (NestedObsMaskEnv, 6),
    "PpoxToyTwoKeyBandit-v0": (TwoKeyBanditEnv, None),
    "PpoxToyImageBandit-v0": (ImageBanditEnv, None),
    "PpoxToySetBandit-v0": (SetBanditEnv, None),
}
IDS.update(OBS_IDS)

for _id, (_cls, _steps) in OBS_IDS.items():
    if _id not in gym.registry:
        gym.register(_id, entry_point=_cls, max_episode_steps=_steps, disable_env_checker=True)


# --------------------------------------------------------------------------------------------


class CueRecallEnv(gym.Env):
    """A task only memory solves: step 0 shows a cue (obs[0] = ±1), the next ``delay`` steps show
    nothing, then a query (obs[1] = 1) asks for the cue: reward 1 iff the action is the cue's
    class (0 for −1, 1 for +1), and the episode ends. Other steps give 0 whatever the action.
    A policy without memory cannot beat 0.5 on the query."""

    def __init__(self, delay: int = 6) -> None:
        self.delay = delay
        self.observation_space = spaces.Box(-1, 1, (2,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.cue, self.t = 0, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.cue, self.t = int(self.np_random.integers(2)), 0
        return np.array([2.0 * self.cue - 1.0, 0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t <= self.delay:
            query = float(self.t == self.delay)
            return np.array([0.0, query], np.float32), 0.0, False, False, {}
        return np.zeros(2, np.float32), float(int(action) == self.cue), True, False, {}


MEMORY_IDS = {"PpoxToyCueRecall-v0": (CueRecallEnv, None)}
IDS.update(MEMORY_IDS)

for _id, (_cls, _steps) in MEMORY_IDS.items():
    if _id not in gym.registry:
        gym.register(_id, entry_point=_cls, max_episode_steps=_steps, disable_env_checker=True)


class LureEnv(gym.Env):
    """A hard-exploration task for ``ppox doctor``'s tests: action 0 ends the episode with reward
    1 (the lure); action 1 gives nothing, unless taken ``depth`` times in a row, which pays 100.
    A random policy finds the prize with probability 2^-depth; without an entropy bonus PPO
    settles on the lure and its entropy collapses while the return stays at 1."""

    def __init__(self, depth: int = 20) -> None:
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.depth, self.t = depth, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        if int(action) == 0:
            return np.zeros(1, np.float32), 1.0, True, False, {}
        self.t += 1
        obs = np.array([self.t / self.depth], np.float32)
        if self.t >= self.depth:
            return obs, 100.0, True, False, {}
        return obs, 0.0, False, False, {}


class BigRewardCartPole(gym.Wrapper):
    """CartPole-v1 paying 1000 per step instead of 1 (rewards far from unit scale)."""

    def __init__(self) -> None:
        super().__init__(gym.make("CartPole-v1").unwrapped)

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        return obs, 1000.0 * float(r), term, trunc, info


for _id, _cls, _steps in (
    ("PpoxToyLure-v0", LureEnv, 50),
    ("PpoxToyBigRewardCartPole-v0", BigRewardCartPole, 500),
):
    if _id not in gym.registry:
        gym.register(_id, entry_point=_cls, max_episode_steps=_steps, disable_env_checker=True)
