"""Recurrent policies (``memory=lstm|gru``) end to end: exact resume after kill -9, and workers.

- kill -9 / resume: a ``ppox train`` run with a recurrent policy is killed (SIGKILL) after a
  checkpoint and resumed with ``ppox train --resume``; its final parameters, metrics and the
  collector's recurrent state are bit-equal to those of a run never stopped (CPU). The
  checkpoint taken at the kill holds live recurrent state (envs in mid-episode), and a copy of
  it whose state was zeroed continues with other losses, so the equality rests on the
  ``"memory"`` part of the collector's checkpoint. Same approach as tests/test_resume.py,
  whose helpers are reused (LSTM in the default suite, GRU with fresh states with -m slow);
  an in-process stop/resume (conftest's ``interrupted_run``) covers both in the default suite.
- workers: each worker holds its own rollout (its envs' sequences; a sequence never spans two
  workers) and every minibatch is whole sequences. The all-reduced gradient of a step is the
  gradient one process computes on the concatenation of both workers' sequences, and over
  epochs and minibatches (``fixed`` order, fresh states) the replicas stay bit-identical and
  land where one process on the concatenation lands. Checked in-process with the averaging
  done by hand (default suite), on two ``torch.multiprocessing`` gloo workers (default suite,
  as tests/test_distributed.py's ``pair``) and under ``torchrun`` (marked ``distributed``, as
  tests/test_distributed.py's torchrun runs). Run as a script, this file is the torchrun worker.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from gymnasium import spaces
from test_resume import params, ppox_cli, wait_for_rows  # kill -9 helpers (tests/ is on sys.path)

import ppox
from ppox.config import Config, PolicyConfig
from ppox.io.checkpoint import load_checkpoint, save_checkpoint
from ppox.io.logging import RunLogger, read_csv
from ppox.nn.actor_critic import ActorCritic
from ppox.nn.memory import Recurrence
from ppox.training import distributed
from ppox.training.learner import Learner, flatten_rollout
from ppox.training.trainer import Trainer
from ppox.types import Rollout

# --------------------------------------------------------------------------------------------
# kill -9 and resume
# --------------------------------------------------------------------------------------------

TOTAL = 4096  # 64 iterations of 4 envs × 16 steps
COMMON = [
    "--memory-size", "16", "--hidden-sizes", "16", "--num-envs", "4", "--num-steps", "16", "--bptt", "8",
    "--num-minibatches", "2", "--num-epochs", "2", "--total-steps", str(TOTAL), "--checkpoint-every", "1",
    "--eval-every", "2048", "--eval-episodes", "2", "--normalize-obs", "--scale-reward", "--seed", "7",
    "--no-tensorboard", "--no-progress",
]  # fmt: skip
CASES = {
    "lstm": ["--env-id", "ppox/CartPoleNoVel-v1", "--memory", "lstm"],
    "gru-fresh": ["--env-id", "CartPole-v1", "--memory", "gru", "--memory-states", "fresh"],
}


def _zero_memory(run: Path) -> None:
    """Overwrite the recurrent state in ``run``'s checkpoint with zeros (every env at a start)."""
    state = load_checkpoint(run)
    mem = state["collector"]["memory"]
    mem["state"], mem["start"] = torch.zeros_like(mem["state"]), torch.ones_like(mem["start"])
    save_checkpoint(state, run / "checkpoint.pt")


@pytest.mark.parametrize(
    "case",
    # each case is three `ppox train` processes (≈ 15–30 s); the GRU one only with -m slow (the
    # in-process test below covers GRU with fresh states in the default suite)
    ["lstm", pytest.param("gru-fresh", marks=pytest.mark.slow)],
)
def test_kill_9_and_resume_with_memory_matches_uninterrupted_run(tmp_path: Path, case: str) -> None:
    flags = [*CASES[case], *COMMON]
    full, cut = tmp_path / "full", tmp_path / "cut"
    p_full = ppox_cli("train", *flags, "--run-dir", str(full))  # the two share the machine's cores
    p = ppox_cli("train", *flags, "--run-dir", str(cut))
    try:
        wait_for_rows(cut / "metrics.csv", 10, p)  # ≥ 9 iterations done, each checkpointed
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert p_full.wait(timeout=900) == 0, p_full.stdout.read().decode()
    finally:
        for q in (p, p_full):
            if q.poll() is None:
                q.kill()
                q.wait()
    killed = load_checkpoint(cut)
    stopped_at = killed["progress"]["global_step"]
    assert 0 < stopped_at < TOTAL, stopped_at  # killed after a checkpoint, before the end
    mem = killed["collector"]["memory"]
    assert mem["state"].shape[0] == 4 and mem["state"].abs().sum() > 0  # live state to restore
    assert not mem["start"].all()  # some env is mid-episode at the checkpoint
    control = tmp_path / "control"
    shutil.copytree(cut, control)

    p = ppox_cli("train", "--resume", str(cut))
    out = p.communicate(timeout=900)[0].decode()
    assert p.returncode == 0, out

    a, b = params(full), params(cut)
    assert a.keys() == b.keys() and any("memory" in k for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    fa, fb = load_checkpoint(full), load_checkpoint(cut)
    assert fb["progress"]["global_step"] == TOTAL
    for k in ("state", "start"):  # the collector ends carrying the same recurrent state
        assert torch.equal(fa["collector"]["memory"][k], fb["collector"]["memory"][k]), k
    assert fa["obs_norm"] == fb["obs_norm"]
    rows_a, rows_b = read_csv(full / "metrics.csv"), read_csv(cut / "metrics.csv")
    assert [r["global_step"] for r in rows_a] == [r["global_step"] for r in rows_b]
    assert [r["train_return_mean"] for r in rows_a] == [r["train_return_mean"] for r in rows_b]
    assert [r["eval_return_mean"] for r in rows_a] == [r["eval_return_mean"] for r in rows_b]

    # control: the same checkpoint without its recurrent state does not continue the run (its
    # next iteration's losses are not the uninterrupted run's), so the equality above needs it
    _zero_memory(control)
    trainer = Trainer.resume(control)
    logger = RunLogger(control, tensorboard=False, progress=False, total_steps=TOTAL,
                       start_step=stopped_at)  # fmt: skip
    trainer.iterate(logger)
    logger.close()
    trainer.envs.close()
    trainer.release_run_dir()
    row = read_csv(control / "metrics.csv")[-1]
    want = next(r for r in rows_a if r["global_step"] == row["global_step"])
    assert int(row["global_step"]) == stopped_at + 64
    losses = ("policy_loss", "value_loss", "approx_kl", "entropy")
    assert [row[k] for k in losses] != [want[k] for k in losses]


@pytest.mark.parametrize(
    "switches",
    [
        {"env_id": "ppox/CartPoleNoVel-v1", "memory": "lstm", "memory_shared": True},
        {
            "env_id": "CartPole-v1",
            "memory": "gru",
            "memory_states": "fresh",
            "minibatch_order": "fixed",
        },
    ],
    ids=["lstm-shared", "gru-fresh"],
)
def test_in_process_resume_with_memory_is_exact(
    tmp_path: Path, switches: dict, interrupted_run
) -> None:
    """A run stopped one iteration after its checkpoint (its collector's state moved on) and
    resumed in-process ends as one never stopped (tests/conftest.py's ``interrupted_run``)."""
    cfg = ppox.Config().replace(memory_size=16, hidden_sizes=(16,), num_envs=4, num_steps=16, bptt=8,
                                num_minibatches=2, num_epochs=2, total_steps=4 * 16 * 8, checkpoint_every=100,
                                eval_every=0, eval_episodes=1, normalize_obs=True, scale_reward=True, seed=5,
                                tensorboard=False, progress=False, **switches)  # fmt: skip
    full, cut = tmp_path / "full", tmp_path / "cut"
    ppox.train(cfg, full)
    interrupted_run(cfg, cut, 3, lost=1)
    mem = load_checkpoint(cut)["collector"]["memory"]
    assert mem["state"].abs().sum() > 0 and not mem["start"].all()  # live state to restore
    Trainer.resume(cut).train()
    a, b = load_checkpoint(full), load_checkpoint(cut)
    assert any("memory" in k for k in a["model"])
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in ("state", "start"):
        assert torch.equal(a["collector"]["memory"][k], b["collector"]["memory"][k]), k
    assert a["obs_norm"] == b["obs_norm"] and a["reward_scaler"] == b["reward_scaler"]
    assert a["collector"]["stats"] == b["collector"]["stats"]


# --------------------------------------------------------------------------------------------
# workers: data every worker (and this process) generates from fixed seeds
# --------------------------------------------------------------------------------------------

WORLD = 2
T, K, N = 16, 8, 2  # steps per rollout, bptt, envs per worker: 4 sequences of 8 steps per worker
OBS = spaces.Box(-1, 1, (3,), np.float32)


def net(kind: str) -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(
        OBS, spaces.Discrete(3), PolicyConfig(hidden_sizes=(8,), memory=kind, memory_size=8)
    )


def cfg_for(kind: str, envs: int, **kw: Any) -> Config:
    base: dict[str, Any] = dict(
        memory=kind, memory_size=8, hidden_sizes=(8,), num_steps=T, bptt=K, num_envs=envs,
        num_epochs=1, num_minibatches=1, learning_rate=1e-3, max_grad_norm=None,
    )  # fmt: skip
    return Config().replace(**{**base, **kw}).validate()


def worker_rollout(rank: int, kind: str) -> Rollout:
    """Worker ``rank``'s ``[T, N]`` rollout, collected by :func:`net` step by step from a
    non-zero carried state: episode starts inside sequences and at their first step, stored
    states consistent with the network, log-probabilities perturbed (ratios leave the clip
    range) and rewards far from standardized."""
    g = torch.Generator().manual_seed(100 + rank)
    model = net(kind)
    obs = torch.rand(T, N, 3, generator=g) * 2 - 1
    starts = torch.rand(T, N, generator=g) < 0.15
    starts[3, 0] = starts[K, 1] = True  # one start inside a sequence, one at a sequence's start
    starts[0] = False  # the rollout continues episodes from the previous one
    state = 0.5 * torch.randn(N, model.state_size, generator=g)
    states, actions, logps, values = [], [], [], []
    with torch.no_grad():
        for t in range(T):
            states.append(state)
            dist, value, state = model.step(obs[t], None, state, starts[t])
            action, logp = dist.sample_log_prob(g)
            actions.append(action)
            logps.append(logp)
            values.append(value)
        last_obs = torch.rand(N, 3, generator=g) * 2 - 1
        last_value = model.value(last_obs, Recurrence(state, torch.zeros(N, dtype=torch.bool), 1))
    done = torch.cat([starts[1:], torch.rand(1, N, generator=g) < 0.3]).float()
    value = torch.stack(values)
    next_value = torch.cat([value[1:], last_value.unsqueeze(0)]) * (1 - done)
    logp = torch.stack(logps) + 0.3 * torch.randn(T, N, generator=g)
    reward = 2.0 + 3.0 * rank + torch.randn(T, N, generator=g)
    return Rollout(obs, torch.stack(actions), logp, value, next_value, reward, done, done, None,
                   last_obs=last_obs, state=torch.stack(states), starts=starts)  # fmt: skip


def cat_envs(rollouts: list[Rollout], order: list[int] | None = None) -> Rollout:
    """The workers' rollouts side by side (env columns in ``order``), as one process holding
    every worker's envs would have collected them."""
    fields: dict[str, Any] = {}
    for name in Rollout._fields:
        xs = [getattr(r, name) for r in rollouts]
        if xs[0] is None:
            fields[name] = None
            continue
        dim = 0 if name == "last_obs" else 1
        x = torch.cat(xs, dim=dim)
        fields[name] = x if order is None else x.index_select(dim, torch.tensor(order))
    return Rollout(**fields)


# ``fixed`` order with 2 minibatches: each worker's minibatch k is its env k's two sequences;
# with the columns r0e0, r1e0, r0e1, r1e1 one process's minibatch k is both workers' env k
FIXED_ORDER = [0, 2, 1, 3]
CHECKS: dict[str, tuple[str, dict[str, Any]]] = {
    # one step on the whole batch; advantages normalized over both workers (global scope)
    "lstm_one_step": ("lstm", {}),
    "gru_one_step": ("gru", {"norm_adv": "batch"}),
    # 3 epochs × 2 minibatches of whole sequences, clipped, minibatch normalization over workers
    "lstm_epochs": ("lstm", dict(num_epochs=3, num_minibatches=2, minibatch_order="fixed",
                                 learning_rate=0.02, max_grad_norm=0.5)),
    "gru_fresh_epochs": ("gru", dict(num_epochs=3, num_minibatches=2, minibatch_order="fixed",
                                     learning_rate=0.02, max_grad_norm=0.5, memory_states="fresh")),
}  # fmt: skip


def run_check(name: str, rank: int) -> dict[str, Any]:
    kind, kw = CHECKS[name]
    model = net(kind)
    learner = Learner(model, cfg_for(kind, N, **kw), torch.Generator().manual_seed(0))
    metrics = learner.update(worker_rollout(rank, kind), progress=0.0)
    return {"grad": learner.flat.grad.clone(), "params": learner.flat.flat.detach().clone(),
            "metrics": metrics, "world": learner.world}  # fmt: skip


def reference(name: str, **override: Any) -> Learner:
    """One process on the concatenation of both workers' rollouts."""
    kind, kw = CHECKS[name]
    order = FIXED_ORDER if kw.get("minibatch_order") == "fixed" else None
    both = cat_envs([worker_rollout(r, kind) for r in range(WORLD)], order)
    learner = Learner(net(kind), cfg_for(kind, WORLD * N, **{**kw, **override}),
                      torch.Generator().manual_seed(0))  # fmt: skip
    learner.update(both, progress=0.0)
    return learner


def all_checks(rank: int) -> dict[str, Any]:
    return {name: run_check(name, rank) for name in CHECKS}


def _spawned(rank: int, tmp: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=WORLD
    )
    try:
        torch.save(all_checks(rank), Path(tmp) / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


def torchrun_main(out: str) -> None:
    """The torchrun worker: join the group as ``ppox train`` does, run every check, save."""
    torch.set_num_threads(1)
    distributed.init()
    try:
        torch.save(all_checks(distributed.rank()), Path(out) / f"rank{distributed.rank()}.pt")
    finally:
        distributed.shutdown()


def check_against_reference(results: list[dict[str, Any]]) -> None:
    for name, (_, kw) in CHECKS.items():
        one = reference(name)
        a, b = results[0][name], results[1][name]
        assert a["world"] == b["world"] == WORLD
        assert torch.equal(a["params"], b["params"]), name  # bit-identical replicas
        assert (
            a["metrics"]["updates"]
            == b["metrics"]["updates"]
            == kw.get("num_epochs", 1) * kw.get("num_minibatches", 1)
        )
        if "epochs" in name:  # several Adam steps: float differences in the sums compound a little
            torch.testing.assert_close(a["params"], one.flat.flat.detach(), rtol=1e-4, atol=1e-5)
        else:
            torch.testing.assert_close(a["grad"], one.flat.grad, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(a["params"], one.flat.flat.detach(), rtol=1e-5, atol=1e-7)
        # the last step's gradient: the same global minibatch, from the same parameters (≈)
        torch.testing.assert_close(a["grad"], one.flat.grad, rtol=1e-3, atol=1e-5)
        assert torch.equal(a["grad"], b["grad"])
        # the exchange mattered: a worker's own gradient is not the global one
        kind, kw = CHECKS[name]
        alone = Learner(net(kind), cfg_for(kind, N, **kw), torch.Generator().manual_seed(0))
        alone.update(worker_rollout(0, kind), progress=0.0)
        assert (alone.flat.grad - one.flat.grad).abs().max() > 1e-3, name
        if kw.get("memory_states") == "fresh":  # and the recomputed states were trained on
            stale = reference(name, memory_states="stale").flat.flat.detach()
            assert (stale - one.flat.flat.detach()).abs().max() > 1e-3


@pytest.fixture(scope="module")
def spawned_pair(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("memory_pair")
    mp.spawn(_spawned, args=(str(tmp),), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


# --------------------------------------------------------------------------------------------
# workers: the tests
# --------------------------------------------------------------------------------------------


def test_sequence_layout_keeps_each_workers_sequences_whole_and_in_order() -> None:
    """In one process, the concatenated rollout's batch is worker 0's sequences, then worker
    1's (sequence ``c = n·(T/K) + j`` of env ``n``), each the sequence that worker trains on."""
    rs = [worker_rollout(r, "lstm") for r in range(WORLD)]
    adv, ret = torch.zeros(T, WORLD * N), torch.zeros(T, WORLD * N)
    both = flatten_rollout(cat_envs(rs), adv, ret, seq_len=K)
    own = [flatten_rollout(r, adv[:, :N], ret[:, :N], seq_len=K) for r in rs]
    half = N * T
    for r in range(WORLD):
        for field in ("obs", "action", "logp", "state", "starts"):
            assert torch.equal(
                getattr(both, field)[r * half : (r + 1) * half], getattr(own[r], field)
            )
    assert torch.equal(own[0].obs[:K], rs[0].obs[:K, 0])  # sequence 0: env 0's first K steps
    assert torch.equal(own[0].obs[K : 2 * K], rs[0].obs[K:, 0])  # sequence 1: its next K
    assert torch.equal(own[0].state[K], rs[0].state[K, 0])  # its stored initial state


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_averaged_worker_gradients_are_the_gradient_of_the_concatenated_sequences(
    kind: str,
) -> None:
    """The all-reduce's arithmetic in one process (world 1): the mean of each worker's
    whole-batch gradient on its own sequences is the gradient on both workers' sequences
    (advantages unnormalized, so no statistics are shared), and it depends on the stored
    recurrent states."""
    grads = []
    for rank in range(WORLD):
        learner = Learner(
            net(kind), cfg_for(kind, N, norm_adv="off"), torch.Generator().manual_seed(0)
        )
        learner.update(worker_rollout(rank, kind), progress=0.0)
        assert learner.world == 1 and learner.seq_len == K
        grads.append(learner.flat.grad.clone())
    both = cat_envs([worker_rollout(r, kind) for r in range(WORLD)])
    one = Learner(
        net(kind), cfg_for(kind, WORLD * N, norm_adv="off"), torch.Generator().manual_seed(0)
    )
    one.update(both, progress=0.0)
    torch.testing.assert_close((grads[0] + grads[1]) / 2, one.flat.grad, rtol=1e-5, atol=1e-6)
    assert (grads[0] - grads[1]).abs().max() > 1e-3  # the two workers' shares really differ
    # the same data with the carried states zeroed: another gradient (the states are read)
    zeroed = both._replace(state=torch.zeros_like(both.state))
    other = Learner(
        net(kind), cfg_for(kind, WORLD * N, norm_adv="off"), torch.Generator().manual_seed(0)
    )
    other.update(zeroed, progress=0.0)
    assert (other.flat.grad - one.flat.grad).abs().max() > 1e-4


def test_two_spawned_workers_match_one_process_on_the_concatenated_sequences(spawned_pair) -> None:
    check_against_reference(spawned_pair)


@pytest.mark.distributed
def test_torchrun_two_workers_match_one_process_on_the_concatenated_sequences(
    tmp_path: Path,
) -> None:
    cmd = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc-per-node", str(WORLD),
           "--monitor-interval", "0.2", __file__, str(tmp_path)]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    check_against_reference(results)


if __name__ == "__main__":
    torchrun_main(sys.argv[1])
