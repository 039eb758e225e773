"""Overlapped collection (``run.overlap_collection``): the lag of one iteration, exactly as
documented; reproducible and resumed exactly; errors in the worker reach the user as in a
synchronous run; what it cannot serve is a clear error."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from test_numerics import cli

import ppox
from ppox.errors import ConfigError
from ppox.io.checkpoint import load_checkpoint
from ppox.training.trainer import Trainer


def small(**kw) -> ppox.Config:
    base = dict(env_id="CartPole-v1", num_envs=4, num_steps=32, num_epochs=4, num_minibatches=2, total_steps=4 * 32 * 8,
                eval_every=0, eval_episodes=2, checkpoint_every=100, seed=5, tensorboard=False, progress=False,
                overlap_collection=True)  # fmt: skip
    return ppox.Config().replace(**{**base, **kw})


def _record(trainer: Trainer) -> list[tuple[dict[str, torch.Tensor], object]]:
    """Wrap the learner's update (the generator the trainer steps): each call's (parameters
    before it, rollout)."""
    seen: list[tuple[dict[str, torch.Tensor], object]] = []
    update = trainer.learner.update_steps

    def recording(rollout, **kw):
        seen.append(({k: v.clone() for k, v in trainer.model.state_dict().items()}, rollout))
        return update(rollout, **kw)

    trainer.learner.update_steps = recording  # type: ignore[method-assign]
    return seen


def _logp_under(trainer: Trainer, params: dict[str, torch.Tensor], rollout) -> torch.Tensor:
    model = trainer.model
    now = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.load_state_dict(params)
        logp = model.dist(rollout.obs.flatten(0, 1)).log_prob(rollout.action.flatten(0, 1))
        model.load_state_dict(now)
    return logp


@pytest.mark.parametrize("overlap", [True, False])
def test_each_rollout_is_collected_by_the_policy_of_one_update_earlier(
    tmp_path: Path, overlap: bool
) -> None:
    """Overlapped: rollout k (k ≥ 1) carries the log-probabilities of the policy before update
    k − 1, the first one those of the initial policy; synchronous: of the policy before update
    k. Checked on the stored log-probabilities, which PPO's ratio is taken against."""
    trainer = Trainer.create(small(overlap_collection=overlap), tmp_path / "run")
    seen = _record(trainer)
    trainer.train()
    assert len(seen) == 8
    for k, (_, rollout) in enumerate(seen):
        behaviour = seen[max(k - 1, 0)][0] if overlap else seen[k][0]
        stored = rollout.logp.flatten()
        torch.testing.assert_close(
            stored, _logp_under(trainer, behaviour, rollout), rtol=1e-5, atol=1e-5
        )
        if k >= 2:  # and not the other policy: the two differ by then
            other = seen[k][0] if overlap else seen[k - 1][0]
            assert not torch.allclose(
                stored, _logp_under(trainer, other, rollout), rtol=1e-5, atol=1e-5
            )
    assert trainer.backends()["collection"] == ("overlapped" if overlap else "synchronous")
    assert trainer.overlap is None  # the worker was stopped with the run


def test_a_checkpoint_is_written_between_rollouts_and_the_next_has_no_lag(tmp_path: Path) -> None:
    """No rollout is in flight at a checkpoint: the one after it is collected by the policy
    just saved, as a resumed run would collect it."""
    trainer = Trainer.create(small(checkpoint_every=3), tmp_path / "run")
    seen = _record(trainer)
    trainer.train()
    for k, (_, rollout) in enumerate(seen):
        fresh = k == 0 or k % 3 == 0  # the first, and the first after each checkpoint
        behaviour = seen[k][0] if fresh else seen[k - 1][0]
        torch.testing.assert_close(rollout.logp.flatten(), _logp_under(trainer, behaviour, rollout), rtol=1e-5,
                                   atol=1e-5)  # fmt: skip


def test_overlapped_runs_are_reproducible_and_resume_exactly(
    tmp_path: Path, interrupted_run
) -> None:
    cfg = small(normalize_obs=True, scale_reward=True, checkpoint_every=2, total_steps=4 * 32 * 10)
    full, again, cut = tmp_path / "full", tmp_path / "again", tmp_path / "cut"
    ppox.train(cfg, full)
    ppox.train(cfg, again)
    interrupted_run(cfg, cut, 4, lost=1)  # a checkpoint after 4 iterations, one more lost
    Trainer.resume(cut).train()
    a, b, c = load_checkpoint(full), load_checkpoint(again), load_checkpoint(cut)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
        assert torch.equal(a["model"][k], c["model"][k]), k
    assert a["obs_norm"] == c["obs_norm"] and a["reward_scaler"] == c["reward_scaler"]
    assert a["collector"]["stats"] == c["collector"]["stats"]
    # the lag changes the run: a synchronous run of the same config ends elsewhere
    ppox.train(cfg.replace(overlap_collection=False), tmp_path / "sync")
    sync = load_checkpoint(tmp_path / "sync")
    assert any(not torch.equal(a["model"][k], sync["model"][k]) for k in a["model"])


def test_an_env_error_in_the_worker_is_the_same_one_line(tmp_path: Path, capsys) -> None:
    code, err = cli(capsys, "--env", "PpoxTestNaNReward-v0", "--num-envs", "2", "--num-steps", "16", "--total-steps",
                    "128", "--eval-every", "0", "--no-tensorboard", "--overlap-collection",
                    "--run-dir", str(tmp_path / "r"))  # fmt: skip
    lines = [x for x in err.splitlines() if x.startswith("ppox: error:")]
    assert code == 2 and len(lines) == 1, err
    assert "env 0 returned a non-finite reward nan" in lines[0] and "iteration 1" in lines[0]
    assert "Traceback" not in err


def test_what_overlap_cannot_serve_is_a_clear_error() -> None:
    with pytest.raises(
        ConfigError, match="overlap_collection=True runs in one process; this run has 2 workers"
    ):
        small().validate().validate_world(2)


def test_async_envs_work_with_the_worker_and_close_cleanly(tmp_path: Path) -> None:
    """AsyncVectorEnv's env processes are the trainer's children: the worker steps them through
    its copy of their pipes, and the trainer closes them at the end."""
    cfg = small(vectorization="async", num_envs=2, total_steps=2 * 32 * 4, checkpoint_every=2)
    a = ppox.train(cfg, tmp_path / "a")
    b = ppox.train(cfg, tmp_path / "b")
    assert a["backends"]["collection"] == "overlapped"
    assert a["train_return_mean"] == b["train_return_mean"] and a["evals"] == b["evals"]


def test_envpool_is_refused_before_anything_is_written(tmp_path: Path, capsys) -> None:
    pytest.importorskip("envpool")
    code, err = cli(capsys, "--overlap-collection", "--env-backend", "envpool", "--total-steps", "256",
                    "--run-dir", str(tmp_path / "r"))  # fmt: skip
    lines = [x for x in err.splitlines() if x.startswith("ppox: error:")]
    assert code == 2 and len(lines) == 1 and "env_backend='gymnasium'" in lines[0], err
    assert not (tmp_path / "r").exists()


class _SlowCartPole(gym.Wrapper):
    """CartPole whose every step takes 20 ms: collection much slower than the update."""

    def __init__(self) -> None:
        super().__init__(gym.make("CartPole-v1"))

    def step(self, action):
        time.sleep(0.02)
        return self.env.step(action)


if "PpoxTestSlowCartPole-v0" not in gym.registry:
    gym.register("PpoxTestSlowCartPole-v0", entry_point=_SlowCartPole)


def _children(pid: int) -> set[int]:
    try:
        return set(map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split()))
    except OSError:
        return set()


def test_ctrl_c_while_waiting_for_a_rollout_stops_at_once(tmp_path: Path) -> None:
    """A synchronous run stops mid-rollout; so does an overlapped one: the worker is killed,
    not waited for (a rollout here takes 64 × 20 ms)."""
    cfg = small(env_id="PpoxTestSlowCartPole-v0", num_envs=2, num_steps=64, total_steps=2 * 64 * 50)
    trainer = Trainer.create(cfg, tmp_path / "run")
    threading.Timer(0.6, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert time.monotonic() - t0 < 0.6 + 1.0  # not the rest of a 1.3 s rollout
    assert trainer.overlap is None and not mp.active_children()


@pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="reads the process tree from /proc"
)
def test_the_worker_ends_when_the_trainer_is_killed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ppox", "train", "--overlap-collection", "--total-steps", "2000000",
                             "--eval-every", "0", "--no-tensorboard", "--no-progress", "--run-dir", str(run)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while (
            not _children(proc.pid) and time.monotonic() < deadline
        ):  # the worker, forked at the first rollout
            time.sleep(0.05)
        (worker,) = _children(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        try:  # reap it if it became ours (it is re-parented to init, or to a subreaper)
            os.waitpid(worker, os.WNOHANG)
        except ChildProcessError:
            pass
        status = Path(f"/proc/{worker}/status")
        if status.exists() and "zombie" in status.read_text():
            break
        time.sleep(0.05)
    gone = (
        not Path(f"/proc/{worker}").exists()
        or "zombie" in Path(f"/proc/{worker}/status").read_text()
    )
    assert gone, "the collection worker outlived its trainer"


def test_more_threads_are_refused_before_anything_is_written(tmp_path: Path, capsys) -> None:
    code, err = cli(capsys, "--overlap-collection", "--threads", "2", "--total-steps", "256",
                    "--run-dir", str(tmp_path / "r"))  # fmt: skip
    lines = [x for x in err.splitlines() if x.startswith("ppox: error:")]
    assert code == 2 and len(lines) == 1 and "needs threads=1 (got 2)" in lines[0], err
    assert not (tmp_path / "r").exists()
