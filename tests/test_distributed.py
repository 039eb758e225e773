"""Distributed PPO (issue 5): two CPU workers on gloo against one process on the concatenated data.

``pair`` spawns one pair of workers for the whole module (``torch.multiprocessing.spawn``, a
file rendezvous); each runs every collective check below on its share of data that both
generate from fixed seeds, and saves what it saw. The tests then redo the computation in this
process on the concatenated data. The pair is not marked, so the default suite (and CI) runs
the multi-process path; it takes a few seconds. So does one ``torchrun`` run (about 20 s): a
worker killed at a known point under ``--max-restarts``, the group restarted and the run resumed
from its checkpoint. The other ``torchrun`` runs — training on two workers and resuming on one,
a worker killed at whatever point training has reached, a restarted group meeting in the store
of the dead one — are marked ``distributed`` (``pytest -m distributed``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from gymnasium import spaces

import ppox
from ppox.config import Config, PolicyConfig
from ppox.core import moments_of, normalize_advantages
from ppox.errors import ConfigError
from ppox.io.checkpoint import load_checkpoint, save_checkpoint
from ppox.io.logging import read_csv
from ppox.io.rundir import resumable
from ppox.nn.actor_critic import ActorCritic
from ppox.training import distributed
from ppox.training.learner import Learner
from ppox.training.normalizers import ObsNormalizer, RewardScaler
from ppox.training.seeding import collection_seeds, worker_seed
from ppox.types import Batch, Rollout

WORLD = 2
OBS = spaces.Box(-1, 1, (4,), np.float32)


# --------------------------------------------------------------------------------------------
# data both workers (and this process) generate from fixed seeds
# --------------------------------------------------------------------------------------------


def cfg_for(n: int, **kw: Any) -> Config:
    base: dict[str, Any] = dict(
        num_steps=n,
        num_envs=1,
        num_epochs=1,
        num_minibatches=1,
        learning_rate=1e-3,
        max_grad_norm=None,
    )
    return Config().replace(**{**base, **kw}).validate()


def model() -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(OBS, spaces.Discrete(3), PolicyConfig(hidden_sizes=(8,)))


def full_batch(n: int, seed: int = 1, noise: float = 0.3) -> Batch:
    """``n`` samples from the model with log-probabilities perturbed by ``noise`` (so ratios
    leave the clip range) and advantages far from standardized."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.rand(n, 4, generator=g) * 2 - 1
    with torch.no_grad():
        dist, value = model()(obs)
        action, logp = dist.sample_log_prob(g)
    logp = logp + noise * torch.randn(n, generator=g)
    adv = 3.0 + 5.0 * torch.randn(n, generator=g)
    return Batch(obs, action, logp, value, adv, torch.randn(n, generator=g), None)


def share(b: Batch, rank: int) -> Batch:
    n = b.adv.shape[0] // WORLD
    return b.take(torch.arange(rank * n, (rank + 1) * n))


def rollout(T: int, done_at: list[tuple[int, int]], n_envs: int, seed: int) -> Rollout:
    """A REINFORCE rollout ``[T, n_envs]`` with episode ends at ``(t, env)``."""
    g = torch.Generator().manual_seed(seed)
    done = torch.zeros(T, n_envs)
    for t, e in done_at:
        done[t, e] = 1.0
    z = torch.zeros(T, n_envs)
    obs = torch.rand(T, n_envs, 4, generator=g) * 2 - 1
    action = torch.randint(0, 3, (T, n_envs), generator=g)
    reward = torch.randn(T, n_envs, generator=g)
    return Rollout(obs, action, z, z, z, reward, done, done, None, last_obs=torch.zeros(n_envs, 4))


def cat_envs(a: Rollout, b: Rollout) -> Rollout:
    """Two rollouts side by side, as one process with both workers' envs would have collected."""
    return Rollout(
        *(
            None if x is None else torch.cat([x, y], dim=1 if x.dim() > 1 else 0)
            for x, y in zip(a, b)
        )
    )  # type: ignore[arg-type]


ROLLOUTS = {  # complete-episode samples: rank 0 holds 2 + 5, rank 1 holds 3 (unequal shares)
    0: (6, [(1, 0), (4, 1)]),
    1: (6, [(2, 0)]),
}
OBS_CHUNKS = {0: [4, 7], 1: [5]}  # rows per normalizer update, per rank (first round)
UNTIL = 13  # obs_norm_until for the split: 7 rows for rank 0 and 6 (it has 5) for rank 1, then 1 for rank 0
ADV_SIZES = {0: 5, 1: 9}


def obs_data(rank: int, round_: int) -> list[np.ndarray]:
    rng = np.random.default_rng([rank, round_])
    sizes = OBS_CHUNKS[rank] if round_ == 0 else [3 + rank]
    return [rng.normal(100.0 * (rank + 1), 1.0 + rank, size=(k, 3)) for k in sizes]


def sparse_obs(chunk: np.ndarray) -> np.ndarray:
    """``chunk`` with entries zeroed: entry 0 on every other row, entry 2 on all but every third."""
    rows = np.arange(len(chunk))
    keep = np.stack([rows % 2 == 0, np.ones_like(rows, bool), rows % 3 == 0], axis=1)
    return np.where(keep, chunk, 0.0)


def reward_data(rank: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([rank, 7])
    return rng.normal(1.0, 2.0, size=(6 + 3 * rank, 2)), rng.random((6 + 3 * rank, 2)) < 0.2


def adv_data(rank: int) -> torch.Tensor:
    return torch.from_numpy(
        np.random.default_rng([rank, 3]).normal(10.0 + 10 * rank, 4.0 + 2 * rank, ADV_SIZES[rank])
    ).float()


# --------------------------------------------------------------------------------------------
# what each worker runs
# --------------------------------------------------------------------------------------------


def check_one_step(rank: int) -> dict[str, Any]:
    learner = Learner(model(), cfg_for(16), torch.Generator().manual_seed(0))
    learner.update(share(full_batch(2 * 16), rank), progress=0.0)
    return {"grad": learner.flat.grad.clone(), "params": learner.flat.flat.detach().clone()}


def check_many_steps(rank: int, **kw: Any) -> dict[str, Any]:
    cfg = cfg_for(
        32,
        **{
            "num_epochs": 4,
            "num_minibatches": 4,
            "learning_rate": 0.02,
            "max_grad_norm": 0.5,
            **kw,
        },
    )
    learner = Learner(model(), cfg, torch.Generator().manual_seed(0))
    metrics = learner.update(share(full_batch(2 * 32, noise=0.0), rank), progress=0.0)
    return {
        "params": learner.flat.flat.detach().clone(),
        "metrics": metrics,
        "kl_coef": learner.kl_coef,
    }


def check_reinforce(
    rank: int, minibatches: int = 1, done_at: list[tuple[int, int]] | None = None
) -> dict[str, Any]:
    T, done = ROLLOUTS[rank]
    cfg = cfg_for(
        T,
        algo="reinforce",
        baseline="mean",
        norm_adv="batch",
        num_minibatches=minibatches,
        num_envs=2,
    )
    learner = Learner(model(), cfg, torch.Generator().manual_seed(0))
    r = rollout(T, done if done_at is None else done_at, 2, seed=10 + rank)
    metrics = learner.update(r, progress=0.0)
    return {"grad": learner.flat.grad.clone(), "params": learner.flat.flat.detach().clone(), "metrics": metrics,
            "baseline": learner.baseline_mean}  # fmt: skip


TRPO = dict(algo="trpo", norm_adv="batch", max_grad_norm=0.5, learning_rate=0.01)


def check_trpo(rank: int) -> dict[str, Any]:
    learner = Learner(model(), cfg_for(16, **TRPO), torch.Generator().manual_seed(0))
    metrics = learner.update(share(full_batch(2 * 16, noise=0.0), rank), progress=0.0)
    return {"params": learner.flat.flat.detach().clone(), "metrics": metrics}


SCOPE_N = 32  # samples per worker in the advantage-scope checks
SCOPE_T = 8  # steps per env in the rollout ones (two envs per worker)
SCOPE_OFFSETS = {0: (6.0, 0.0), 1: (-2.0, 3.0)}  # mean advantage of each worker's env 0 and env 1


def scope_batch() -> Batch:
    """Both workers' samples (rank r holds the r-th half), with advantages whose halves have
    very different statistics (≈ 3 ± 5 and ≈ 10 ± 1.5), so that each worker's own
    normalization (``per_worker``) is far from the one over both (``global``)."""
    b = full_batch(2 * SCOPE_N, seed=5)
    adv = b.adv.clone()
    adv[SCOPE_N:] = 10.0 + 0.3 * adv[SCOPE_N:]
    return b._replace(adv=adv)


def scope_rollout(rank: int) -> Rollout:
    """Worker ``rank``'s ``[SCOPE_T, 2]`` rollout, built so that γ = 0 makes the advantage
    exactly ``reward − value``: env k's advantages are ``SCOPE_OFFSETS[rank][k] + N(0, 1)``."""
    g = torch.Generator().manual_seed(20 + rank)
    obs = torch.rand(SCOPE_T, 2, 4, generator=g) * 2 - 1
    with torch.no_grad():
        dist, value = model()(obs.reshape(-1, 4))
        action, logp = dist.sample_log_prob(g)
    value, z = value.reshape(SCOPE_T, 2), torch.zeros(SCOPE_T, 2)
    adv = torch.tensor(SCOPE_OFFSETS[rank]) + torch.randn(SCOPE_T, 2, generator=g)
    return Rollout(obs, action.reshape(SCOPE_T, 2), logp.reshape(SCOPE_T, 2), value, z, adv + value, z, z, None,
                   last_obs=torch.zeros(2, 4))  # fmt: skip


def scope_cfg(mode: str, scope: str, backend: str, workers: int) -> Config:
    """``batch``: one minibatch of a ready-made batch, 3 epochs, norm_adv=batch; ``minibatch``:
    rollouts in ``fixed`` order, one minibatch per env column (each worker's k-th minibatch is
    its env k), 3 epochs, norm_adv=minibatch, no value loss (a reference below rewrites the
    rewards)."""
    common = dict(num_epochs=3, learning_rate=0.02, norm_adv_scope=scope, update_backend=backend)
    if mode == "batch":
        return cfg_for(SCOPE_N * workers, norm_adv="batch", **common)
    return cfg_for(SCOPE_T, num_envs=2 * workers, num_minibatches=2, minibatch_order="fixed", gamma=0.0,
                   vf_coef=0.0, norm_adv="minibatch", **common)  # fmt: skip


def check_adv_scope(rank: int, mode: str, scope: str, backend: str) -> dict[str, Any]:
    net = model()
    learner = Learner(net, scope_cfg(mode, scope, backend, 1), torch.Generator().manual_seed(0))
    data = share(scope_batch(), rank) if mode == "batch" else scope_rollout(rank)
    metrics = learner.update(data, progress=0.0)
    return {"params": params_of(net), "metrics": metrics}


def params_of(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def two_rounds(norm: ObsNormalizer, rank: int) -> list[dict[str, Any]]:
    """``norm`` shared, fed this rank's two rounds of observations, its state after each sync."""
    norm.share()
    synced = []
    for round_ in (0, 1):
        for chunk in obs_data(rank, round_):
            norm.update(chunk)
        norm.sync()
        synced.append(norm.state_dict())
    return synced


def check_statistics(rank: int) -> dict[str, Any]:
    synced = two_rounds(ObsNormalizer((3,), enabled=True, clip=1e9), rank)
    until_synced = two_rounds(ObsNormalizer((3,), enabled=True, clip=1e9, until=UNTIL), rank)
    sparse = ObsNormalizer((3,), enabled=True, clip=1e9, sparse=0.5)
    sparse.share()
    for chunk in obs_data(rank, 0):
        sparse.update(sparse_obs(chunk))
    sparse.sync()
    scaler = RewardScaler(2, enabled=True, gamma=0.9, clip=1e9)
    scaler.share()
    for r, d in zip(*reward_data(rank)):
        scaler(r, d)
    scaler.sync()
    example = distributed.merge_across_ranks(
        moments_of(np.array([1.0, 2, 3, 4]) if rank == 0 else np.array([10.0, 20]))
    )
    return {
        "obs": synced,
        "until": until_synced,
        "sparse": sparse.state_dict(),
        "reward": scaler.state_dict(),
        "example": [example.count, float(example.mean), float(example.var)],
        "adv": distributed.normalize_advantages(adv_data(rank)),
        "adv_tiny": distributed.normalize_advantages(
            torch.tensor([5.0]) if rank == 0 else torch.zeros(0)
        ),
    }


def with_allreduce(
    mode: str, check: Callable[[int], dict[str, Any]]
) -> Callable[[int], dict[str, Any]]:
    """``check`` with the gradient exchange forced to ``mode`` (PPOX_ALLREDUCE)."""

    def run(rank: int) -> dict[str, Any]:
        os.environ[distributed.ALLREDUCE_ENV] = mode
        try:
            return {
                **check(rank),
                "one_machine": distributed._one_machine(),
                "shared": len(distributed._SHARED),
            }
        finally:
            del os.environ[distributed.ALLREDUCE_ENV]

    return run


CHECKS: dict[str, Callable[[int], dict[str, Any]]] = {
    "one_step": check_one_step,  # default route: shared memory (both workers on this machine)
    "one_step_doubling": with_allreduce("doubling", check_one_step),
    "one_step_collective": with_allreduce("collective", check_one_step),
    "one_step_shared": with_allreduce("shared", check_one_step),
    "clip_target_kl": lambda r: check_many_steps(r, target_kl=0.002),
    "penalty_global": lambda r: check_many_steps(r, algo="ppo-penalty", kl_coef=0.5),
    "penalty_per_worker": lambda r: check_many_steps(
        r, algo="ppo-penalty", kl_coef=0.5, kl_coef_scope="per_worker"
    ),
    "adv_per_worker": lambda r: check_many_steps(r, norm_adv_scope="per_worker"),
    "grad_ignore": lambda r: check_many_steps(r, grad_clip="ignore", max_grad_norm=0.6),
    "reinforce": check_reinforce,
    "trpo": lambda r: check_trpo(r),
    "reinforce_no_episode_on_rank_1": lambda r: check_reinforce(r, 4, None if r == 0 else []),
    "statistics": check_statistics,
    **{
        f"adv_{mode}_{scope}_{backend}": (
            lambda r, m=mode, s=scope, b=backend: check_adv_scope(r, m, s, b)
        )
        for mode in ("batch", "minibatch")
        for scope in ("global", "per_worker")
        for backend in ("autograd", "auto")
    },
}


def _worker(rank: int, tmp: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=WORLD
    )
    try:
        torch.save(
            {name: check(rank) for name, check in CHECKS.items()}, Path(tmp) / f"rank{rank}.pt"
        )
    finally:
        distributed.shutdown()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """What each of two gloo workers saw in every check (index = rank)."""
    tmp = tmp_path_factory.mktemp("pair")
    mp.spawn(_worker, args=(str(tmp),), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


# --------------------------------------------------------------------------------------------
# gradients and parameters
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "route", ["one_step", "one_step_shared", "one_step_doubling", "one_step_collective"]
)
def test_gradient_is_the_single_process_gradient_of_the_concatenated_batch(
    pair, route: str
) -> None:
    one = Learner(model(), cfg_for(2 * 16), torch.Generator().manual_seed(0))
    one.update(full_batch(2 * 16), progress=0.0)
    for rank in range(WORLD):
        torch.testing.assert_close(pair[rank][route]["grad"], one.flat.grad, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(
            pair[rank][route]["params"], one.flat.flat.detach(), rtol=1e-5, atol=1e-7
        )
    assert torch.equal(pair[0][route]["params"], pair[1][route]["params"])  # bit-identical replicas
    assert not torch.equal(pair[0][route]["params"], model_params())  # and the step did move them


def test_workers_on_one_machine_exchange_through_shared_memory(pair) -> None:
    assert pair[0]["one_step_shared"]["one_machine"] and pair[0]["one_step_shared"]["shared"] >= 1
    leftovers = [
        p
        for p in Path("/dev/shm" if Path("/dev/shm").is_dir() else "/tmp").glob("ppox-allreduce-*")
    ]
    assert not leftovers, leftovers  # each segment's name is gone once mapped


def model_params() -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model().parameters()])


@pytest.mark.parametrize(
    "check",
    ["clip_target_kl", "penalty_global", "penalty_per_worker", "adv_per_worker", "grad_ignore"],
)
def test_replicas_stay_identical_over_epochs_and_minibatches(pair, check: str) -> None:
    a, b = pair[0][check], pair[1][check]
    assert torch.equal(a["params"], b["params"])
    assert a["metrics"]["updates"] == b["metrics"]["updates"] > 0
    assert a["metrics"]["early_stop"] == b["metrics"]["early_stop"]
    assert a["metrics"]["skipped_updates"] == b["metrics"]["skipped_updates"]


def test_target_kl_stops_every_worker_at_the_same_minibatch(pair) -> None:
    m = pair[0]["clip_target_kl"]["metrics"]
    assert (
        m["early_stop"] == 1.0 and 0 < m["updates"] < 16
    )  # it really stopped mid-way, on both (above)


def test_grad_clip_ignore_skips_on_every_worker_alike(pair) -> None:
    skipped = pair[0]["grad_ignore"]["metrics"]["skipped_updates"]
    assert 0 < skipped < 16  # some steps skipped, some taken; the same ones on both workers (above)


def test_kl_coefficient_is_global_unless_per_worker(pair) -> None:
    g0, g1 = pair[0]["penalty_global"], pair[1]["penalty_global"]
    assert g0["metrics"]["kl_after_update"] == g1["metrics"]["kl_after_update"]
    assert g0["kl_coef"] == g1["kl_coef"] != 0.5
    p0, p1 = pair[0]["penalty_per_worker"]["metrics"], pair[1]["penalty_per_worker"]["metrics"]
    assert p0["kl_after_update"] != p1["kl_after_update"]  # each worker measured its own batch


def test_reinforce_with_unequal_shares_matches_the_concatenated_rollout(pair) -> None:
    """REINFORCE without a critic trains on complete episodes only: 7 samples on rank 0, 3 on
    rank 1. The averaged gradient is still that of the mean over all 10 (and the mean baseline
    and the batch normalization use all 10)."""
    T = 6
    both = cat_envs(rollout(T, ROLLOUTS[0][1], 2, seed=10), rollout(T, ROLLOUTS[1][1], 2, seed=11))
    cfg = cfg_for(T, algo="reinforce", baseline="mean", norm_adv="batch", num_envs=4)
    one = Learner(model(), cfg, torch.Generator().manual_seed(0))
    one.update(both, progress=0.0)
    for rank in range(WORLD):
        torch.testing.assert_close(
            pair[rank]["reinforce"]["grad"], one.flat.grad, rtol=1e-5, atol=1e-7
        )
        assert pair[rank]["reinforce"]["baseline"] == pytest.approx(one.baseline_mean, rel=1e-6)
    assert torch.equal(pair[0]["reinforce"]["params"], pair[1]["reinforce"]["params"])


def test_trpo_on_two_workers_takes_the_single_process_step_of_the_concatenated_batch(pair) -> None:
    """All-reduced gradient and Fisher-vector products, line-search decisions on the global
    surrogate and KL, then the critic's step: the same parameters as one process on both
    shares, and bit-identical replicas."""
    one = Learner(model(), cfg_for(2 * 16, **TRPO), torch.Generator().manual_seed(0))
    m = one.update(full_batch(2 * 16, noise=0.0), progress=0.0)
    assert m["line_search_fraction"] > 0 and 0 < m["approx_kl"] <= 0.01
    for rank in range(WORLD):
        torch.testing.assert_close(
            pair[rank]["trpo"]["params"], one.flat.flat.detach(), rtol=1e-4, atol=1e-6
        )
        assert pair[rank]["trpo"]["metrics"]["line_search_tries"] == m["line_search_tries"]
        assert pair[rank]["trpo"]["metrics"]["approx_kl"] == pytest.approx(m["approx_kl"], rel=1e-4)
    assert torch.equal(pair[0]["trpo"]["params"], pair[1]["trpo"]["params"])


def pick_envs(r: Rollout, order: list[int]) -> Rollout:
    """The ``[T, N]`` fields of ``r`` with their env columns in ``order`` (no ``last_obs`` rows
    needed: nothing here recomputes values)."""
    fields = {
        k: None if x is None else x[:, order]
        for k, x in r._asdict().items()
        if k in Rollout._fields[:9]
    }
    return Rollout(**fields, last_obs=torch.zeros(len(order), 4))  # fmt: skip


def standardized(a: torch.Tensor) -> torch.Tensor:
    """(a − mean) / (population std + 1e-8), the documented advantage normalization."""
    mean = a.mean()
    return (a - mean) / ((a - mean).square().mean().sqrt() + 1e-8)


def scope_reference(mode: str, scope: str, backend: str) -> torch.Tensor:
    """One process on both workers' data. ``global``: the same normalization over the
    concatenated data. ``per_worker``: advantages standardized here, per worker share (of the
    batch, or of each minibatch: each env column), then trained with norm_adv=off."""
    cfg = scope_cfg(mode, scope, backend, WORLD)
    if mode == "batch":
        b = scope_batch()
        if scope == "per_worker":
            b = b._replace(adv=torch.cat([standardized(share(b, r).adv) for r in range(WORLD)]))
            cfg = cfg.replace(norm_adv="off")
        data: Batch | Rollout = b
    else:
        # columns r0e0, r1e0, r0e1, r1e1: fixed order's global minibatch k is every worker's env k
        data = pick_envs(cat_envs(scope_rollout(0), scope_rollout(1)), [0, 2, 1, 3])
        if scope == "per_worker":  # γ = 0: reward = A + V, so standardize A column by column
            adv = data.reward - data.value
            cols = torch.stack([standardized(adv[:, k]) for k in range(adv.shape[1])], dim=1)
            data = data._replace(reward=cols + data.value)
            cfg = cfg.replace(norm_adv="off")
    net = model()
    Learner(net, cfg, torch.Generator().manual_seed(0)).update(data, progress=0.0)
    return params_of(net)


@pytest.mark.parametrize("backend", ["autograd", "auto"])
@pytest.mark.parametrize("mode", ["batch", "minibatch"])
def test_norm_adv_scope_per_worker_normalizes_each_workers_share(
    pair, mode: str, backend: str
) -> None:
    """norm_adv_scope=global trains as one process on the concatenated data; per_worker as one
    process whose advantages were standardized share by share (the DPPO paper's workers). The
    two workers' shares have very different advantage statistics, so the two scopes land far
    apart: a learner that ignored the flag would fail one of them."""
    got = {}
    for scope in ("global", "per_worker"):
        want = scope_reference(mode, scope, backend)
        a, b = (pair[r][f"adv_{mode}_{scope}_{backend}"] for r in range(WORLD))
        assert torch.equal(a["params"], b["params"])  # replicas stay identical
        assert a["metrics"]["updates"] == (3 if mode == "batch" else 6)
        torch.testing.assert_close(a["params"], want, rtol=1e-4, atol=1e-5,
                                   msg=lambda m, s=scope: f"norm_adv_scope={s}: {m}")  # fmt: skip
        got[scope] = a["params"]
    assert float((got["global"] - got["per_worker"]).abs().max()) > 1e-2


def test_a_worker_without_samples_still_joins_every_step(pair) -> None:
    a, b = pair[0]["reinforce_no_episode_on_rank_1"], pair[1]["reinforce_no_episode_on_rank_1"]
    assert torch.equal(a["params"], b["params"])
    assert a["metrics"]["updates"] == b["metrics"]["updates"] == 4
    assert np.isfinite(a["metrics"]["policy_loss"]) and torch.isfinite(a["params"]).all()


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------


def test_merged_normalizer_statistics_are_those_of_the_concatenated_data(pair) -> None:
    for round_ in (0, 1):
        data = np.concatenate(
            [c for r in range(WORLD) for k in range(round_ + 1) for c in obs_data(r, k)]
        )
        want = moments_of(data)
        got = [pair[r]["statistics"]["obs"][round_] for r in range(WORLD)]
        assert got[0] == got[1]  # bit-identical on both workers
        assert got[0]["count"] == want.count
        np.testing.assert_allclose(got[0]["mean"], want.mean, rtol=1e-12)
        np.testing.assert_allclose(got[0]["m2"], want.m2, rtol=1e-9)


def test_statistics_with_a_limit_hold_exactly_that_many_observations_split_by_rank(pair) -> None:
    """obs_norm_until 13 on two workers: the 13 missing are split 7 (rank 0) and 6 (rank 1); rank 1
    has only 5 rows in the first round, so 12 are merged; in the second, the 1 still missing goes
    to rank 0 (1 // 2 = 0 each, plus one for rank 0)."""
    first = [np.concatenate(obs_data(r, 0)) for r in range(WORLD)]
    rounds = [
        np.concatenate([first[0][:7], first[1]]),
        np.concatenate([first[0][:7], first[1], obs_data(0, 1)[0][:1]]),
    ]
    for round_, data in enumerate(rounds):
        want = moments_of(data)
        got = [pair[r]["statistics"]["until"][round_] for r in range(WORLD)]
        assert got[0] == got[1]
        assert got[0]["count"] == want.count == (12, 13)[round_]
        np.testing.assert_allclose(got[0]["mean"], want.mean, rtol=1e-12)
        np.testing.assert_allclose(got[0]["m2"], want.m2, rtol=1e-9)


def test_merged_non_zero_counts_are_those_of_the_concatenated_data(pair) -> None:
    data = np.concatenate([sparse_obs(c) for r in range(WORLD) for c in obs_data(r, 0)])
    got = [pair[r]["statistics"]["sparse"] for r in range(WORLD)]
    assert got[0] == got[1]
    assert got[0]["nonzero"] == np.count_nonzero(data, axis=0).tolist()
    assert got[0]["count"] == len(data)


def test_merged_reward_statistics_are_those_of_every_workers_returns(pair) -> None:
    returns = []
    for rank in range(WORLD):
        ret = np.zeros(2)
        for r, d in zip(*reward_data(rank)):
            ret = ret * 0.9 + r
            returns.append(ret.copy())
            ret = np.where(d, 0.0, ret)
    want = moments_of(np.concatenate(returns))
    got = pair[0]["statistics"]["reward"]
    assert got["count"] == want.count and pair[1]["statistics"]["reward"]["m2"] == got["m2"]
    assert got["mean"] == pytest.approx(float(want.mean), rel=1e-12)
    assert got["m2"] == pytest.approx(float(want.m2), rel=1e-9)


def test_unequal_shards_merge_exactly_by_hand(pair) -> None:
    """[1, 2, 3, 4] (n 4, mean 2.5, m2 5) and [10, 20] (n 2, mean 15, m2 50) → n 6, mean 40/6 =
    6.6667, var 43.8889, the statistics of the concatenation (the equal-weight mean of means
    would give 8.75)."""
    for rank in range(WORLD):
        count, mean, var = pair[rank]["statistics"]["example"]
        assert count == 6 and mean == pytest.approx(20 / 3) and var == pytest.approx(43.888889)


def test_global_advantage_normalization_is_that_of_the_concatenated_advantages(pair) -> None:
    got = torch.cat([pair[r]["statistics"]["adv"] for r in range(WORLD)])
    want = normalize_advantages(torch.cat([adv_data(r) for r in range(WORLD)]))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert (
        abs(float(pair[0]["statistics"]["adv"].mean())) > 0.05
    )  # each share alone is not standardized
    # one sample over all workers: left as it is, no NaN
    assert (
        pair[0]["statistics"]["adv_tiny"].tolist() == [5.0]
        and pair[1]["statistics"]["adv_tiny"].numel() == 0
    )


# --------------------------------------------------------------------------------------------
# no processes: seeds, batch semantics, the run directory
# --------------------------------------------------------------------------------------------


def test_collection_seeds_are_distinct_across_workers_and_keep_the_single_process_ones() -> None:
    avoid = range(1_000_000, 1_000_010)
    single = collection_seeds(7, 8, avoid)
    assert collection_seeds(7, 8, avoid, rank=0, world=1) == single
    halves = [collection_seeds(7, 4, avoid, rank=r, world=2) for r in range(2)]
    assert halves[0] + halves[1] == single  # a global env count split over workers: the same seeds
    per_worker = [collection_seeds(7, 8, avoid, rank=r, world=3) for r in range(3)]
    flat = [s for block in per_worker for s in block]
    assert len(set(flat)) == 24 and not set(flat) & set(avoid)
    assert worker_seed(7, 0) == 7 and len({worker_seed(7, r) for r in range(4)}) == 4


def test_batch_semantics_per_world_size() -> None:
    cfg = Config().replace(num_envs=8, num_steps=64, num_minibatches=4)
    assert (cfg.worker_envs(2), cfg.global_batch_size(2)) == (
        4,
        512,
    )  # global: the same batch as one process
    per = cfg.replace(batch_scope="per_worker")
    assert (per.worker_envs(2), per.global_batch_size(2)) == (8, 1024)
    with pytest.raises(
        ConfigError, match="num_envs=8 cannot be shared by 3 workers with batch_scope='global'"
    ):
        cfg.validate_world(3)
    with pytest.raises(
        ConfigError, match="num_minibatches=4 must divide each of the 8 workers' batches"
    ):
        cfg.replace(num_steps=2).validate_world(8)
    with pytest.raises(ConfigError, match="^batch_scope='x' is not allowed"):
        cfg.replace(batch_scope="x").validate()


def test_auto_resume_decides_from_the_run_directory(tmp_path: Path) -> None:
    cfg = Config().replace(num_envs=2, run_dir=str(tmp_path / "run"))
    run = tmp_path / "run"
    assert resumable(cfg, run) is None  # nothing there: start
    run.mkdir()
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    (run / "metrics.csv").write_text("iteration,global_step\n1,64\n")
    (run / "tb").mkdir()
    assert (
        resumable(cfg, run) is None
    )  # died before its first checkpoint: start again, logs cleared
    assert not any(run.iterdir())
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    with pytest.raises(ConfigError, match=r"holds a run with another config \(num_envs: 2 → 4\)"):
        resumable(cfg.replace(num_envs=4), run)
    save_checkpoint(
        {"config": cfg.to_dict(), "progress": {"global_step": 64}}, run / "checkpoint.pt"
    )
    (run / ".checkpoint.pt.abc.tmp").write_bytes(b"torn")
    state = resumable(cfg.replace(total_steps=10**6), run)  # a new budget is allowed
    assert state is not None and state["progress"]["global_step"] == 64
    assert not (run / ".checkpoint.pt.abc.tmp").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds files but no ppox run"):
        resumable(cfg, other)


# --------------------------------------------------------------------------------------------
# torchrun
# --------------------------------------------------------------------------------------------

FLAGS = [  # the total steps each test gives (a flag given twice is an error)
    "--num-envs", "4", "--num-steps", "64", "--num-epochs", "2", "--num-minibatches", "4",
    "--checkpoint-every", "1", "--eval-every", "4096", "--eval-episodes", "2", "--normalize-obs", "--scale-reward",
    "--seed", "3", "--no-tensorboard", "--no-progress",
]  # fmt: skip


def torchrun(*args: str, workers: int = WORLD, restarts: int = 0, log: Path | None = None,
             env: dict[str, str] | None = None) -> subprocess.Popen:  # fmt: skip
    """``torchrun … -m ppox train ARGS``, its output piped (or written to ``log``: nothing to
    drain while the test polls)."""
    cmd = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc-per-node", str(workers),
           "--max-restarts", str(restarts), "--monitor-interval", "0.2", "-m", "ppox", "train", *args]  # fmt: skip
    out = subprocess.PIPE if log is None else log.open("wb")
    try:
        return subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Linux /proc; torchrun starts each worker in a session
    of its own, so killing the launcher's process group would leave them running)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(proc.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def kill_tree(p: subprocess.Popen) -> None:
    """SIGKILL the launcher and every process below it (a no-op once it has exited)."""
    if p.poll() is not None:
        return
    for pid in [*descendants(p.pid), p.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait(timeout=30)


def finish(p: subprocess.Popen, timeout: float = 900) -> str:
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(p)
        raise
    text = out.decode()
    assert p.returncode == 0, text
    return text


def steps_of(run: Path) -> list[int]:
    return [int(r["global_step"]) for r in read_csv(run / "metrics.csv")]


@pytest.mark.distributed
def test_torchrun_two_workers_then_resume_on_one(tmp_path: Path) -> None:
    run = tmp_path / "run"
    out = finish(torchrun(*FLAGS, "--total-steps", "8192", "--run-dir", str(run)))
    assert "on 2 workers" in out
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["world_size"], summary["envs_per_worker"], summary["global_batch"]) == (
        2,
        2,
        256,
    )
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "curve.svg",
        "metrics.csv",
        "summary.json",
    ]
    assert steps_of(run) == list(range(256, 8192 + 1, 256))
    # the checkpoint is the world's, not a worker's: it continues in a single process
    p = subprocess.run([sys.executable, "-m", "ppox", "train", "--resume", str(run), "--total-steps", "10240"],
                       capture_output=True, text=True, timeout=900)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads((run / "summary.json").read_text())["world_size"] == 1
    assert steps_of(run) == list(range(256, 10240 + 1, 256))


def worker_pids(launcher: int) -> dict[int, int]:
    """RANK → pid of torchrun's worker processes (children of the launcher; Linux /proc)."""
    out: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = dict(
                kv.split("=", 1) for kv in (proc / "environ").read_text().split("\0") if "=" in kv
            )
        except (OSError, IndexError, ValueError):
            continue
        if ppid == launcher and "RANK" in env:
            out[int(env["RANK"])] = int(proc.name)
    return out


@pytest.mark.distributed
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers through /proc")
def test_a_killed_worker_restarts_the_group_and_training_resumes_from_the_checkpoint(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    p = torchrun(
        *FLAGS, "--total-steps", "16384", "--run-dir", str(run), "--auto-resume", restarts=1
    )
    deadline = time.time() + 900
    while not ((run / "checkpoint.pt").exists() and len(steps_of(run)) >= 8):
        assert p.poll() is None and time.time() < deadline, (
            p.stdout.read().decode() if p.stdout else ""
        )
        time.sleep(0.05)
    killed_at = load_checkpoint(run)["progress"]["global_step"]
    os.kill(worker_pids(p.pid)[1], signal.SIGKILL)
    out = finish(p)
    assert killed_at < 16384, "the run ended before the kill"
    assert "resuming on 2 worker(s)" in out  # the restarted group found the checkpoint
    final = load_checkpoint(run)
    assert final["progress"]["global_step"] == 16384 and final["workers"]["world_size"] == 2
    assert steps_of(run) == list(
        range(256, 16384 + 1, 256)
    )  # cut back to the checkpoint, then continued
    policy = ppox.load_policy(run)
    assert policy.predict(np.zeros(4, np.float32)) in (0, 1)
    assert json.loads((run / "summary.json").read_text())["total_steps"] == 16384


GATE_MODULE = """
\"\"\"CartPole for the killed-worker test: every worker process notes torchrun's attempt, and on
the first attempt an env that has taken PPOX_GATE_STEPS steps waits at its next step (the
worker's checkpoint and metrics are then final) until the test kills a worker.\"\"\"
import os
import time
from pathlib import Path

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv

ATTEMPT, RANK, DIR = os.environ["TORCHELASTIC_RESTART_COUNT"], os.environ["RANK"], Path(os.environ["PPOX_GATE_DIR"])
(DIR / f"attempt{ATTEMPT}-rank{RANK}-pid{os.getpid()}").touch()


class GatedCartPole(CartPoleEnv):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.steps_taken = 0

    def step(self, action):
        self.steps_taken += 1
        if ATTEMPT == "0" and self.steps_taken > int(os.environ["PPOX_GATE_STEPS"]):
            (DIR / f"waiting-rank{RANK}").touch()
            while True:
                time.sleep(0.05)
        return super().step(action)


gym.register("GatedCartPole-v0", entry_point=GatedCartPole, max_episode_steps=500)
"""
GATED = [
    "--env-id", "ppox_gate:GatedCartPole-v0", "--total-steps", "1536", "--num-envs", "4", "--num-steps", "64",
    "--num-epochs", "2", "--num-minibatches", "4", "--checkpoint-every", "2", "--eval-every", "0",
    "--eval-episodes", "1", "--normalize-obs", "--seed", "3", "--no-tensorboard", "--no-progress",
]  # fmt: skip


def wait_for(ready: Callable[[], bool], p: subprocess.Popen, log: Path, deadline: float) -> None:
    while not ready():
        assert p.poll() is None, f"torchrun exited with {p.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"timed out; torchrun said:\n{log.read_text()}"
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers through /proc")
def test_torchrun_restarts_a_group_whose_worker_was_killed_and_resumes_from_the_checkpoint(
    tmp_path: Path,
) -> None:
    """The elastic-restart path end to end, in the default suite. Two workers train 6
    iterations of 256 steps with a checkpoint every 2. On torchrun's first attempt the envs
    stop at the first step of iteration 4 (see GATE_MODULE), so the kill lands at a known
    point: rows for steps 256, 512 and 768 are written, the checkpoint holds step 512. Rank 1
    gets SIGKILL; torchrun (--max-restarts 1) stops rank 0 and starts a second attempt, which
    must resume from the checkpoint, drop row 768 and redo it, and finish the budget."""
    run, gate, log = tmp_path / "run", tmp_path / "gate", tmp_path / "torchrun.log"
    gate.mkdir()
    (gate / "ppox_gate.py").write_text(GATE_MODULE)
    path = os.pathsep.join(x for x in (str(gate), os.environ.get("PYTHONPATH")) if x)
    env = {"PYTHONPATH": path, "PPOX_GATE_DIR": str(gate), "PPOX_GATE_STEPS": str(3 * 64)}
    p = torchrun(*GATED, "--run-dir", str(run), "--auto-resume", restarts=1, log=log, env=env)
    deadline = time.monotonic() + 300  # a wedged run fails the test instead of hanging CI
    try:
        wait_for(
            lambda: all((gate / f"waiting-rank{r}").exists() for r in range(WORLD)),
            p,
            log,
            deadline,
        )
        assert steps_of(run) == [256, 512, 768]
        assert load_checkpoint(run)["progress"]["global_step"] == 512
        first = worker_pids(p.pid)
        assert sorted(first) == [0, 1]
        os.kill(first[1], signal.SIGKILL)
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"the restarted group did not finish in time; torchrun said:\n{log.read_text()}"
            )
    finally:
        kill_tree(p)
    out = log.read_text()
    assert p.returncode == 0, out
    # two attempts, each with both ranks, in new processes: the group was restarted
    marks = sorted(f.name.rsplit("-pid", 1)[0] for f in gate.glob("attempt*"))
    assert marks == ["attempt0-rank0", "attempt0-rank1", "attempt1-rank0", "attempt1-rank1"], marks
    pids = {int(f.name.rsplit("-pid", 1)[1]) for f in gate.glob("attempt1-*")}
    assert not pids & set(first.values())
    assert out.count("resuming on 2 worker(s)") == 1, out  # the second attempt read the checkpoint
    final = load_checkpoint(run)
    assert final["progress"]["global_step"] == 1536 and final["workers"]["world_size"] == 2
    assert steps_of(run) == list(range(256, 1536 + 1, 256)), out  # 768 cut back, then redone once
    assert json.loads((run / "summary.json").read_text())["total_steps"] == 1536
    for pid in [*first.values(), *pids]:  # no worker outlives the run
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )


RESTART_SCRIPT = """
import os, sys, time, torch
from ppox.training import distributed
attempt, rank = os.environ["TORCHELASTIC_RESTART_COUNT"], int(os.environ["RANK"])
if attempt == "1" and rank == 1:
    time.sleep(4)  # the restarted rank 0 looks for its peer long before this one is up
distributed.init()
t = torch.ones(1)
distributed.all_reduce_sum_(t)
print(f"attempt {attempt} rank {rank} sum {t.item():.0f}", flush=True)
if attempt == "0" and rank == 1:
    sys.exit(3)  # a worker dies: torchrun restarts the group
"""


@pytest.mark.distributed
def test_a_restarted_group_does_not_meet_its_dead_workers(tmp_path: Path) -> None:
    """torchrun keeps its store across restarts; with torch's own init the new rank 0 can read
    the dead rank 1's address and fail ("Connection refused"). ppox gives each attempt its keys."""
    script = tmp_path / "restart.py"
    script.write_text(RESTART_SCRIPT)
    cmd = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc-per-node", "2",
           "--max-restarts", "1", "--monitor-interval", "0.2", str(script)]  # fmt: skip
    p = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "attempt 1 rank 0 sum 2" in p.stdout and "attempt 1 rank 1 sum 2" in p.stdout
