"""The PPO update (src/ppox/training/learner.py) and two tiny learning runs (src/ppox/training/trainer.py)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

import ppox
from ppox.config import Config, PolicyConfig
from ppox.nn.actor_critic import ActorCritic
from ppox.training.learner import Learner
from ppox.training.optim import FlatAdam
from ppox.training.trainer import Trainer
from ppox.types import Batch, Rollout

OBS = spaces.Box(-1, 1, (4,), np.float32)
CPU = torch.device("cpu")


def flat(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.reshape(-1, *x.shape[2:])


def make_batch(space: spaces.Space, n: int, *, seed: int = 0, ret_scale: float = 1.0,
               adv: torch.Tensor | None = None, policy: PolicyConfig | None = None) -> tuple[ActorCritic, Batch]:  # fmt: skip
    """A model and a batch sampled from it: actions/logp/values as the collector would store."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = ActorCritic(OBS, space, policy or PolicyConfig(hidden_sizes=(16,)))
    obs = torch.rand(n, 4, generator=g) * 2 - 1
    with torch.no_grad():
        dist, value = model(obs)
        action, logp = dist.sample_log_prob(g)
    if adv is None:
        adv = torch.randn(n, generator=g)
    ret = torch.randn(n, generator=g) * ret_scale
    return model, Batch(obs, action, logp, value, adv, ret, None)


def cfg_for(**kw) -> Config:
    base = dict(num_steps=8, num_envs=1, num_epochs=1, num_minibatches=1, learning_rate=1e-3)
    base.update(kw)
    return Config().replace(**base).validate()


def params_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


# --------------------------------------------------------------------------------------------
# The stored log-probabilities are the policy's: ratio 1 before the first step
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("act_backend", ["torch", "auto"])
@pytest.mark.parametrize(
    "env_id, exact",
    [("PpoxToyRecording-v0", True), ("PpoxToyMasked-v0", True), ("CartPole-v1", True),
     ("Pendulum-v1", False), ("PpoxToyContinuousBandit-v0", False)],
)  # fmt: skip
def test_fresh_rollout_has_log_ratio_zero(make_collector, env_id, exact, act_backend):
    c = make_collector(env_id, num_envs=4, num_steps=32, policy=PolicyConfig(policy_init_gain=1.0, init_log_std=-0.5),
                       act_backend=act_backend)  # fmt: skip
    assert (c.lean is not None) == (act_backend == "auto")  # every env here has an MLP policy
    r = c.collect()
    with torch.no_grad():
        dist, value = c.model(flat(r.obs), flat(r.mask))
        log_ratio = dist.log_prob(flat(r.action)) - flat(r.logp)
    exact = exact and act_backend == "torch"
    if act_backend == "torch":
        assert torch.equal(value, flat(r.value))
    else:  # the NumPy acting path (ppox.nn.lean) agrees to float32 rounding
        torch.testing.assert_close(value, flat(r.value), rtol=1e-5, atol=1e-5)
    if exact:
        # categorical: logp is a gather from the same log_softmax, equal up to a few ulps
        # (the CPU's vectorized log_softmax may round differently at 4 rows than at 128)
        assert log_ratio.abs().max() <= 1e-6
    else:
        # Gaussian: the acting path computes the density from the noise (z = ε), log_prob
        # recomputes z = (a − μ)/σ; they agree up to float32 rounding
        assert log_ratio.abs().max() < 1e-5
    # the learner's first minibatch sees ratio 1: no clipping, KL estimate ~0 (a few ulps when
    # torch both acts and trains; the NumPy acting path and the fused gradient agree to rounding)
    update_backend = "autograd" if act_backend == "torch" else "auto"
    cfg = cfg_for(
        num_steps=32, num_envs=4, num_minibatches=1, num_epochs=1, update_backend=update_backend
    )
    n = r.reward.numel()
    batch = Batch(
        flat(r.obs),
        flat(r.action),
        flat(r.logp),
        flat(r.value),
        torch.randn(n),
        torch.randn(n),
        flat(r.mask),
    )
    m = Learner(c.model, cfg, torch.Generator().manual_seed(0)).update(batch, progress=0.0)
    assert m["clip_fraction"] == 0.0
    assert m["approx_kl"] < (1e-12 if exact else 1e-10)


# --------------------------------------------------------------------------------------------
# Degenerate batches
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "space", [spaces.Discrete(3), spaces.Box(-1, 1, (2,), np.float32)], ids=["discrete", "box"]
)
@pytest.mark.parametrize("norm_adv", ["minibatch", "batch", "off"])
def test_single_sample_minibatch_is_finite(space, norm_adv):
    cfg = cfg_for(
        num_steps=1, num_envs=1, num_minibatches=1, num_epochs=3, norm_adv=norm_adv, ent_coef=0.01
    )
    assert cfg.minibatch_size == 1
    model, batch = make_batch(space, 1)
    before = params_of(model)
    m = Learner(model, cfg, torch.Generator().manual_seed(0)).update(batch, progress=0.0)
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name
    assert any(not torch.equal(before[k], p) for k, p in model.named_parameters())  # it did learn
    for k, v in m.items():
        if k == "explained_variance":
            assert (
                v is None
            )  # undefined for a batch whose returns have no variance: an empty cell, not NaN
        else:
            assert math.isfinite(v), k
    assert m["updates"] == 3 and m["early_stop"] == 0


@pytest.mark.parametrize("backend", ["autograd", "auto"])
@pytest.mark.parametrize("norm_adv", ["minibatch", "batch", "off"])
def test_all_equal_advantages_are_finite_and_leave_the_actor_alone(norm_adv, backend):
    """Normalized all-equal advantages are 0: no policy gradient (ent_coef 0), so Adam leaves
    the actor's parameters exactly unchanged while the critic still learns. With `off` the
    same advantages (2.5 everywhere) are a policy gradient: the loss is −ρ·2.5 (−2.5 at the
    first step, ρ clipped to ≤ 1.2 after) and the actor moves."""
    cfg = cfg_for(num_steps=16, num_envs=1, num_minibatches=4, num_epochs=2, norm_adv=norm_adv,
                  update_backend=backend)  # fmt: skip
    model, batch = make_batch(spaces.Discrete(3), 16, adv=torch.full((16,), 2.5))
    before = params_of(model)
    m = Learner(model, cfg, torch.Generator().manual_seed(0)).update(batch, progress=0.0)
    assert all(math.isfinite(v) for v in m.values())
    assert m["policy_loss"] == 0.0 if norm_adv != "off" else -2.5 * 1.2 <= m["policy_loss"] < -2.4
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all()
        if name.startswith(("trunks.actor", "head.")):
            assert torch.equal(p, before[name]) == (norm_adv != "off"), name
    assert not torch.equal(model.value_out.weight, before["value_out.weight"])


# --------------------------------------------------------------------------------------------
# Target KL, gradient clipping
# --------------------------------------------------------------------------------------------


def test_tiny_target_kl_stops_early():
    cfg = cfg_for(
        num_steps=64,
        num_envs=1,
        num_minibatches=4,
        num_epochs=5,
        target_kl=1e-9,
        learning_rate=1e-2,
    )
    model, batch = make_batch(
        spaces.Discrete(4), 64, policy=PolicyConfig(hidden_sizes=(16,), policy_init_gain=1.0)
    )
    m = Learner(model, cfg, torch.Generator().manual_seed(0)).update(batch, progress=0.0)
    assert m["early_stop"] == 1.0
    assert 1 <= m["updates"] < cfg.ppo.num_epochs * cfg.ppo.num_minibatches
    # without a target every minibatch of every epoch runs
    model, batch = make_batch(
        spaces.Discrete(4), 64, policy=PolicyConfig(hidden_sizes=(16,), policy_init_gain=1.0)
    )
    m = Learner(model, cfg.replace(target_kl=None), torch.Generator().manual_seed(0)).update(
        batch, progress=0.0
    )
    assert m["early_stop"] == 0.0 and m["updates"] == 20


def test_generous_target_kl_does_not_stop():
    cfg = cfg_for(num_steps=64, num_envs=1, num_minibatches=4, num_epochs=2, target_kl=10.0)
    model, batch = make_batch(spaces.Discrete(4), 64)
    m = Learner(model, cfg, torch.Generator().manual_seed(0)).update(batch, progress=0.0)
    assert m["early_stop"] == 0.0 and m["updates"] == 8


def _grad_norm(model: torch.nn.Module) -> float:
    return math.sqrt(
        sum(float(p.grad.square().sum()) for p in model.parameters() if p.grad is not None)
    )


def test_grad_norm_is_logged_before_clipping_and_gradients_are_clipped():
    # returns of order 1e4 make the value loss (and its gradient) huge
    model, batch = make_batch(spaces.Discrete(3), 32, ret_scale=1e4)
    twin = copy.deepcopy(model)
    before = params_of(model)
    lr = 1e-3
    clipped = Learner(model, cfg_for(num_steps=32, max_grad_norm=0.5, learning_rate=lr, anneal_lr=False),
                      torch.Generator().manual_seed(0)).update(batch, progress=0.0)  # fmt: skip
    free = Learner(twin, cfg_for(num_steps=32, max_grad_norm=None, learning_rate=lr, anneal_lr=False),
                   torch.Generator().manual_seed(0)).update(batch, progress=0.0)  # fmt: skip
    assert clipped["updates"] == free["updates"] == 1
    # logged norm: the pre-clip norm, the same as the unclipped run's, and far above the bound
    assert clipped["grad_norm"] > 1000 * 0.5
    assert clipped["grad_norm"] == pytest.approx(free["grad_norm"], rel=1e-6)
    # what the optimizer stepped with was clipped to max_grad_norm; unclipped otherwise
    assert _grad_norm(model) == pytest.approx(0.5, rel=1e-4)
    assert _grad_norm(twin) == pytest.approx(free["grad_norm"], rel=1e-4)
    # one Adam step moves no parameter by more than ~lr
    for name, p in model.named_parameters():
        assert (p.detach() - before[name]).abs().max() <= lr * 1.01, name


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


def _learner(**kw) -> Learner:
    model, _ = make_batch(spaces.Discrete(2), 8)
    return Learner(model, cfg_for(**kw), torch.Generator().manual_seed(0))


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_learning_rate_annealing_and_entropy_schedules(p):
    ln = _learner(
        learning_rate=3e-3, anneal_lr=True, ent_coef=0.02, ent_coef_end=0.0, ent_schedule="linear"
    )
    c = ln.coefficients(p)
    assert c["learning_rate"] == pytest.approx(3e-3 * (1 - p), abs=1e-15)
    assert c["ent_coef"] == pytest.approx(0.02 * (1 - p), abs=1e-15)
    const = _learner(learning_rate=3e-3, anneal_lr=False, ent_coef=0.02).coefficients(p)
    assert const == {"learning_rate": 3e-3, "ent_coef": 0.02}
    expo = _learner(ent_coef=0.02, ent_coef_end=0.002, ent_schedule="exponential").coefficients(p)
    assert expo["ent_coef"] == pytest.approx(0.02 * 0.1**p)
    # a schedule with no end value stays at ent_coef
    assert _learner(ent_coef=0.02, ent_schedule="linear").coefficients(p)[
        "ent_coef"
    ] == pytest.approx(0.02)


def test_update_applies_the_scheduled_learning_rate():
    model, batch = make_batch(spaces.Discrete(3), 8)
    ln = Learner(model, cfg_for(learning_rate=4e-3, anneal_lr=True, ent_coef=0.1, ent_coef_end=0.0,
                                ent_schedule="linear"), torch.Generator().manual_seed(0))  # fmt: skip
    m = ln.update(batch, progress=0.75)
    assert ln.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert m["learning_rate"] == pytest.approx(1e-3) and m["ent_coef"] == pytest.approx(0.025)


# --------------------------------------------------------------------------------------------
# Tiny learning runs
# --------------------------------------------------------------------------------------------


def test_learns_one_hot_contextual_bandit(tmp_path):
    """obs = one-hot target among 4, reward 1 iff action == target, one step per episode."""
    cfg = Config().replace(
        env_id="PpoxToyBandit-v0", num_envs=4, num_steps=16, num_epochs=4, num_minibatches=2,
        learning_rate=3e-3, total_steps=2048, hidden_sizes=(32,), gamma=0.9, seed=3,
        eval_every=0, eval_episodes=40, tensorboard=False, progress=False,
    )  # fmt: skip
    summary = ppox.train(cfg, run_dir=tmp_path / "bandit")
    assert summary["total_steps"] == 2048
    assert summary["eval_return_mean"] > 0.9  # accuracy of the greedy policy on 40 episodes
    assert summary["train_return_mean"] > 0.8  # accuracy of the sampling policy, last 100 episodes
    policy = ppox.load_policy(tmp_path / "bandit")
    with torch.no_grad():
        probs = policy.model.dist(torch.eye(4)).probs
    assert probs.diagonal().min() > 0.9
    assert policy.predict(np.eye(4, dtype=np.float32)).tolist() == [0, 1, 2, 3]


def test_learns_continuous_regression_bandit(tmp_path):
    """obs = target ∈ [-1, 1], reward −(a − target)², Box(-2, 2); σ starts at 1 (reward ≈ −1.3)."""
    cfg = Config().replace(
        env_id="PpoxToyContinuousBandit-v0", num_envs=4, num_steps=32, num_epochs=8, num_minibatches=2,
        learning_rate=3e-3, anneal_lr=False, total_steps=4096, hidden_sizes=(32,), gamma=0.9, seed=2,
        tensorboard=False, progress=False,
    )  # fmt: skip
    tr = Trainer.create(cfg, tmp_path / "cont")
    first = None
    try:
        for _ in range(cfg.num_iterations):
            tr.learner.update(tr.advantages(tr.collector.collect()), progress=0.0)
            if first is None:
                first = float(np.mean(tr.collector.stats.returns))
    finally:
        tr.envs.close()
    last = float(np.mean(tr.collector.stats.returns))  # the last 100 (stochastic) episodes
    assert first < -0.5
    assert last > -0.1, last
    x = torch.linspace(-1, 1, 21).unsqueeze(1)
    with torch.no_grad():
        mean = tr.model.dist(x).mean
    assert (mean - x).abs().max() < 0.2


# --------------------------------------------------------------------------------------------
# The optimizer
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [True, False])
def test_flat_adam_takes_torch_adams_steps_and_state_dict(fused, monkeypatch):
    if not fused:  # the fallback for torch builds without the fused kernel
        monkeypatch.setattr(ppox.training.optim, "_FUSED_ADAM", None)
    torch.manual_seed(0)
    ours = torch.nn.Parameter(torch.randn(50))
    ref = torch.nn.Parameter(ours.detach().clone())
    opt = FlatAdam(ours, lr=3e-3, eps=1e-5)
    ref_opt = torch.optim.Adam([ref], lr=3e-3, eps=1e-5, foreach=False)
    for k in range(6):
        g = torch.randn(50) * (k + 1)
        ours.grad, ref.grad = g.clone(), g.clone()
        for o in (opt, ref_opt):  # the learner anneals the rate by writing the group's lr
            o.param_groups[0]["lr"] = 3e-3 * (1 - k / 6)
        opt.step()
        ref_opt.step()
        torch.testing.assert_close(ours.detach(), ref.detach(), rtol=1e-6, atol=1e-7)
    # checkpoints move between the two
    again = FlatAdam(torch.nn.Parameter(ref.detach().clone()), lr=1.0, eps=1.0)
    again.load_state_dict(ref_opt.state_dict())
    assert again.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]
    s = next(iter(again.state.values()))
    assert float(s["step"]) == 6 and torch.equal(
        s["exp_avg_sq"], next(iter(ref_opt.state.values()))["exp_avg_sq"]
    )
    assert set(opt.state_dict()["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}


# --------------------------------------------------------------------------------------------
# Advantage normalization and the clip switches, config → Learner → parameters, on both
# gradient backends, against a PPO-Clip update written out here with torch.optim.Adam
# --------------------------------------------------------------------------------------------

BACKENDS = ["autograd", "auto"]  # auto: the hand-written NumPy gradient (PPO-Clip, MLP, CPU)
T_FIX, N_FIX = 8, 2  # minibatch_order="fixed" with num_minibatches=N_FIX: minibatch k = env k


def fixed_order_rollout(space: spaces.Space, seed: int = 0, *, adv_offsets: tuple[float, ...] = (8.0, 2.0),
                        logp_shift: float = 0.0, value_shift: float = 0.0) -> tuple[ActorCritic, Rollout]:  # fmt: skip
    """A model and a ``[T_FIX, N_FIX]`` rollout sampled from it, built so that γ = 0 makes the
    advantage exactly ``reward − value``: env ``k``'s advantages are ``adv_offsets[k] + N(0, 1)``,
    so the two envs' (= the two fixed-order minibatches') means differ from each other and from
    0. ``logp_shift``: half the samples get log π_old lowered by it (ratios far above 1 from
    the first step, where the dual clip bites); ``value_shift``: V_old moved by ± it from the
    critic's output (where the value clip bites)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = ActorCritic(OBS, space, PolicyConfig(hidden_sizes=(16,), policy_init_gain=1.0))
    obs = torch.rand(T_FIX, N_FIX, 4, generator=g) * 2 - 1
    with torch.no_grad():
        dist, value = model(obs.reshape(-1, 4))
        action, logp = dist.sample_log_prob(g)
    half = (torch.arange(T_FIX * N_FIX) % 2).float()
    logp = logp - logp_shift * half
    value = value + value_shift * torch.randn(T_FIX * N_FIX, generator=g).sign()
    adv = torch.tensor(adv_offsets).expand(T_FIX, N_FIX) + torch.randn(T_FIX, N_FIX, generator=g)
    if logp_shift:  # negative advantages where the ratio is large: the dual clip's case
        adv = adv - 2 * adv_offsets[0] * half.reshape(T_FIX, N_FIX)
    value = value.reshape(T_FIX, N_FIX)
    z = torch.zeros(T_FIX, N_FIX)
    r = Rollout(obs, action.reshape(T_FIX, N_FIX, *action.shape[1:]), logp.reshape(T_FIX, N_FIX), value,
                z, adv + value, z, z, None, last_obs=torch.zeros(N_FIX, 4))  # fmt: skip
    return model, r


def fixed_cfg(backend: str, **kw) -> Config:
    base = dict(num_steps=T_FIX, num_envs=N_FIX, num_minibatches=N_FIX, minibatch_order="fixed", num_epochs=3,
                gamma=0.0, learning_rate=1e-2, anneal_lr=False, max_grad_norm=None, vf_coef=0.5,
                ent_coef=0.01, clip_coef=0.2, update_backend=backend)  # fmt: skip
    return Config().replace(**{**base, **kw}).validate()


def _standardized(a: torch.Tensor) -> torch.Tensor:
    """(a − mean) / (population std + 1e-8), the documented advantage normalization."""
    mean = a.mean()
    return (a - mean) / ((a - mean).square().mean().sqrt() + 1e-8)


def reference_update(
    model: ActorCritic, r: Rollout, cfg: Config
) -> tuple[ActorCritic, dict[str, float]]:
    """What the learner should do with ``r`` under ``cfg`` (PPO-Clip, fixed order, γ = 0),
    written from the formulas: A = reward − V_old and R = reward; per epoch, minibatch k = env
    k's steps in time order; loss = −mean min(ρA, clip(ρ, 1±ε)A) (with the dual clip:
    max(that, c·A) where A < 0) + vf·mean ½·(V − R)² (value clip: ½·max((V − R)²,
    (V_old + clip(V − V_old, ±ε_v) − R)²)) − ent·mean H; one torch.optim.Adam step each.
    Returns the trained copy and the mean policy and value losses of the steps."""
    o = cfg.ppo
    model = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=o.learning_rate, eps=o.adam_eps)
    adv, ret = r.reward - r.value, r.reward  # [T, N]
    if o.norm_adv == "batch":
        adv = _standardized(adv.reshape(-1)).reshape(T_FIX, N_FIX)
    losses: list[tuple[float, float]] = []
    for _ in range(o.num_epochs):
        for k in range(N_FIX):
            a = _standardized(adv[:, k]) if o.norm_adv == "minibatch" else adv[:, k]
            dist, v = model(r.obs[:, k])
            ratio = (dist.log_prob(r.action[:, k]) - r.logp[:, k]).exp()
            obj = torch.minimum(ratio * a, ratio.clamp(1 - o.clip_coef, 1 + o.clip_coef) * a)
            if o.dual_clip is not None:
                obj = torch.where(a < 0, torch.maximum(obj, o.dual_clip * a), obj)
            sq = (v - ret[:, k]).square()
            if o.value_clip is not None:
                v_old = r.value[:, k]
                sq = torch.maximum(
                    sq,
                    (v_old + (v - v_old).clamp(-o.value_clip, o.value_clip) - ret[:, k]).square(),
                )
            pg, vl = -obj.mean(), 0.5 * sq.mean()
            loss = pg + o.vf_coef * vl - o.ent_coef * dist.entropy().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append((pg.item(), vl.item()))
    pg_mean, vl_mean = np.mean(losses, axis=0)
    return model, {"policy_loss": float(pg_mean), "value_loss": float(vl_mean)}


def flat_params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def learner_update(
    model: ActorCritic, r: Rollout, cfg: Config
) -> tuple[torch.Tensor, dict[str, float]]:
    """The parameters after ``Learner.update`` on a copy of ``model``, and its metrics."""
    model = copy.deepcopy(model)
    m = Learner(model, cfg, torch.Generator().manual_seed(0)).update(r, progress=0.0)
    return flat_params(model), m


TOL = dict(
    rtol=1e-4, atol=1e-5
)  # seen: ≤ 6e-7 apart (float32, 6 Adam steps of lr 1e-2); variants: > 0.04


def assert_variants_apart(params: dict[str, torch.Tensor]) -> None:
    """The reference's results for the variants differ by far more than ``TOL``: the data can
    tell them apart (otherwise a learner ignoring the switch would pass)."""
    names = list(params)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            gap = float((params[a] - params[b]).abs().max())
            assert gap > 100 * TOL["atol"], (a, b, gap)


@pytest.mark.parametrize(
    "space", [spaces.Discrete(3), spaces.Box(-1, 1, (2,), np.float32)], ids=["discrete", "box"]
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_norm_adv_batch_minibatch_and_off_train_as_written(space, backend):
    """Env 0's advantages ≈ 8 + N(0, 1), env 1's ≈ 2 + N(0, 1), one fixed-order minibatch per env:
    `batch` standardizes over both envs (env 0 all positive, env 1 all negative), `minibatch`
    each env on its own (both centred), `off` leaves them (all positive, scale 8 vs 2). Each
    learner must land on its own variant's parameters and on no other's."""
    model, r = fixed_order_rollout(space)
    want, got, metrics = {}, {}, {}
    for mode in ("batch", "minibatch", "off"):
        cfg = fixed_cfg(backend, norm_adv=mode)
        ref, ref_losses = reference_update(model, r, cfg)
        want[mode] = flat_params(ref)
        got[mode], m = learner_update(model, r, cfg)
        metrics[mode] = (m, ref_losses)
    assert_variants_apart(want)
    for mode in want:
        torch.testing.assert_close(
            got[mode], want[mode], **TOL, msg=lambda s, mode=mode: f"norm_adv={mode}: {s}"
        )
        m, ref_losses = metrics[mode]
        assert m["updates"] == 3 * N_FIX
        assert m["policy_loss"] == pytest.approx(ref_losses["policy_loss"], rel=1e-4, abs=1e-5), (
            mode
        )
        assert m["value_loss"] == pytest.approx(ref_losses["value_loss"], rel=1e-4), mode


@pytest.mark.parametrize(
    "space", [spaces.Discrete(3), spaces.Box(-1, 1, (2,), np.float32)], ids=["discrete", "box"]
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dual_clip_and_value_clip_reach_the_loss_from_the_config(space, backend):
    """Half the samples start at ratio e^1.5 ≈ 4.5 > c = 3 with negative advantages (the dual
    clip holds their objective at c·A: no gradient from them) and V_old sits ±1 from the critic
    with ε_v = 0.2 (the clipped value term dominates for some samples). Each of the four on/off
    combinations must train as written, and they differ from each other."""
    model, r = fixed_order_rollout(space, seed=1, logp_shift=1.5, value_shift=1.0)
    want, got, losses = {}, {}, {}
    for dual in (None, 3.0):
        for vclip in (None, 0.2):
            key = f"dual_clip={dual}, value_clip={vclip}"
            cfg = fixed_cfg(backend, norm_adv="off", dual_clip=dual, value_clip=vclip)
            ref, losses[key] = reference_update(model, r, cfg)
            want[key] = flat_params(ref)
            got[key], m = learner_update(model, r, cfg)
            assert m["policy_loss"] == pytest.approx(losses[key]["policy_loss"], rel=1e-4), key
            assert m["value_loss"] == pytest.approx(losses[key]["value_loss"], rel=1e-4), key
    assert_variants_apart(want)
    for key in want:
        torch.testing.assert_close(got[key], want[key], **TOL, msg=lambda s, key=key: f"{key}: {s}")
