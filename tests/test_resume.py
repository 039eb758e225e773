"""Exact resume: a run stopped with kill -9 and resumed ends with the same parameters as a run
that was never interrupted (CPU), and in-process stop/resume for a continuous task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import ppox
from ppox.io.checkpoint import load_checkpoint
from ppox.io.logging import read_csv
from ppox.training.trainer import Trainer

FLAGS = [
    "--total-steps", "12288", "--num-envs", "4", "--num-steps", "64", "--num-epochs", "4",
    "--num-minibatches", "4", "--checkpoint-every", "1", "--eval-every", "2048", "--eval-episodes", "2",
    "--normalize-obs", "--scale-reward", "--seed", "7", "--no-tensorboard", "--no-progress",
]  # fmt: skip


def ppox_cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "ppox", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **kw,
    )


def params(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir)["model"]


def wait_for_rows(csv: Path, rows: int, proc: subprocess.Popen, timeout: float = 900) -> None:
    """Wait until ``csv`` has more than ``rows`` lines (generous: CI machines can be slow and busy)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if csv.exists() and len(csv.read_text().splitlines()) > rows:
            return
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        time.sleep(0.02)
    raise AssertionError("training did not progress")


def test_kill_9_and_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    p = ppox_cli("train", *FLAGS, "--run-dir", str(full))
    assert p.wait(timeout=900) == 0, p.stdout.read().decode()

    p = ppox_cli("train", *FLAGS, "--run-dir", str(cut))
    wait_for_rows(cut / "metrics.csv", 20, p)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    stopped_at = load_checkpoint(cut)["progress"]["global_step"]
    assert 0 < stopped_at < 12288  # really interrupted mid-way

    p = ppox_cli("train", "--resume", str(cut))
    assert p.wait(timeout=900) == 0, p.stdout.read().decode()

    a, b = params(full), params(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the logs were truncated to the checkpoint and continued: same rows as the full run
    rows_a, rows_b = read_csv(full / "metrics.csv"), read_csv(cut / "metrics.csv")
    assert [r["global_step"] for r in rows_a] == [r["global_step"] for r in rows_b]
    assert [r["eval_return_mean"] for r in rows_a] == [r["eval_return_mean"] for r in rows_b]


def _cfg(tmp: Path, name: str) -> tuple[ppox.Config, Path]:
    cfg = ppox.get_preset("pendulum").config().replace(
        total_steps=4 * 64 * 6, num_envs=4, num_steps=64, num_minibatches=4, num_epochs=2,
        eval_every=512, eval_episodes=2, tensorboard=False, progress=False, checkpoint_every=100,
    )  # fmt: skip
    return cfg, tmp / name


def test_in_process_resume_of_a_continuous_task_is_exact(tmp_path: Path, interrupted_run) -> None:
    cfg, full = _cfg(tmp_path, "full")
    ppox.train(cfg, full)

    _, cut = _cfg(tmp_path, "cut")
    interrupted_run(cfg, cut, 3, lost=1)  # one iteration after the checkpoint is lost
    Trainer.resume(cut).train()
    a, b = params(full), params(cut)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert load_checkpoint(cut)["obs_norm"] == load_checkpoint(full)["obs_norm"]


@pytest.mark.parametrize(
    "switches",
    [
        {"algo": "ppo-penalty", "kl_coef": 0.5, "kl_margin": 2.0, "recompute_adv": True},
        {"algo": "reinforce", "baseline": "mean", "minibatch_order": "trajectories"},
        {
            "grad_clip": "ignore",
            "max_grad_norm": 4.55,
            "advantage": "nstep",
            "minibatch_order": "fixed",
        },
        {"algo": "trpo", "max_kl": 0.02, "norm_adv": "batch"},
    ],
    ids=["penalty", "reinforce", "ignore", "trpo"],
)
def test_resume_is_exact_with_the_family_state(
    tmp_path: Path, switches: dict, interrupted_run
) -> None:
    """β, the running-mean baseline and the skipped-update counter travel in the checkpoint."""
    cfg = ppox.Config().replace(env_id="CartPole-v1", total_steps=8 * 64 * 4, num_envs=8, num_steps=64, num_epochs=2,
                                num_minibatches=4, checkpoint_every=100, eval_every=0, eval_episodes=1, seed=3,
                                tensorboard=False, progress=False, **switches)  # fmt: skip
    full, cut = tmp_path / "full", tmp_path / "cut"
    ppox.train(cfg, full)
    interrupted_run(cfg, cut, 2)
    Trainer.resume(cut).train()
    a, b = load_checkpoint(full), load_checkpoint(cut)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["learner"] == b["learner"]
    # the state really moved, so the equality above means something
    if switches.get("algo") == "ppo-penalty":
        assert a["learner"]["kl_coef"] != 0.5
    if switches.get("baseline") == "mean":
        assert a["learner"]["baseline_mean"] is not None
    if (
        switches.get("grad_clip") == "ignore"
    ):  # the grad norm hovers around 4.5 here: some steps skipped, some not
        assert 0 < a["learner"]["skipped_total"] < 4 * 2 * 4


@pytest.mark.parametrize(
    "env_id, extra",
    [
        ("Acrobot-v1", {"max_episode_steps": 40}),
        ("MountainCar-v0", {"max_episode_steps": 40}),
        ("MountainCarContinuous-v0", {"max_episode_steps": 40}),
        ("CartPole-v1", {"vectorization": "async"}),
        ("Hopper-v5", {}),
        ("HalfCheetah-v5", {"max_episode_steps": 50}),
        ("ppox/Moving-v0", {"max_episode_steps": 40}),
        ("ppox/HardMove-v0", {"vectorization": "async"}),
        ("PpoxToyCounter-v0", {}),
        ("PpoxToyNestedObsMask-v0", {}),
        ("PpoxToyHybridBandit-v0", {}),
    ],
)
def test_resume_with_plain_data_env_snapshots_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupted_run, env_id: str, extra: dict
) -> None:
    """Env snapshots are plain data (ppox.envs.snapshot), restored into freshly made envs: a run
    stopped mid-episode and resumed in-process ends with the same parameters, normalizer
    statistics and training returns as one never stopped, for every env family ppox resumes
    exactly (classic control, MuJoCo, ppox's hybrid envs, toy envs; sync and async)."""
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the working directory
    cfg = ppox.Config().replace(env_id=env_id, total_steps=2 * 32 * 5, num_envs=2, num_steps=32, num_epochs=2,
                                num_minibatches=2, checkpoint_every=100, eval_every=0, eval_episodes=1,
                                normalize_obs=True, scale_reward=True, tensorboard=False, progress=False,
                                seed=5, **extra)  # fmt: skip
    full, cut = tmp_path / "full", tmp_path / "cut"
    ppox.train(cfg, full)
    interrupted_run(cfg, cut, 2, lost=1)
    assert all(isinstance(s, dict) for s in load_checkpoint(cut)["collector"]["env_states"])
    summary = Trainer.resume(cut).train()
    assert summary["resumed_env_state_exactly"] is True
    a, b = load_checkpoint(full), load_checkpoint(cut)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["obs_norm"] == b["obs_norm"] and a["reward_scaler"] == b["reward_scaler"]
    assert a["collector"]["stats"] == b["collector"]["stats"]
