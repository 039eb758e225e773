"""Resuming a run whose environments cannot be snapshotted (Box2D) restarts their episodes
from fresh seeds, says so, and otherwise continues the run."""

from __future__ import annotations

import json
from pathlib import Path

import ppox
from ppox.io.checkpoint import load_checkpoint
from ppox.training.trainer import Trainer


def test_unpicklable_envs_restart_from_fresh_seeds(tmp_path: Path, capsys) -> None:
    cfg = ppox.get_preset("lunarlander").config().replace(
        num_envs=2, num_steps=64, num_minibatches=2, num_epochs=1, total_steps=512,
        eval_every=0, eval_episodes=1, checkpoint_every=1, tensorboard=False, progress=False,
    )  # fmt: skip
    run = tmp_path / "ll"
    trainer = Trainer.create(cfg, run)
    first_obs = trainer.collector.raw_obs.copy()
    trainer.train()
    assert load_checkpoint(run)["collector"]["env_states"] == [None, None]

    resumed = Trainer.resume(run, total_steps=768)
    assert "cannot be snapshotted" in capsys.readouterr().out
    assert not (resumed.collector.raw_obs == first_obs).all()  # not the run's first resets again
    summary = resumed.train()
    assert summary["total_steps"] == 768 and summary["resumed_env_state_exactly"] is False
    assert json.loads((run / "summary.json").read_text())["total_steps"] == 768
