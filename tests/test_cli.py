"""The command line: every subcommand, and bad input ending in one clear line (no traceback)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from gymnasium import spaces

import ppox
from ppox.cli import main
from ppox.config import field_docs, field_sections
from ppox.presets import PRESETS

TINY = [
    "--total-steps",
    "512",
    "--eval-every",
    "0",
    "--eval-episodes",
    "2",
    "--no-progress",
    "--no-tensorboard",
]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ppox", *args], capture_output=True, text=True, timeout=300
    )


def assert_clean_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "cartpole"
    assert main(["train", *TINY, "--run-dir", str(run_dir)]) == 0
    return run_dir


def test_train_writes_a_complete_run_directory(trained: Path) -> None:
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "curve.svg", "summary.json"):
        assert (trained / name).is_file(), name
    summary = json.loads((trained / "summary.json").read_text())
    for key in (
        "total_steps",
        "eval_return_mean",
        "eval_return_std",
        "wall_time_s",
        "steps_per_second",
    ):
        assert summary[key] is not None, key
    assert summary["total_steps"] == 512
    assert summary["eval_seeds"] == [1_000_000, 1_000_001]
    assert json.loads((trained / "config.json").read_text())["env"]["env_id"] == "CartPole-v1"


def test_every_config_field_is_a_flag_with_its_docstring_as_help() -> None:
    r = run("train", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    docs = field_docs()
    assert set(docs) == set(field_sections())  # every field documented
    for name in field_sections():
        assert f"--{name.replace('_', '-')}" in text, name
    assert " ".join(docs["clip_coef"].split()) in text


def test_presets_lists_every_preset_on_one_line() -> None:
    r = run("presets")
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and len(lines) == len(PRESETS)
    assert {ln.split()[0] for ln in lines} == set(PRESETS)


def test_eval_reports_statistics_and_writes_a_gif(trained: Path, tmp_path: Path) -> None:
    gif = tmp_path / "episode.gif"
    r = run("eval", str(trained), "--episodes", "3", "--gif", str(gif))
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout[: r.stdout.rindex("}") + 1])
    assert (
        stats["episodes"] == 3
        and stats["return_min"] <= stats["return_mean"] <= stats["return_max"]
    )
    assert gif.stat().st_size > 1000
    assert stats["backend"] == "numpy"  # the NumPy actor serves CartPole's MLP


def test_eval_through_torch_says_so_and_agrees_on_cartpole(trained: Path) -> None:
    """`ppox eval --backend torch` acts through the reference path and says so; on CartPole the
    two backends' episodes are the same, so the return is the training's final evaluation."""
    r = run("eval", str(trained), "--backend", "torch")
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    summary = json.loads((trained / "summary.json").read_text())
    assert stats["backend"] == "torch" and stats["return_mean"] == summary["eval_return_mean"]
    bad = run("eval", str(trained), "--backend", "numpy")
    assert bad.returncode == 2 and "argument --backend: invalid choice: 'numpy'" in bad.stderr


def test_plot_puts_several_runs_in_one_png(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "curves.png"
    assert main(["plot", str(trained), str(trained), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_python_api_loads_a_policy_and_predicts(trained: Path) -> None:
    policy = ppox.load_policy(trained)
    action = policy.predict([0.0, 0.0, 0.0, 0.0])
    assert int(action) in (0, 1)
    assert policy.predict([[0.0] * 4] * 5).shape == (5,)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--env", "CartPol-v1"], ["env_id='CartPol-v1'", "CartPole-v1"]),
        (["--num-minibatches", "1000"], ["num_minibatches=1000"]),
        (["--learning-rate", "-0.1"], ["learning_rate=-0.1", "> 0 and ≤ 1"]),
        (["--preset", "nope"], ["preset='nope'", "cartpole"]),
        (["--norm-adv", "sometimes"], ["norm_adv='sometimes'", "'minibatch'"]),
    ],
)
def test_bad_input_gives_one_clear_line(
    args: list[str], needles: list[str], tmp_path: Path
) -> None:
    r = run("train", *TINY, "--run-dir", str(tmp_path / "r"), *args)
    assert_clean_error(r, *needles)
    assert not (tmp_path / "r").exists()  # nothing created for a run that could not start


TEXT_OBS_MODULE = """
import gymnasium as gym
from gymnasium import spaces


class TextObsEnv(gym.Env):
    observation_space = spaces.Text(8)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return "hello", {}

    def step(self, action):
        return "hello", 0.0, True, False, {}


gym.register("TextObs-v0", entry_point=TextObsEnv)
"""


def test_unsupported_observation_space_gives_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "textobs_env.py").write_text(TEXT_OBS_MODULE)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ppox",
            "train",
            *TINY,
            "--run-dir",
            str(tmp_path / "r"),
            "--env",
            "textobs_env:TextObs-v0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert_clean_error(r, "observation space", "Text", "not supported")
    assert not (tmp_path / "r").exists()


class TextActionEnv(gym.Env):
    observation_space = spaces.Box(-1.0, 1.0, (2,))
    action_space = spaces.Text(4)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


def test_unsupported_action_space_is_named(tmp_path: Path) -> None:
    gym.register("ppox-test/TextAction-v0", entry_point=TextActionEnv)
    cfg = ppox.Config().replace(env_id="ppox-test/TextAction-v0", total_steps=64)
    with pytest.raises(
        ppox.EnvError, match="Text.*not supported; supported action spaces: .*Box.*Discrete"
    ):
        ppox.train(cfg, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_existing_run_directory_is_never_overwritten(trained: Path) -> None:
    before = (trained / "checkpoint.pt").read_bytes()
    r = run("train", *TINY, "--run-dir", str(trained))
    assert_clean_error(r, "already holds files", "--resume")
    assert (trained / "checkpoint.pt").read_bytes() == before


def test_a_run_directory_without_a_checkpoint_is_not_offered_for_resume(tmp_path: Path) -> None:
    """A run killed before its first checkpoint leaves files but nothing to resume: the error
    says so instead of pointing to --resume, and the files stay."""
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "config.json").write_text("{}")
    (stopped / "metrics.csv").write_text("global_step\n")
    r = run("train", *TINY, "--run-dir", str(stopped))
    assert_clean_error(r, "already holds files", "no checkpoint to resume")
    assert "--resume" not in r.stderr
    assert sorted(x.name for x in stopped.iterdir()) == ["config.json", "metrics.csv"]


def test_corrupted_and_foreign_checkpoints_are_reported_by_name(
    trained: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "checkpoint.pt").write_bytes(b"not a checkpoint at all")
    assert_clean_error(run("eval", str(bad)), str(bad / "checkpoint.pt"), "corrupted or foreign")
    assert_clean_error(run("train", "--resume", str(bad)), str(bad / "checkpoint.pt"))
    assert (bad / "checkpoint.pt").read_bytes() == b"not a checkpoint at all"

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    torch.save({"state_dict": {}}, foreign / "checkpoint.pt")
    assert_clean_error(run("eval", str(foreign)), "not a ppox checkpoint")
    assert_clean_error(run("eval", str(tmp_path / "missing")), "no ppox checkpoint")


def test_resume_refuses_config_changes(trained: Path) -> None:
    assert_clean_error(run("train", "--resume", str(trained), "--learning-rate", "0.1"), "--resume")


def test_train_ends_with_the_training_time_and_the_whole_process_time(tmp_path: Path) -> None:
    r = run("train", *TINY, "--run-dir", str(tmp_path / "r"))
    assert r.returncode == 0, r.stdout + r.stderr
    last = r.stdout.strip().splitlines()[-1]
    m = re.search(
        r"steps in ([\d.]+) s of training \([\d,]+ steps/s\), ([\d.]+) s in all; eval return", last
    )
    assert m, last
    training, in_all = map(float, m.groups())
    # the whole process includes importing torch and building the run: longer than its loop
    assert in_all > training and in_all > 0.5
