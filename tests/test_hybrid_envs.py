"""ppox's gym-hybrid environments: hand-computed dynamics, rewards, episode ends, spaces, masks."""

from __future__ import annotations

import itertools
import math
import pickle
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ppox.envs  # noqa: F401  (registers the ppox/ ids)
from ppox.envs.hybrid import (
    ACCELERATE,
    BREAK,
    ENV_IDS,
    MOVING_PARAM_MASK,
    TURN,
    HardMoveEnv,
    MovingEnv,
    SlidingEnv,
    register_envs,
)

DT = 0.005
ALL = [MovingEnv, SlidingEnv, HardMoveEnv]


def placed(env: Any, **state: float) -> Any:
    """``env`` reset (seed 0) and then put in the given state (far-away target by default)."""
    env.reset(seed=0)
    defaults: dict[str, float] = {
        "x": 0.0,
        "y": 0.0,
        "theta": 0.0,
        "speed": 0.0,
        "target_x": 0.8,
        "target_y": 0.8,
    }
    for name, value in {**defaults, **state}.items():
        setattr(env, name, value)
    if isinstance(env, SlidingEnv) and "phi" not in state:
        env.phi = env.theta
    return env


def act(kind: int, p0: float = 0.0, p1: float = 0.0) -> tuple[int, np.ndarray]:
    return kind, np.array([p0, p1], dtype=np.float32)


def dist(x: float, y: float, tx: float = 0.8, ty: float = 0.8) -> float:
    return math.hypot(x - tx, y - ty)


# -- Moving ------------------------------------------------------------------------------------


def test_accelerate_adds_half_and_moves_along_heading() -> None:
    env = placed(MovingEnv(), theta=math.pi / 3)
    obs, reward, terminated, truncated, info = env.step(act(ACCELERATE, 1.0))
    assert env.speed == 0.5
    assert env.x == pytest.approx(0.0025 * 0.5)  # cos(π/3) = 0.5
    assert env.y == pytest.approx(0.0025 * math.sqrt(3) / 2)
    assert reward == pytest.approx(dist(0, 0) - dist(env.x, env.y) - 0.001)
    assert (terminated, truncated) == (False, False)
    assert "success" not in info
    expected = [
        env.x,
        env.y,
        0.5,
        0.5,
        math.sqrt(3) / 2,
        0.8,
        0.8,
        dist(env.x, env.y),
        0.0,
        1 / 200,
    ]
    np.testing.assert_allclose(obs, np.array(expected, np.float32), rtol=1e-6)
    assert obs.dtype == np.float32


@pytest.mark.parametrize(("p0", "speed"), [(2.0, 0.5), (0.4, 0.2), (-1.0, 0.0)])
def test_accelerate_is_clamped(p0: float, speed: float) -> None:
    env = placed(MovingEnv())
    env.step(act(ACCELERATE, p0))
    assert env.speed == pytest.approx(speed)
    assert env.x == pytest.approx(DT * speed)


def test_turn_rotates_then_moves_along_new_heading() -> None:
    env = placed(MovingEnv(), speed=0.2)
    env.step(act(TURN, 0.0, 1.0))
    assert env.theta == pytest.approx(math.pi / 2)
    assert env.speed == 0.2
    assert env.x == pytest.approx(0.0, abs=1e-15)
    assert env.y == pytest.approx(DT * 0.2)
    env = placed(MovingEnv(), speed=0.2)
    env.step(act(TURN, 0.0, -5.0))  # clamped to -1, wrapped into [0, 2π)
    assert env.theta == pytest.approx(3 * math.pi / 2)
    assert env.y == pytest.approx(-DT * 0.2)


def test_two_breaks_from_015() -> None:
    env = placed(MovingEnv(), speed=0.15)
    env.step(act(BREAK, 1.0, 1.0))  # BREAK reads no parameter
    assert env.speed == pytest.approx(0.05)
    assert env.x == pytest.approx(DT * 0.05)
    assert env.theta == 0.0
    env.step(act(BREAK))
    assert env.speed == 0.0
    assert env.x == pytest.approx(DT * 0.05)


def test_success_needs_target_and_exact_stop() -> None:
    env = placed(MovingEnv(), x=0.75, y=0.8, speed=0.05)  # 0.05 from the centre
    obs, reward, terminated, truncated, info = env.step(act(BREAK))
    assert env.speed == 0.0 and env.x == 0.75
    assert reward == pytest.approx(0.0 - 0.001 + 1.0)
    assert (terminated, truncated, info["success"]) == (True, False, True)
    assert obs[8] == 1.0
    # inside the target but still moving: shaping only, the episode goes on
    env = placed(MovingEnv(), x=0.75, y=0.8, speed=0.3)
    obs, reward, terminated, truncated, info = env.step(act(BREAK))
    assert env.speed == pytest.approx(0.2)
    assert reward == pytest.approx(0.05 - dist(env.x, 0.8) - 0.001)
    assert (terminated, truncated) == (False, False) and "success" not in info
    assert obs[8] == 1.0


def test_leaving_the_field_ends_with_minus_one() -> None:
    env = placed(MovingEnv(), x=0.999, speed=1.0)
    obs, reward, terminated, truncated, info = env.step(act(ACCELERATE, 0.0))
    assert env.x == pytest.approx(1.004)
    assert (reward, terminated, truncated, info["success"]) == (-1.0, True, False, False)
    assert env.observation_space.contains(obs)


def test_step_limit_ends_with_minus_one_at_max_step_plus_one() -> None:
    env = placed(MovingEnv(max_step=5))
    for t in range(1, 6):
        obs, reward, terminated, truncated, _ = env.step(act(BREAK))
        assert (terminated, truncated) == (False, False)
        assert reward == pytest.approx(-0.001)
        assert obs[9] == pytest.approx(t / 5)
    obs, reward, terminated, truncated, info = env.step(act(BREAK))
    assert env.current_step == 6
    assert (reward, terminated, truncated, info["success"]) == (-1.0, True, False, False)
    assert obs[9] == pytest.approx(6 / 5)
    assert env.observation_space.contains(obs)
    env = placed(MovingEnv(), x=0.0)
    env.current_step = 200
    assert env.step(act(BREAK))[1:4] == (-1.0, True, False)


# -- Sliding -----------------------------------------------------------------------------------


def test_sliding_accelerate_adds_velocity_vectors() -> None:
    s = 0.3
    env = placed(SlidingEnv(), theta=0.0, phi=math.pi / 2, speed=s)
    env.step(act(ACCELERATE, 0.6))  # a = 0.5 * 0.6 = s
    assert env.speed == pytest.approx(s * math.sqrt(2))
    assert env.phi == pytest.approx(math.pi / 4)
    assert env.x == pytest.approx(DT * s)  # s√2 · cos(π/4) = s
    assert env.y == pytest.approx(DT * s)


def test_sliding_turn_keeps_velocity_and_break_to_zero_aligns_it() -> None:
    env = placed(SlidingEnv(), theta=0.0, phi=math.pi / 2, speed=0.15)
    env.step(act(TURN, 0.0, 0.5))
    assert env.theta == pytest.approx(math.pi / 4)
    assert env.phi == math.pi / 2
    assert env.x == pytest.approx(0.0, abs=1e-15)
    assert env.y == pytest.approx(DT * 0.15)
    env.step(act(BREAK))
    assert env.speed == pytest.approx(0.05) and env.phi == math.pi / 2
    env.step(act(BREAK))
    assert env.speed == 0.0 and env.phi == env.theta


def test_sliding_reference_keeps_phi_across_resets() -> None:
    ref, new = SlidingEnv(reference=True), SlidingEnv()
    ref.reset(seed=1)
    assert ref.phi == 0.0
    ref.phi = 1.234
    ref.reset(seed=2)
    assert ref.phi == 1.234
    new.reset(seed=2)
    assert new.phi == new.theta
    # the quirk never shows: speed is 0 at reset and the first ACCELERATE sets φ
    ref.reset(seed=3)
    new.reset(seed=3)
    ref.action_space.seed(3)
    for _ in range(300):
        a = ref.action_space.sample()
        out_ref, out_new = ref.step(a), new.step(a)
        np.testing.assert_array_equal(out_ref[0], out_new[0])
        assert out_ref[1:4] == out_new[1:4]
        if out_ref[2]:
            ref.reset()
            new.reset()


# -- HardMove ----------------------------------------------------------------------------------


def test_hardmove_patterns_follow_itertools_product() -> None:
    env = HardMoveEnv(num_actuators=3)
    expected = np.array(list(itertools.product([0, 1], repeat=3)))
    np.testing.assert_array_equal(env.patterns, expected)
    np.testing.assert_array_equal(env.param_mask, expected.astype(bool))
    assert env.param_mask.dtype == bool and env.param_mask.shape == (8, 3)
    assert env.action_space == gym.spaces.Tuple(
        (gym.spaces.Discrete(8), gym.spaces.Box(-1, 1, (3,), np.float32))
    )


def test_hardmove_first_actuator_moves_along_angle_zero() -> None:
    env = placed(HardMoveEnv(), x=0.1, y=0.2)
    k = list(itertools.product([0, 1], repeat=4)).index((1, 0, 0, 0))
    assert k == 8  # first actuator = most significant bit
    obs, reward, terminated, _, _ = env.step((k, np.array([0.5, 0.9, -0.3, 0.7], np.float32)))
    assert (env.x, env.y) == pytest.approx((0.6, 0.2))
    assert env.theta == pytest.approx(math.atan2(0.2, 0.6))
    assert env.speed == 0.0 and obs[2] == 0.0
    assert reward == pytest.approx(dist(0.1, 0.2) - dist(0.6, 0.2) - 0.001)
    assert not terminated


def test_hardmove_sums_clipped_actuators() -> None:
    env = placed(HardMoveEnv(), x=-0.5, y=-0.5)
    k = [1, 1, 0, 0]  # actuators at 0 and π/2
    env.step((int("".join(map(str, k)), 2), np.array([3.0, -0.25, 1.0, 1.0], np.float32)))
    assert (env.x, env.y) == pytest.approx((0.5, -0.75))  # 3 clipped to 1
    assert env.theta == pytest.approx(math.atan2(-0.75, 0.5))
    env = placed(HardMoveEnv(), x=-0.5, y=0.5)
    env.step((0b1010, np.array([0.5, 1.0, 0.5, 1.0], np.float32)))  # 0 and π: cancel
    assert (env.x, env.y) == pytest.approx((-0.5, 0.5))
    assert env.theta == pytest.approx(math.atan2(0.5, -0.5))  # atan2 keeps the quadrant


def test_hardmove_success_needs_no_stop_and_limit_is_25() -> None:
    env = placed(HardMoveEnv(), x=0.5, y=0.8)
    obs, reward, terminated, truncated, info = env.step(
        (0b1000, np.array([0.25, 0, 0, 0], np.float32))
    )
    assert reward == pytest.approx(0.3 - 0.05 - 0.001 + 1.0)
    assert (terminated, truncated, info["success"]) == (True, False, True)
    env = placed(HardMoveEnv())
    for _ in range(25):
        assert not env.step((0, np.zeros(4, np.float32)))[2]
    assert env.step((0, np.zeros(4, np.float32)))[1:4] == (-1.0, True, False)
    env = placed(HardMoveEnv(), x=0.9)
    assert env.step((0b1000, np.array([0.5, 0, 0, 0], np.float32)))[1:4] == (-1.0, True, False)


# -- spaces, masks, seeding, errors ------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL)
def test_masks_in_info(cls: type) -> None:
    env = cls()
    _, info = env.reset(seed=0)
    k, p = env.param_mask.shape
    for i in (info, env.step(env.action_space.sample())[4]):
        mask = i["action_mask"]
        assert set(mask) == {"type", "params"}
        assert mask["type"].dtype == bool and mask["type"].shape == (k,) and mask["type"].all()
        assert mask["params"].dtype == bool
        np.testing.assert_array_equal(mask["params"], env.param_mask)
        mask["params"][...] = False  # a copy: the env's constant stays intact
    assert env.param_mask.any()
    np.testing.assert_array_equal(MovingEnv.param_mask, MOVING_PARAM_MASK)
    np.testing.assert_array_equal(MOVING_PARAM_MASK, [[1, 0], [0, 1], [0, 0]])


def _rollout(env: Any, seed: int, steps: int, policy: str = "random") -> list[Any]:
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(steps):
        a = env.action_space.sample()
        if policy == "full":  # always the strongest push: the fastest way out of the field
            a = (
                (0, np.array([1.0, 0.0], np.float32))
                if isinstance(env, MovingEnv)
                else (a[0], np.sign(a[1]))
            )
        elif policy == "idle":  # stay put until the step limit
            a = (BREAK if isinstance(env, MovingEnv) else 0, a[1])
        obs, reward, terminated, truncated, _ = env.step(a)
        out.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            out.append(env.reset()[0])
    return out


@pytest.mark.parametrize("cls", ALL)
def test_seeding(cls: type) -> None:
    a, b = _rollout(cls(), 7, 300), _rollout(cls(), 7, 300)
    np.testing.assert_equal(a, b)
    starts = {tuple(cls().reset(seed=s)[0][:2]) for s in range(5)}
    assert len(starts) == 5


@pytest.mark.parametrize("policy", ["random", "full", "idle"])
@pytest.mark.parametrize("cls", ALL)
def test_observation_space_is_honest(cls: type, policy: str) -> None:
    env = cls(max_step=40) if cls is not HardMoveEnv else cls()
    space = env.observation_space
    assert space.dtype == np.float32 and space.shape == (10,)
    assert np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))
    seen = []
    for item in _rollout(env, 11, 3000, policy):
        obs = item if isinstance(item, np.ndarray) else item[0]
        assert obs.dtype == np.float32
        assert space.contains(obs), (obs, space)
        seen.append(obs)
    if policy == "idle":  # the step limit was hit
        assert np.max(seen, axis=0)[9] == pytest.approx(
            41 / 40 if cls is not HardMoveEnv else 26 / 25
        )
    else:  # the field's edge was crossed
        assert np.max(np.abs(np.array(seen)[:, :2])) > 1.0


def test_observation_bounds_are_tight() -> None:
    space = MovingEnv().observation_space
    np.testing.assert_allclose(
        space.high[2:], [100.5, 1, 1, 0.9, 0.9, math.hypot(2.4025, 2.4025), 1, 1.005], rtol=1e-6
    )
    np.testing.assert_allclose(space.high[:2], [1.5025, 1.5025], rtol=1e-6)
    np.testing.assert_array_equal(space.low, -space.high * [1, 1, 0, 1, 1, 1, 1, 0, 0, 0])
    hard = HardMoveEnv().observation_space
    np.testing.assert_allclose(hard.high[[0, 1, 2, 9]], [3.0, 3.0, 1.0, 26 / 25], rtol=1e-6)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a warning
        check_env(gym.make(env_id).unwrapped)
        check_env(gym.make(env_id, render_mode="rgb_array").unwrapped)


@pytest.mark.parametrize("cls", ALL)
def test_pickle_mid_episode_resumes_identically(cls: type) -> None:
    env = cls()
    env.action_space.seed(3)
    env.reset(seed=3)
    for _ in range(10):
        env.step(env.action_space.sample())
    copy = pickle.loads(pickle.dumps(env))
    for _ in range(400):  # across episode ends: the reset RNG travels too
        a = env.action_space.sample()
        out, out_copy = env.step(a), copy.step(a)
        np.testing.assert_equal(out[:4], out_copy[:4])
        if out[2]:
            np.testing.assert_equal(env.reset()[0], copy.reset()[0])


def test_registered_ids() -> None:
    assert set(ENV_IDS) == {"ppox/Moving-v0", "ppox/Sliding-v0", "ppox/HardMove-v0"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_envs()  # idempotent
        register_envs()
    for env_id, cls in zip(ENV_IDS, ALL):
        assert gym.spec(env_id).max_episode_steps is None
        env = gym.make(env_id)
        assert isinstance(env.unwrapped, cls)
        assert not any(isinstance(w, gym.wrappers.TimeLimit) for w in _wrappers(env))
        env.reset(seed=0)
        env.step(env.action_space.sample())
        env.close()
    env = gym.make("ppox/HardMove-v0", num_actuators=2, max_step=10)
    assert env.action_space[0].n == 4 and env.unwrapped.max_step == 10


def _wrappers(env: Any) -> list[Any]:
    out = []
    while isinstance(env, gym.Wrapper):
        out.append(env)
        env = env.env
    return out


def test_action_forms_accepted() -> None:
    env = placed(MovingEnv())
    env.step([np.int64(ACCELERATE), [1.0, 0.0]])
    env.step((np.array(TURN), (0.0, 0.0)))
    assert env.speed == 0.5


@pytest.mark.parametrize(
    ("action", "match"),
    [
        ((3, [0.0, 0.0]), r"action type 3 .*0\.\.2"),
        ((-1, [0.0, 0.0]), r"action type -1"),
        ((1.0, [0.0, 0.0]), r"integer in \[0, 3\)"),
        ((0, [0.0, 0.0, 0.0]), r"shape \(2,\).*\(3,\)"),
        ((0, [np.nan, 0.0]), r"finite"),
        ((0, "ab"), r"2 numbers"),
        (0, r"pair"),
    ],
)
def test_invalid_actions_raise(action: Any, match: str) -> None:
    env = placed(MovingEnv())
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_invalid_kwargs_raise() -> None:
    with pytest.raises(ValueError, match="num_actuators .* got 0"):
        HardMoveEnv(num_actuators=0)
    with pytest.raises(ValueError, match="max_step .* got 0"):
        MovingEnv(max_step=0)
    with pytest.raises(ValueError, match="render_mode='human'"):
        SlidingEnv(render_mode="human")


@pytest.mark.parametrize("cls", ALL)
def test_render(cls: type) -> None:
    env = cls(render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    assert (img == (210, 40, 40)).all(axis=2).any() and (img == (40, 170, 60)).all(axis=2).any()
    assert cls().render() is None
