"""Env snapshots are plain data (ppox.envs.snapshot): they load with ``weights_only=True``, they
restore a freshly made env exactly, and a snapshot that does not fit is refused without
changing the env."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from ppox.config import EnvConfig
from ppox.envs.make import make_env
from ppox.envs.snapshot import get_state, set_state


def _play(env: gym.Env, actions: list) -> list[Any]:
    out: list[Any] = []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out += [repr(obs), r, term, trunc, repr(info)]
        if term or trunc:
            out.append(repr(env.reset()))
    return out


def _through_torch(state: Any) -> Any:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _leaves_are_plain(x: Any) -> bool:
    if isinstance(x, dict):
        return all(isinstance(k, str) and _leaves_are_plain(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_leaves_are_plain(v) for v in x)
    return x is None or type(x) in (bool, int, float, str, bytes)


@pytest.mark.parametrize(
    "env_id, limit",
    [("CartPole-v1", 30), ("Acrobot-v1", 40), ("MountainCar-v0", 40), ("Hopper-v5", None),
     ("ppox/Sliding-v0", 40), ("ppox/HardMove-v0", None), ("PpoxToyMasked-v0", None),
     ("PpoxToyNestedDictBandit-v0", None), ("FrozenLake-v1", None)],
)  # fmt: skip
def test_a_snapshot_is_plain_data_and_restores_a_fresh_env_exactly(
    env_id: str, limit: int | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = EnvConfig(env_id=env_id, max_episode_steps=limit)
    env = make_env(cfg)
    env.action_space.seed(2)
    actions = [env.action_space.sample() for _ in range(260)]
    env.reset(seed=11)
    for a in actions[:37]:
        if any(env.step(a)[2:4]):
            env.reset()
    state = get_state(env)
    assert state is not None and _leaves_are_plain(state)
    loaded = _through_torch(state)  # no custom global: weights_only accepts it
    future = _play(env, actions[37:])
    assert sum(1 for x in future if isinstance(x, str) and x.startswith("(")) >= 2  # crosses resets
    fresh = make_env(cfg)
    assert set_state(fresh, loaded)
    assert _play(fresh, actions[37:]) == future
    other = make_env(cfg)
    other.reset(seed=12)
    assert _play(other, actions[37:]) != future  # the control: another state diverges


class HoldsAFunction(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (1,))
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.reward_fn = len

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 0.0, False, False, {}


class Slotted(HoldsAFunction):
    __slots__ = ("hidden",)

    def __init__(self) -> None:
        self.hidden = 3


@pytest.mark.parametrize(
    "make", [lambda: make_env(EnvConfig(env_id="LunarLander-v3")), HoldsAFunction, Slotted]
)
def test_what_is_not_plain_data_cannot_be_snapshotted(make) -> None:
    env = make()
    env.reset(seed=0)
    assert get_state(env) is None


def _cartpole() -> tuple[gym.Env, dict[str, Any]]:
    env = make_env(EnvConfig(env_id="CartPole-v1"))
    env.reset(seed=3)
    env.step(0)
    state = get_state(env)
    assert state is not None
    return env, state


def _attrs(state: dict[str, Any], layer: int = -1) -> dict[str, Any]:
    return state["layers"][layer]["attrs"]


def _set_array_dtype(s: dict, dtype: str) -> None:
    _attrs(s)["state"]["dtype"] = dtype


BAD = {
    "not a snapshot": lambda s: s.update(format="pickle"),
    "another chain": lambda s: s["layers"].pop(0),
    "another class": lambda s: s["layers"][-1].update(type="gymnasium.envs.classic_control.pendulum.PendulumEnv"),
    "object dtype": lambda s: _set_array_dtype(s, "|O8"),
    "void dtype": lambda s: _set_array_dtype(s, "|V8"),
    "short array": lambda s: _attrs(s)["state"].update(data=b"\0" * 3),
    "negative shape": lambda s: _attrs(s)["state"].update(shape=[-4]),
    "unknown bit generator": lambda s: _attrs(s)["_np_random"]["state"]["items"][0].__setitem__(1, "Evil"),
    "dunder name": lambda s: _attrs(s).__setitem__("__class__", 1),
    "the wrapped env": lambda s: _attrs(s, 0).__setitem__("env", None),
    "the spec": lambda s: _attrs(s).__setitem__("spec", None),
    "a space replaced": lambda s: _attrs(s).__setitem__("action_space", 3),
    "unknown tag": lambda s: _attrs(s).__setitem__("x", {"__ppox__": "object", "module": "os"}),
    "untagged dict": lambda s: _attrs(s).__setitem__("x", {"a": 1}),
    "a tensor": lambda s: _attrs(s).__setitem__("x", torch.zeros(2)),
    "mujoco state": lambda s: s.update(mujoco={"spec": 1, "state": _attrs(s)["state"]}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_a_snapshot_that_does_not_fit_is_refused_and_changes_nothing(case: str) -> None:
    env, state = _cartpole()
    bad = copy.deepcopy(state)
    BAD[case](bad)
    fresh = make_env(EnvConfig(env_id="CartPole-v1"))
    fresh.reset(seed=99)
    before = get_state(fresh)
    assert set_state(fresh, bad) is False
    assert get_state(fresh) == before
    assert set_state(fresh, state) is True and get_state(fresh) == state  # the good one fits
