"""What a run leaves behind: TensorBoard scalars and histograms, normalizer statistics that
travel with the policy, evaluation seeds disjoint from collection seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import ppox
from ppox.io.checkpoint import load_checkpoint
from ppox.io.logging import read_csv
from ppox.training.seeding import collection_seeds, evaluation_seeds
from ppox.training.trainer import Trainer


def _tb(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    return acc


def _tb_tags(run_dir: Path) -> tuple[set[str], set[str]]:
    acc = _tb(run_dir)
    return set(acc.Tags()["scalars"]), set(acc.Tags()["histograms"])


@pytest.mark.parametrize(
    ("env_id", "hist"),
    [("CartPole-v1", "policy/action_probs"), ("Pendulum-v1", "policy/action_std")],
)
def test_tensorboard_has_diagnostics_and_action_histograms(
    tmp_path: Path, env_id: str, hist: str
) -> None:
    cfg = ppox.Config().replace(env_id=env_id, total_steps=512, num_envs=2, num_steps=64, num_epochs=1,
                                eval_every=256, eval_episodes=1, progress=False)  # fmt: skip
    ppox.train(cfg, tmp_path / "run")
    scalars, histograms = _tb_tags(tmp_path / "run")
    for tag in ("loss/approx_kl", "loss/clip_fraction", "loss/explained_variance", "loss/entropy",
                "loss/grad_norm", "loss/policy_loss", "loss/value_loss", "eval/return_mean", "time/steps_per_second"):  # fmt: skip
        assert tag in scalars, tag
    assert hist in histograms
    # the histograms come at the first iteration and with every evaluation, not every iteration
    events = _tb(tmp_path / "run").Histograms(hist)
    assert [e.step for e in events] == [128, 256, 512]
    # every logged number is the metrics.csv value of its row (to its printed digits), at its step
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    acc = _tb(tmp_path / "run")
    for column, tag in (
        ("approx_kl", "loss/approx_kl"),
        ("steps_per_second", "time/steps_per_second"),
    ):
        logged = {e.step: e.value for e in acc.Scalars(tag)}
        want = {int(r["global_step"]): float(r[column]) for r in rows if r[column]}
        assert logged.keys() == want.keys() and len(want) == len(rows)
        for step, v in want.items():
            assert logged[step] == pytest.approx(v, rel=1e-4, abs=1e-7), (
                tag,
                step,
            )  # the CSV rounds


def test_observation_statistics_travel_with_the_policy(tmp_path: Path) -> None:
    cfg = (
        ppox.get_preset("pendulum")
        .config()
        .replace(
            total_steps=1024,
            num_envs=2,
            num_steps=128,
            eval_every=0,
            eval_episodes=1,
            progress=False,
            tensorboard=False,
            normalize_obs=True,
        )
    )
    trainer = Trainer.create(cfg, tmp_path / "run")
    trainer.train()
    saved = load_checkpoint(tmp_path / "run")["obs_norm"]
    assert saved["count"] > 1000  # updated on every observation seen
    policy = ppox.load_policy(tmp_path / "run")
    np.testing.assert_array_equal(policy.obs_norm.moments.mean, np.asarray(saved["mean"]))
    # predict applies the same normalization the trainer's policy used
    obs = np.array([0.5, -0.5, 1.0], dtype=np.float32)
    np.testing.assert_array_equal(policy.predict(obs), trainer.policy().predict(obs))


def test_evaluation_seeds_are_fixed_and_disjoint_from_collection_seeds() -> None:
    evals = evaluation_seeds(5, 100)
    assert evals == list(range(5, 105))
    for seed in range(50):
        train = collection_seeds(seed, 64, range(5, 105))
        assert len(set(train)) == 64 and not set(train) & set(evals)
        assert train == collection_seeds(seed, 64, range(5, 105))  # deterministic
    assert collection_seeds(1, 8, range(0)) != collection_seeds(2, 8, range(0))


def test_run_threads_go_to_the_update_library_and_never_to_both():
    """run.threads goes to NumPy's BLAS for the NumPy update and to torch for autograd, the
    other library keeping one thread: both pools above one thread spin against each other (a
    20x slowdown measured on 2 cores). 0 means every usable core, for that library alone."""
    import os

    from threadpoolctl import threadpool_info, threadpool_limits

    from ppox.training.trainer import set_threads, thread_split

    cores = len(os.sched_getaffinity(0))
    assert thread_split(1, "numpy") == thread_split(1, "autograd") == (1, 1)
    assert thread_split(4, "numpy") == (1, 4) and thread_split(4, "autograd") == (4, 1)
    assert thread_split(0, "numpy") == (1, cores) and thread_split(0, "autograd") == (cores, 1)
    before = torch.get_num_threads()
    with threadpool_limits(limits=None):  # puts the BLAS limits back on exit
        for n, backend, want in [
            (1, "numpy", (1, 1)),
            (2, "numpy", (1, 2)),
            (2, "autograd", (2, 1)),
        ]:
            assert set_threads(n, backend) == want
            blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
            assert blas and all(i["num_threads"] == want[1] for i in blas)
            assert torch.get_num_threads() == want[0], threadpool_info()
    torch.set_num_threads(before)


def test_a_run_records_the_threads_each_library_got(tmp_path: Path) -> None:
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    with threadpool_limits(limits=None):
        for backend, want in [
            ("numpy", {"torch": 1, "blas": 2}),
            ("autograd", {"torch": 2, "blas": 1}),
        ]:
            cfg = ppox.Config().replace(threads=2, update_backend=backend, total_steps=256, eval_every=0,
                                        progress=False)  # fmt: skip
            trainer = Trainer.create(cfg, tmp_path / backend)
            assert trainer.backends()["threads"] == want
            trainer.envs.close()
            trainer.release_run_dir()
    torch.set_num_threads(before)


def test_metrics_wall_time_counts_the_iteration_it_is_logged_for(tmp_path: Path) -> None:
    """Each row's ``wall_time_s`` includes its own iteration (the first row is not 0), grows
    row by row, and the last row's is within the final checkpoint's time of summary.json's."""
    import json

    from ppox.io.logging import read_csv

    cfg = ppox.Config().replace(total_steps=512, num_envs=2, num_steps=64, num_epochs=1,
                                eval_every=0, tensorboard=False, progress=False)  # fmt: skip
    ppox.train(cfg, tmp_path / "run")
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    times = [float(r["wall_time_s"]) for r in rows]
    assert times[0] > 0 and all(b > a for a, b in zip(times, times[1:]))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert times[-1] <= summary["wall_time_s"]
