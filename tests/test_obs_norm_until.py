"""``env.obs_norm_until``: observation statistics that stop updating after a given number of
observations (docs/design/normalization.md). The statistics must hold exactly that many, in one
process and across a resume; the split among several workers is checked in test_distributed.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import ppox
import ppox.cli
from ppox.config import Config
from ppox.core.normalize import moments_of
from ppox.io.checkpoint import load_checkpoint
from ppox.training.normalizers import ObsNormalizer
from ppox.training.trainer import Trainer


def batches(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(5.0, 2.0, size=(k, 3)) for k in (4, 4, 4, 4)]


def test_statistics_hold_exactly_the_first_n_observations_and_then_stay() -> None:
    data = batches()
    norm = ObsNormalizer((3,), enabled=True, clip=1e9, until=10)
    for chunk in data[:3]:  # 4 + 4 + 4 rows: the third batch crosses 10 and adds only 2 of them
        norm.update(chunk)
    want = moments_of(np.concatenate(data)[:10])
    assert norm.moments.count == 10
    np.testing.assert_allclose(norm.moments.mean, want.mean, rtol=1e-12)
    np.testing.assert_allclose(norm.moments.m2, want.m2, rtol=1e-9)
    before = norm.state_dict()
    norm.update(data[3] * 100.0)  # far from the statistics: would move them if it were added
    assert norm.state_dict() == before
    # later observations are normalized with the statistics as they stand
    x = data[3][:1]
    np.testing.assert_allclose(
        norm(x), ((x - want.mean) / np.sqrt(want.var + 1e-8)).astype(np.float32), rtol=1e-6
    )


def test_zero_keeps_updating() -> None:
    norm = ObsNormalizer((3,), enabled=True, clip=1e9)
    for chunk in batches():
        norm.update(chunk)
    assert norm.moments.count == 16


def test_non_zero_counts_stop_with_the_moments() -> None:
    chunk = np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 3.0], [4.0, 5.0]])
    norm = ObsNormalizer((2,), enabled=True, clip=1e9, sparse=0.5, until=3)
    norm.update(chunk)
    norm.update(chunk)
    assert norm.moments.count == 3
    assert norm.state_dict()["nonzero"] == [2.0, 1.0]  # the first three rows only


def test_each_vector_leaf_stops_at_the_limit() -> None:
    leaves = {"a": (2,), "b": (1,)}
    norm = ObsNormalizer(leaves, enabled=True, clip=1e9, until=5)
    rng = np.random.default_rng(1)
    for _ in range(3):
        norm.update({"a": rng.normal(size=(2, 2)), "b": rng.normal(size=(2, 1))})
    assert {k: s["count"] for k, s in norm.state_dict()["leaves"].items()} == {"a": 5, "b": 5}


def test_restored_statistics_keep_the_limit() -> None:
    data = batches()
    norm = ObsNormalizer((3,), enabled=True, clip=1e9, until=6)
    norm.update(data[0])
    restored = ObsNormalizer((3,), enabled=True, clip=1e9, until=6)
    restored.load_state_dict(norm.state_dict())
    for n in (norm, restored):
        n.update(data[1])
        n.update(data[2])
    assert restored.state_dict() == norm.state_dict() and restored.moments.count == 6


def config(until: int) -> Config:
    return Config().replace(
        env_id="Pendulum-v1", num_envs=2, num_steps=8, num_minibatches=2, num_epochs=1,
        hidden_sizes=(8,), normalize_obs=True, obs_norm_until=until, total_steps=2 * 8 * 4,
        eval_every=0, tensorboard=False, progress=False, checkpoint_every=100, seed=2,
    )  # fmt: skip


def test_a_run_saves_statistics_of_exactly_the_limit(tmp_path: Path) -> None:
    """Two envs (the first reset's 2 observations, then 2 a step): the step that reaches 26
    adds one of its two, so the statistics hold 25, an odd number no batch lands on."""
    ppox.train(config(25), tmp_path / "r")
    state = load_checkpoint(tmp_path / "r")
    assert state["obs_norm"]["count"] == 25
    assert state["config"]["env"]["obs_norm_until"] == 25


def test_resume_across_the_limit_is_exact(tmp_path: Path, interrupted_run) -> None:
    """The checkpoint (after one iteration: 18 observations) is before the limit, the run ends
    after it: the resumed run's statistics and parameters are the uninterrupted run's."""
    cfg = config(41)
    full, cut = tmp_path / "full", tmp_path / "cut"
    ppox.train(cfg, full)
    interrupted_run(cfg, cut, 1, lost=1)
    assert load_checkpoint(cut)["obs_norm"]["count"] == 18
    Trainer.resume(cut).train()
    a, b = load_checkpoint(full), load_checkpoint(cut)
    assert a["obs_norm"] == b["obs_norm"] and a["obs_norm"]["count"] == 41
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


@pytest.mark.parametrize("value", ["-1", "1.5", "nan"])
def test_a_bad_limit_is_one_error_line_before_anything_is_written(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "r"
    argv = [
        "train",
        "--env-id",
        "Pendulum-v1",
        "--obs-norm-until",
        value,
        "--run-dir",
        str(run_dir),
    ]
    assert ppox.cli.main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("ppox: error: ") and "obs_norm_until" in err[0], err
    assert not run_dir.exists()
