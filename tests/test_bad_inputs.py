"""Bad input to ``ppox``: every one ends in one line ``ppox: error: …`` naming the flag or field,
exit status 2, and nothing written. One test per kind of input that went wrong before (a
traceback, a hang, a run that trained to NaN parameters, a value silently dropped, an error
buried under argparse's usage block)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

import ppox
from ppox import Config, ConfigError
from ppox.cli import build_parser, config_from_args, main
from ppox.io.evaluate import evaluate_episodes, record_gif
from ppox.io.policy import Policy, build_model

QUIET = ["--no-progress", "--no-tensorboard"]
TINY = ["--total-steps", "64", "--num-envs", "2", "--eval-every", "0", "--eval-episodes", "1"]


def one_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    """Run ``ppox argv`` in-process; assert exit 2 and exactly one stderr line ``ppox: error:``
    holding every needle; return that line."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppox: error: "), err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def write_json(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data))
    return str(path)


# --- types: the same rule for a flag, a --config file and the Python API ----------------------
def test_a_string_for_an_int_is_refused_in_a_config_file_and_in_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_json(tmp_path / "c.json", {"env": {"num_envs": "8"}})
    one_error(capsys, ["train", "--config", cfg, "--run-dir", str(tmp_path / "r")],
              "num_envs='8' is not allowed: an integer", "(got a string)", cfg)  # fmt: skip
    with pytest.raises(ConfigError, match=r"^num_envs='8' is not allowed: an integer"):
        Config().replace(num_envs="8")
    assert not (tmp_path / "r").exists()


def test_a_string_for_a_bool_in_a_config_file_no_longer_turns_normalization_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_json(tmp_path / "c.json", {"env": {"normalize_obs": "no"}})
    one_error(
        capsys, ["train", "--config", cfg], "normalize_obs='no' is not allowed: true or false"
    )
    with pytest.raises(ConfigError, match="^normalize_obs='no'"):
        Config().replace(normalize_obs="no").validate()


def test_bool_is_no_int_and_int_is_a_float() -> None:
    with pytest.raises(ConfigError, match="^num_epochs=True .*got a bool"):
        Config().replace(num_epochs=True)
    assert Config().replace(gamma=1).ppo.gamma == 1.0


@pytest.mark.parametrize(
    ("section", "field", "value", "needle"),
    [
        ("policy", "hidden_sizes", [64, "64"], "hidden_sizes=[64, '64']"),
        ("policy", "hidden_sizes", 64, "hidden_sizes=64"),
        ("env", "env_kwargs", "x=1", "env_kwargs='x=1'"),
        ("policy", "obs_encoders", {"items": None}, "obs_encoders={'items': None}"),
        ("ppo", "learning_rate", None, "learning_rate=None"),
    ],
)
def test_structured_fields_and_null_in_config_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    section: str,
    field: str,
    value: Any,
    needle: str,
) -> None:
    cfg = write_json(tmp_path / "c.json", {section: {field: value}})
    one_error(capsys, ["train", "--config", cfg], needle, "is not allowed: ")


# --- values that trained to NaN or crashed ----------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["--learning-rate", "inf"],
        ["--init-log-std", "nan"],
        ["--vf-coef", "inf"],
        ["--vf-coef", "1e30"],
        ["--ent-coef", "inf"],
        ["--ent-coef", "1e30"],
        ["--kl-coef", "inf"],
        ["--kl-coef", "1e30"],
        ["--adam-eps", "inf"],
        ["--adam-eps", "1e30"],
        ["--seed", "-1"],
        ["--threads", "100000000000"],
        ["--init-log-std", "-25"],
        ["--max-episode-steps", "0"],
        ["--eval-seed", "4294967290"],
        ["--device", "cuda-0"],
    ],
)
def test_values_that_trained_to_nan_or_crashed_are_refused(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    field = args[0][2:].replace("-", "_")
    one_error(capsys, ["train", *args, "--run-dir", str(tmp_path / "r")], field, "allowed")
    assert not (tmp_path / "r").exists()


def test_the_inf_norm_is_a_gradient_norm_and_negative_numbers_read_as_values() -> None:
    args = build_parser().parse_args(
        ["train", "--grad-norm-type", "inf", "--init-log-std", "-1e-1", "--kl-margin", "none"]
    )
    cfg = config_from_args(args)
    assert cfg.ppo.grad_norm_type == math.inf and cfg.policy.init_log_std == -0.1


def test_an_exponential_entropy_schedule_to_zero_is_refused_before_the_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "r"
    argv = ["train", "--ent-coef", "0.01", "--ent-coef-end", "0", "--ent-schedule", "exponential"]
    one_error(capsys, [*argv, "--run-dir", str(run)], "ent_schedule='exponential'", "ent_coef_end")
    assert not run.exists()


# --- explicit none --------------------------------------------------------------------------
def test_an_explicit_none_is_kept_in_the_run_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "r"
    assert main(["train", *TINY, *QUIET, "--max-grad-norm", "none", "--run-dir", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["ppo"]["max_grad_norm"] is None


def test_every_optional_field_keeps_an_explicit_none(tmp_path: Path) -> None:
    """Through the command line's own path (a config file that sets every optional field, then
    `--field none`): the old `v is not None` filter dropped the none and kept the file's value."""
    base = Config().replace(max_grad_norm=0.5, dual_clip=2.0, value_clip=0.2, ent_coef_end=0.1,
                            target_kl=0.02, kl_margin=2.0, max_episode_steps=100, run_dir="x")  # fmt: skip
    path = write_json(tmp_path / "c.json", base.to_dict())
    for name in ("max_grad_norm", "dual_clip", "value_clip", "ent_coef_end", "target_kl",
                 "kl_margin", "max_episode_steps", "run_dir"):  # fmt: skip
        argv = ["train", "--config", path, f"--{name.replace('_', '-')}", "none"]
        cfg = config_from_args(build_parser().parse_args(argv))
        assert ppox.config.flat_values(cfg)[name] is None, name
        assert ppox.config.flat_values(cfg)["gamma"] == base.ppo.gamma


def test_ablate_keeps_an_explicit_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ppox.analysis.ablate as ablate
    import ppox.analysis.report as report

    monkeypatch.setattr(ablate, "run_jobs", lambda jobs, out, max_jobs, **kw: [])
    monkeypatch.setattr(report, "collect", lambda paths: None)
    monkeypatch.setattr(report, "write_report", lambda study, out, opts, **kw: out / "report.md")
    out = tmp_path / "abl"
    argv = ["ablate", "--max-grad-norm", "none", "--seeds", "1", "--out", str(out)]
    assert main(argv) == 0
    assert json.loads((out / "configs" / "base.json").read_text())["ppo"]["max_grad_norm"] is None
    assert json.loads((out / "ablation.json").read_text())["overrides"]["max_grad_norm"] is None


# --- argparse's own errors: one line, no usage block ------------------------------------------
@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["train", "--learning-rat", "0.1"], ["unrecognized arguments: --learning-rat", "--learning-rate"]),
        (["train", "--learning", "0.1"], ["unrecognized arguments: --learning"]),  # no abbreviations
        (["train", "--num-envs", "many"], ["argument --num-envs", "num_envs='many'"]),
        (["train", "--activation", "gelu"], ["argument --activation", "'tanh', 'relu', 'elu'"]),
        (["train", "--num-envs"], ["argument --num-envs", "expected one argument"]),
        (["train", "--seed", "1", "--seed", "2"], ["argument --seed", "given twice"]),
        (["train", "--normalize-obs", "--no-normalize-obs"], ["--normalize-obs", "given twice"]),
        (["train", "--normalize-obs=no"], ["--normalize-obs", "takes no value"]),
        (["trian"], ["argument command: invalid choice: 'trian'"]),
        ([], ["the following arguments are required: command"]),
        (["eval", "run", "--episodes", "-3"], ["argument --episodes", "episodes=-3", "from 1 to 10000"]),
        (["eval", "run", "--max-steps", "0"], ["argument --max-steps", "max_steps=0"]),
        (["eval"], ["required: run_dir"]),
        (["plot"], ["required: run_dirs"]),
        (["ablate", "--out", "x", "--jobs", "0"], ["argument --jobs", "jobs=0"]),
        (["ablate", "--out", "x", "--seeds", "-1"], ["argument --seeds", "seeds=-1"]),
        (["ablate", "--seeds", "1"], ["required: --out"]),
        (["report", "x", "--cvar-alpha", "nan"], ["argument --cvar-alpha", "cvar_alpha=nan"]),
        (["report", "x", "--smooth-width", "4"], ["argument --smooth-width", "odd"]),
        (["report", "x", "--bootstrap-reps", "0"], ["argument --bootstrap-reps"]),
        (["report", "x", "--rollout-episodes", "-1"], ["argument --rollout-episodes"]),
        (["report", "x", "--metric-window", "1"], ["argument --metric-window"]),
        (["report", "x", "--metric-curve", "best"], ["argument --metric-curve: invalid choice"]),
        (["train", "--dist-backend", "mpl"], ["argument --dist-backend", "dist_backend='mpl'"]),
    ],
)  # fmt: skip
def test_command_line_errors_are_one_line_without_usage(
    argv: list[str], needles: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_error(capsys, argv, *needles)
    assert "usage:" not in line


def test_preset_and_config_exclude_each_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_json(tmp_path / "c.json", Config().to_dict())
    one_error(capsys, ["train", "--preset", "pendulum", "--config", cfg], "--preset and --config")


def test_output_paths_that_cannot_be_written_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    one_error(capsys, ["train", "--run-dir", str(a_file / "run")], "is a file, not a directory")
    one_error(capsys, ["train", "--run-dir", str(a_file)], "is a file, not a directory")
    one_error(
        capsys, ["plot", "r", "--out", str(tmp_path / "c.xyz")], "expected a path ending in .png"
    )
    one_error(capsys, ["eval", "r", "--gif", str(tmp_path / "e.png")], "--gif", ".gif")
    one_error(capsys, ["report", "r", "--out", str(a_file)], "--out", "is a file")


# --- environments ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--env-kwargs", '{"max_episode_steps": -5}'], ["env_id='CartPole-v1'", "max_episode_steps': -5"]),
        (["--env-kwargs", '{"bogus": 1}'], ["env_kwargs={'bogus': 1}", "TypeError"]),
        (["--env", "LunarLander-v3", "--env-kwargs", '{"gravity": 5.0}'], ["gravity", "AssertionError"]),
        (["--env", "CartPol-v1"], ["env_id='CartPol-v1'", "did you mean CartPole-v1"]),
        (["--env", "no_such_module:Thing-v0"], ["no_such_module"]),
    ],
)  # fmt: skip
def test_env_problems_are_one_line_before_the_run_directory_exists(
    argv: list[str], needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "r"
    one_error(capsys, ["train", *TINY, *QUIET, *argv, "--run-dir", str(run)], *needles)
    assert not run.exists()


# --- evaluation of an env without a time limit ------------------------------------------------
def cliff_policy(max_steps: int) -> Policy:
    cfg = Config().replace(env_id="CliffWalking-v1", eval_max_steps=max_steps)
    model, obs_norm = build_model(cfg)
    return Policy(model, obs_norm, cfg)


def test_evaluation_stops_at_the_step_cap_and_says_so(tmp_path: Path) -> None:
    """CliffWalking has no time limit: a policy that never reaches the goal kept the final
    evaluation going forever. Now each episode stops at eval_max_steps and is counted."""
    policy = cliff_policy(40)
    env = policy.config.env
    result = evaluate_episodes(policy, env, [1, 2, 3])
    reached = result.lengths < 40
    assert result.max_steps == 40 and result.truncated_at_cap == int((~reached).sum())
    assert result.lengths.max() <= 40 and result.truncated_at_cap >= 1  # an untrained policy
    assert (result.returns[~reached] <= -40).all()  # CliffWalking pays -1 or -100 per step
    assert result.summary()["truncated_at_cap"] == result.truncated_at_cap
    with pytest.warns(UserWarning, match="cut at eval_max_steps=40"):
        ppox.evaluate(policy, env, [1, 2])
    short = evaluate_episodes(policy, env, [1], max_steps=5)
    assert short.lengths.tolist() == [5] and short.cut.tolist() == [True]
    gif = record_gif(policy, env, 1, tmp_path / "e.gif", max_steps=7)
    assert (gif.length, gif.cut) == (7, True) and (tmp_path / "e.gif").stat().st_size > 100


def test_training_on_an_env_without_time_limit_finishes_and_eval_reports_the_cut(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "r"
    argv = ["train", *TINY, *QUIET, "--env", "CliffWalking-v1", "--eval-max-steps", "30"]
    with pytest.warns(UserWarning, match="eval_max_steps=30"):
        assert main([*argv, "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "2", "--max-steps", "10"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["max_steps"] == 10 and stats["truncated_at_cap"] == 2
    assert stats["length_mean"] == 10 and stats["return_max"] <= -10


@pytest.mark.skipif(
    not Path("/proc/self").is_dir(), reason="needs Linux /proc (unwritable even for root)"
)
def test_an_output_file_that_cannot_be_written_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.csv").write_text(
        "global_step,eval_return_mean,eval_return_std,train_return_mean\n8,1.0,0.0,1.0\n"
    )
    one_error(
        capsys,
        ["plot", str(run), "--out", "/proc/ppox-curves.png"],
        "--out '/proc/ppox-curves.png'",
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "x", "--metric-window=--"],
        ["eval", "x", "--episodes=--"],
        ["train", "--num-steps=--"],
    ],
)
def test_an_option_given_the_end_of_options_marker_as_its_value_is_refused(argv: list[str]) -> None:
    """argparse reads ``--opt=--`` as an empty list; ppox's parser says the value is missing."""
    with pytest.raises(
        ppox.cli.UsageError, match=f"argument {argv[-1].split('=')[0]}: expected one argument"
    ):
        build_parser().parse_args(argv)
