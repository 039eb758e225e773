"""Atari through Gymnasium and ale-py, with the standard preprocessing as switches (docs/pixels.md).

Any id whose Gymnasium entry point is ale-py's ``AtariEnv`` (``BreakoutNoFrameskip-v4``,
``ALE/Pong-v5``, …) is made with frame skipping left to ppox (``frameskip=1``, also for the ids
that skip frames themselves: ``Breakout-v4`` and ``ALE/…-v5``; sticky actions stay as the id
registers them: none for ``-v4`` ids, 25% for ``ALE/…-v5``) and wrapped in
:class:`AtariPreprocessing`, one wrapper that does, in this order, what the DQN paper (Mnih et
al. 2015, "Human-level control through deep reinforcement learning") and the PPO Atari setups
that followed it (OpenAI Baselines, Stable-Baselines3, CleanRL's ``ppo_atari.py``) do with a
stack of wrappers:

- **no-op reset** (``atari_noop_max``): a real reset is followed by 1 … ``noop_max`` NOOP frames
  drawn from the env's own generator, so seeded starts differ;
- **frame skip with max-pooling** (``atari_frame_skip``): each action is repeated for ``k``
  frames, the rewards summed, and the observation is the pixel-wise maximum of the last two
  frames (Atari sprites flicker between frames);
- **84×84 grayscale** (``atari_screen_size``, ``atari_grayscale``): ALE's own grayscale screen
  (or RGB), resized with area interpolation (OpenCV's ``INTER_AREA``);
- **frame stack** (``atari_frame_stack``): the last ``n`` processed frames, oldest first, as one
  channels-first uint8 observation ``[n, 84, 84]`` (``[3n, H, W]`` in colour); a reset fills the
  stack with its frame;
- **fire on reset** (``atari_fire_reset``, games with a FIRE action): after every reset and
  every lost life, FIRE and then action 2, as the Baselines setup does for games that wait for
  FIRE;
- **end of life** (``atari_episodic_life``): a lost life ends the *training* episode as
  *terminated* (no bootstrap across it, so GAE treats the loss of a life as the loss it is), but
  not the game: the reset that follows does one NOOP step instead of resetting (then FIRE), and
  the frame stack refills. The step carries ``info["life_lost"] = True`` so ppox's episode
  statistics keep counting the whole game. Evaluation plays whole games with this switch off:
  the same NOOP (and FIRE) steps and the refilled stack happen inside the step that lost the
  life, so the policy sees what it saw in training, and the episode goes on.

Reward clipping is not done here: ``sign_reward`` (an env switch for any task) replaces each
reward by its sign where the learner reads it, so the episode statistics and evaluations stay in
the game's score.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from ppox.envs.vector import LIFE_LOST_KEY
from ppox.errors import EnvError

__all__ = ["LIFE_LOST_KEY", "AtariOptions", "AtariPreprocessing", "atari_kwargs", "is_atari"]
ALE_ENTRY_POINT = "ale_py.env:AtariEnv"
NOOP, FIRE = 0, 1


@dataclass(frozen=True)
class AtariOptions:
    """The preprocessing switches (``EnvConfig.atari_*``); the defaults are the standard ones."""

    noop_max: int = 30
    frame_skip: int = 4
    screen_size: int = 84
    grayscale: bool = True
    frame_stack: int = 4
    fire_reset: bool = True
    episodic_life: bool = True


def register_ale(env_id: str) -> None:
    """Register ale-py's ids with Gymnasium (importing ``ale_py``, a fixed name) when ``env_id``
    may be one of them and is not registered yet. Without ale-py, an id that can only be Atari
    (``ALE/…``, ``…NoFrameskip-v4``, ``…Deterministic-v4``) is an :class:`EnvError` saying what to
    install; other ids go on to Gymnasium's own error."""
    if env_id in gym.registry or not looks_like_atari(env_id):
        return
    try:
        import ale_py
    except ImportError:
        if env_id.startswith("ALE/") or env_id.endswith(("NoFrameskip-v4", "Deterministic-v4")):
            raise EnvError(
                f"env_id={env_id!r} is an Atari game, and ale-py is not installed: "
                "pip install 'ppox[atari]'"
            ) from None
        return
    gym.register_envs(ale_py)


def looks_like_atari(env_id: str) -> bool:
    """``ALE/…`` ids and the ``…-v4`` ids (``…NoFrameskip-v4``, ``…Deterministic-v4``) of
    ale-py's registrations."""
    return env_id.startswith("ALE/") or env_id.endswith("-v4")


def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` is registered with ale-py's ``AtariEnv`` as its entry point."""
    register_ale(env_id)
    spec = gym.registry.get(env_id)
    return spec is not None and spec.entry_point == ALE_ENTRY_POINT


def atari_kwargs(env_id: str, kwargs: dict[str, Any], opts: AtariOptions) -> dict[str, Any]:
    """``gym.make`` keyword arguments for the base env: frame skipping left to the wrapper
    (``frameskip=1``) and ALE's screen in the colour the wrapper wants; a conflicting explicit
    ``env_kwargs`` value is an error, not overridden."""
    want = {"frameskip": 1, "obs_type": "grayscale" if opts.grayscale else "rgb"}
    for key, value in want.items():
        if key in kwargs and kwargs[key] != value:
            raise EnvError(
                f"env_kwargs {key}={kwargs[key]!r} conflicts with ppox's Atari preprocessing, "
                f"which needs {key}={value!r} (set atari_preprocessing=false to make {env_id!r} "
                "as it is)"
            )
    return {**kwargs, **want}


class AtariPreprocessing(gym.Wrapper):
    """The standard Atari preprocessing in one wrapper (module docstring).

    The wrapped env must step one frame at a time and report ``info["lives"]`` (ale-py does);
    its observations are the frames (``[H, W]`` grayscale or ``[H, W, 3]`` RGB, uint8).
    """

    def __init__(self, env: gym.Env, opts: AtariOptions, resize: bool = True) -> None:
        super().__init__(env)
        if opts.frame_skip < 1 or opts.frame_stack < 1 or opts.noop_max < 0:
            raise EnvError(f"Atari options out of range: {opts}")
        self.opts = opts
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box) and space.dtype == np.uint8
        self.rgb = len(space.shape) == 3
        side = opts.screen_size
        h, w = (side, side) if resize else tuple(space.shape[:2])
        self.size = (int(h), int(w))
        self.resize = resize and tuple(space.shape[:2]) != self.size
        if self.resize and importlib.util.find_spec("cv2") is None:
            raise EnvError(
                "the Atari preprocessing resizes frames with OpenCV, which is not installed: "
                "pip install 'ppox[atari]'"
            )
        channels = 3 if self.rgb else 1
        self.observation_space = gym.spaces.Box(
            0, 255, (channels * opts.frame_stack, *self.size), np.uint8
        )
        meanings = _action_meanings(env)
        self.can_fire = opts.fire_reset and len(meanings) > 2 and meanings[FIRE] == "FIRE"
        # the last two frames of a step (max-pooled) and the stack of processed frames
        self.frames = np.zeros((2, *space.shape), np.uint8)
        self.stack = np.zeros(self.observation_space.shape, np.uint8)
        self.lives = 0
        self.game_over = True

    # --- one frame, one agent step ------------------------------------------------------------
    def _frame(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float(reward), bool(terminated), bool(truncated), info

    def _skip(self, action: int) -> tuple[float, bool, bool, dict[str, Any]]:
        """Repeat ``action`` for ``frame_skip`` frames (fewer when the game ends); the last two
        frames go to ``self.frames`` (the same frame twice when only one was played)."""
        total, terminated, truncated = 0.0, False, False
        info: dict[str, Any] = {}
        k = self.opts.frame_skip
        for i in range(k):
            obs, reward, terminated, truncated, info = self._frame(action)
            total += reward
            self.frames[0] = self.frames[1] if i > 0 else obs
            self.frames[1] = obs
            if terminated or truncated:
                break
        return total, terminated, truncated, info

    def _processed(self) -> np.ndarray:
        frame = (
            np.maximum(self.frames[0], self.frames[1])
            if self.opts.frame_skip > 1
            else self.frames[1]
        )
        if self.resize:
            import cv2

            frame = cv2.resize(frame, self.size[::-1], interpolation=cv2.INTER_AREA)
        return frame.transpose(2, 0, 1) if self.rgb else frame[None]

    def _push(self, frame: np.ndarray) -> np.ndarray:
        c = frame.shape[0]
        self.stack[:-c] = self.stack[c:]
        self.stack[-c:] = frame
        return self.stack.copy()

    def _fill(self, frame: np.ndarray) -> np.ndarray:
        c = frame.shape[0]
        for i in range(self.opts.frame_stack):
            self.stack[i * c : (i + 1) * c] = frame
        return self.stack.copy()

    # --- gym.Env ------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if self.game_over or seed is not None:
            info = self._real_reset(seed, options)
        else:  # a life was lost: the game goes on
            _, info = self._next_life()
        if self.can_fire:
            _, info = self._fire(options)
        self.lives = int(info.get("lives", 0))
        return self._fill(self._processed()), info

    def _next_life(self) -> tuple[float, dict[str, Any]]:
        """After a lost life: one NOOP step (a real reset if the game ends there)."""
        reward, terminated, truncated, info = self._skip(NOOP)
        if terminated or truncated:
            return 0.0, self._real_reset(None, None)
        return reward, info

    def _fire(self, options: dict[str, Any] | None) -> tuple[float, dict[str, Any]]:
        """FIRE, then action 2 (a real reset if the game ends there)."""
        total, info = 0.0, dict[str, Any]()
        for action in (FIRE, 2):
            reward, terminated, truncated, info = self._skip(action)
            total += reward
            if terminated or truncated:
                return 0.0, self._real_reset(None, options)
        return total, info

    def _real_reset(self, seed: int | None, options: dict[str, Any] | None) -> dict[str, Any]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.frames[0] = self.frames[1] = obs
        self.game_over = False
        if self.opts.noop_max > 0:
            n = int(self.env.unwrapped.np_random.integers(1, self.opts.noop_max + 1))
            for _ in range(n):
                obs, _, terminated, truncated, info = self._frame(NOOP)
                self.frames[0] = self.frames[1] = obs
                if terminated or truncated:
                    obs, info = self.env.reset()
                    self.frames[0] = self.frames[1] = obs
        return info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward, terminated, truncated, info = self._skip(int(action))
        self.game_over = terminated or truncated
        lives = int(info.get("lives", 0))
        lost = not self.game_over and 0 < lives < self.lives
        self.lives = lives
        if lost and self.opts.episodic_life:  # the reset that follows starts the next life
            return (
                self._push(self._processed()),
                reward,
                True,
                truncated,
                {**info, LIFE_LOST_KEY: True},
            )
        if lost:  # whole games (evaluation): the next life starts as it does after a reset
            more, info = self._next_life()
            reward += more
            if self.can_fire:
                more, info = self._fire(None)
                reward += more
            self.lives = int(info.get("lives", 0))
            return self._fill(self._processed()), reward, False, False, info
        return self._push(self._processed()), reward, terminated, truncated, info


def _action_meanings(env: gym.Env) -> list[str]:
    get = getattr(env.unwrapped, "get_action_meanings", None)
    return list(get()) if callable(get) else []
