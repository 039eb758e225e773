"""Environment construction (src/ppox/envs/make.py), snapshots (envs/snapshot.py), vectorization
and the normalizers at the env boundary (src/ppox/training/normalizers.py)."""

from __future__ import annotations

import copy
import math
import uuid

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AsyncVectorEnv
from toy_envs import TerminatingEnv

from ppox.config import EnvConfig, PolicyConfig
from ppox.envs.make import make_env, make_vec_env, probe_spaces
from ppox.envs.snapshot import Snapshot, get_state, set_state
from ppox.errors import EnvError
from ppox.training.normalizers import ObsNormalizer, RewardScaler

# --------------------------------------------------------------------------------------------
# Making envs from ids
# --------------------------------------------------------------------------------------------


def test_unknown_id_suggests_close_match():
    with pytest.raises(EnvError) as e:
        make_vec_env(EnvConfig(env_id="CartPol-v1", num_envs=1))
    msg = str(e.value)
    assert "'CartPol-v1'" in msg and "did you mean" in msg and "CartPole-v1" in msg


def test_unknown_id_without_close_match_has_no_suggestion():
    with pytest.raises(EnvError) as e:
        make_env(EnvConfig(env_id="Zzqxv-v0"))
    assert "not a registered" in str(e.value) and "did you mean" not in str(e.value)


def test_bad_env_kwargs_raise_env_error_naming_them():
    with pytest.raises(EnvError, match="env_kwargs=.*bogus"):
        make_vec_env(EnvConfig(env_id="CartPole-v1", env_kwargs={"bogus": 1}, num_envs=1))


def test_user_registered_env_id_works():
    env_id = f"PpoxUserReg{uuid.uuid4().hex[:8]}-v0"
    gym.register(env_id, entry_point=TerminatingEnv, kwargs={"length": 2})
    try:
        envs = make_vec_env(EnvConfig(env_id=env_id, num_envs=2))
        try:
            assert envs.num_envs == 2
            assert all(isinstance(e, Snapshot) for e in envs.envs)
            obs, _ = envs.reset(seed=[0, 1])
            _, r, term, trunc, info = envs.step(np.zeros(2, int))
            assert r.tolist() == [1.0, 1.0] and not term.any()
            _, r, term, trunc, info = envs.step(np.zeros(2, int))
            # length=2 from the registered kwargs; SAME_STEP autoreset: reset obs, final obs in info
            assert r.tolist() == [2.0, 2.0] and term.all()
            assert info["final_obs"][0].tolist() == [2.0]
        finally:
            envs.close()
        obs_space, act_space = probe_spaces(EnvConfig(env_id=env_id))
        assert act_space == gym.spaces.Discrete(2) and obs_space.shape == (1,)
    finally:
        del gym.registry[env_id]


def test_module_colon_id_imports_the_module_first(tmp_path, monkeypatch):
    mod = f"ppox_test_regmod_{uuid.uuid4().hex[:8]}"
    env_id = f"PpoxFromModule{uuid.uuid4().hex[:6]}-v0"
    (tmp_path / f"{mod}.py").write_text(
        "import gymnasium as gym\n"
        f"gym.register({env_id!r}, entry_point='gymnasium.envs.classic_control.cartpole:CartPoleEnv', "
        "max_episode_steps=7)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert env_id not in gym.registry
    try:
        envs = make_vec_env(EnvConfig(env_id=f"{mod}:{env_id}", num_envs=1))
        try:
            envs.reset(seed=0)
            truncs = [bool(envs.step(np.array([t % 2]))[3][0]) for t in range(7)]
            assert truncs == [False] * 6 + [True]  # the module's max_episode_steps=7
        finally:
            envs.close()
    finally:
        gym.registry.pop(env_id, None)


def test_missing_module_in_module_colon_id_is_named():
    # Gymnasium re-raises a bare ModuleNotFoundError (``.name`` None) for `module:Id` ids
    with pytest.raises(EnvError) as e:
        make_env(EnvConfig(env_id="ppox_no_such_module_xyz:Foo-v0"))
    assert "ppox_no_such_module_xyz" in str(e.value)
    assert "module None" not in str(e.value)


def test_max_episode_steps_override():
    env = make_env(EnvConfig(env_id="CartPole-v1", max_episode_steps=4))
    env.reset(seed=0)
    truncs = [env.step(t % 2)[3] for t in range(4)]
    assert truncs == [False, False, False, True]


# --------------------------------------------------------------------------------------------
# Snapshots: get_state / set_state reproduce the future exactly, resets included
# --------------------------------------------------------------------------------------------


def _play(env: gym.Env, actions: list) -> list[np.ndarray]:
    """Step through ``actions``; reset (unseeded: the env's own RNG) whenever an episode ends.
    Returns every observation, reward and flag produced."""
    out = []
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        out += [np.asarray(obs).copy(), np.array([r, term, trunc], dtype=np.float64)]
        if term or trunc:
            obs, _ = env.reset()
            out.append(np.asarray(obs).copy())
    return out


@pytest.mark.parametrize(
    "env_id, max_steps",
    [("CartPole-v1", 30), ("Pendulum-v1", 45), ("HalfCheetah-v5", 60)],
)
def test_snapshot_round_trip_reproduces_next_200_steps(env_id, max_steps, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the working directory
    env = make_env(EnvConfig(env_id=env_id, max_episode_steps=max_steps))
    rng = np.random.default_rng(0)
    env.action_space.seed(1)
    actions = [env.action_space.sample() for _ in range(223)]
    env.reset(seed=5)
    for a in actions[:23]:  # somewhere in the middle of an episode
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    blob = get_state(env)
    assert isinstance(blob, dict)  # plain data (ppox.envs.snapshot), never a pickle
    future = _play(env, actions[23:])
    n_resets = sum(1 for x in future if x.shape == (3,) and (x[1] or x[2]))
    assert n_resets >= 3, "the 200 steps must cross several resets"
    for _ in range(2):  # the blob can be restored more than once
        restored = make_env(EnvConfig(env_id=env_id, max_episode_steps=max_steps))
        assert set_state(restored, blob)  # written into a freshly made env
        replay = _play(restored, actions[23:])
        assert len(replay) == len(future)
        for x, y in zip(future, replay, strict=True):
            np.testing.assert_array_equal(x, y)
        restored.close()
    # control: a fresh env reset with another seed diverges
    other = make_env(EnvConfig(env_id=env_id, max_episode_steps=max_steps))
    other.reset(seed=int(rng.integers(100, 1000)))
    diverged = _play(other, actions[23:])
    assert not all(np.array_equal(x, y) for x, y in zip(future, diverged, strict=False))
    env.close()
    other.close()


# --------------------------------------------------------------------------------------------
# Vectorization: sync and async give identical rollouts; snapshots through the vector env
# --------------------------------------------------------------------------------------------


def _same_rollouts(a, b) -> None:
    for name, x, y in zip(a._fields, a, b, strict=True):
        if x is None:
            assert y is None, name
        else:
            assert torch.equal(x, y), name


def test_sync_and_async_vectorization_give_identical_rollouts(make_collector):
    sync = make_collector("CartPole-v1", num_envs=3, num_steps=40, seed=3, env_seeds=[11, 12, 13])
    model = copy.deepcopy(sync.model)
    asyn = make_collector("CartPole-v1", num_envs=3, num_steps=40, seed=3, env_seeds=[11, 12, 13],
                          model=model, vectorization="async")  # fmt: skip
    assert isinstance(asyn.envs, AsyncVectorEnv) and not isinstance(sync.envs, AsyncVectorEnv)
    for _ in range(2):
        ra, rb = sync.collect(), asyn.collect()
        _same_rollouts(ra, rb)
    assert ra.done.sum() > 0  # episodes ended (autoreset exercised) within 80 steps
    assert list(sync.stats.returns) == list(asyn.stats.returns)


@pytest.mark.parametrize(
    "env_id, vectorization",
    [("CartPole-v1", "sync"), ("CartPole-v1", "async"), ("Pendulum-v1", "sync")],
)
def test_collector_state_dict_restores_envs_exactly(make_collector, env_id, vectorization):
    c = make_collector(env_id, num_envs=2, num_steps=60, seed=1, vectorization=vectorization,
                       max_episode_steps=25)  # fmt: skip
    c.collect()
    state = copy.deepcopy(c.state_dict())
    assert all(isinstance(b, dict) for b in state["env_states"])
    g = c.generator.get_state()
    first = c.collect()
    assert first.done.sum() > 0
    # move on, then go back
    c.collect()
    assert c.load_state_dict(state, fallback_seeds=[0, 1]) is True
    c.generator.set_state(g)
    second = c.collect()
    _same_rollouts(first, second)


# --------------------------------------------------------------------------------------------
# ObsNormalizer / RewardScaler: hand-computed numbers
# --------------------------------------------------------------------------------------------


def test_obs_normalizer_hand_numbers():
    n = ObsNormalizer((2,), enabled=True, clip=10.0)
    n.update(np.array([[1.0, 2.0], [3.0, 4.0]]))
    # mean [2, 3], population var [1, 1]
    np.testing.assert_allclose(
        n(np.array([[1.0, 2.0], [4.0, 7.0]])), [[-1.0, -1.0], [2.0, 4.0]], rtol=1e-6
    )
    n.update(np.array([[5.0, 6.0]]))
    # data per feature {1,3,5} and {2,4,6}: mean [3, 4], var 8/3
    s = math.sqrt(8 / 3)
    out = n(np.array([[5.0, 6.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[2 / s, 2 / s], [-3 / s, -4 / s]], rtol=1e-6)
    # clipping of the normalized value
    np.testing.assert_allclose(n(np.array([[1000.0, -1000.0]])), [[10.0, -10.0]])
    # round trip through the state dict
    m = ObsNormalizer((2,), enabled=True, clip=10.0)
    m.load_state_dict(n.state_dict())
    x = np.random.default_rng(0).normal(size=(7, 2)) * 3
    np.testing.assert_array_equal(m(x), n(x))
    assert m.state_dict() == n.state_dict()


def test_sparse_entries_are_scaled_by_the_rms_of_their_non_zero_values():
    """``sparse``: an entry non-zero in fewer than that fraction of the observations is divided by
    the root mean square of its non-zero values and not centred; the others are standardized;
    an entry never non-zero stays 0; the fractions are part of the state."""
    n = ObsNormalizer((3,), enabled=True, clip=10.0, sparse=0.5)
    n.update(np.array([[0.0, 1.0, 0.0], [0.0, 3.0, 0.0], [2.0, 5.0, 0.0], [0.0, 7.0, 0.0]]))
    # entry 0: non-zero in 1 of 4 (< 0.5), its non-zero values {2}: rms 2, no centring;
    # entry 1: always non-zero: mean 4, population var 5; entry 2: never non-zero
    centre, scale = n.affine()
    np.testing.assert_allclose(centre, [0.0, 4.0, 0.0])
    np.testing.assert_allclose(scale, [2.0, math.sqrt(5.0), 1e-4], rtol=1e-7)
    out = n(np.array([[2.0, 4.0, 0.0], [0.0, 9.0, 0.0], [-6.0, 4.0, 0.0], [100.0, 4.0, 0.0]]))
    np.testing.assert_allclose(
        out, [[1, 0, 0], [0, math.sqrt(5), 0], [-3, 0, 0], [10, 0, 0]], rtol=1e-6
    )
    assert n.state_dict()["nonzero"] == [1.0, 4.0, 0.0]  # counts of non-zero values
    np.testing.assert_array_equal(n.rare(), [True, False, True])
    # entry 0 non-zero in 3 of 6 now (not fewer than half): standardized like the others
    n.update(np.array([[4.0, 1.0, 0.0], [4.0, 1.0, 0.0]]))
    values = np.array([0.0, 0.0, 2.0, 0.0, 4.0, 4.0])
    centre, scale = n.affine()
    assert centre[0] == pytest.approx(values.mean()) and scale[0] == pytest.approx(values.std())
    # the state round trip; without ``sparse`` the state holds no fractions (as before the switch)
    m = ObsNormalizer((3,), enabled=True, clip=10.0, sparse=0.5)
    m.load_state_dict(n.state_dict())
    x = np.random.default_rng(0).normal(size=(7, 3))
    np.testing.assert_array_equal(m(x), n(x))
    assert m.state_dict() == n.state_dict()
    assert "nonzero" not in ObsNormalizer((3,), enabled=True, clip=10.0).state_dict()


def test_obs_normalizer_disabled_is_identity():
    n = ObsNormalizer((3,), enabled=False, clip=1.0)
    x = np.array([[5.0, -7.0, 0.5]])
    n.update(x)
    assert n.moments.count == 0
    out = n(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x.astype(np.float32))


def test_reward_scaler_hand_numbers():
    s = RewardScaler(2, enabled=True, gamma=0.9, clip=10.0)
    # step 1: ret = [1, 2]; returns seen {1, 2}: var 0.25 → scale 0.5
    out = s(np.array([1.0, 2.0]), np.array([False, False]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [2.0, 4.0], rtol=1e-6)
    # step 2: ret = [0.9 + 1, 1.8 + 0] = [1.9, 1.8]; seen {1, 2, 1.9, 1.8}: mean 1.675, var 0.156875
    out = s(np.array([1.0, 0.0]), np.array([False, True]))
    np.testing.assert_allclose(out, [1 / math.sqrt(0.156875 + 1e-8), 0.0], rtol=1e-6)
    # env 1 ended: its return restarts; env 0 continues
    np.testing.assert_allclose(s.ret, [1.9, 0.0])
    # step 3: ret = [1.71, 1.0]; seen {1, 2, 1.9, 1.8, 1.71, 1}
    out = s(np.array([0.0, 1.0]), np.array([False, False]))
    var = np.var([1, 2, 1.9, 1.8, 1.71, 1])
    np.testing.assert_allclose(out, [0.0, 1 / math.sqrt(var + 1e-8)], rtol=1e-6)
    np.testing.assert_allclose(s.ret, [1.71, 1.0])
    # state dict round trip: a restored scaler continues identically
    t = RewardScaler(2, enabled=True, gamma=0.9, clip=10.0)
    t.load_state_dict(s.state_dict())
    r, d = np.array([0.3, -2.0]), np.array([True, False])
    np.testing.assert_array_equal(t(r, d), s(r, d))
    np.testing.assert_array_equal(t.ret, s.ret)


def test_reward_scaler_clips_and_is_identity_when_disabled():
    s = RewardScaler(1, enabled=True, gamma=0.99, clip=2.0)
    done = np.array([True])  # every step ends an episode: the returns seen are the rewards
    seen: list[float] = []
    for r in (1.0, 1.1, 5.0, -50.0):
        seen.append(r)
        out = s(np.array([r]), done)[0]
        raw = r / math.sqrt(np.var(seen) + 1e-8)
        assert out == pytest.approx(float(np.clip(raw, -2.0, 2.0)), rel=1e-6)
    # the last two were clipped: 5/std{1, 1.1, 5} ≈ 2.69 and −50/std{…, −50} ≈ −2.27
    assert 5.0 / np.std([1, 1.1, 5]) > 2.0 and -50.0 / np.std([1, 1.1, 5, -50]) < -2.0
    off = RewardScaler(2, enabled=False, gamma=0.99, clip=1.0)
    out = off(np.array([5.0, -7.0]), np.array([False, True]))
    assert out.dtype == np.float32 and out.tolist() == [5.0, -7.0]


def test_normalizers_are_applied_by_the_collector(make_collector):
    """With normalization on, stored observations are normalized with the statistics that
    include them, and stored rewards are scaled (TerminatingEnv: rewards 1, 2, 3)."""
    c = make_collector("PpoxToyTerminating-v0", num_envs=2, num_steps=6, policy=PolicyConfig())
    c.obs_norm = ObsNormalizer(c.model.obs_shape, enabled=True, clip=10.0)
    c.reward_scaler = RewardScaler(2, enabled=True, gamma=1.0, clip=10.0)
    c.reset([0, 1])
    r = c.collect()
    # discounted (γ = 1) returns per env: 1, 3, 6, then reset: 1, 3, 6
    rewards, rets = [1, 2, 3, 1, 2, 3], [1, 3, 6, 1, 3, 6]
    for t in range(6):
        var = np.var(np.repeat(rets[: t + 1], 2))  # all returns seen so far (both envs)
        want = min(rewards[t] / math.sqrt(var + 1e-8), 10.0)  # reward_clip = 10 (t = 0: var = 0)
        np.testing.assert_allclose(r.reward[t].numpy(), [want] * 2, rtol=1e-5)
    # obs at step t (0, 1, 2, 0, 1, 2) normalized with the moments of all obs seen up to t
    raw = [0, 1, 2, 0, 1, 2]
    for t in range(6):
        hist = np.repeat(raw[: t + 1], 2)
        want = (raw[t] - hist.mean()) / math.sqrt(hist.var() + 1e-8)
        np.testing.assert_allclose(r.obs[t, :, 0].numpy(), [want] * 2, rtol=1e-5, atol=1e-6)
