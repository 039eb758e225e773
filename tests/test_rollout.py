"""The collector and rollout storage (src/ppox/training/rollout.py) on the toy envs of tests/toy_envs.py.

The ``make_collector`` fixture (conftest.py) builds a ``Collector`` the way ``Trainer.__init__``
does, with identity normalizers, and resets it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppox.config import Config, PolicyConfig
from ppox.core.advantages import gae
from ppox.training.trainer import Trainer

RELU = PolicyConfig(hidden_sizes=(16,), activation="relu")


def values_of(model, obs: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return model.value(torch.as_tensor(np.asarray(obs, np.float32)))


# --------------------------------------------------------------------------------------------
# (a) truncation bootstraps from the final observation
# --------------------------------------------------------------------------------------------


def test_truncated_steps_bootstrap_from_final_observation(make_collector):
    # CounterEnv: obs = [offset + t, offset]; registered with max_episode_steps=5
    c = make_collector(
        "PpoxToyCounter-v0", num_envs=3, num_steps=13, policy=RELU, env_seeds=[1, 2, 3]
    )
    offsets = [e.unwrapped.offset for e in c.envs.envs]
    r = c.collect()
    model = c.model
    T, N = 13, 3
    assert r.done.shape == r.next_value.shape == (T, N)
    trunc_steps = [4, 9]  # the 5th and 10th step of each env end its episode
    for t in range(T):
        for i in range(N):
            if t in trunc_steps:
                assert r.done[t, i] == 1 and r.terminated[t, i] == 0
            else:
                assert r.done[t, i] == 0 and r.terminated[t, i] == 0
    assert r.terminated.sum() == 0
    # at the first truncation (t=4) the final obs is [offset + 5, offset]
    for i in range(N):
        final = np.array([[offsets[i] + 5.0, offsets[i]]])
        v_final = values_of(model, final)[0]
        # the obs the policy sees next (the reset one) is different and has a different value
        v_reset = r.value[5, i]
        assert abs(v_final - v_reset) > 1e-3, "test precondition: distinguishable values"
        torch.testing.assert_close(r.next_value[4, i], v_final)
        # obs stored at the step before: [offset + 4, offset]
        np.testing.assert_array_equal(r.obs[4, i].numpy(), [offsets[i] + 4.0, offsets[i]])
    # second truncation: the final obs is the obs stored at t=9 advanced by one step
    for i in range(N):
        o = r.obs[9, i].numpy()
        torch.testing.assert_close(r.next_value[9, i], values_of(model, [[o[0] + 1.0, o[1]]])[0])
    # other steps: next_value[t] == value[t + 1]; the last one is V(obs after the rollout)
    for t in range(T - 1):
        if t not in trunc_steps:
            assert torch.equal(r.next_value[t], r.value[t + 1])
    torch.testing.assert_close(r.next_value[T - 1], values_of(model, c.obs.numpy()))
    # value[t] is V(obs[t])
    torch.testing.assert_close(r.value, values_of(model, r.obs.reshape(-1, 2)).reshape(T, N))


def test_truncation_of_only_some_envs_uses_the_right_final_obs(make_collector):
    """Envs out of phase: each env's truncation bootstraps from its own final observation."""
    c = make_collector(
        "PpoxToyCounter-v0", num_envs=3, num_steps=6, policy=RELU, env_seeds=[4, 5, 6]
    )
    # step env 1 two steps ahead and env 2 four steps ahead, outside the vector env
    obs = c.raw_obs.copy()
    for k, env in enumerate(c.envs.envs):
        for _ in range(2 * k):
            obs[k], *_ = env.step(0)
    c.raw_obs = obs
    c.obs_np = obs.astype(np.float32)
    r = c.collect()
    expect_done = {0: [4], 1: [2], 2: [0, 5]}
    for i, steps in expect_done.items():
        assert [t for t in range(6) if r.done[t, i] == 1] == steps
        for t in steps:
            o = r.obs[t, i].numpy()
            torch.testing.assert_close(
                r.next_value[t, i], values_of(c.model, [[o[0] + 1.0, o[1]]])[0]
            )


def test_constant_critic_gives_exact_infinite_horizon_returns(make_collector):
    """With V ≡ 50 = 1/(1−0.98) and reward 1 per step, correct truncation handling gives
    δ = 1 + 0.98·50 − 50 = 0 everywhere: all returns exactly 50, all advantages 0. Treating a
    time-limit as a terminal state would make the returns at truncated steps 1."""
    c = make_collector(
        "PpoxToyCounter-v0", num_envs=2, num_steps=17, policy=RELU, max_episode_steps=8
    )
    with torch.no_grad():
        c.model.value_out.weight.zero_()
        c.model.value_out.bias.fill_(50.0)
    r = c.collect()
    assert r.done.sum() == 4 and r.terminated.sum() == 0
    adv, ret = gae(r.reward, r.value, r.next_value, r.terminated, r.done, gamma=0.98, lam=0.95)
    torch.testing.assert_close(ret, torch.full_like(ret, 50.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(adv, torch.zeros_like(adv), atol=1e-4, rtol=0)


def test_training_the_critic_on_an_infinite_horizon_task_reaches_1_over_1_minus_gamma(tmp_path):
    """SB3's time-limit property: reward 1 per step, TimeLimit 8, γ = 0.98 and a constant
    observation: the value of every state is 1/(1−γ) = 50 (a critic that treated truncation as
    termination would converge to at most 8)."""
    cfg = Config().replace(
        env_id="PpoxToyCounter-v0", env_kwargs={"constant_obs": True}, max_episode_steps=8, num_envs=1,
        num_steps=32, num_epochs=10, learning_rate=0.05, lam=0.95, gamma=0.98, anneal_lr=False,
        hidden_sizes=(8,), total_steps=32 * 70, max_grad_norm=None, tensorboard=False, progress=False,
    )  # fmt: skip
    tr = Trainer.create(cfg, tmp_path / "run")
    try:
        for _ in range(cfg.num_iterations):
            tr.learner.update(tr.advantages(tr.collector.collect()), progress=0.0)
    finally:
        tr.envs.close()
    v = values_of(tr.model, np.zeros((1, 2))).item()
    assert abs(v - 50.0) < 1.0, v


# --------------------------------------------------------------------------------------------
# (b) termination
# --------------------------------------------------------------------------------------------


def test_terminated_steps_are_flagged_and_not_bootstrapped(make_collector):
    # TerminatingEnv: terminates after 3 steps, reward = step index (1, 2, 3)
    c = make_collector("PpoxToyTerminating-v0", num_envs=2, num_steps=7)
    r = c.collect()
    ends = torch.zeros(7)
    ends[[2, 5]] = 1
    for i in range(2):
        assert torch.equal(r.terminated[:, i], ends)
        assert torch.equal(r.done[:, i], ends)
        assert r.reward[:, i].tolist() == [1, 2, 3, 1, 2, 3, 1]
        assert r.obs[:, i, 0].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert list(c.stats.returns) == [6.0] * 4
    assert list(c.stats.lengths) == [3] * 4
    assert c.stats.episodes == 4
    # gamma = 1, lam = 1: the advantage at a terminal step is r − V (no bootstrap)
    adv, ret = gae(r.reward, r.value, r.next_value, r.terminated, r.done, gamma=1.0, lam=1.0)
    torch.testing.assert_close(ret[:3, 0], torch.tensor([6.0, 5.0, 3.0]))
    torch.testing.assert_close(ret[3:6, 1], torch.tensor([6.0, 5.0, 3.0]))


def test_termination_and_truncation_on_the_same_step_count_as_terminated(make_collector):
    c = make_collector("PpoxToyTerminating-v0", num_envs=2, num_steps=6, max_episode_steps=3)
    r = c.collect()
    ends = torch.tensor([0, 0, 1, 0, 0, 1.0])
    for i in range(2):
        assert torch.equal(r.terminated[:, i], ends)
        assert torch.equal(r.done[:, i], ends)


# --------------------------------------------------------------------------------------------
# (c), (d) what is stored is what the env produced; episode statistics
# --------------------------------------------------------------------------------------------


def _replay_log(log):
    """From a RecordingEnv log: observations the policy saw, actions, rewards, done flags,
    and finished-episode returns (in order)."""
    seen, actions, rewards, dones, returns = [], [], [], [], []
    ret = 0.0
    for entry in log:
        if entry[0] == "reset":
            seen.append(entry[1])
            continue
        _, action, obs, reward, done = entry
        actions.append(action)
        rewards.append(reward)
        dones.append(done)
        ret += reward
        if done:
            returns.append(ret)
            ret = 0.0
        else:
            seen.append(obs)
    return np.array(seen), actions, rewards, dones, returns, ret


def test_rollout_stores_what_the_env_produced_and_episode_stats_are_true_returns(make_collector):
    T, N = 30, 3
    c = make_collector("PpoxToyRecording-v0", num_envs=N, num_steps=T)
    r1 = c.collect()
    r2 = c.collect()
    all_returns = []
    for i, env in enumerate(c.envs.envs):
        seen, actions, rewards, dones, returns, partial = _replay_log(env.unwrapped.log)
        assert len(actions) == 2 * T
        for k, r in enumerate((r1, r2)):
            sl = slice(k * T, (k + 1) * T)
            np.testing.assert_array_equal(r.obs[:, i].numpy(), seen[sl])
            assert r.action[:, i].tolist() == actions[sl]
            np.testing.assert_array_equal(r.reward[:, i].numpy(), np.array(rewards[sl], np.float32))
            assert r.done[:, i].tolist() == [float(d) for d in dones[sl]]
            assert torch.equal(r.terminated[:, i], r.done[:, i])
        # the observation the next rollout starts from
        np.testing.assert_array_equal(c.obs[i].numpy(), seen[2 * T])
        all_returns += returns
        assert c.stats.ret[i] == pytest.approx(partial)
        assert c.stats.len[i] == len(actions) - (
            max(j for j, d in enumerate(dones) if d) + 1 if any(dones) else 0
        )
    assert (
        sum(d for env in c.envs.envs for d in _replay_log(env.unwrapped.log)[3]) == c.stats.episodes
    )
    assert c.stats.episodes > 5  # several episodes ended (p_end = 0.15)
    assert sorted(c.stats.returns) == pytest.approx(sorted(all_returns))
    # rollouts are copies: collecting again does not change an earlier rollout
    assert not torch.equal(r1.obs, r2.obs)


def test_logp_and_value_are_the_models_at_collection_time(make_collector):
    c = make_collector(
        "PpoxToyRecording-v0", num_envs=2, num_steps=10, policy=PolicyConfig(policy_init_gain=1.0)
    )
    r = c.collect()
    with torch.no_grad():
        d, v = c.model(r.obs.reshape(20, 3))
    torch.testing.assert_close(
        r.logp, d.log_prob(r.action.reshape(20)).reshape(10, 2), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(r.value, v.reshape(10, 2), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------
# (f) action masks from info["action_mask"]
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_action_masks_are_respected_and_stored(make_collector, vectorization):
    T, N = 100, 3
    c = make_collector("PpoxToyMasked-v0", num_envs=N, num_steps=T, policy=PolicyConfig(policy_init_gain=1.0),
                       vectorization=vectorization)  # fmt: skip
    for _ in range(2):
        r = c.collect()
        assert r.mask is not None and r.mask.shape == (T, N, 5) and r.mask.dtype == torch.bool
        # the env shows its mask as the observation: stored masks belong to the stored obs
        assert torch.equal(r.mask, r.obs > 0.5)
        assert r.mask.gather(-1, r.action.unsqueeze(-1)).all()
        assert torch.isfinite(r.logp).all()
    illegal, steps = (sum(c.envs.call(k)) for k in ("illegal", "steps"))
    assert illegal == 0 and steps == 2 * T * N
    # sanity: the legal sets are small, so an unmasked policy would break the rule often
    assert r.mask.float().mean() < 0.6


def test_no_mask_in_info_means_no_mask_in_rollout(make_collector):
    c = make_collector("PpoxToyTerminating-v0", num_envs=1, num_steps=3)
    assert c.collect().mask is None


def test_all_masked_state_raises_env_error(make_collector):
    from ppox.errors import EnvError
    from ppox.training.rollout import MASK_KEY

    c = make_collector("PpoxToyMasked-v0", num_envs=2, num_steps=3)
    with pytest.raises(EnvError, match="no legal action"):
        c._read_mask({MASK_KEY: np.array([[True, False, False, False, False], [False] * 5])})


def test_buffer_is_reused_but_rollout_is_a_copy(make_collector):
    c = make_collector("PpoxToyCounter-v0", num_envs=1, num_steps=3)
    r1 = c.collect()
    saved = r1.obs.clone()
    c.collect()
    assert torch.equal(r1.obs, saved)


@pytest.mark.parametrize("env_id", ["PpoxToyMasked-v0", "Pendulum-v1", "PpoxToyNestedObs-v0"])
def test_device_side_storage_holds_the_same_rollout(make_collector, env_id):
    """The layout a GPU run uses (policy-side tensors on the device, one observation up and one
    action down per step), exercised on the CPU: the same rollout as host storage."""
    rollouts = []
    for device_storage in (False, True):
        c = make_collector(
            env_id, num_envs=3, num_steps=20, act_backend="torch", device_storage=device_storage
        )
        assert c.buffer.on_device is device_storage and c.lean is None
        rollouts.append([c.collect(), c.collect()])
    for a, b in zip(*rollouts):
        for name, x, y in zip(a._fields, a, b):
            if isinstance(x, dict):
                assert all(torch.equal(x[k], y[k]) for k in x), name
            elif x is not None:
                assert torch.equal(x, y), name
