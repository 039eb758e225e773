"""Recurrent policies (memory=lstm|gru): the core's math, the layout of sequences, the collector's
state, the config's rules, ``Policy.predict`` with a state, and a short run with every head."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import ppox.envs  # noqa: F401  (registers the NoVel ids)
from ppox.config import Config
from ppox.errors import ConfigError
from ppox.io.policy import Policy, build_model
from ppox.nn.memory import MemoryCore, Recurrence, cut_sequences
from ppox.training.learner import Learner, flatten_rollout


def _loop(core: MemoryCore, x: torch.Tensor, state: torch.Tensor, starts: torch.Tensor):
    """The reference: one step at a time through the layer, the state zeroed at each start."""
    outs = []
    for k in range(x.shape[0]):
        state = torch.where(starts[k].unsqueeze(1), torch.zeros_like(state), state)
        out, hx = core.rnn(x[k : k + 1], core._split(state))
        state = core._join(hx)
        outs.append(out[0])
    return torch.stack(outs), state


# --- the core -----------------------------------------------------------------------------------
def test_lstm_reset_matches_numbers_worked_by_hand() -> None:
    """A 1-unit LSTM whose gates are all σ(0) = ½ and whose cell input is tanh(x):
    c_t = ½·c_{t-1} + ½·tanh(x_t) and h_t = ½·tanh(c_t). With a reset before step 2 the carried
    c_1 is dropped; without it, it is not; both worked out here by hand."""
    core = MemoryCore("lstm", 1, 1)
    with torch.no_grad():
        for p in core.rnn.parameters():
            p.zero_()
        core.rnn.weight_ih_l0[2, 0] = 1.0  # gate order i, f, g, o: g = tanh(x)
    x = torch.tensor([0.5, 1.0, -0.3]).reshape(3, 1, 1)
    state = torch.tensor([[0.0, 0.8]])  # h0 = 0, c0 = 0.8
    no_reset = torch.tensor([[False], [False], [False]])
    reset = torch.tensor([[False], [True], [False]])

    def by_hand(reset_at_2: bool) -> list[float]:
        c, hs = 0.8, []
        for t, xt in enumerate([0.5, 1.0, -0.3]):
            if t == 1 and reset_at_2:
                c = 0.0
            c = 0.5 * c + 0.5 * math.tanh(xt)
            hs.append(0.5 * math.tanh(c))
        return hs

    out, _ = core.sequence(x, state, no_reset)
    assert out.flatten().tolist() == pytest.approx(by_hand(False), abs=1e-6)
    out, final = core.sequence(x, state, reset, need_final=True)
    assert out.flatten().tolist() == pytest.approx(by_hand(True), abs=1e-6)
    assert by_hand(True)[1] != pytest.approx(by_hand(False)[1], abs=1e-3)  # the reset matters
    c3 = 0.5 * (0.5 * math.tanh(1.0)) + 0.5 * math.tanh(-0.3)
    assert final.flatten().tolist() == pytest.approx([0.5 * math.tanh(c3), c3], abs=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("K", [1, 2, 7])
def test_fused_sequence_equals_the_step_by_step_loop(kind: str, K: int) -> None:
    torch.manual_seed(K)
    core = MemoryCore(kind, 3, 5)
    C = 6
    x = torch.randn(K, C, 3)
    state = torch.randn(C, core.state_size)
    starts = torch.rand(K, C) < 0.35
    starts[:, 0] = False  # one sequence without any start: the uncut path within the cut one
    ref_out, ref_final = _loop(core, x, state, starts)
    out, final = core.sequence(x, state, starts, need_final=True)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(final, ref_final, atol=1e-6, rtol=1e-5)
    out2, _ = core.sequence(x, state, starts)  # the padded call without packing
    torch.testing.assert_close(out2, ref_out, atol=1e-6, rtol=1e-5)


def test_cut_lays_segments_side_by_side() -> None:
    starts = torch.tensor(
        [[True, False], [False, False], [True, False], [False, True]]
    )  # [K=4, C=2]
    x = torch.arange(8.0).reshape(4, 2, 1)
    cut = cut_sequences(x, starts)
    assert cut is not None and cut.segments == 4  # seq 0: [0,1] [2,3]; seq 1: [0,1,2] [3]
    assert cut.lengths.tolist() == [2, 2, 3, 1]
    assert cut.first.tolist() == [0, 2] and cut.last.tolist() == [1, 3]
    assert cut.padded[:, :, 0].t().tolist() == [[0, 2, 0], [4, 6, 0], [1, 3, 5], [7, 0, 0]]
    assert cut_sequences(x, torch.zeros(4, 2, dtype=torch.bool)) is None


# --- truncated BPTT through the model -------------------------------------------------------------
def _model(memory: str = "lstm", shared: bool = False):
    cfg = Config().replace(
        env_id="ppox/CartPoleNoVel-v1", memory=memory, memory_size=8, hidden_sizes=(8,),
        memory_shared=shared, init="torch",
    )  # fmt: skip
    torch.manual_seed(0)
    return build_model(cfg)[0]


def _episode_data(T: int, N: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, N, 2, generator=g)
    starts = torch.rand(T, N, generator=g) < 0.15
    actions = torch.randint(0, 2, (T, N), generator=g)
    weights = torch.randn(T, N, generator=g)
    return obs, starts, actions, weights


def _seq_loss(model, obs, starts, actions, weights, state0, K):
    """The loss over [T, N] laid out as N·T/K sequences of K (as flatten_rollout does), each
    starting from the state the reference loop carried (detached) to its first step."""
    T, N = starts.shape

    def seq(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(T // K, K, N, *x.shape[2:]).movedim(2, 0).reshape(-1, *x.shape[2:])

    with torch.no_grad():  # the states at the sequence starts, carried by the same network
        chunk_states = model.sequence_states(obs, state0, starts, K)  # [T/K, N, D]
    state = chunk_states.transpose(0, 1).reshape(-1, state0.shape[1])
    dist, value = model(seq(obs), None, Recurrence(state, seq(starts), K))
    return (dist.log_prob(seq(actions)) * seq(weights)).sum() + (value * seq(weights)).sum()


def _loop_loss(model, obs, starts, actions, weights, state0, K):
    """The same loss, one step at a time, the state detached every K steps (K ≥ T: never)."""
    T, _ = starts.shape
    state, total = state0, 0.0
    for t in range(T):
        if t % K == 0:
            state = state.detach()
        dist, value, state = model.step(obs[t], None, state, starts[t])
        total = total + (dist.log_prob(actions[t]) * weights[t]).sum() + (value * weights[t]).sum()
    return total


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("memory,shared", [("lstm", False), ("gru", True)])
def test_truncated_bptt_equals_full_autograd_when_k_covers_the_episode(memory, shared) -> None:
    model = _model(memory, shared)
    T, N = 12, 3
    obs, starts, actions, weights = _episode_data(T, N)
    state0 = torch.randn(N, model.state_size) * 0.5
    full = _grads(model, _loop_loss(model, obs, starts, actions, weights, state0, K=T))
    fused = _grads(model, _seq_loss(model, obs, starts, actions, weights, state0, K=T))
    for a, b in zip(full, fused):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    # shorter sequences are the loop with the state detached every K steps, and differ from full
    trunc = _grads(model, _seq_loss(model, obs, starts, actions, weights, state0, K=4))
    ref = _grads(model, _loop_loss(model, obs, starts, actions, weights, state0, K=4))
    for a, b in zip(ref, trunc):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    assert any(not torch.allclose(a, b, atol=1e-4) for a, b in zip(full, trunc))


def test_a_wrong_reset_changes_the_gradient() -> None:
    model = _model()
    T, N = 8, 2
    obs, starts, actions, weights = _episode_data(T, N, seed=3)
    starts[:] = False
    starts[4, 0] = True
    state0 = torch.zeros(N, model.state_size)
    right = _grads(model, _seq_loss(model, obs, starts, actions, weights, state0, K=T))
    moved = starts.clone()
    moved[4, 0], moved[5, 0] = False, True  # the reset one step late
    wrong = _grads(model, _seq_loss(model, obs, moved, actions, weights, state0, K=T))
    assert any(not torch.allclose(a, b, atol=1e-5) for a, b in zip(right, wrong))


# --- sequences in the learner ---------------------------------------------------------------------
def test_flatten_rollout_in_sequence_order_and_minibatches_of_whole_sequences() -> None:
    from ppox.types import Rollout

    T, N, K = 8, 3, 4
    idx = torch.arange(T * N, dtype=torch.float32).reshape(T, N)  # value = t·N + n
    z = torch.zeros(T, N)
    r = Rollout(
        obs=idx.unsqueeze(-1), action=z.long(), logp=z, value=idx, next_value=z, reward=z,
        terminated=z, done=z, mask=None, state=idx.unsqueeze(-1).repeat(1, 1, 2),
        starts=torch.zeros(T, N, dtype=torch.bool),
    )  # fmt: skip
    b = flatten_rollout(r, z, z, seq_len=K)
    # sequence c = n·(T/K) + j holds steps j·K … j·K+K−1 of env n
    expect = [(j * K + k) * N + n for n in range(N) for j in range(T // K) for k in range(K)]
    assert b.value.tolist() == expect
    cfg = Config().replace(
        env_id="ppox/CartPoleNoVel-v1", memory="lstm", num_envs=N, num_steps=T, bptt=K,
        num_minibatches=3,
    )  # fmt: skip
    model = build_model(cfg)[0]
    learner = Learner(model, cfg, torch.Generator().manual_seed(0))
    mbs = learner._minibatches(learner.prepare(r))
    assert len(mbs) == 3 and sorted(torch.cat(mbs).tolist()) == list(range(T * N))
    for mb in mbs:
        assert mb.shape[0] == 2 * K
        for seq in mb.reshape(-1, K):
            assert seq[0] % K == 0 and seq.tolist() == list(range(int(seq[0]), int(seq[0]) + K))
    rec = learner.recurrence(b.take(mbs[0]))
    assert rec is not None and rec.length == K and rec.state.shape == (2, 2)
    assert (
        rec.state[:, 0].tolist() == b.value[mbs[0][::K]].tolist()
    )  # the state at each sequence start


def test_collector_stores_the_state_and_the_episode_starts() -> None:
    from ppox.training.trainer import Trainer

    cfg = Config().replace(
        env_id="ppox/CartPoleNoVel-v1", memory="gru", memory_size=4, hidden_sizes=(8,), num_envs=3,
        num_steps=64, total_steps=192, eval_every=0, tensorboard=False, progress=False,
    )  # fmt: skip
    import tempfile

    trainer = Trainer.create(cfg, tempfile.mkdtemp() + "/run")
    try:
        c = trainer.collector
        r = c.collect()
        assert r.starts is not None and r.state is not None
        assert r.starts[0].all()  # a fresh reset: every env begins an episode
        torch.testing.assert_close(r.starts[1:].float(), r.done[:-1])
        assert r.state[0].abs().sum() == 0  # the initial state
        assert r.done.sum() > 0  # episodes did end inside the rollout
        # the carried state: from the state and obs of step t the model gives the state of t+1
        with torch.no_grad():
            _, _, nxt = c.model.step(r.obs[10], None, r.state[10], r.starts[10])
        torch.testing.assert_close(nxt, r.state[11])
        r2 = c.collect()
        torch.testing.assert_close(r2.starts[0].float(), r.done[-1])
    finally:
        trainer.envs.close()
        trainer.release_run_dir()


# --- the config's rules ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides,words",
    [
        ({"num_steps": 32, "bptt": 5}, "bptt=5 must divide num_steps=32"),
        ({"num_steps": 32, "bptt": 16, "num_envs": 1, "num_minibatches": 4}, "2 sequences"),
        ({"minibatch_order": "trajectories"}, "minibatch_order='trajectories' is not available"),
        ({"recompute_adv": True}, "recompute_adv=True is not available"),
        ({"nonfinite_env": "skip"}, "nonfinite_env='skip' is not available"),
        ({"algo": "reinforce", "baseline": "mean"}, "baseline='mean' is not available"),
        ({"shared_trunk": True}, "needs memory_shared=True"),
    ],
)
def test_memory_rules_name_the_field(overrides, words) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Config().replace(memory="lstm", **overrides).validate()


def test_memory_rules_do_not_touch_feed_forward_configs() -> None:
    Config().replace(bptt=5, minibatch_order="trajectories", recompute_adv=True).validate()


def test_numpy_backends_fall_back_or_refuse_for_memory() -> None:
    from ppox.training import backends

    cfg = Config().replace(memory="lstm")
    model = build_model(cfg)[0]
    kind, why = backends.update_backend(cfg, model)
    assert kind == "autograd" and "memory" in why
    with pytest.raises(
        ConfigError, match="update_backend='numpy' cannot serve this run: the policy has memory"
    ):
        backends.update_backend(cfg.replace(update_backend="numpy"), model)


# --- Policy.predict with a state ------------------------------------------------------------------
def test_predict_carries_the_state_like_sb3_contrib() -> None:
    cfg = Config().replace(env_id="ppox/CartPoleNoVel-v1", memory="lstm", memory_size=4)
    model, norm = build_model(cfg)
    policy = Policy(model, norm, cfg)
    obs = np.array([0.01, -0.02], dtype=np.float32)
    a, state = policy.predict(obs)
    assert np.shape(a) == () and state.shape == (16,) and state.dtype == np.float32
    a2, state2 = policy.predict(obs, state=state, episode_start=np.array([False]))
    assert not np.allclose(state2, state)  # the state moved on
    _, fresh = policy.predict(obs, state=state, episode_start=np.array([True]))
    np.testing.assert_allclose(
        fresh, state, atol=1e-6
    )  # a start resets: the same as the first step
    batch = np.stack([obs, obs * 2])
    actions, states = policy.predict(batch)
    assert actions.shape == (2,) and states.shape == (2, 16)
    with pytest.raises(ValueError, match=r"state has shape \(3,\)"):
        policy.predict(obs, state=np.zeros(3))
    with pytest.raises(ValueError, match="episode_start has 1 entries"):
        policy.predict(batch, state=states, episode_start=np.array([True]))


def test_predict_without_memory_returns_none_as_the_state_when_asked() -> None:
    cfg = Config().replace(env_id="CartPole-v1")
    model, norm = build_model(cfg)
    policy = Policy(model, norm, cfg)
    obs = np.zeros(4, dtype=np.float32)
    assert np.shape(policy.predict(obs)) == ()
    a, state = policy.predict(obs, state=None, episode_start=np.array([True]))
    assert state is None and np.shape(a) == ()


# --- the partially observed tasks -----------------------------------------------------------------
@pytest.mark.parametrize(
    "env_id,size,limit",
    [
        ("ppox/CartPoleNoVel-v1", 2, 500),
        ("ppox/PendulumNoVel-v1", 2, 200),
        ("ppox/LunarLanderNoVel-v3", 5, 1000),
    ],
)
def test_no_velocity_envs_hide_the_velocities(env_id, size, limit) -> None:
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (size,) and env.observation_space.contains(obs)
    assert env.spec is not None and env.spec.max_episode_steps == limit
    full = gym.make(env_id.replace("ppox/", "").replace("NoVel", ""))
    full_obs, _ = full.reset(seed=0)
    np.testing.assert_allclose(obs, full_obs[_keep(env)])
    env.close()
    full.close()


def _keep(env: gym.Env) -> list[int]:
    while not hasattr(env, "keep"):
        env = env.env  # type: ignore[attr-defined]
    return env.keep  # type: ignore[no-any-return]


# --- learning with memory, and every head through the memory stage ---------------------------------
FAST = dict(
    num_envs=8, num_steps=16, num_epochs=4, num_minibatches=2, learning_rate=3e-3, anneal_lr=False,
    hidden_sizes=(32,), memory_size=32, gamma=0.9, eval_every=0, eval_episodes=40, tensorboard=False,
    progress=False,
)  # fmt: skip


@pytest.mark.parametrize("memory", ["lstm", "gru"])
def test_memory_recalls_a_cue_that_a_feed_forward_policy_cannot(memory, tmp_path) -> None:
    import toy_envs  # noqa: F401

    import ppox

    cfg = Config().replace(env_id="PpoxToyCueRecall-v0", total_steps=4096, seed=1, bptt=8, **FAST)
    recalled = ppox.train(cfg.replace(memory=memory), run_dir=tmp_path / memory)
    assert recalled["eval_return_mean"] >= 0.9, recalled["eval_return_mean"]
    blind = ppox.train(cfg, run_dir=tmp_path / "none")
    assert blind["eval_return_mean"] <= 0.7, blind["eval_return_mean"]


HEADS = {
    "discrete-masked": ("PpoxToyMasked-v0", {}),
    "gaussian": ("PpoxToyContinuousBandit-v0", {}),
    "gaussian-state-sigma": ("PpoxToyContinuousBandit-v0", {"sigma_mode": "state"}),
    "multidiscrete": ("PpoxToyMultiDiscreteBandit-v0", {}),
    "hybrid-autoregressive": ("PpoxToyHybridBandit-v0", {"hybrid_mode": "autoregressive"}),
    "nested-dict-obs-and-action": ("PpoxToyNestedDictBandit-v0", {}),
    "image-obs": ("PpoxToyImageBandit-v0", {"cnn_features": 16}),
}


@pytest.mark.parametrize("name", list(HEADS))
def test_every_head_and_encoder_runs_through_the_memory_stage(name, tmp_path) -> None:
    import toy_envs

    import ppox

    env_id, overrides = HEADS[name]
    cfg = Config().replace(
        env_id=env_id, memory="gru", total_steps=512, seed=1, **{**FAST, **overrides}
    )
    summary = ppox.train(cfg, run_dir=tmp_path / name)
    assert summary["total_steps"] == 512 and math.isfinite(summary["eval_return_mean"])
    policy = ppox.load_policy(tmp_path / name)
    env = toy_envs.gym.make(env_id)
    obs, info = env.reset(seed=5)
    action, state = policy.predict(obs, mask=info.get("action_mask"))
    assert env.action_space.contains(action) and state.shape == (policy.model.state_size,)
    obs, *_, info = env.step(action)
    action, _ = policy.predict(
        obs, mask=info.get("action_mask"), state=state, episode_start=np.array([False])
    )
    assert env.action_space.contains(action)
    env.close()


def test_collector_resets_after_collecting() -> None:
    """reset() after collect() (which runs in inference mode) starts every env's episode again."""
    from ppox.config import EnvConfig, PolicyConfig
    from ppox.envs.make import make_vec_env, probe_spaces
    from ppox.nn.actor_critic import ActorCritic
    from ppox.training.normalizers import ObsNormalizer, RewardScaler
    from ppox.training.rollout import Collector

    e = EnvConfig(env_id="CartPole-v1", num_envs=2)
    o, a = probe_spaces(e)
    m = ActorCritic(o, a, PolicyConfig(memory="lstm", memory_size=4))
    norm = ObsNormalizer(m.obs_layout.norm_shape, enabled=False, clip=10.0)
    scaler = RewardScaler(2, enabled=False, gamma=0.99, clip=10.0)
    c = Collector(
        make_vec_env(e), m, norm, scaler, 8, torch.device("cpu"), torch.Generator().manual_seed(0)
    )
    c.reset([1, 2])
    c.collect()
    c.reset([3, 4])
    assert c.start.all() and c.state.abs().sum() == 0
    c.envs.close()


# --- POPGym ---------------------------------------------------------------------------------------
def test_popgym_ids_register_on_demand_and_train_with_memory(tmp_path) -> None:
    pytest.importorskip("popgym")
    import ppox

    cfg = Config().replace(
        env_id="popgym-RepeatFirstEasy-v0", memory="gru", memory_size=8, hidden_sizes=(8,), num_envs=2,
        num_steps=51, total_steps=102, eval_every=0, eval_episodes=1, tensorboard=False, progress=False,
    )  # fmt: skip
    summary = ppox.train(cfg, run_dir=tmp_path / "pg")
    assert summary["total_steps"] == 102 and -1.0 <= summary["eval_return_mean"] <= 1.0


def test_a_popgym_id_without_the_package_names_what_to_install(monkeypatch) -> None:
    import sys

    from ppox.config import EnvConfig
    from ppox.envs.make import make_env
    from ppox.errors import EnvError

    monkeypatch.setitem(sys.modules, "popgym", None)  # as if it were not installed
    with pytest.raises(
        EnvError, match=r"popgym package is not installed: pip install 'ppox\[popgym\]'"
    ):
        make_env(EnvConfig(env_id="popgym-NoSuchTask-v0"))
