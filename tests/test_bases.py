"""Defaults by the task's kind: which base a task gets, that explicit flags win over it, what the
run records, and that the documented table is the code's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

from ppox.cli import build_parser, main, start_config
from ppox.config import Config
from ppox.presets import PRESETS
from ppox.presets.bases import BASES, MEMORY_OVERLAY, bases_markdown, task_kind
from ppox.presets.box2d import BOX2D
from ppox.presets.mujoco import MUJOCO

BOX = spaces.Box(-1.0, 1.0, (3,), np.float32)
IMAGE = spaces.Box(0, 255, (4, 84, 84), np.uint8)


@pytest.mark.parametrize(
    "obs, action, base",
    [
        (BOX, spaces.Discrete(3), "base-discrete"),
        (BOX, spaces.MultiDiscrete([3, 2]), "base-discrete"),
        (BOX, spaces.MultiBinary(4), "base-discrete"),
        (BOX, BOX, "base-continuous"),
        (BOX, spaces.Tuple([spaces.Discrete(2), BOX]), "base-continuous"),  # hybrid
        (BOX, spaces.Dict({"a": spaces.Discrete(2), "b": BOX}), "base-continuous"),
        (IMAGE, spaces.Discrete(4), "base-pixels"),
        (IMAGE, BOX, "base-pixels"),
        (spaces.Dict({"frame": IMAGE, "speed": BOX}), spaces.Discrete(4), "base-pixels"),
        # images as ppox's encoders read them (ppox.types.is_image): HW frames and binary planes
        # are images; uint8 arrays with other bounds and float arrays are vectors
        (spaces.Box(0, 255, (84, 84), np.uint8), spaces.Discrete(4), "base-pixels"),
        (spaces.Box(0, 1, (4, 10, 10), np.uint8), spaces.Discrete(4), "base-pixels"),
        (spaces.Box(0, 10, (4, 84, 84), np.uint8), spaces.Discrete(4), "base-discrete"),
        (spaces.Box(0.0, 1.0, (4, 84, 84), np.float32), spaces.Discrete(4), "base-discrete"),
    ],
)
def test_the_kind_of_a_task_by_its_spaces(obs, action, base):
    assert task_kind(obs, action)[0] == base


def _start(*argv: str) -> tuple[Config, dict]:
    return start_config(build_parser().parse_args(["train", *argv]))


@pytest.mark.parametrize("name", sorted({**MUJOCO, **BOX2D}))
def test_every_mujoco_and_box2d_task_without_a_preset_gets_its_documented_base(name):
    env_id = PRESETS[name].overrides["env_id"]
    cfg, origin = _start("--env-id", env_id)
    base = "base-discrete" if env_id == "LunarLander-v3" else "base-continuous"
    assert origin == {"base": base, "kind": origin["kind"], "memory_overlay": False}
    assert cfg == Config().replace(**BASES[base][1], env_id=env_id).validate()


def test_explicit_flags_win_over_the_base():
    cfg, origin = _start(
        "--env-id", "Pendulum-v1", "--num-epochs", "3", "--no-normalize-obs", "--gamma", "0.9"
    )
    assert origin["base"] == "base-continuous"
    assert (cfg.ppo.num_epochs, cfg.env.normalize_obs, cfg.ppo.gamma) == (3, False, 0.9)
    assert cfg.env.scale_reward and cfg.policy.init_log_std == -0.5  # the rest is the base's


def test_a_preset_or_no_env_keeps_the_preset_and_a_memory_adds_the_overlay():
    cfg, origin = _start("--preset", "cartpole", "--env-id", "Acrobot-v1")
    assert origin == {"preset": "cartpole"} and cfg.ppo.num_epochs == 20
    cfg, origin = _start()
    assert origin == {"preset": "cartpole"} and cfg.env.env_id == "CartPole-v1"
    cfg, origin = _start("--env-id", "Acrobot-v1", "--memory", "gru", "--bptt", "16")
    assert origin["memory_overlay"] and cfg.policy.memory == "gru"
    assert cfg.ppo.bptt == 16  # a flag wins over the overlay too
    assert cfg.ppo.num_minibatches == MEMORY_OVERLAY[
        "num_minibatches"
    ] and cfg.policy.hidden_sizes == (64,)


def test_the_base_is_printed_and_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    run = tmp_path / "r"
    argv = ["train", "--env-id", "Acrobot-v1", "--total-steps", "2048", "--eval-episodes", "1"]
    assert main([*argv, "--no-progress", "--no-tensorboard", "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "no preset given: base-discrete for Acrobot-v1 (discrete actions (Discrete)" in out
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["origin"]["base"] == "base-discrete"
    assert recorded["ppo"]["num_epochs"] == BASES["base-discrete"][1]["num_epochs"]
    # a config.json read back (--config) is the run's config; the record is not a section
    again = tmp_path / "again"
    assert main(["train", "--config", str(run / "config.json"), "--total-steps", "2048",
                 "--no-progress", "--no-tensorboard", "--run-dir", str(again)]) == 0  # fmt: skip
    assert json.loads((again / "config.json").read_text())["origin"] == {
        "config": str(run / "config.json")
    }
    assert "a tuned preset exists" not in out


def test_the_python_api_starts_where_the_command_does():
    import ppox

    cfg, _ = _start("--env-id", "Pendulum-v1", "--seed", "3", "--num-epochs", "4")
    assert ppox.config_for("Pendulum-v1", seed=3, num_epochs=4) == cfg


def test_a_task_with_a_preset_is_pointed_to_it(monkeypatch: pytest.MonkeyPatch):
    from ppox.cli import describe_origin
    from ppox.presets import Preset

    _, origin = _start("--env-id", "Hopper-v5")
    assert describe_origin(origin, "Hopper-v5").endswith("a tuned preset exists: --preset hopper")
    # a preset that is the base itself is named as such, not as a tuned one
    base, origin = _start("--env-id", "Pendulum-v1")
    same = {**BASES["base-continuous"][1], "env_id": "Pendulum-v1"}
    monkeypatch.setitem(PRESETS, "pendulum-base", Preset("pendulum-base", "the base", same))
    monkeypatch.delitem(PRESETS, "pendulum", raising=False)
    line = describe_origin(origin, "Pendulum-v1")
    assert line is not None and line.endswith("--preset pendulum-base is this same base"), line
    assert PRESETS["pendulum-base"].config() == base
    # InvertedDoublePendulum's preset is the standard setup without observation normalization
    preset = _start("--preset", "inverteddoublependulum")[0]
    assert (
        not preset.env.normalize_obs
        and _start("--env-id", "InvertedDoublePendulum-v5")[0].env.normalize_obs
    )


def test_a_task_the_base_falls_short_on_says_so_at_start(monkeypatch: pytest.MonkeyPatch):
    import re

    from ppox.cli import describe_origin
    from ppox.presets import bases

    # no task is known to fall short today (docs/presets.md); the line for one that is
    monkeypatch.setitem(bases.SHORTFALLS, "Swimmer-v5", 'docs/presets.md, "Swimmer-v5"')
    _, origin = _start("--env-id", "Swimmer-v5")
    line = describe_origin(origin, "Swimmer-v5")
    assert line is not None and "a tuned preset exists: --preset swimmer" in line, line
    assert line.endswith(
        '; the base is known to fall short on this task (docs/presets.md, "Swimmer-v5")'
    )
    _, hopper = _start("--env-id", "Hopper-v5")
    assert "fall short" not in str(describe_origin(hopper, "Hopper-v5"))
    _, memory = _start("--env-id", "Swimmer-v5", "--memory", "gru")  # not what was measured
    assert "fall short" not in str(describe_origin(memory, "Swimmer-v5"))
    monkeypatch.undo()
    page = (Path(__file__).parents[1] / "docs" / "presets.md").read_text()
    for env_id, where in bases.SHORTFALLS.items():
        # every entry points to a section of the page that exists, and the task has a preset
        section = re.fullmatch(r'docs/presets\.md, "([^"]+)"', where)
        assert section is not None and f"**{section[1]}.**" in page, where
        assert any(p.overrides.get("env_id") == env_id for p in PRESETS.values()), env_id


def test_every_base_is_valid_and_the_docs_show_the_table():
    for name in BASES:
        PRESETS[name].config().validate()
    page = (Path(__file__).parents[1] / "docs" / "presets.md").read_text()
    assert bases_markdown() in page, (
        "docs/presets.md: paste the output of ppox.presets.bases.bases_markdown()"
    )


def test_ablate_with_an_env_and_no_preset_starts_from_the_kind_base(tmp_path: Path):
    out = tmp_path / "abl"
    argv = ["ablate", "--env-id", "Acrobot-v1", "--total-steps", "512", "--eval-every", "0", "--eval-episodes", "1",
            "--no-tensorboard", "--seeds", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    manifest = json.loads((out / "ablation.json").read_text())
    assert manifest["preset"] == "base-discrete"
    run = json.loads((out / "runs" / "base-s1" / "config.json").read_text())
    assert run["ppo"]["num_epochs"] == BASES["base-discrete"][1]["num_epochs"]
