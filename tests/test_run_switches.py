"""Run switches that change what a person sees or gets rather than what is learned: the live
progress line (``run.progress``), ``run.deterministic``, and ``ppox eval --stochastic``."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import ppox
import ppox.io.logging as run_logging
from ppox.cli import main
from ppox.config import Config
from ppox.io.checkpoint import load_checkpoint, save_checkpoint
from ppox.io.logging import RunLogger
from ppox.training.learner import Learner


class Tty(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def fake_clock(monkeypatch: pytest.MonkeyPatch, *times: float) -> None:
    """The logger's clock reads ``times`` in turn (the first read is at construction)."""
    ticks = iter(times)
    monkeypatch.setattr(run_logging, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))


def logger(run_dir: Path, progress: bool = True, **kw) -> RunLogger:
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunLogger(run_dir, tensorboard=False, progress=progress, **kw)


# --------------------------------------------------------------------------------------------
# the progress line (RunLogger._progress, run.progress)
# --------------------------------------------------------------------------------------------


def test_progress_line_by_hand(tmp_path, monkeypatch):
    """1000 steps from 0; the clock starts at 100 s. At 110 s, step 250: a quarter of 30 cells
    is 7 (rounded down), 25 steps/s, 750 steps left = 30 s. At 140 s, step 1000: full bar, 25
    steps/s, nothing left, no return yet. Each line starts with a carriage return (it
    overwrites the last one); closing ends the last line with a newline."""
    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    fake_clock(monkeypatch, 100.0, 110.0, 140.0)
    log = logger(tmp_path, total_steps=1000, start_step=0)
    log.log({"global_step": 250, "train_return_mean": 12.34})
    first = "\r[#######.......................]        250/1,000 steps       25 steps/s  return     12.3  ETA 00:30 "  # fmt: skip
    assert err.getvalue() == first
    log.log({"global_step": 1000, "train_return_mean": None})
    second = "\r[##############################]      1,000/1,000 steps       25 steps/s  return    n/a  ETA 00:00 "  # fmt: skip
    assert err.getvalue() == first + second
    log.close()
    assert err.getvalue() == first + second + "\n"


def test_progress_eta_in_hours_and_unknown_rate(tmp_path, monkeypatch):
    """10⁶ steps, 1000 done in 10 s: 100 steps/s, 999 000 steps left = 9990 s = 2:46:30, and
    0.1 % of 30 cells is none. A resumed run counts its rate from its own first step: at the
    step it resumed from nothing is measured yet, so the ETA is unknown (--:--)."""
    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    fake_clock(monkeypatch, 0.0, 10.0)
    logger(tmp_path / "a", total_steps=10**6, start_step=0).log(
        {"global_step": 1000, "train_return_mean": -1.5}
    )
    assert err.getvalue() == (
        "\r[..............................]      1,000/1,000,000 steps      100 steps/s  return     -1.5  ETA 2:46:30 "
    )  # fmt: skip
    err.truncate(0), err.seek(0)
    fake_clock(monkeypatch, 50.0, 55.0, 60.0)
    resumed = logger(tmp_path / "b", total_steps=1000, start_step=500)
    resumed.log({"global_step": 500})
    assert err.getvalue().endswith("       0 steps/s  return    n/a  ETA --:-- ")
    resumed.log({"global_step": 600})  # 100 steps in the 10 s since the logger began: 10 steps/s
    assert err.getvalue().endswith("      10 steps/s  return    n/a  ETA 00:40 ")


@pytest.mark.parametrize("tty", [True, False])
def test_no_progress_line_when_off(tmp_path, monkeypatch, tty):
    """--no-progress: nothing on a terminal and nothing in a log (where, with progress on, status
    lines go: test_status_lines_where_stderr_is_not_a_terminal)."""
    progress = False
    err = Tty() if tty else io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    log = logger(tmp_path, progress=progress, total_steps=1000, start_step=0)
    log.log({"global_step": 500, "train_return_mean": 1.0})
    log.close()
    assert err.getvalue() == ""
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 2  # the row is still logged


@pytest.mark.parametrize("progress", [True, False])
def test_run_progress_reaches_the_terminal(tmp_path, monkeypatch, progress):
    """``ppox.train`` with run.progress on a terminal: one line per iteration (two here), the
    steps counted to the budget, a newline at the end; off: no progress line at all."""
    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    cfg = Config().replace(env_id="CartPole-v1", total_steps=256, num_envs=2, num_steps=64, num_epochs=1,
                           eval_every=0, eval_episodes=1, tensorboard=False, progress=progress)  # fmt: skip
    ppox.train(cfg, tmp_path / "run")
    lines = [s for s in err.getvalue().split("\r") if s.startswith("[")]
    if not progress:
        assert lines == []
        return
    assert len(lines) == 2
    assert "128/256 steps" in lines[0] and "256/256 steps" in lines[1]
    assert lines[1].startswith("[" + "#" * 30 + "]") and lines[1].endswith("ETA 00:00 \n")


# --------------------------------------------------------------------------------------------
# run.deterministic
# --------------------------------------------------------------------------------------------


@pytest.fixture
def deterministic_flag() -> Iterator[None]:
    """Puts torch's global deterministic-algorithms flags back after the test."""
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    yield
    torch.use_deterministic_algorithms(before, warn_only=warn_only)


def flag_during_updates(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """torch's deterministic flag as seen by every update (``Learner.update_steps``, the
    generator the trainer steps) from now on."""
    seen: list[bool] = []
    update = Learner.update_steps

    def spy(self: Learner, data, progress: float):  # noqa: ANN202
        seen.append(torch.are_deterministic_algorithms_enabled())
        return update(self, data, progress)

    monkeypatch.setattr(Learner, "update_steps", spy)
    return seen


def tiny(seed: int = 3, **kw) -> Config:
    return Config().replace(env_id="Pendulum-v1", total_steps=512, num_envs=2, num_steps=64, num_epochs=2,
                            num_minibatches=2, normalize_obs=True, eval_every=0, eval_episodes=1,
                            tensorboard=False, progress=False, seed=seed, **kw)  # fmt: skip


def test_run_deterministic_is_on_for_the_run_and_runs_repeat_bit_for_bit(
    tmp_path, monkeypatch, deterministic_flag
):
    """With run.deterministic every update runs under torch.use_deterministic_algorithms, and
    two runs with one seed end with bit-identical parameters, optimizer state and observation
    statistics (another seed does not: the comparison can fail)."""
    seen = flag_during_updates(monkeypatch)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        ppox.train(tiny(seed, deterministic=True), tmp_path / name)
    assert len(seen) == 3 * 4 and all(seen)
    a, b, c = (load_checkpoint(tmp_path / n) for n in "abc")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["obs_norm"] == b["obs_norm"]
    sa, sb = a["optimizer"]["state"][0], b["optimizer"]["state"][0]
    assert all(torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])) for k in sa)
    assert any(not torch.equal(a["model"][k], c["model"][k]) for k in a["model"])


def test_without_run_deterministic_the_flag_stays_off(tmp_path, monkeypatch, deterministic_flag):
    seen = flag_during_updates(monkeypatch)
    ppox.train(tiny(), tmp_path / "run")
    assert seen and not any(seen)


def test_a_later_run_without_run_deterministic_runs_without_it(
    tmp_path, monkeypatch, deterministic_flag
):
    ppox.train(tiny(deterministic=True), tmp_path / "first")
    seen = flag_during_updates(monkeypatch)
    ppox.train(tiny(deterministic=False), tmp_path / "second")
    assert seen and not any(seen)


# --------------------------------------------------------------------------------------------
# ppox eval --stochastic
# --------------------------------------------------------------------------------------------

EPISODES = 400


@pytest.fixture(scope="module")
def half_sure_bandit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run on the one-hot bandit (reward 1 iff the action is the target shown) whose policy is
    set by hand: the actor's hidden layer copies the one-hot observation (tanh(20) = 1), the
    logits layer gives the target log 3 and the other three 0, so π(target) = 3/(3 + 3) = ½
    and the mode is always the target."""
    run = tmp_path_factory.mktemp("eval") / "bandit"
    cfg = Config().replace(env_id="PpoxToyBandit-v0", num_envs=4, num_steps=16, num_epochs=1, total_steps=64,
                           hidden_sizes=(4,), eval_every=0, eval_episodes=EPISODES, tensorboard=False,
                           progress=False, seed=0)  # fmt: skip
    ppox.train(cfg, run)
    state = load_checkpoint(run)
    m = state["model"]
    m["trunks.actor.0.weight"].copy_(20 * torch.eye(4))
    m["trunks.actor.0.bias"].zero_()
    m["head.logits.weight"].copy_(math.log(3) * torch.eye(4))
    m["head.logits.bias"].zero_()
    save_checkpoint(state, run / "checkpoint.pt")
    return run


def eval_stats(capsys: pytest.CaptureFixture, run: Path, *flags: str) -> dict[str, float]:
    capsys.readouterr()
    assert main(["eval", str(run), *flags]) == 0
    out = capsys.readouterr().out
    return json.loads(out[: out.rindex("}") + 1])


def test_eval_stochastic_samples_and_repeats_for_the_same_seeds(half_sure_bandit, capsys):
    """The mode is always right: return 1 on every episode. Sampling is right with probability
    ½: over 400 episodes the mean lies within 4 standard errors (4·√(¼/400) = 0.1) of ½, with
    both outcomes seen. The same evaluation seeds give the same sampled episodes."""
    greedy = eval_stats(capsys, half_sure_bandit)
    assert greedy["episodes"] == EPISODES
    assert greedy["return_mean"] == greedy["return_min"] == 1.0
    sampled = eval_stats(capsys, half_sure_bandit, "--stochastic")
    assert abs(sampled["return_mean"] - 0.5) < 0.1, sampled
    assert (sampled["return_min"], sampled["return_max"]) == (0.0, 1.0)
    assert eval_stats(capsys, half_sure_bandit, "--stochastic") == sampled
    fewer = eval_stats(capsys, half_sure_bandit, "--stochastic", "--episodes", "40")
    assert fewer["episodes"] == 40 and fewer != sampled


def test_status_lines_where_stderr_is_not_a_terminal(tmp_path, monkeypatch):
    """Not a terminal (CI, nohup): plain lines, one per progress_interval seconds and always the
    last. Clock from 100 s: at 110 s step 250 (first line: 25 steps/s, 750 left = 30 s); at 120 s
    step 500, 10 s after the last line (< 30): nothing; at 140 s step 1000, the end: a line."""
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    fake_clock(monkeypatch, 100.0, 110.0, 120.0, 140.0)
    log = logger(tmp_path, total_steps=1000, start_step=0, progress_interval=30.0)
    log.log({"global_step": 250, "train_return_mean": 12.34})
    log.log({"global_step": 500, "train_return_mean": 20.0})
    log.log({"global_step": 1000, "train_return_mean": 31.0})
    log.close()
    assert err.getvalue().splitlines() == [
        "ppox: 250/1,000 steps (25%)  25 steps/s  return 12.3  ETA 00:30",
        "ppox: 1,000/1,000 steps (100%)  25 steps/s  return 31.0  ETA 00:00",
    ]
    assert "\r" not in err.getvalue()


def test_wandb_logs_offline_beside_tensorboard(tmp_path, monkeypatch):
    """--wandb in offline mode: the W&B run lives in the run directory, holds the metrics, and a
    resumed run continues the same W&B run (its id is kept in the run directory)."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    cfg = Config().replace(
        env_id="CartPole-v1", total_steps=512, num_envs=2, num_steps=128, eval_every=0,
        eval_episodes=1, progress=False, wandb=True, wandb_project="ppox-test",
        wandb_group="g", wandb_tags="a,b", run_dir=str(run),
    )  # fmt: skip
    ppox.train(cfg)
    run_id = (run / "wandb_id").read_text().strip()
    offline = list((run / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(offline) == 1
    log = (offline[0] / f"run-{run_id}.wandb").read_bytes()  # W&B's record log, synced later
    assert b"train/return_mean" in log and b"loss/approx_kl" in log and b"ppox-test" in log
    assert main(["train", "--resume", str(run), "--total-steps", "1024"]) == 0
    assert (run / "wandb_id").read_text().strip() == run_id


def test_wandb_problems_are_one_line_before_anything_is_written(tmp_path, capsys, monkeypatch):
    """No package, or online without a login: one line naming the fix, no run directory."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else real(n, *a)
    )
    code = main(["train", "--wandb", "--run-dir", str(tmp_path / "r"), "--total-steps", "256"])
    assert code == 2
    assert capsys.readouterr().err.startswith("ppox: error: wandb=True needs the wandb package")
    monkeypatch.setattr(importlib.util, "find_spec", real)
    if real("wandb") is not None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
        monkeypatch.delenv("WANDB_API_KEY", raising=False)
        monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
        monkeypatch.setenv("HOME", str(tmp_path))
        code = main(["train", "--wandb", "--run-dir", str(tmp_path / "r"), "--total-steps", "256"])
        assert code == 2
        err = capsys.readouterr().err
        assert err.startswith("ppox: error: wandb=True logs online, which needs a W&B login")
        assert err.count("\n") == 1
    assert not (tmp_path / "r").exists()
