"""``ppox doctor``: healthy runs raise no flag, runs broken on purpose raise the right one.

The broken runs are real (short) trainings: CartPole with a learning rate 100× the preset's, a
CartPole paying 1000 per step without reward scaling, and a hard-exploration task (a lure worth 1
next to a prize worth 100 behind 20 steps) without an entropy bonus."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import ppox
from ppox.analysis.doctor import REFERENCE_DIR, diagnose
from ppox.cli import main
from ppox.io.logging import COLUMNS

QUIET = dict(progress=False, tensorboard=False, eval_every=0, eval_episodes=1)


def trained(tmp_path: Path, name: str, **changes) -> Path:
    values = {"total_steps": 20_000, "run_dir": str(tmp_path / name), **QUIET, **changes}
    ppox.train(ppox.get_preset("cartpole").config().replace(**values))
    return tmp_path / name


def checks(run: Path) -> set[str]:
    return {f.check for f in diagnose(run).findings}


def test_a_healthy_run_raises_no_flag(tmp_path):
    run = trained(tmp_path, "ok", total_steps=30_000)
    d = diagnose(run)
    assert d.findings == [], d.text()
    assert "no problems found" in d.text()


def test_a_learning_rate_100x_too_large_is_flagged_as_oversized_updates(tmp_path):
    run = trained(tmp_path, "lr", learning_rate=0.1)  # the preset's 1e-3 × 100
    assert "approx_kl" in checks(run)
    finding = next(f for f in diagnose(run).findings if f.check == "approx_kl")
    assert "--learning-rate (now 0.1)" in finding.advice


def test_large_rewards_without_scaling_are_flagged(tmp_path):
    run = trained(tmp_path, "big", env_id="PpoxToyBigRewardCartPole-v0")
    found = checks(run)
    assert "reward scale" in found and "explained_variance" in found
    # the same task with --scale-reward: no reward-scale flag
    assert "reward scale" not in checks(
        trained(tmp_path, "scaled", env_id="PpoxToyBigRewardCartPole-v0", scale_reward=True)
    )


def test_no_entropy_bonus_on_a_hard_exploration_task_is_flagged(tmp_path):
    run = trained(tmp_path, "lure", env_id="PpoxToyLure-v0", ent_coef=0.0)
    finding = next(f for f in diagnose(run).findings if f.check == "entropy")
    assert "--ent-coef (now 0.0)" in finding.advice


@pytest.mark.parametrize("name", sorted(p.stem for p in REFERENCE_DIR.glob("*.csv")) or ["none"])
def test_the_reference_runs_are_healthy(tmp_path, name):
    """Every committed reference run, read as a run of its preset: no flag, and it matches its
    own reference."""
    if name == "none":
        pytest.skip("no reference runs committed")
    run = tmp_path / name
    run.mkdir()
    (run / "metrics.csv").write_bytes((REFERENCE_DIR / f"{name}.csv").read_bytes())
    cfg = ppox.get_preset(name).config().replace(seed=1)
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    d = diagnose(run)
    assert d.findings == [], d.text()
    assert d.reference is not None and d.reference.startswith(f"preset {name} ")


def write_rows(run: Path, rows: list[dict], config: dict | None = None) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    with (run / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in COLUMNS})
    # no preset has this config, so no reference is compared (synthetic rows are not CartPole's)
    default = ppox.Config().replace(env_id="Acrobot-v1").to_dict()
    (run / "config.json").write_text(json.dumps(config or default))
    return run


def row(i: int, **kw) -> dict:
    base = {"iteration": i, "global_step": 256 * i, "train_return_mean": 20.0,
            "train_length_mean": 20.0, "entropy": 0.69, "approx_kl": 0.01, "clip_fraction": 0.1,
            "explained_variance": 0.8, "value_loss": 1.0}  # fmt: skip
    return {**base, **kw}


def test_numerical_trouble_is_an_error_finding(tmp_path):
    rows = [row(i) for i in range(1, 30)]
    rows[5]["value_loss"] = "nan"
    rows[7]["rollbacks"] = 1
    rows[8]["skipped_transitions"] = 12
    d = diagnose(write_rows(tmp_path / "r", rows))
    errors = {f.check for f in d.findings if f.severity == "error"}
    assert errors == {"non-finite values", "rollbacks", "skipped_transitions"}


def test_a_value_loss_that_explodes_and_a_policy_that_does_not_move(tmp_path):
    rows = [row(i, value_loss=1.0 if i < 20 else 500.0) for i in range(1, 45)]
    assert "value_loss" in checks(write_rows(tmp_path / "v", rows))
    cfg = ppox.Config().replace(env_id="Acrobot-v1", total_steps=10**6).to_dict()
    still = [row(i, approx_kl=1e-7, clip_fraction=0.0) for i in range(1, 30)]
    assert "approx_kl" in checks(write_rows(tmp_path / "s", still, cfg))


def test_a_run_with_no_iteration_yet_and_the_cli(tmp_path, capsys):
    run = write_rows(tmp_path / "new", [])
    assert main(["doctor", str(run)]) == 1
    assert "no iteration logged yet" in capsys.readouterr().out
    healthy = write_rows(tmp_path / "h", [row(i) for i in range(1, 30)])
    assert main(["doctor", str(healthy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []
    assert main(["doctor", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ppox: error: ") and "no metrics.csv" in err and err.count("\n") == 1


def test_a_language_model_run_is_refused_in_one_line(tmp_path, capsys):
    run = write_rows(tmp_path / "llm", [row(1)])
    (run / "config.json").write_text(json.dumps({"kind": "llm", "model": "m"}))
    assert main(["doctor", str(run)]) == 2
    assert "is a language-model run" in capsys.readouterr().err


def test_trpo_is_judged_by_its_line_search_not_by_ppo_s_kl_range(tmp_path):
    """TRPO's KL is bounded by max_kl by construction; a trust region too large for the quadratic
    model shows as a line search that accepts no step."""

    def trpo(name: str, **changes) -> Path:
        values = {"total_steps": 30_000, "run_dir": str(tmp_path / name), **QUIET, **changes}
        ppox.train(ppox.get_preset("cartpole-trpo").config().replace(**values))
        return tmp_path / name

    assert checks(trpo("ok")) == set()
    run = trpo("wide", max_kl=5.0, line_search_steps=3)
    finding = next(f for f in diagnose(run).findings if f.check == "line_search")
    assert "--max-kl (now 5.0)" in finding.advice
    assert "approx_kl" not in checks(run)
