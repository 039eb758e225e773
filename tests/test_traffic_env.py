"""The SUMO traffic-signal env (src/ppox/envs/traffic.py): spaces, the phase mask, episode end,
seeding, several simulations in one process, clean shutdown. Needs SUMO (``ppox[traffic]``);
episodes are kept to 20 steps (100 simulated seconds)."""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from ppox.envs import traffic
from ppox.envs.snapshot import get_state
from ppox.envs.traffic import ENV_ID, TrafficEnv, register_traffic_envs
from ppox.errors import EnvError

try:
    traffic._sumo_modules()
    HAVE_SUMO = True
except EnvError:
    HAVE_SUMO = False
try:
    import libsumo  # type: ignore[import-untyped]  # noqa: F401

    HAVE_LIBSUMO = True
except ImportError:
    HAVE_LIBSUMO = False

needs_sumo = pytest.mark.skipif(
    not HAVE_SUMO, reason="SUMO not installed: pip install ppox[traffic]"
)

SHORT: dict[str, Any] = {"num_seconds": 100}  # 20 steps of 5 s
STEPS = 20
LOCK = 2 + 5  # default yellow_time + min_green: seconds a light keeps a phase at least


@pytest.fixture
def make() -> Iterator[Callable[..., TrafficEnv]]:
    """``make(**kwargs)`` → a short-episode TrafficEnv, closed after the test."""
    made: list[TrafficEnv] = []

    def factory(**kwargs: Any) -> TrafficEnv:
        env = TrafficEnv(**{**SHORT, **kwargs})
        made.append(env)
        return env

    yield factory
    for env in made:
        env.close()


def sumo_children() -> list[tuple[int, str]]:
    """(pid, state) of this process's child processes named ``sumo`` (zombies included)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == os.getpid() and name.startswith("sumo"):
            found.append((int(entry), state))
    return found


def legal_actions(env: TrafficEnv, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    blocks = np.split(mask, np.cumsum(env.nvec)[:-1])
    return np.array([rng.choice(np.flatnonzero(b)) for b in blocks], dtype=np.int64)


def rollout(env: TrafficEnv, seed: int | None, steps: int = 8) -> tuple[np.ndarray, np.ndarray]:
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(0)
    observations, rewards = [obs], []
    for _ in range(steps):
        obs, reward, *_, info = env.step(legal_actions(env, info["action_mask"], rng))
        observations.append(obs)
        rewards.append(reward)
    return np.array(observations), np.array(rewards)


# --------------------------------------------------------------------------------------------


def test_missing_packages_raise_env_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sumo_rl", None)  # `import sumo_rl` fails
    traffic._sumo_rl.cache_clear()
    traffic._sumo_modules.cache_clear()
    try:
        with pytest.raises(EnvError, match=r'pip install "ppox\[traffic\]"'):
            TrafficEnv()
    finally:
        traffic._sumo_rl.cache_clear()
        traffic._sumo_modules.cache_clear()


def test_bad_arguments_raise_before_starting_sumo():
    with pytest.raises(ValueError, match="delta_time"):
        TrafficEnv(delta_time=2, yellow_time=2)
    with pytest.raises(ValueError, match="num_seconds"):
        TrafficEnv(num_seconds=0)
    with pytest.raises(ValueError, match="backend"):
        TrafficEnv(backend="gui")  # type: ignore[arg-type]


def test_registration_is_idempotent_without_time_limit():
    register_traffic_envs()
    register_traffic_envs()
    assert gym.spec(ENV_ID).max_episode_steps is None


@needs_sumo
def test_spaces(make):
    env = make()
    assert env.agents == tuple(sorted(env.agents)) == ("1", "2", "5", "6")
    assert isinstance(env.action_space, gym.spaces.MultiDiscrete)
    assert env.action_space.nvec.tolist() == [4, 4, 4, 4]
    space = env.observation_space
    assert isinstance(space, gym.spaces.Box) and space.dtype == np.float32
    assert space.shape == (4 * env.obs_dim_per_light,) == (84,)
    assert (space.low == 0).all() and (space.high == 1).all()
    assert env.episode_steps == STEPS


@needs_sumo
def test_check_env(make):
    check_env(make(), skip_render_check=True)


@needs_sumo
def test_mask_locks_a_light_that_just_changed(make):
    env = make()
    obs, info = env.reset(seed=0)
    mask = info["action_mask"]
    assert mask.dtype == np.bool_ and mask.shape == (int(env.nvec.sum()),)
    # at time 0 every light has just "changed": only its current phase (0) is legal
    assert mask.reshape(4, 4).tolist() == [[True, False, False, False]] * 4
    keep = np.zeros(4, dtype=np.int64)
    for _ in range(-(-LOCK // env.delta_time)):  # until the lock is over
        obs, _, _, _, info = env.step(keep)
    assert info["action_mask"].all()
    obs, _, _, _, info = env.step(np.array([2, 0, 0, 0]))  # light "1" switches to phase 2
    rows = info["action_mask"].reshape(4, 4)
    assert rows[0].tolist() == [False, False, True, False]
    assert rows[1:].all()
    per_light = obs.reshape(4, -1)
    assert per_light[0, :4].tolist() == [0, 0, 1, 0]  # sumo-rl's phase one-hot agrees
    # a request the mask forbids is ignored: the light stays on phase 2; 10 s after the change
    # (>= yellow_time + min_green) it is free again
    obs, _, _, _, info = env.step(np.array([3, 0, 0, 0]))
    assert obs.reshape(4, -1)[0, :4].tolist() == [0, 0, 1, 0]
    assert info["action_mask"].all()


@needs_sumo
def test_random_legal_rollout_truncates_after_num_seconds(make):
    env = make()
    rng = np.random.default_rng(1)
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    for t in range(1, STEPS + 1):
        mask = info["action_mask"]
        assert all(block.any() for block in np.split(mask, np.cumsum(env.nvec)[:-1]))
        obs, reward, terminated, truncated, info = env.step(legal_actions(env, mask, rng))
        assert env.observation_space.contains(obs)
        assert info["rewards"].shape == (4,) and reward == pytest.approx(info["rewards"].sum())
        assert not terminated
        assert truncated == (t == STEPS)
    assert info["sim_time"] == 100.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError):
        env.reset()
        env.step(np.array([4, 0, 0, 0]))


@needs_sumo
def test_same_seed_same_episode_with_two_envs_alive(make):
    a, b = make(), make()
    # stepped alternately, two simulations in one process do not disturb each other
    a.reset(seed=7)
    b.reset(seed=7)
    for _ in range(6):
        act = a.action_space.sample()
        oa, ra, *_ = a.step(act)
        ob, rb, *_ = b.step(act)
        np.testing.assert_array_equal(oa, ob)
        assert ra == rb
    first = rollout(a, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(first, rollout(b, seed=3)))
    # the unseeded reset after a seeded one continues deterministically
    second_a, second_b = rollout(a, seed=None), rollout(b, seed=None)
    assert all(np.array_equal(x, y) for x, y in zip(second_a, second_b))
    assert not np.array_equal(first[0], second_a[0])
    assert not np.array_equal(first[0], rollout(a, seed=4)[0])


@needs_sumo
@pytest.mark.skipif(not HAVE_LIBSUMO, reason="libsumo not installed")
def test_libsumo_matches_traci_and_allows_one_simulation(make):
    fast = make(backend="libsumo")
    assert fast.backend == "libsumo"
    with pytest.raises(EnvError, match="one SUMO simulation per process"):
        make(backend="libsumo")
    assert make(backend="auto").backend == "traci"  # libsumo is taken
    slow = make()
    assert all(np.array_equal(x, y) for x, y in zip(rollout(fast, 5), rollout(slow, 5)))
    fast.close()
    assert make(backend="auto").backend == "libsumo"  # free again


@needs_sumo
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_close_leaves_no_sumo_process(make):
    before = sumo_children()
    env = make()
    env.reset(seed=0)
    env.step(np.zeros(4, dtype=np.int64))
    assert len(sumo_children()) == len(before) + 1
    env.close()
    env.close()  # idempotent
    assert sumo_children() == before  # gone and reaped (no zombie)
    env.reset(seed=0)  # a closed env starts SUMO again on reset
    env.close()
    assert sumo_children() == before


@needs_sumo
def test_pickling_fails_clearly(make):
    env = make()
    env.reset(seed=0)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(env)
    assert get_state(env) is None  # ppox's snapshot: episodes restart on resume


# --------------------------------------------------------------------------------------------
# through ppox: the collector stores the phase mask and never samples a locked phase
# --------------------------------------------------------------------------------------------


@needs_sumo
@pytest.mark.parametrize("multi_discrete", ["factored", "flat"])
def test_collector_respects_and_stores_the_phase_mask(make_collector, multi_discrete):
    from ppox.config import PolicyConfig

    T, N = 30, 2  # 30 steps cross the 20-step episode end, so autoreset is covered too
    c = make_collector(ENV_ID, num_envs=N, num_steps=T, env_kwargs=dict(SHORT),
                       policy=PolicyConfig(multi_discrete=multi_discrete, policy_init_gain=1.0))  # fmt: skip
    r = c.collect()
    assert r.mask is not None and r.mask.shape == (T, N, 16)
    head = c.model.head
    assert r.action.shape == (
        (T, N, 4) if multi_discrete == "factored" else (T, N)
    )  # flat: the joint index
    env_actions = torch.as_tensor(
        head.to_env(r.action.reshape(T * N, *head.action_shape).numpy())
    ).reshape(T, N, 4)
    blocks = r.mask.reshape(T, N, 4, 4)
    assert blocks.gather(-1, env_actions.unsqueeze(-1)).all(), (
        "a locked light was asked to change phase"
    )
    locked = blocks.sum(-1) == 1
    assert locked.any() and (~locked).any(), "the episode should show both locked and free lights"
    assert bool(r.done.any()), "the 20-step episodes should have ended inside 30 steps"
