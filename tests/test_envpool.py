"""The EnvPool backend (src/ppox/envs/envpool_backend.py): choosing it, its SAME_STEP semantics
checked step by step against Gymnasium's dynamics, and agreement with the Gymnasium backend
(same tasks: fixed policies score the same within noise; training reaches the same returns)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest

import ppox
from ppox.config import Config, EnvConfig
from ppox.envs import envpool_backend
from ppox.envs.envpool_backend import (
    ENVPOOL_IDS,
    EnvPoolVectorEnv,
    envpool_installed,
    resolve_backend,
)
from ppox.envs.make import make_vec_env
from ppox.envs.vector import LeanSyncVectorEnv
from ppox.errors import ConfigError, EnvError

needs_envpool = pytest.mark.skipif(
    not envpool_installed(),
    reason="EnvPool is not installed (pip install envpool, or the ppox[envpool] extra)",
)

# --------------------------------------------------------------------------------------------
# Choosing the backend; errors
# --------------------------------------------------------------------------------------------


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="env_backend='gym' is not allowed: one of"):
        Config().replace(env_backend="gym").validate()


def test_envpool_requested_but_not_installed_names_the_pip_command(monkeypatch) -> None:
    monkeypatch.setattr(envpool_backend, "envpool_installed", lambda: False)
    with pytest.raises(EnvError, match="pip install envpool"):
        make_vec_env(EnvConfig(env_backend="envpool", num_envs=1))
    assert resolve_backend(EnvConfig(env_backend="auto")) == "gymnasium"  # auto falls back quietly


def test_gymnasium_backend_never_touches_envpool(monkeypatch) -> None:
    monkeypatch.setattr(
        envpool_backend, "envpool_installed", lambda: pytest.fail("looked for envpool")
    )
    envs = make_vec_env(EnvConfig(num_envs=1, env_backend="gymnasium"))
    assert isinstance(envs, LeanSyncVectorEnv)
    envs.close()


@needs_envpool
def test_unsupported_id_names_it_and_lists_the_supported_ones() -> None:
    with pytest.raises(EnvError) as e:
        make_vec_env(EnvConfig(env_id="FrozenLake-v1", env_backend="envpool", num_envs=1))
    msg = str(e.value)
    assert "env_id='FrozenLake-v1'" in msg and "CartPole-v1" in msg and "HalfCheetah-v5" in msg
    assert resolve_backend(EnvConfig(env_id="FrozenLake-v1", env_backend="auto")) == "gymnasium"


@needs_envpool
def test_ids_that_are_not_the_same_task_say_why() -> None:
    with pytest.raises(EnvError, match="before clipping"):
        make_vec_env(EnvConfig(env_id="Pendulum-v1", env_backend="envpool", num_envs=1))
    assert resolve_backend(EnvConfig(env_id="Pendulum-v1", env_backend="auto")) == "gymnasium"


@needs_envpool
def test_env_kwargs_envpool_cannot_take_are_named() -> None:
    kw = {"enable_wind": True}
    with pytest.raises(
        EnvError,
        match=r"env_kwargs \['enable_wind'\] cannot be passed to EnvPool's 'LunarLander-v3'",
    ):
        make_vec_env(
            EnvConfig(env_id="LunarLander-v3", env_kwargs=kw, env_backend="envpool", num_envs=1)
        )
    assert (
        resolve_backend(EnvConfig(env_id="LunarLander-v3", env_kwargs=kw, env_backend="auto"))
        == "gymnasium"
    )
    # options both sides name alike pass through (MuJoCo's weights)
    cfg = EnvConfig(
        env_id="HalfCheetah-v5",
        env_kwargs={"ctrl_cost_weight": 0.0},
        env_backend="envpool",
        num_envs=1,
    )
    envs = make_vec_env(cfg)
    envs.reset(seed=0)
    _, reward, *_ = envs.step(np.ones((1, 6)))
    envs.close()
    base = make_vec_env(dataclasses.replace(cfg, env_kwargs={}))
    base.reset(seed=0)
    _, reward0, *_ = base.step(np.ones((1, 6)))
    base.close()
    assert reward[0] - reward0[0] == pytest.approx(0.1 * 6, abs=1e-6)  # ctrl cost 0.1·|a|² dropped


@needs_envpool
def test_reset_options_are_refused() -> None:
    envs = make_vec_env(EnvConfig(env_backend="envpool", num_envs=1))
    with pytest.raises(EnvError, match="reset options"):
        envs.reset(seed=0, options={"low": -0.1})
    envs.close()


@needs_envpool
def test_auto_and_envpool_build_the_adapter_for_supported_ids() -> None:
    for backend in ("auto", "envpool"):
        envs = make_vec_env(EnvConfig(env_id="CartPole-v1", num_envs=2, env_backend=backend))
        assert isinstance(envs, EnvPoolVectorEnv) and envs.num_threads == 1
        assert envs.single_observation_space == gym.make("CartPole-v1").observation_space
        envs.close()
    threads = make_vec_env(EnvConfig(num_envs=2, env_backend="envpool", vectorization="async"))
    assert threads.num_threads == min(2, os.cpu_count() or 1)  # type: ignore[attr-defined]
    threads.close()


@needs_envpool
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the v4 ids
@pytest.mark.parametrize("env_id", sorted(ENVPOOL_IDS))
def test_every_mapped_id_has_gymnasium_spaces_and_time_limit(env_id: str) -> None:
    import envpool

    gym_env = gym.make(env_id)
    spec = envpool.make_spec(ENVPOOL_IDS[env_id])
    obs, act = spec.gymnasium_observation_space, spec.gymnasium_action_space
    assert (
        obs.shape == gym_env.observation_space.shape
        and obs.dtype == gym_env.observation_space.dtype
    )
    assert type(act) is type(gym_env.action_space)
    if isinstance(act, gym.spaces.Box):
        np.testing.assert_allclose(act.low, gym_env.action_space.low)
        np.testing.assert_allclose(act.high, gym_env.action_space.high)
    else:
        assert act.n == gym_env.action_space.n
    assert spec.config.max_episode_steps == gym_env.spec.max_episode_steps
    gym_env.close()


# --------------------------------------------------------------------------------------------
# SAME_STEP semantics, against Gymnasium's CartPole dynamics step by step
# --------------------------------------------------------------------------------------------


class CartPoleOracle:
    """Gymnasium's CartPole step from a given (float32) observation."""

    def __init__(self) -> None:
        self.env = gym.make("CartPole-v1").unwrapped
        self.env.reset(seed=0)

    def step(self, obs: np.ndarray, action: int) -> tuple[np.ndarray, bool]:
        self.env.state = obs.astype(np.float64)
        self.env.steps_beyond_terminated = None
        nxt, _, terminated, _, _ = self.env.step(int(action))
        return nxt, bool(terminated)


@needs_envpool
@pytest.mark.parametrize("limit", [12, 500])
def test_same_step_autoreset_final_obs_and_flags_match_gymnasium(limit: int) -> None:
    """Each step: where an episode goes on, the next observation is CartPole's dynamics of the
    last one; where it ends, ``final_obs`` holds that instead, the returned observation is a
    fresh reset, ``terminated`` is the pole's failure and ``truncated`` the time limit (both
    on the same step when the pole falls on the last allowed step)."""
    n = 5
    envs = make_vec_env(
        EnvConfig(
            num_envs=n, env_backend="envpool", max_episode_steps=None if limit == 500 else limit
        )
    )
    oracle = CartPoleOracle()
    obs, info = envs.reset(seed=[3, 4, 5, 6, 7])
    assert info == {} and obs.dtype == np.float32
    rng = np.random.default_rng(0)
    elapsed = np.zeros(n, dtype=int)
    ends = {"terminated": 0, "truncated": 0}
    for _ in range(400):
        # mostly push one way so poles fall at different times; sometimes balance a little
        action = np.where(rng.random(n) < 0.8, np.arange(n) % 2, rng.integers(0, 2, n))
        nxt, reward, terminated, truncated, info = envs.step(action)
        elapsed += 1
        done = terminated | truncated
        assert reward.dtype == np.float64 and (reward == 1.0).all()
        if done.any():
            np.testing.assert_array_equal(info["_final_obs"], done)
        else:
            assert "final_obs" not in info
        for i in range(n):
            expect, fell = oracle.step(obs[i], action[i])
            assert terminated[i] == fell
            assert truncated[i] == (elapsed[i] >= limit)
            if done[i]:
                np.testing.assert_allclose(info["final_obs"][i], expect, atol=1e-5)
                assert np.abs(nxt[i]).max() <= 0.05  # CartPole resets uniformly in ±0.05
                ends["terminated"] += int(terminated[i])
                ends["truncated"] += int(truncated[i])
                elapsed[i] = 0
            else:
                assert info.get("final_obs") is None or info["final_obs"][i] is None
                np.testing.assert_allclose(nxt[i], expect, atol=1e-5)
        obs = nxt
    assert ends["terminated"] > 10  # failures and (with the short limit) time limits both crossed
    assert (ends["truncated"] > 10) == (limit == 12)
    envs.close()


def _angle(c: float, s: float) -> float:
    return math.atan2(s, c)


# Gymnasium's internal state from an observation, and a policy that pumps energy into the system
# (so velocity limits and goals are reached) with some random actions mixed in
CLASSIC = {
    "CartPole-v1": (lambda o: o.astype(np.float64), lambda o, rng: int(rng.random() < 0.5)),
    "Acrobot-v1": (lambda o: np.array([_angle(o[0], o[1]), _angle(o[2], o[3]), o[4], o[5]]),
                   lambda o, rng: 2 if o[5] > 0 or rng.random() < 0.1 else 0),
    "MountainCar-v0": (lambda o: o.astype(np.float64), lambda o, rng: 2 if o[1] > 0 or rng.random() < 0.1 else 0),
    "MountainCarContinuous-v0": (lambda o: o.astype(np.float64),
                                 lambda o, rng: np.array([1.0 if o[1] >= 0 else -1.0]) * rng.uniform(0.5, 1.5)),
    "Pendulum-v1": (lambda o: np.array([_angle(o[0], o[1]), o[2]]),
                    lambda o, rng: np.array([2.0 if o[2] >= 0 else -2.0], dtype=np.float32)),
}  # fmt: skip


def _oracle_mismatches(env_id: str, steps: int = 600) -> int:
    """Steps where the EnvPool backend's next (or final) observation, reward or ``terminated``
    differs from Gymnasium's step taken from the same observation."""
    to_state, act = CLASSIC[env_id]
    envs = make_vec_env(EnvConfig(env_id=env_id, num_envs=3, env_backend="envpool"))
    oracle = gym.make(env_id).unwrapped
    oracle.reset(seed=0)
    rng = np.random.default_rng(1)
    obs, _ = envs.reset(seed=[1, 2, 3])
    bad = ends = 0
    for _ in range(steps):
        action = np.stack([np.asarray(act(o, rng)) for o in obs])
        nxt, reward, terminated, truncated, info = envs.step(action)
        for i in range(3):
            oracle.state = to_state(obs[i])
            oracle.steps_beyond_terminated = None  # CartPole: a fresh step, not one after the end
            want, want_r, want_term, _, _ = oracle.step(action[i])
            got = info["final_obs"][i] if terminated[i] or truncated[i] else nxt[i]
            ok = (
                np.allclose(got, want, atol=1e-4)
                and abs(reward[i] - want_r) < 1e-4
                and terminated[i] == want_term
            )
            bad += not ok
            ends += bool(terminated[i])
        obs = nxt
    envs.close()
    assert env_id in ("Pendulum-v1", "CartPole-v1") or ends > 0, (
        "the goal was never reached: terminations untested"
    )
    return bad


@needs_envpool
@pytest.mark.parametrize(
    "env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0"]
)
def test_classic_control_steps_are_gymnasium_steps(env_id: str) -> None:
    assert _oracle_mismatches(env_id) == 0


@needs_envpool
def test_envpool_pendulum_still_differs_from_gymnasium() -> None:
    """Why Pendulum-v1 is not mapped (NOT_THE_SAME). If this fails, EnvPool fixed it: map it."""
    assert "Pendulum-v1" not in ENVPOOL_IDS
    envpool_backend.ENVPOOL_IDS["Pendulum-v1"] = "Pendulum-v1"
    try:
        assert _oracle_mismatches("Pendulum-v1", steps=200) > 10
    finally:
        del envpool_backend.ENVPOOL_IDS["Pendulum-v1"]


def _first_end(limit: int | None) -> tuple[int, bool, bool]:
    """(step, terminated, truncated) of the first episode end, always pushing right."""
    envs = make_vec_env(EnvConfig(num_envs=1, env_backend="envpool", max_episode_steps=limit))
    envs.reset(seed=5)
    try:
        for t in range(1, 100):
            _, _, term, trunc, _ = envs.step(np.array([1]))
            if term[0] or trunc[0]:
                return t, bool(term[0]), bool(trunc[0])
    finally:
        envs.close()
    raise AssertionError("the pole never fell")


@needs_envpool
def test_failure_on_the_last_allowed_step_is_terminated_and_truncated() -> None:
    """EnvPool alone calls this step 'truncated' only; Gymnasium (and the adapter) say both."""
    t, term, trunc = _first_end(None)
    assert (term, trunc) == (True, False)
    assert _first_end(t) == (t, True, True)
    assert _first_end(t - 1) == (t - 1, False, True)


@needs_envpool
def test_seeds_fix_each_env_and_reset_none_continues() -> None:
    def first_obs(seeds: list[int]) -> np.ndarray:
        envs = make_vec_env(EnvConfig(num_envs=len(seeds), env_backend="envpool"))
        obs, _ = envs.reset(seed=seeds)
        envs.close()
        return obs

    a, b = first_obs([10, 11, 12]), first_obs([12, 10, 99])
    np.testing.assert_array_equal(a[0], b[1])  # env seeded 10, wherever it sits
    np.testing.assert_array_equal(a[2], b[0])
    assert not np.array_equal(a[1], b[2])
    envs = make_vec_env(EnvConfig(num_envs=3, env_backend="envpool"))
    np.testing.assert_array_equal(envs.reset(seed=10)[0], a)  # an int seeds env i with seed + i
    again, _ = envs.reset()  # no seed: the envs' own generators go on
    assert not np.array_equal(again, a)
    envs.close()


@needs_envpool
def test_collector_runs_on_envpool_and_cannot_snapshot(make_collector) -> None:
    c = make_collector(
        "CartPole-v1", num_envs=3, num_steps=64, env_backend="envpool", max_episode_steps=20
    )
    r = c.collect()
    assert r.done.sum() >= 3 * 3 and r.final_obs is not None  # truncations bootstrap from final_obs
    state = c.state_dict()
    assert state["env_states"] == [None, None, None]
    assert (
        c.load_state_dict(state, fallback_seeds=[7, 8, 9]) is False
    )  # episodes restart, as for Box2D
    assert isinstance(c.envs, EnvPoolVectorEnv) and c.envs.seeds == [7, 8, 9]
    c.collect()


# --------------------------------------------------------------------------------------------
# The two backends agree
# --------------------------------------------------------------------------------------------


def _linear_policy(space: gym.Space, obs_dim: int, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """A fixed deterministic policy that reads the observation (so the dynamics matter)."""
    rng = np.random.default_rng(seed)
    if isinstance(space, gym.spaces.Discrete):
        w = rng.normal(size=(obs_dim, int(space.n)))
        return lambda obs: np.argmax(obs @ w, axis=1)
    w = rng.normal(size=(obs_dim, space.shape[0])) / math.sqrt(obs_dim)
    return lambda obs: np.clip(np.tanh(obs @ w) * space.high, space.low, space.high)


def _episode_returns(cfg: EnvConfig, episodes: int, policy_seed: int) -> np.ndarray:
    envs = make_vec_env(cfg)
    policy = _linear_policy(
        envs.single_action_space, envs.single_observation_space.shape[0], policy_seed
    )
    obs, _ = envs.reset(seed=[20_000 + i for i in range(cfg.num_envs)])
    running = np.zeros(cfg.num_envs)
    out: list[float] = []
    while len(out) < episodes:
        obs, reward, terminated, truncated, _ = envs.step(policy(obs))
        running += reward
        for i in np.flatnonzero(terminated | truncated):
            out.append(running[i])
            running[i] = 0.0
    envs.close()
    return np.asarray(out[:episodes])


AGREE = [("CartPole-v1", 400, 8, 1), ("LunarLander-v3", 60, 4, 3), ("HalfCheetah-v5", 12, 4, 0),
         ("Hopper-v5", 150, 4, 0), ("Walker2d-v5", 150, 4, 1)]  # fmt: skip


@needs_envpool
@pytest.mark.parametrize(
    ("env_id", "episodes", "num_envs", "policy_seed"), AGREE, ids=[a[0] for a in AGREE]
)
def test_a_fixed_policy_scores_the_same_on_both_backends(
    env_id: str, episodes: int, num_envs: int, policy_seed: int
) -> None:
    """Same task, same policy, episodes from different start states: the mean returns differ by
    less than 4 standard errors (and the policy is not trivial: its returns vary)."""
    cfg = EnvConfig(env_id=env_id, num_envs=num_envs)
    g = _episode_returns(dataclasses.replace(cfg, env_backend="gymnasium"), episodes, policy_seed)
    e = _episode_returns(dataclasses.replace(cfg, env_backend="envpool"), episodes, policy_seed)
    se = math.sqrt(g.var(ddof=1) / len(g) + e.var(ddof=1) / len(e))
    assert se > 0
    assert abs(g.mean() - e.mean()) < 4 * se, (g.mean(), e.mean(), se)


def _train(backend: str, seed: int, tmp_path) -> dict:
    cfg = Config().replace(env_id="CartPole-v1", env_backend=backend, total_steps=16_384, seed=seed, eval_every=0,
                           eval_episodes=20, tensorboard=False, progress=False, checkpoint_every=10**6, threads=1)  # fmt: skip
    return ppox.train(cfg, tmp_path / f"{backend}-{seed}")


@needs_envpool
@pytest.mark.slow
def test_training_reaches_the_same_returns_on_both_backends(tmp_path) -> None:
    """The default CartPole config, 16k steps, 4 seeds per backend: mean training returns (last
    100 episodes) and evaluation returns (Gymnasium's seeded episodes) agree within noise."""
    seeds = [1, 2, 3, 4]
    runs = {b: [_train(b, s, tmp_path) for s in seeds] for b in ("gymnasium", "envpool")}
    for key in ("train_return_mean", "eval_return_mean"):
        g = np.array([r[key] for r in runs["gymnasium"]])
        e = np.array([r[key] for r in runs["envpool"]])
        se = math.sqrt(g.var(ddof=1) / len(g) + e.var(ddof=1) / len(e)) + 1.0
        assert abs(g.mean() - e.mean()) < 4 * se, (key, g, e)
        assert min(g.mean(), e.mean()) > 100  # both really learned something
    assert all(r["resumed_env_state_exactly"] for r in runs["envpool"])  # never resumed here


@needs_envpool
def test_one_short_training_run_on_envpool_learns_and_reports(tmp_path) -> None:
    summary = _train("envpool", 1, tmp_path)
    assert summary["total_steps"] >= 16_384 and summary["train_return_mean"] > 60


@needs_envpool
def test_a_resumed_envpool_run_restarts_its_episodes_and_says_so(tmp_path, capsys) -> None:
    from ppox.io.checkpoint import load_checkpoint
    from ppox.training.trainer import Trainer

    cfg = Config().replace(env_backend="envpool", num_envs=2, num_steps=64, num_epochs=1, total_steps=256,
                           eval_every=0, eval_episodes=1, tensorboard=False, progress=False)  # fmt: skip
    run = tmp_path / "run"
    ppox.train(cfg, run)
    assert load_checkpoint(run)["collector"]["env_states"] == [None, None]
    resumed = Trainer.resume(run, total_steps=384)
    assert "cannot be snapshotted" in capsys.readouterr().out
    assert isinstance(resumed.envs, EnvPoolVectorEnv)
    summary = resumed.train()
    assert summary["total_steps"] == 384 and summary["resumed_env_state_exactly"] is False


@pytest.mark.parametrize(
    "env_id, expected", [("CartPole-v1", "envpool"), ("FrozenLake-v1", "gymnasium")]
)
def test_a_run_records_the_backend_auto_picked_and_resumes_on_it(
    tmp_path, env_id, expected
) -> None:
    if expected == "envpool" and not envpool_installed():
        pytest.skip("envpool is not installed")
    from ppox.training.trainer import Trainer

    cfg = Config().replace(env_id=env_id, env_backend="auto", num_envs=2, num_steps=16, total_steps=64,
                           eval_every=0, eval_episodes=1, progress=False, tensorboard=False)  # fmt: skip
    trainer = Trainer.create(cfg, tmp_path / "run")
    assert trainer.cfg.env.env_backend == expected
    trainer.train()
    assert (
        json.loads((tmp_path / "run" / "config.json").read_text())["env"]["env_backend"] == expected
    )
    resumed = Trainer.resume(tmp_path / "run")
    assert resumed.cfg.env.env_backend == expected
    resumed.envs.close()
    # the same command again (torchrun --max-restarts, --auto-resume) still finds its own run
    again = Trainer.create_or_resume(cfg.replace(total_steps=96), tmp_path / "run")
    assert again.progress.global_step == 64 and again.cfg.env.env_backend == expected
    again.envs.close()
