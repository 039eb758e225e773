"""A module named in a file (a checkpoint's or run directory's config, a ``--config`` file) is
never imported without the explicit opt-in (``--trust-imports``, ``trust_imports=True``).

The module is a file ``evil_mod.py`` in the working directory — exactly what Python imports for
``env_id="evil_mod:Evil-v0"`` — that leaves a marker file when it runs and registers a CartPole
under ``Evil-v0``, so that with the opt-in everything works."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from trust_helpers import TINY, assert_one_error, in_process, ppox_cli, rewrite, tiny_run

import ppox
from ppox.config import Config
from ppox.errors import ConfigError
from ppox.io.trust import check_imports, imports_named
from ppox.training.trainer import Trainer

EVIL = """
from pathlib import Path
Path(__file__).with_name("imported.marker").write_text("evil_mod ran")
import gymnasium as gym
if "Evil-v0" not in gym.registry:
    gym.register("Evil-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
                 max_episode_steps=500)
def build(space, cfg):
    raise RuntimeError("never called in these tests")
"""


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("imports") / "cartpole")


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory holding ``evil_mod.py`` (not yet imported)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "evil_mod.py").write_text(EVIL)
    monkeypatch.chdir(work)
    sys.modules.pop("evil_mod", None)
    yield work
    sys.modules.pop("evil_mod", None)


def _evil_run(base: Path, dest: Path, **config: object) -> Path:
    """A copy of ``base`` whose checkpoint and config.json name ``evil_mod``."""
    run = Path(shutil.copytree(base, dest))

    def change(s: dict) -> None:
        for section, values in config.items():
            s["config"][section].update(values)  # type: ignore[attr-defined]

    rewrite(run, change)
    cfg = json.loads((run / "config.json").read_text())
    for section, values in config.items():
        cfg[section].update(values)  # type: ignore[attr-defined]
    (run / "config.json").write_text(json.dumps(cfg))
    return run


ENV = {"env": {"env_id": "evil_mod:Evil-v0"}}
ENCODER = {"policy": {"obs_encoders": {"": "evil_mod:build"}}}
NEEDLES = ["env_id='evil_mod:Evil-v0'", "the module 'evil_mod'", "--trust-imports"]


def test_the_check_names_field_value_and_module() -> None:
    cfg = Config().replace(env_id="pkg.mod:Env-v1", obs_encoders={"a/b": "m2:f", "c": "flatten"})
    assert imports_named(cfg) == [
        ("env_id", "pkg.mod:Env-v1", "pkg.mod"),
        ("obs_encoders['a/b']", "m2:f", "m2"),
    ]
    with pytest.raises(
        ConfigError, match=r"env_id='pkg.mod:Env-v1' in f.json would import the module 'pkg.mod'"
    ):
        check_imports(cfg, "f.json")
    with pytest.raises(
        ConfigError, match=r"obs_encoders\['a/b'\]='m2:f' in f.json would import the module 'm2'"
    ):
        check_imports(cfg, "f.json", typed={"env_id"})
    check_imports(cfg, "f.json", typed={"env_id", "obs_encoders"})
    check_imports(cfg, "f.json", trust_imports=True)
    assert imports_named(Config().replace(env_id="ppox/Moving-v0")) == []


@pytest.mark.parametrize("config, needles", [(ENV, NEEDLES), (ENCODER, ["obs_encoders['']='evil_mod:build'", "'evil_mod'"])], ids=["env_id", "encoder"])  # fmt: skip
def test_python_api_refuses_without_the_opt_in(
    base_run: Path, cwd: Path, config: dict, needles: list[str]
) -> None:
    run = _evil_run(base_run, cwd / "run", **config)
    sys.path.insert(0, str(cwd))
    try:
        for load in (lambda: ppox.load_policy(run), lambda: Trainer.resume(run)):
            with pytest.raises(ConfigError) as err:
                load()
            for n in needles:
                assert n in str(err.value)
    finally:
        sys.path.remove(str(cwd))
    assert "evil_mod" not in sys.modules and not (cwd / "imported.marker").exists()


def test_python_api_imports_with_the_opt_in(
    base_run: Path, cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _evil_run(base_run, cwd / "run", **ENV)
    monkeypatch.syspath_prepend(str(cwd))
    try:
        policy = ppox.load_policy(run, trust_imports=True)
        assert policy.config.env.env_id == "evil_mod:Evil-v0" and (cwd / "imported.marker").exists()
        trainer = Trainer.resume(run, total_steps=192, trust_imports=True)
        assert trainer.train()["total_steps"] == 192
    finally:
        sys.modules.pop("evil_mod", None)


def test_the_command_line_refuses_a_module_in_the_working_directory(
    base_run: Path, cwd: Path
) -> None:
    """The real thing: ``python -m ppox`` puts the working directory first on the import path."""
    run = _evil_run(base_run, cwd / "evil-s1", **ENV)
    assert_one_error(ppox_cli("eval", str(run), cwd=cwd), *NEEDLES, str(run / "checkpoint.pt"))
    assert not (cwd / "imported.marker").exists()
    r = ppox_cli("eval", str(run), "--episodes", "1", "--trust-imports", cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["episodes"] == 1 and (cwd / "imported.marker").exists()


def test_eval_resume_and_report_refuse_without_the_opt_in(
    base_run: Path, cwd: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _evil_run(base_run, cwd / "evil-s1", **ENV)
    monkeypatch.syspath_prepend(str(cwd))  # as `python -m ppox` has it: importable if asked
    report = [
        "report",
        str(run),
        "--out",
        str(cwd / "rep"),
        "--rollout-episodes",
        "1",
        "--bootstrap-reps",
        "10",
    ]
    for args in (["eval", str(run)], ["train", "--resume", str(run)], report):
        assert_one_error(in_process(capsys, *args), *NEEDLES)
    assert "evil_mod" not in sys.modules and not (cwd / "imported.marker").exists()

    for args in (
        ["eval", str(run), "--episodes", "1"],
        report,
        ["train", "--resume", str(run), "--total-steps", "192"],
    ):
        r = in_process(capsys, *args, "--trust-imports")
        assert r.returncode == 0, r.stderr
    assert (cwd / "imported.marker").exists() and (cwd / "rep" / "report.md").is_file()


def test_a_config_file_naming_a_module_needs_the_opt_in(
    base_run: Path, cwd: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(cwd))
    cfg = json.loads((base_run / "config.json").read_text())
    cfg["env"]["env_id"] = "evil_mod:Evil-v0"
    (cwd / "cfg.json").write_text(json.dumps(cfg))
    common = ["train", "--config", "cfg.json", *TINY]
    r = in_process(capsys, *common, "--run-dir", "a")
    assert_one_error(
        r,
        "env_id='evil_mod:Evil-v0' in --config cfg.json",
        "the module 'evil_mod'",
        "--trust-imports",
    )
    assert not (cwd / "imported.marker").exists() and not (cwd / "a").exists()
    # typed on the command line, the value is the user's own: trusted as it is
    assert in_process(capsys, *common, "--env", "CartPole-v1", "--run-dir", "b").returncode == 0
    assert not (cwd / "imported.marker").exists()
    assert in_process(capsys, *common, "--trust-imports", "--run-dir", "c").returncode == 0
    assert (cwd / "imported.marker").exists()


def test_ablate_trusts_the_configs_it_writes_from_the_command_line(cwd: Path) -> None:
    """``ppox ablate --env evil_mod:Evil-v0`` names the module itself: its children (``--config``
    files, ``--resume``) and its report may import it."""
    r = ppox_cli("ablate", "--env", "evil_mod:Evil-v0", *TINY, "--seeds", "1", "--jobs", "1",
                 "--out", "abl", "--rollout-episodes", "1", "--bootstrap-reps", "10", cwd=cwd)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    log = (cwd / "abl" / "logs" / "base-s1.log").read_text()
    assert "--trust-imports" in log.splitlines()[0]
    assert (cwd / "abl" / "report.md").is_file()
