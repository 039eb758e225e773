"""MinAtar's five games as Gymnasium environments (docs/pixels.md).

MinAtar (Young & Tian 2019, "MinAtar: An Atari-Inspired Testbed for Thorough and Reproducible
Reinforcement Learning Experiments"; the ``minatar`` package, ``pip install 'ppox[minatar]'``)
plays Breakout, SpaceInvaders, Asterix, Freeway and Seaquest on a 10×10 grid whose channels mark
the kinds of objects, so a pixel policy trains in minutes on a CPU.

Ids ``ppox/MinAtar-{Game}-v1``: the observation is the grid as uint8 ``[10, 10, C]`` with values 0
or 1 (a Box with bounds [0, 1], which ppox's CNN encoders take as an image scaled by 1), the
actions the game's minimal action set (Breakout 3, SpaceInvaders 4, Asterix 5, Freeway 3,
Seaquest 6), as the package's own ``MinAtar/{Game}-v1`` ids. The dynamics are the package's,
defaults included: sticky actions with probability 0.1 and difficulty ramping. Keyword arguments
``sticky_action_prob`` and ``difficulty_ramping`` change them (``env_kwargs``).

Episodes end when the game does; the registered time limit (``MAX_EPISODE_STEPS``) only cuts a
policy that plays forever (a perfect Breakout player clears the wall again and again).

The game's state is plain data (numbers, lists, NumPy arrays and NumPy's legacy ``RandomState``),
so a run on these ids resumes exactly (:mod:`ppox.envs.snapshot`).
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
import numpy as np

from ppox.errors import EnvError

GAMES = {
    "Breakout": "breakout",
    "SpaceInvaders": "space_invaders",
    "Asterix": "asterix",
    "Freeway": "freeway",
    "Seaquest": "seaquest",
}
"""Id name → the ``minatar.environments`` module of the game."""
MAX_EPISODE_STEPS = 10_000


class MinAtarEnv(gym.Env):
    """One MinAtar game (module docstring). ``game``: a module name of :data:`GAMES`."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        game: str,
        sticky_action_prob: float = 0.1,
        difficulty_ramping: bool = True,
        render_mode: str | None = None,
    ) -> None:
        if game not in GAMES.values():
            raise EnvError(f"MinAtar game {game!r} is not one of {sorted(GAMES.values())}")
        if not 0.0 <= float(sticky_action_prob) <= 1.0:
            raise EnvError(f"sticky_action_prob={sticky_action_prob!r} must lie in [0, 1]")
        try:  # a fixed module name of GAMES, never one read from a config
            module = importlib.import_module(f"minatar.environments.{game}")
        except ImportError:
            raise EnvError(
                "the MinAtar ids need the minatar package, which is not installed: "
                "pip install 'ppox[minatar]'"
            ) from None
        self.game = module.Env(ramping=bool(difficulty_ramping))
        self.sticky_action_prob = float(sticky_action_prob)
        self.actions = [int(a) for a in self.game.minimal_action_set()]
        self.last_action = 0
        shape = tuple(int(n) for n in self.game.state_shape())
        self.observation_space = gym.spaces.Box(0, 1, shape, np.uint8)
        self.action_space = gym.spaces.Discrete(len(self.actions))
        self.render_mode = render_mode

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:  # the game draws from one legacy generator, as the package seeds it
            self.game.random = np.random.RandomState(seed % 2**32)
        self.game.reset()
        self.last_action = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = self.actions[int(action)]
        if self.game.random.rand() < self.sticky_action_prob:  # as minatar.Environment.act
            a = self.last_action
        self.last_action = a
        reward, terminal = self.game.act(a)
        return self._obs(), float(reward), bool(terminal), False, {}

    def _obs(self) -> np.ndarray:
        return np.asarray(self.game.state(), dtype=np.uint8)

    def render(self) -> np.ndarray | None:
        """The grid as an RGB image, 16 pixels a cell, one colour per channel."""
        if self.render_mode != "rgb_array":
            return None
        state = self.game.state()
        palette = (np.arange(1, state.shape[-1] + 1)[:, None] * np.array([[97, 151, 211]])) % 256
        img = np.zeros((*state.shape[:2], 3), np.uint8)
        for c in range(state.shape[-1]):
            img[state[..., c]] = palette[c]
        return np.kron(img, np.ones((16, 16, 1), np.uint8))


def register() -> None:
    for name, game in GAMES.items():
        env_id = f"ppox/MinAtar-{name}-v1"
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="ppox.envs.minatar:MinAtarEnv",
                kwargs={"game": game},
                max_episode_steps=MAX_EPISODE_STEPS,
            )


register()
