"""The seven realms as switches and the PPO family (docs/design/course_map.md): n-step returns, recompute,
minibatch order, gradient clipping modes, initialization schemes, PPO-Penalty, REINFORCE.

Each test is built so that a wrong implementation fails it: hand-computed numbers for the math,
and for the learner an observation of what it actually trained on.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from ppox.config import Config, PolicyConfig
from ppox.core import adaptive_kl_coef, gae, kl_penalty, nstep_returns, reinforce_loss
from ppox.nn.actor_critic import ActorCritic
from ppox.training.learner import Learner, _complete, _segments
from ppox.training.update_step import NumpyBatch
from ppox.types import Batch, Rollout


def col(*xs: float) -> torch.Tensor:
    """A ``[T, 1]`` float64 column."""
    return torch.tensor(xs, dtype=torch.float64).unsqueeze(1)


def cfg_for(**kw) -> Config:
    base = dict(env_id="CartPole-v1", num_envs=2, num_steps=16, num_epochs=1, num_minibatches=1, anneal_lr=False,
                ent_coef=0.0, norm_adv="off", max_grad_norm=None, learning_rate=1e-3)  # fmt: skip
    base.update(kw)
    return Config().replace(**base).validate()


# --------------------------------------------------------------------------------------------
# n-step returns (DPPO's K-step returns; docs/design/advantages.md)
# --------------------------------------------------------------------------------------------


def test_nstep_returns_by_hand():
    r, nv = col(1, 2, 3, 4), col(10, 20, 30, 40)  # nv[t] = V(s_{t+1})
    zero = col(0, 0, 0, 0)
    # γ = 0.5, n = 2: R_t = r_t + γ r_{t+1} + γ² V(s_{t+2}); the last step bootstraps after one reward
    out = nstep_returns(r, nv, zero, zero, gamma=0.5, n=2)
    torch.testing.assert_close(
        out, col(1 + 1 + 0.25 * 20, 2 + 1.5 + 0.25 * 30, 3 + 2 + 0.25 * 40, 4 + 0.5 * 40)
    )
    # the episode terminates at t = 1: nothing crosses it and nothing bootstraps there
    term = col(0, 1, 0, 0)
    out = nstep_returns(r, nv, term, term, gamma=0.5, n=2)
    torch.testing.assert_close(out[:2], col(1 + 0.5 * 2, 2))
    # truncated at t = 1: the sum stops there but bootstraps from the final observation's value
    out = nstep_returns(r, nv, zero, term, gamma=0.5, n=2)
    torch.testing.assert_close(out[:2], col(1 + 0.5 * 2 + 0.25 * 20, 2 + 0.5 * 20))
    # n = 1 is the TD target
    torch.testing.assert_close(nstep_returns(r, nv, zero, zero, gamma=0.5, n=1), r + 0.5 * nv)
    with pytest.raises(ValueError, match="n must be >= 1"):
        nstep_returns(r, nv, zero, zero, gamma=0.5, n=0)


def test_nstep_with_n_at_least_T_is_the_lambda_1_return():
    g = torch.Generator().manual_seed(0)
    T, N = 9, 4
    r, v, nv = (torch.randn(T, N, generator=g, dtype=torch.float64) for _ in range(3))
    done = (torch.rand(T, N, generator=g) < 0.25).double()
    term = done * (torch.rand(T, N, generator=g) < 0.5).double()
    # as in a real rollout: inside an episode V(s_{t+1}) is the next step's V(s_t)
    nv[:-1] = torch.where(done[:-1].bool(), nv[:-1], v[1:])
    _, ret = gae(r, v, nv, term, done, gamma=0.9, lam=1.0)
    torch.testing.assert_close(nstep_returns(r, nv, term, done, gamma=0.9, n=T), ret)


# --------------------------------------------------------------------------------------------
# PPO-Penalty math (adaptive β and DPPO's hinge; docs/design/losses.md)
# --------------------------------------------------------------------------------------------


def test_kl_penalty_and_dppo_hinge_by_hand():
    kl = torch.tensor([0.02, 0.04])
    # no margin: β·kl
    torch.testing.assert_close(kl_penalty(kl, kl.mean(), coef=0.5), torch.tensor([0.01, 0.02]))
    # hinge at margin 0.02 with ξ = 1000 on the mean KL 0.03: + 1000·0.01² = 0.1 for every sample
    torch.testing.assert_close(kl_penalty(kl, kl.mean(), coef=0.5, margin=0.02, margin_coef=1000.0),
                               torch.tensor([0.11, 0.12]))  # fmt: skip
    # DPPO's setting (margin 2·KL_target, ξ = 1000) with target 0.01 and KL 0.05: 1000·(0.05 − 0.02)² = 0.9
    one = torch.tensor([0.05])
    torch.testing.assert_close(
        kl_penalty(one, one.mean(), coef=0.0, margin=0.02, margin_coef=1000.0), torch.tensor([0.9])
    )
    # below the margin the hinge is silent
    torch.testing.assert_close(
        kl_penalty(one, one.mean(), coef=0.0, margin=0.06, margin_coef=1000.0), torch.tensor([0.0])
    )


def test_adaptive_kl_coef_separate_factors():
    assert adaptive_kl_coef(1.0, 0.03, target=0.01, factor=1.5) == pytest.approx(
        1.5
    )  # 0.03 > 0.015
    assert adaptive_kl_coef(1.0, 0.004, target=0.01, factor=1.5) == pytest.approx(
        1 / 1.5
    )  # 0.004 < 0.00667
    assert adaptive_kl_coef(1.0, 0.001, target=0.01, factor=2.0, lower_factor=4.0) == pytest.approx(
        0.25
    )


# --------------------------------------------------------------------------------------------
# REINFORCE (reward-to-go with a baseline; docs/design/losses.md)
# --------------------------------------------------------------------------------------------


def two_step_episode(action: int = 0) -> Rollout:
    """One env, one two-step episode: rewards 1 then 2, terminated at t = 1, actions ``action``."""
    z = torch.zeros(2, 1)
    return Rollout(
        obs=torch.zeros(2, 1, 4), action=torch.full((2, 1), action), logp=torch.full((2, 1), math.log(0.5)),
        value=z, next_value=z, reward=torch.tensor([[1.0], [2.0]]), terminated=torch.tensor([[0.0], [1.0]]),
        done=torch.tensor([[0.0], [1.0]]), mask=None, last_obs=torch.zeros(1, 4),
    )  # fmt: skip


def zeroed_policy_model() -> ActorCritic:
    """π(a|s) = ½ for both actions whatever the trunk computes: zero logits layer."""
    torch.manual_seed(0)
    model = ActorCritic(
        spaces.Box(-1, 1, (4,), np.float32), spaces.Discrete(2), PolicyConfig(hidden_sizes=(8,))
    )
    nn.init.zeros_(model.head.logits.weight)
    nn.init.zeros_(model.head.logits.bias)
    return model


def test_reinforce_gradient_equals_the_hand_computed_one():
    # γ = 0.5: G_0 = 1 + 0.5·2 = 2, G_1 = 2. Loss = mean_t −G_t log π(a_t) with π = (½, ½) and a = 0,
    # so ∂loss/∂logits = mean_t G_t (π − e_0) = 2·(½, −½)... with the sign of −log: G (π − e_a)
    # = 2·(−½, ½) = (−1, 1) for both steps; their mean is (−1, 1).
    model = zeroed_policy_model()
    learner = Learner(
        model,
        cfg_for(algo="reinforce", baseline="none", gamma=0.5),
        torch.Generator().manual_seed(0),
    )
    learner.update(two_step_episode(action=0), progress=0.0)
    torch.testing.assert_close(model.head.logits.bias.grad, torch.tensor([-1.0, 1.0]))
    # the same by autograd on the formula itself
    z = torch.zeros(2, requires_grad=True)
    logp = torch.log_softmax(z, -1)[0].expand(2)
    reinforce_loss(torch.tensor([2.0, 2.0]), logp).mean().backward()
    torch.testing.assert_close(z.grad, torch.tensor([-1.0, 1.0]))


def test_reinforce_baselines():
    # running-mean baseline: the first batch uses its own mean return (2), so G − b = 0: no gradient
    model = zeroed_policy_model()
    learner = Learner(
        model,
        cfg_for(algo="reinforce", baseline="mean", gamma=0.5),
        torch.Generator().manual_seed(0),
    )
    m = learner.update(two_step_episode(), progress=0.0)
    torch.testing.assert_close(model.head.logits.bias.grad, torch.zeros(2))
    assert learner.baseline_mean == pytest.approx(2.0) and m["baseline"] == pytest.approx(2.0)
    # learned critic: advantages are G − V(s); the critic is trained on G (value loss > 0 here)
    model = zeroed_policy_model()
    learner = Learner(
        model,
        cfg_for(algo="reinforce", baseline="critic", gamma=0.5),
        torch.Generator().manual_seed(0),
    )
    r = two_step_episode()
    exp = learner.prepare(r)
    torch.testing.assert_close(exp.batch.ret, torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(exp.batch.adv, torch.tensor([2.0, 2.0]) - r.value.reshape(-1))
    assert learner.update(r, progress=0.0)["value_loss"] > 0


def test_reinforce_without_critic_leaves_unfinished_episodes_out():
    done = torch.tensor(
        [[0, 0], [1, 0], [0, 1], [0, 0]], dtype=torch.float32
    )  # env 0 ends at t=1, env 1 at t=2
    want = torch.tensor([[1, 1], [1, 1], [0, 1], [0, 0]], dtype=torch.bool)
    assert torch.equal(_complete(done), want)


# --------------------------------------------------------------------------------------------
# learner behaviour on real rollouts
# --------------------------------------------------------------------------------------------


@pytest.fixture
def rollout_and_model(make_collector):
    c = make_collector("CartPole-v1", num_envs=2, num_steps=16, seed=3)
    return c.collect(), c.model


def spy_minibatches(learner: Learner) -> list[tuple]:
    """Record (minibatch, parameters before its step) for every minibatch the learner trains on,
    through autograd or the NumPy step (whose minibatch is recorded as a Batch of tensors with
    the fields these tests read: obs, adv, value)."""
    seen: list[tuple] = []
    original = learner._minibatch

    def spy(mb, ent_coef):
        record = mb
        if isinstance(mb, NumpyBatch):
            t = torch.from_numpy
            record = Batch(
                t(mb.x), None, t(mb.old_logp), t(mb.old_value), t(mb.adv), t(mb.ret), None
            )
        seen.append((copy.deepcopy(record), copy.deepcopy(learner.model.state_dict())))
        return original(mb, ent_coef)

    learner._minibatch = spy  # type: ignore[method-assign]
    return seen


def test_critic_values_reproduce_the_collectors_values_including_bootstraps(make_collector):
    # the counter env truncates after 5 steps: final observations are needed for next_value
    c = make_collector("PpoxToyCounter-v0", num_envs=3, num_steps=12)
    r = c.collect()
    assert r.final_index is not None and r.final_index.numel() >= 3
    learner = Learner(c.model, cfg_for(num_steps=12, num_envs=3), torch.Generator())
    v, nv = learner.critic_values(r)
    torch.testing.assert_close(v, r.value)
    torch.testing.assert_close(nv, r.next_value)


@pytest.mark.parametrize("recompute", [False, True])
def test_recompute_advantage_uses_the_updated_critic(rollout_and_model, recompute):
    r, model = rollout_and_model
    cfg = cfg_for(
        num_epochs=2, recompute_adv=recompute, minibatch_order="fixed", learning_rate=0.05
    )
    learner = Learner(model, cfg, torch.Generator().manual_seed(0))
    seen = spy_minibatches(learner)
    learner.update(r, progress=0.0)
    (first, _), (second, params_after_epoch_1) = seen
    if not recompute:
        torch.testing.assert_close(second.adv, first.adv)
        torch.testing.assert_close(second.value, first.value)
        return
    assert not torch.allclose(second.adv, first.adv)  # the critic moved, so the advantages did
    twin = copy.deepcopy(model)
    twin.load_state_dict(params_after_epoch_1)
    with torch.no_grad():
        v = twin.value(r.obs.reshape(32, -1)).reshape(16, 2)
        nxt = torch.cat([v[1:], twin.value(r.last_obs).unsqueeze(0)])
        nxt = torch.where(r.done.bool(), torch.zeros_like(nxt), nxt)
        if r.final_index is not None:
            nxt.view(-1)[r.final_index] = twin.value(r.final_obs)
    adv, _ = gae(r.reward, v, nxt, r.terminated, r.done, gamma=cfg.ppo.gamma, lam=cfg.ppo.lam)
    fixed = torch.arange(32).reshape(16, 2).t().reshape(-1)
    torch.testing.assert_close(second.adv, adv.reshape(-1)[fixed])
    torch.testing.assert_close(
        second.value, v.reshape(-1)[fixed]
    )  # value clip's V_old is the recomputed V


def synthetic_rollout(T: int, N: int, done: torch.Tensor) -> Rollout:
    z = torch.zeros(T, N)
    obs = torch.arange(T * N, dtype=torch.float32).reshape(T, N, 1).expand(T, N, 4).contiguous()
    return Rollout(
        obs,
        torch.zeros(T, N, dtype=torch.long),
        z,
        z,
        z,
        z,
        z,
        done,
        None,
        last_obs=torch.zeros(N, 4),
    )


def order_of(learner: Learner, r: Rollout) -> list[list[int]]:
    """The sample indices (t·N + n, read back from the observation) of each epoch, in order."""
    seen = spy_minibatches(learner)
    learner.update(r, progress=0.0)
    per_epoch = len(seen) // learner.cfg.ppo.num_epochs
    flat = [int(x) for mb, _ in seen for x in mb.obs[:, 0]]
    size = len(flat) // learner.cfg.ppo.num_epochs
    assert per_epoch == learner.cfg.ppo.num_minibatches
    return [flat[i * size : (i + 1) * size] for i in range(learner.cfg.ppo.num_epochs)]


def test_minibatch_orders():
    T, N = 6, 2
    done = torch.zeros(T, N)
    done[1, 0] = done[4, 0] = done[2, 1] = 1  # env 0: t 0-1 | 2-4 | 5; env 1: t 0-2 | 3-5
    r = synthetic_rollout(T, N, done)
    model = ActorCritic(
        spaces.Box(-1e3, 1e3, (4,), np.float32), spaces.Discrete(2), PolicyConfig(hidden_sizes=(4,))
    )

    def learner(order: str, epochs: int = 3) -> Learner:
        return Learner(model, cfg_for(num_steps=T, num_epochs=epochs, num_minibatches=3, minibatch_order=order),
                       torch.Generator().manual_seed(1))  # fmt: skip

    env_major = [t * N + n for n in range(N) for t in range(T)]
    fixed = order_of(learner("fixed"), r)
    assert fixed == [env_major] * 3
    segments = [[t * N + 0 for t in (0, 1)], [t * N + 0 for t in (2, 3, 4)], [5 * N + 0], [t * N + 1 for t in (0, 1, 2)],
                [t * N + 1 for t in (3, 4, 5)]]  # fmt: skip
    assert [s.tolist() for s in _segments(done)] == segments
    epochs = order_of(learner("trajectories", epochs=4), r)
    for epoch in epochs:  # a permutation of whole segments, each in time order
        rebuilt, i = [], 0
        while i < len(epoch):
            seg = next(s for s in segments if s[0] == epoch[i])
            assert epoch[i : i + len(seg)] == seg
            rebuilt.append(seg)
            i += len(seg)
        assert sorted(rebuilt) == sorted(segments)
    assert len({tuple(e) for e in epochs}) > 1  # reshuffled between epochs
    trans = order_of(learner("transitions"), r)
    assert all(sorted(e) == list(range(T * N)) for e in trans) and trans[0] != env_major


# --------------------------------------------------------------------------------------------
# gradient clipping modes (the "免死金牌" realm; docs/design/losses.md)
# --------------------------------------------------------------------------------------------


def grad_of(model: ActorCritic, r: Rollout, cfg: Config) -> torch.Tensor:
    """The unclipped flat gradient of the first minibatch's loss (a twin learner, lr 0)."""
    twin = copy.deepcopy(model)
    ln = Learner(
        twin, cfg.replace(grad_clip="norm", max_grad_norm=None), torch.Generator().manual_seed(0)
    )
    ln.optimizer.apply = lambda: None  # type: ignore[method-assign]
    ln.update(r, progress=0.0)
    return ln.flat.grad.clone()


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, math.inf])
def test_grad_norm_is_the_p_norm_and_clipping_brings_it_to_max(rollout_and_model, p):
    r, model = rollout_and_model
    cfg = cfg_for(grad_norm_type=p)
    raw = grad_of(model, r, cfg)
    want = torch.linalg.vector_norm(raw, ord=p)
    ln = Learner(
        copy.deepcopy(model),
        cfg.replace(max_grad_norm=float(want) / 4),
        torch.Generator().manual_seed(0),
    )
    m = ln.update(r, progress=0.0)
    assert m["grad_norm"] == pytest.approx(float(want), rel=1e-5)  # the pre-clip norm is logged
    assert float(torch.linalg.vector_norm(ln.flat.grad, ord=p)) == pytest.approx(
        float(want) / 4, rel=1e-4
    )
    torch.testing.assert_close(ln.flat.grad, raw * (float(want) / 4) / (float(want) + 1e-6))


def test_grad_clip_by_value(rollout_and_model):
    r, model = rollout_and_model
    raw = grad_of(model, r, cfg_for())
    bound = float(raw.abs().max()) / 3
    ln = Learner(
        copy.deepcopy(model),
        cfg_for(grad_clip="value", grad_clip_value=bound),
        torch.Generator().manual_seed(0),
    )
    ln.update(r, progress=0.0)
    torch.testing.assert_close(ln.flat.grad, raw.clamp(-bound, bound))


def test_grad_clip_ignore_really_skips(rollout_and_model):
    r, model = rollout_and_model
    norm = float(torch.linalg.vector_norm(grad_of(model, r, cfg_for())))
    before = copy.deepcopy(model.state_dict())
    ln = Learner(model, cfg_for(grad_clip="ignore", max_grad_norm=norm / 2, num_epochs=2, num_minibatches=2),
                 torch.Generator().manual_seed(0))  # fmt: skip
    m = ln.update(r, progress=0.0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # every step was skipped: nothing moved
    assert ln.optimizer.state_dict()["state"] == {}  # Adam never stepped either
    assert m["skipped_updates"] == 4 and ln.skipped_total == 4
    # above the threshold: steps happen
    ln = Learner(
        model,
        cfg_for(grad_clip="ignore", max_grad_norm=norm * 100),
        torch.Generator().manual_seed(0),
    )
    assert ln.update(r, progress=0.0)["skipped_updates"] == 0
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


# --------------------------------------------------------------------------------------------
# PPO-Penalty in the learner
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lr", "direction"), [(0.05, "up"), (1e-7, "down")])
def test_kl_coefficient_moves_the_right_way(rollout_and_model, lr, direction):
    r, model = rollout_and_model
    cfg = cfg_for(
        algo="ppo-penalty",
        kl_coef=0.3,
        kl_target=0.01,
        learning_rate=lr,
        num_epochs=4,
        num_minibatches=2,
    )
    ln = Learner(model, cfg, torch.Generator().manual_seed(0))
    m = ln.update(r, progress=0.0)
    assert m["kl_coef"] == 0.3  # the β used during this update
    if direction == "up":
        assert m["kl_after_update"] > 0.015 and ln.kl_coef == pytest.approx(0.6)
    else:
        assert m["kl_after_update"] < 0.01 / 1.5 and ln.kl_coef == pytest.approx(0.15)
    assert ln.state_dict()["kl_coef"] == ln.kl_coef  # checkpointed


def test_penalty_gradient_includes_the_kl_term(rollout_and_model):
    # at the first step ρ = 1, so k3's gradient is 0 and the penalty learner matches −ρA's gradient;
    # after moving the policy, a larger β must change the gradient
    r, model = rollout_and_model
    moved = copy.deepcopy(model)
    with torch.no_grad():
        moved.head.logits.bias += torch.tensor([0.3, -0.3])
    g1 = grad_of(moved, r, cfg_for(algo="ppo-penalty", kl_coef=0.0))
    g2 = grad_of(moved, r, cfg_for(algo="ppo-penalty", kl_coef=5.0))
    assert not torch.allclose(g1, g2)


# --------------------------------------------------------------------------------------------
# initialization schemes (the "笨鸟先飞" realm; docs/design/course_map.md)
# --------------------------------------------------------------------------------------------


def test_init_schemes():
    obs = spaces.Box(-1, 1, (64,), np.float32)
    torch.manual_seed(0)

    def trunk0(scheme: str) -> nn.Linear:
        m = ActorCritic(
            obs,
            spaces.Discrete(3),
            PolicyConfig(hidden_sizes=(256,), init=scheme, activation="relu"),
        )
        return m.trunks["actor"][0]

    gain = math.sqrt(2)
    x = trunk0("xavier")
    bound = gain * math.sqrt(6 / (64 + 256))
    assert (
        x.weight.abs().max() <= bound
        and x.weight.abs().max() > 0.9 * bound
        and torch.all(x.bias == 0)
    )
    n = trunk0("normal")
    assert n.weight.std().item() == pytest.approx(gain / math.sqrt(64), rel=0.05) and torch.all(
        n.bias == 0
    )
    t = trunk0("torch")
    assert t.bias.abs().sum() > 0  # PyTorch's default: uniform biases
    o = trunk0("orthogonal")
    w = o.weight.detach().double()
    torch.testing.assert_close(
        w.T @ w, gain**2 * torch.eye(64, dtype=torch.float64), atol=1e-5, rtol=0
    )


def test_old_configs_with_ortho_init_still_load():
    d = Config().to_dict()
    del d["policy"]["init"]
    d["policy"]["ortho_init"] = False
    assert Config.from_dict(d).policy.init == "torch"
    d["policy"]["ortho_init"] = True
    assert Config.from_dict(d).policy.init == "orthogonal"


@pytest.mark.parametrize(
    ("field", "value"),
    [("algo", "ppo2"), ("advantage", "td"), ("minibatch_order", "random"), ("grad_clip", "sometimes"),
     ("baseline", "median"), ("init", "zeros"), ("n_step", 0), ("grad_norm_type", 0.0), ("kl_raise", 0.5)],
)  # fmt: skip
def test_bad_switch_values_are_named(field, value):
    from ppox.errors import ConfigError

    with pytest.raises(ConfigError, match=f"{field}="):
        Config().replace(**{field: value}).validate()
    with pytest.raises(ConfigError, match="'ignore' needs a max_grad_norm"):
        Config().replace(grad_clip="ignore", max_grad_norm=None).validate()
