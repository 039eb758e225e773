"""TRPO (``algo="trpo"``; ppox.core.trust_region, ppox.training.trpo): the conjugate gradient
against a direct solve on a Fisher matrix written out by hand, the Fisher-vector product against
the explicit Hessian of the KL for several heads, the trust-region scaling and the line search on
hand-made cases, the KL bound after whole updates (critic epochs included, with a shared trunk),
every action space learning a toy task, and the config's rules."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

import ppox
from ppox.config import Config, PolicyConfig
from ppox.core.trust_region import conjugate_gradient, line_search, trust_region_step
from ppox.errors import ConfigError
from ppox.io.logging import read_csv
from ppox.nn.actor_critic import ActorCritic
from ppox.training.learner import Learner
from ppox.types import Batch

OBS = spaces.Box(-1, 1, (4,), np.float32)

# --- the conjugate gradient -------------------------------------------------------------------

# The Fisher matrix of a softmax over three logits at p = (0.5, 0.3, 0.2): F = diag(p) − p pᵀ,
# written out by hand (0.5 − 0.25, −0.5·0.3, …).
P = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
F_HAND = torch.tensor(
    [[0.25, -0.15, -0.10], [-0.15, 0.21, -0.06], [-0.10, -0.06, 0.16]], dtype=torch.float64
)


def test_the_hand_fisher_is_the_hessian_of_the_kl_of_a_softmax() -> None:
    def kl(theta: torch.Tensor) -> torch.Tensor:
        return (P * (P.log() - torch.log_softmax(theta, 0))).sum()

    hessian = torch.autograd.functional.hessian(kl, P.log())
    torch.testing.assert_close(hessian, F_HAND)


def test_conjugate_gradient_matches_a_direct_solve() -> None:
    damped = F_HAND + 0.1 * torch.eye(3, dtype=torch.float64)  # F is singular (rows sum to 0)
    b = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    x = conjugate_gradient(lambda v: damped @ v, b, iters=3)
    torch.testing.assert_close(x, torch.linalg.solve(damped, b), rtol=1e-10, atol=1e-12)
    # a larger SPD matrix: exact after `dim` iterations, and each iteration gets closer
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    spd = a @ a.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b6 = torch.randn(6, generator=g, dtype=torch.float64)
    exact = torch.linalg.solve(spd, b6)
    errors = [
        float((conjugate_gradient(lambda v: spd @ v, b6, k) - exact).norm()) for k in (1, 3, 6)
    ]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-8


def test_conjugate_gradient_stops_at_a_zero_residual() -> None:
    calls = []

    def fvp(v: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return 2.0 * v

    x = conjugate_gradient(fvp, torch.tensor([1.0, 1.0], dtype=torch.float64), iters=10)
    torch.testing.assert_close(x, torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert len(calls) == 1  # 2I is solved in one step; the loop stops on the zero residual


# --- the step and the line search ---------------------------------------------------------------


def test_the_step_is_scaled_to_the_boundary_of_the_trust_region() -> None:
    s = torch.tensor([1.0, 0.0])
    step = trust_region_step(s, torch.tensor([2.0, 0.0]), torch.tensor([3.0, 4.0]), max_kl=0.01)
    # ½ sᵀF s = 1, so Δθ = √(0.01 / 1)·s = (0.1, 0): ½ ΔθᵀF Δθ = 0.01 exactly, gᵀΔθ = 0.3
    torch.testing.assert_close(step.step, torch.tensor([0.1, 0.0]))
    assert step.shs == pytest.approx(1.0) and step.expected_improvement == pytest.approx(0.3)
    none = trust_region_step(s, torch.zeros(2), torch.tensor([3.0, 4.0]), max_kl=0.01)
    assert none.expected_improvement == 0.0 and not none.step.any()  # no curvature: no step


def table(rows: dict[float, tuple[float, float]]) -> Any:
    seen: list[float] = []

    def evaluate(fraction: float) -> tuple[float, float]:
        seen.append(fraction)
        return rows[round(fraction, 6)]

    evaluate.seen = seen  # type: ignore[attr-defined]
    return evaluate


def test_the_line_search_rejects_steps_that_break_the_kl_bound() -> None:
    evaluate = table(
        {1.0: (0.5, 0.02), 0.8: (0.4, 0.0101), 0.64: (0.3, 0.0099), 0.512: (0.2, 0.005)}
    )
    found = line_search(evaluate, max_kl=0.01, steps=10, shrink=0.8)
    assert found.fraction == pytest.approx(0.64) and found.tries == 3
    assert (found.improvement, found.kl) == (0.3, 0.0099)
    assert evaluate.seen == pytest.approx([1.0, 0.8, 0.64])  # it stops at the first acceptable


def test_the_line_search_rejects_steps_that_do_not_improve_and_may_take_none() -> None:
    worse = table({round(0.5**k, 6): (-0.1 if k < 2 else math.nan, 0.001) for k in range(3)})
    found = line_search(worse, max_kl=0.01, steps=3, shrink=0.5)
    assert found.fraction == 0.0 and found.tries == 3  # no gain (and a NaN): the policy stays


# --- the Fisher-vector product through the heads ---------------------------------------------


def trpo_cfg(**kw: Any) -> Config:
    base = dict(algo="trpo", num_envs=1, num_steps=32, num_epochs=1, num_minibatches=1, norm_adv="off",
                anneal_lr=False, max_grad_norm=None, learning_rate=1e-3)  # fmt: skip
    return Config().replace(**{**base, **kw}).validate()


def batch_for(model: ActorCritic, n: int, mask: torch.Tensor | None = None, seed: int = 1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    obs = (torch.rand(n, 4, generator=g) * 2 - 1).to(dtype)
    with torch.no_grad():
        dist, value = model(obs, mask)
        action, logp = dist.sample_log_prob(g)
    adv = torch.randn(n, generator=g).to(dtype)
    return Batch(obs, action, logp, value, adv, value + adv, mask)


HEADS = {
    "discrete": (spaces.Discrete(3), None),
    "masked": (
        spaces.Discrete(4),
        torch.tensor([[True, False, True, True], [True, True, False, False]] * 8),
    ),
    "gaussian": (spaces.Box(-1, 1, (2,), np.float32), None),
    "state-sigma": (spaces.Box(-1, 1, (2,), np.float32), "state"),
    "multi-discrete": (spaces.MultiDiscrete([2, 3]), None),
}


@pytest.mark.parametrize("head", list(HEADS))
def test_the_fisher_vector_product_is_the_hessian_of_the_kl_times_the_vector(head: str) -> None:
    space, extra = HEADS[head]
    mask = extra if isinstance(extra, torch.Tensor) else None
    sigma = {"sigma_mode": extra} if isinstance(extra, str) else {}
    torch.manual_seed(0)
    model = ActorCritic(OBS, space, PolicyConfig(hidden_sizes=(6,), **sigma)).double()
    learner = Learner(model, trpo_cfg(), torch.Generator().manual_seed(0))
    region = learner.trust_region
    assert region is not None
    batch = batch_for(model, 16, mask)
    region._partition(batch)
    with torch.no_grad():
        old = model.dist(batch.obs, batch.mask)
    # the policy's parameters, found by autograd: the actor's trunk and head, not the critic's
    offsets, params, names = 0, [], {id(p): n for n, p in model.named_parameters()}
    index = set(region.policy_index.tolist())  # type: ignore[union-attr]
    for p in learner.flat.params:
        if offsets in index:
            params.append((names[id(p)], p))
        offsets += p.numel()
    assert params and all(not n.startswith(("trunks.critic", "value_out")) for n, _ in params)
    theta = torch.cat([p.detach().reshape(-1) for _, p in params])
    assert theta.numel() == len(index)

    def kl_of(flat_theta: torch.Tensor) -> torch.Tensor:
        values, at = {}, 0
        for name, p in params:
            values[name] = flat_theta[at : at + p.numel()].view_as(p)
            at += p.numel()
        dist, _ = torch.func.functional_call(model, values, (batch.obs, batch.mask))
        return old.kl(dist).mean()

    hessian = torch.autograd.functional.hessian(kl_of, theta)
    v = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(
        region.fisher_vector_product(batch, old, v), hessian @ v, rtol=1e-8, atol=1e-10
    )
    damped = region.fisher_vector_product(batch, old, v, damping=0.1)
    torch.testing.assert_close(damped, hessian @ v + 0.1 * v, rtol=1e-8, atol=1e-10)


# --- whole updates ---------------------------------------------------------------------------


@pytest.mark.parametrize("shared_trunk", [False, True])
def test_every_update_keeps_the_kl_within_max_kl_critic_epochs_included(shared_trunk: bool) -> None:
    """The KL between the policy before and after each update, measured afresh, is at most
    max_kl: the critic's many steps at a large learning rate never move what the policy reads
    (with a shared trunk too), and the value loss does come down."""
    torch.manual_seed(0)
    model = ActorCritic(
        OBS, spaces.Discrete(3), PolicyConfig(hidden_sizes=(16,), shared_trunk=shared_trunk)
    )
    cfg = trpo_cfg(num_steps=64, num_epochs=8, num_minibatches=4, learning_rate=0.05, max_kl=0.005)
    learner = Learner(model, cfg, torch.Generator().manual_seed(0))
    accepted = 0
    for k in range(6):
        batch = batch_for(model, 64, seed=10 + k)
        batch = batch._replace(adv=3.0 * batch.adv)  # strong signal: the step reaches the boundary
        with torch.no_grad():
            old = model.dist(batch.obs)
            value_before = float((model.value(batch.obs) - batch.ret).square().mean())
        metrics = learner.update(batch, progress=0.0)
        with torch.no_grad():
            kl = float(old.kl(model.dist(batch.obs)).mean())
            value_after = float((model.value(batch.obs) - batch.ret).square().mean())
        assert kl <= 0.005 * (1 + 1e-5), (k, kl)
        assert kl == pytest.approx(metrics["approx_kl"], rel=1e-4, abs=1e-9)
        assert value_after < value_before
        accepted += metrics["line_search_fraction"] > 0
    assert accepted >= 5  # the steps were real, not all rejected


CASES = {  # env, steps, threshold of the greedy policy (random: 0.25, 5 illegal-free of 7 → −1.3, 0.29, 0.2)
    "discrete": ("PpoxToyBandit-v0", 4096, 0.95),
    "masked": ("PpoxToyMasked-v0", 4096, 6.99),  # every action legal: the mask reaches the head
    "continuous": ("PpoxToyContinuousBandit-v0", 8192, -0.05),
    "multi-discrete": ("PpoxToyMultiDiscreteBandit-v0", 4096, 0.95),
    "hybrid": ("PpoxToyHybridBandit-v0", 8192, 0.85),
}
FAST = dict(algo="trpo", num_envs=8, num_steps=16, num_epochs=4, num_minibatches=2, learning_rate=3e-3,
            anneal_lr=False, hidden_sizes=(64,), gamma=0.9, eval_every=0, eval_episodes=40, max_kl=0.05,
            tensorboard=False, progress=False)  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_every_action_space_learns_a_toy_task_within_the_bound(name: str, tmp_path: Any) -> None:
    env_id, steps, threshold = CASES[name]
    cfg = Config().replace(env_id=env_id, total_steps=steps, seed=1, **FAST)
    summary = ppox.train(cfg, run_dir=tmp_path / name)
    assert summary["eval_return_mean"] > threshold, summary["eval_return_mean"]
    rows = read_csv(tmp_path / name / "metrics.csv")
    assert max(float(r["approx_kl"]) for r in rows) <= 0.05 * (1 + 1e-5)
    assert sum(float(r["line_search_fraction"]) > 0 for r in rows) >= len(rows) // 2


# --- the config's rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"algo": "trpo", "target_kl": 0.02}, "target_kl=0.02 is not available with algo='trpo'"),
        ({"algo": "trpo", "dual_clip": 3.0}, "dual_clip=3.0 is not available with algo='trpo'"),
        (
            {"algo": "trpo", "recompute_adv": True},
            "recompute_adv=True is not available with algo='trpo'",
        ),
        ({"max_kl": 0.02}, "max_kl=0.02 needs algo='trpo' (got algo='ppo-clip')"),
        ({"algo": "reinforce", "cg_iters": 20}, "cg_iters=20 needs algo='trpo'"),
    ],
)
def test_fields_trpo_would_ignore_are_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Config().replace(**fields).validate()


def test_trpo_falls_back_to_the_autograd_update_and_says_why() -> None:
    from ppox.training import backends

    model = ActorCritic(OBS, spaces.Discrete(2), PolicyConfig())
    backend, reason = backends.update_backend(trpo_cfg(), model)
    assert backend == "autograd" and "algo" in (reason or "")
