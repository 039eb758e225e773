"""``ppox ablate`` / ``ppox report`` (src/ppox/analysis/ablate.py, src/ppox/analysis/report.py): variant parsing, the
report on hand-made runs, and one tiny end-to-end ablation on CartPole with resume."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ppox.analysis.ablate import Job, Variant, command, parse_variant, plan
from ppox.analysis.report import ReportOptions, collect, write_report
from ppox.cli import main
from ppox.config import Config
from ppox.errors import ConfigError

PNG = b"\x89PNG\r\n\x1a\n"


# --- variants -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "name", "overrides"),
    [
        ("ent: ent_coef=0.01", "ent", {"ent_coef": 0.01}),
        (
            "e4-batch: num_epochs=4, norm_adv=batch",
            "e4-batch",
            {"num_epochs": 4, "norm_adv": "batch"},
        ),
        (
            "wide: hidden_sizes=128,128, num-epochs=4",
            "wide",
            {"hidden_sizes": (128, 128), "num_epochs": 4},
        ),
        ("flat:anneal_lr=false,target_kl=none", "flat", {"anneal_lr": False, "target_kl": None}),
        ('kw: env_kwargs={"a": 1, "b": 2}', "kw", {"env_kwargs": {"a": 1, "b": 2}}),
    ],
)
def test_parse_variant(text, name, overrides):
    assert parse_variant(text) == Variant(name, overrides)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("ent_coef=0.01", ["expected 'NAME: field=value"]),
        ("bad name: ent_coef=0.01", ["expected 'NAME"]),
        ("base: ent_coef=0.01", ["'base' is reserved"]),
        ("x: foo=1", ["variant 'x'", "unknown config field 'foo'"]),
        ("x: num_epochs=four", ["variant 'x'", "num_epochs='four'"]),
        ("x: anneal_lr=maybe", ["variant 'x'", "anneal_lr='maybe'", "true or false"]),
        ("x: ent_coef", ["variant 'x'", "'ent_coef' is not field=value"]),
        ("x: seed=3", ["variant 'x'", "'seed'", "per run"]),
        ("x: ent_coef=0.1, ent_coef=0.2", ["'ent_coef' is given twice"]),
        ("x:", ["variant 'x' changes no field"]),
    ],
)
def test_bad_variants_are_named(text, needles):
    with pytest.raises(ConfigError) as info:
        parse_variant(text)
    for n in needles:
        assert n in str(info.value)


def test_plan_validates_every_variant_and_names_the_runs(tmp_path):
    base = Config().replace(total_steps=512)
    jobs = plan(base, [parse_variant("e4: num_epochs=4")], [1, 2], tmp_path)
    assert [j.name for j in jobs] == ["base-s1", "base-s2", "e4-s1", "e4-s2"]
    assert jobs[3].config.ppo.num_epochs == 4 and jobs[3].config.run.seed == 2
    assert jobs[3].run_dir == tmp_path / "runs" / "e4-s2"
    with pytest.raises(ConfigError, match="variant 'mb': num_minibatches=1000"):
        plan(base, [parse_variant("mb: num_minibatches=1000")], [1], tmp_path)
    with pytest.raises(ConfigError, match="unique"):
        plan(
            base, [Variant("a", {"ent_coef": 0.1}), Variant("a", {"ent_coef": 0.2})], [1], tmp_path
        )


def test_bad_variant_stops_the_cli_before_anything_starts(tmp_path, capsys):
    out = tmp_path / "abl"
    assert (
        main(
            ["ablate", "--out", str(out), "--variant", "x: num_epochs=4", "--variant", "y: nope=1"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "variant 'y'" in err and "'nope'" in err
    assert not out.exists()


def test_command_skips_finished_resumes_killed_and_restarts_unstarted(tmp_path):
    job = Job("base", 1, Config(), tmp_path / "runs" / "base-s1")
    job.run_dir.mkdir(parents=True)
    (job.run_dir / "metrics.csv").write_text("")
    cmd = command(job, tmp_path)  # killed before its first checkpoint: start again from scratch
    assert (
        cmd is not None and "--config" in cmd and "--resume" not in cmd and not job.run_dir.exists()
    )
    job.run_dir.mkdir()
    (job.run_dir / "checkpoint.pt").write_bytes(b"")
    cmd = command(job, tmp_path)
    assert cmd is not None and cmd[-2:] == ["--resume", str(job.run_dir)]
    (job.run_dir / "summary.json").write_text("{}")
    assert command(job, tmp_path) is None


# --- the report on hand-made runs (no training) ---------------------------------------------------
def fake_run(path: Path, evals: list[float], *, ent_coef: float = 0.0, seed: int = 1) -> None:
    """A run directory with an evaluation every 100 steps and no checkpoint."""
    path.mkdir(parents=True)
    cfg = Config().replace(ent_coef=ent_coef, seed=seed).to_dict()
    (path / "config.json").write_text(json.dumps(cfg))
    rows = ["iteration,global_step,train_return_mean,eval_return_mean"]
    rows += [f"{i + 1},{100 * (i + 1)},{v / 2},{v}" for i, v in enumerate(evals)]
    (path / "metrics.csv").write_text("\n".join(rows) + "\n")
    (path / "summary.json").write_text(
        json.dumps({"eval_return_mean": evals[-1], "total_steps": 100 * len(evals)})
    )


def test_report_on_runs_groups_by_name_and_computes_the_metrics(tmp_path):
    fake_run(tmp_path / "base-s1", [0, 10, 20, 15, 30, 40])
    fake_run(tmp_path / "base-s2", [0, 10, 20, 30, 40, 50], seed=2)
    fake_run(tmp_path / "ent-s1", [0, 5, 5, 5, 5, 5], ent_coef=0.01)
    fake_run(tmp_path / "ent-s2-20250101-120000", [0, 5, 5, 5, 5, 7], ent_coef=0.01, seed=2)
    (tmp_path / "ent-s3").mkdir()  # unfinished: skipped and listed
    study = collect(sorted(tmp_path.iterdir()))
    assert {g: len(r) for g, r in study.groups.items()} == {"base": 2, "ent": 2}
    assert study.overrides == {"base": {}, "ent": {"ent_coef": 0.01}}
    report = write_report(study, tmp_path / "rep", ReportOptions(episodes=0, window=3, reps=200))
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    base = data["groups"]["base"]
    # finals 40 and 50 → median = IQM = mean = 45
    assert base["final"]["median"]["value"] == 45.0
    # base-s1 drawdown peaks at 20 - 15 = 5; base-s2 never drops → long-term risk 2.5 ± 2.5
    assert base["within_run"]["long_term_risk"] == {"mean": 2.5, "std": 2.5, "n": 2}
    # base-s1 Δ = [10, 10, -5, 15, 10]: worst = -5; base-s2: all 10 → short-term risk 2.5 ± 7.5
    assert base["within_run"]["short_term_risk"] == {"mean": 2.5, "std": 7.5, "n": 2}
    assert data["groups"]["ent"]["across_runs"]["risk"] == 5.0  # worst final of [5, 7]
    assert data["curve"] == "eval" and data["window"] == 3
    text = report.read_text()
    assert "| base | 2 | 45 [40, 50]" in text and "| ent | 2 | `ent_coef=0.01` |" in text
    assert "ent-s3" in text and "Across rollouts" not in text
    assert (tmp_path / "rep" / "curves.png").read_bytes()[:8] == PNG


# --- end to end -----------------------------------------------------------------------------------
TINY = ["--total-steps", "1024", "--eval-every", "256", "--eval-episodes", "2", "--no-tensorboard"]


def test_ablation_end_to_end_with_resume_and_report(tmp_path):
    out = tmp_path / "abl"
    args = [
        "ablate",
        *TINY,
        "--variant",
        "e4: num_epochs=4, ent_coef=0.01",
        "--seeds",
        "1",
        "2",
        "--jobs",
        "2",
        "--out",
        str(out),
        "--rollout-episodes",
        "2",
        "--bootstrap-reps",
        "200",
    ]
    assert main(args) == 0
    runs = ["base-s1", "base-s2", "e4-s1", "e4-s2"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == runs
    manifest = json.loads((out / "ablation.json").read_text())
    assert manifest["variants"] == {"e4": {"num_epochs": 4, "ent_coef": 0.01}} and manifest[
        "seeds"
    ] == [1, 2]
    head = checkout_head()
    assert head is None or (manifest["commit"] or "").removesuffix("+dirty") == head, manifest[
        "commit"
    ]
    assert manifest["overrides"]["total_steps"] == 1024 and manifest["command"].startswith(
        "ppox ablate"
    )
    assert (
        json.loads((out / "runs" / "e4-s2" / "config.json").read_text())["ppo"]["num_epochs"] == 4
    )
    text = (out / "report.md").read_text()
    for row in (
        "| base | 2 |",
        "| e4 | 2 |",
        "Metric curve: **eval**",
        "Across rollouts",
        "| variant | wall time per run (s) | steps/s |",
    ):
        assert row in text
    walls = [
        json.loads((out / "runs" / r / "summary.json").read_text())["wall_time_s"]
        for r in ("base-s1", "base-s2")
    ]
    assert (
        f"| base | {sorted(walls)[0] / 2 + sorted(walls)[1] / 2:.1f} [{min(walls):.1f}, {max(walls):.1f}] |"
        in text
    )
    assert (out / "curves.png").read_bytes()[:8] == PNG
    assert json.loads((out / "runs" / "base-s1" / "rollouts.json").read_text())["episodes"] == 2

    # resume: only the run without summary.json runs again, from its checkpoint
    finished = {r: (out / "runs" / r / "summary.json").stat().st_mtime_ns for r in runs}
    (out / "runs" / "e4-s1" / "summary.json").unlink()
    assert main(args) == 0
    assert "--resume" in (out / "logs" / "e4-s1.log").read_text()
    assert "--resume" not in (out / "logs" / "base-s1.log").read_text()
    for r in ("base-s1", "base-s2", "e4-s2"):
        assert (out / "runs" / r / "summary.json").stat().st_mtime_ns == finished[r]
    assert (out / "runs" / "e4-s1" / "summary.json").is_file()

    # the same report from the run directories, grouped by name
    rep = tmp_path / "rep"
    assert (
        main(
            [
                "report",
                *(str(out / "runs" / r) for r in runs),
                "--out",
                str(rep),
                "--rollout-episodes",
                "2",
                "--bootstrap-reps",
                "200",
            ]
        )
        == 0
    )
    text = (rep / "report.md").read_text()
    assert (
        "| base | 2 | (base config) |" in text
        and "| e4 | 2 | `num_epochs=4`, `ent_coef=0.01` |" in text
    )
    assert (rep / "curves.png").read_bytes()[:8] == PNG


def test_learning_speed_is_the_time_average_of_the_curve():
    from ppox.analysis.report import _time_average

    # trapezoids: (0+10)/2·10 + (10+10)/2·30 = 50 + 300 = 350 over 40 steps = 8.75
    assert _time_average(np.array([0.0, 10.0, 40.0]), np.array([0.0, 10.0, 10.0])) == pytest.approx(
        8.75
    )
    with pytest.raises(ValueError, match="two points"):
        _time_average(np.array([1.0]), np.array([1.0]))


def checkout_head() -> str | None:
    """HEAD of the git checkout the imported ppox package lies in (None: not a checkout, or no
    git), found from the package's own directory."""
    import ppox

    try:
        p = subprocess.run(["git", "-C", str(Path(ppox.__file__).resolve().parent), "rev-parse", "HEAD"],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    except OSError:
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def test_manifest_records_the_source_commit():
    """Run from a git checkout (as here and in CI), the commit is that checkout's HEAD, never None."""
    from ppox.analysis.ablate import source_commit

    head = checkout_head()
    if head is None:
        pytest.skip("ppox is not imported from a git checkout here")
    c = source_commit()
    assert c is not None and re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", c), c
    assert c.removesuffix("+dirty") == head


def copied_source_commit(tree: Path) -> Callable[[], str | None]:
    """``source_commit`` of a copy of ablate.py placed at ``tree/src/ppox/analysis/`` (as in a
    checkout of this project), so the test can commit and dirty that tree at will."""
    import ppox.analysis.ablate as ablate

    dest = tree / "src" / "ppox" / "analysis" / "ablate.py"
    dest.parent.mkdir(parents=True)
    shutil.copy(ablate.__file__, dest)
    spec = importlib.util.spec_from_file_location(f"ablate_copy_{tree.name}", dest)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module.source_commit


def git(tree: Path, *args: str) -> str:
    p = subprocess.run(["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                       capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    return p.stdout.strip()


@pytest.fixture
def committed_tree(tmp_path: Path) -> tuple[Path, Callable[[], str | None]]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    tree = tmp_path / "checkout"
    source_commit = copied_source_commit(tree)
    (tree / "README.md").write_text("x\n")
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "one")
    return tree, source_commit


def test_source_commit_is_the_head_of_a_clean_checkout_and_none_outside_git(
    committed_tree, tmp_path
):
    tree, source_commit = committed_tree
    assert source_commit() == git(tree, "rev-parse", "HEAD")
    (tree / "README.md").write_text("changed outside src: still clean\n")
    assert source_commit() == git(tree, "rev-parse", "HEAD")
    assert copied_source_commit(tmp_path / "not-a-checkout")() is None


def test_source_commit_marks_uncommitted_source_changes_dirty(committed_tree):
    tree, source_commit = committed_tree
    head = git(tree, "rev-parse", "HEAD")
    (tree / "src" / "ppox" / "analysis" / "ablate.py").write_text("# edited\n")
    assert source_commit() == head + "+dirty"


def test_forked_runs_write_their_own_logs_and_report_failures(tmp_path: Path) -> None:
    """``run_jobs`` with ``fork_main``: each run's command in a forked process, its output in its
    own log, a non-zero exit reported as a failed run (the others finish)."""
    from ppox.analysis.ablate import run_jobs

    jobs = plan(Config().replace(total_steps=512), [], [1, 2], tmp_path / "abl")

    def fake_main(argv: list[str]) -> int:
        seed = argv[argv.index("--seed") + 1]
        print(f"trained seed {seed}")
        return 3 if seed == "2" else 0

    lines: list[str] = []
    failed = run_jobs(jobs, tmp_path / "abl", max_jobs=2, echo=lines.append, fork_main=fake_main)
    assert failed == ["base-s2"]
    assert "trained seed 1" in (tmp_path / "abl" / "logs" / "base-s1.log").read_text()
    assert "trained seed 2" in (tmp_path / "abl" / "logs" / "base-s2.log").read_text()
    assert any("base-s2 FAILED (exit 3" in line for line in lines), lines


def _metrics_without_speed(run: Path) -> list[list[str]]:
    """``metrics.csv`` without its wall-time and steps/s columns (the only ones that differ)."""
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()]
    drop = {rows[0].index("wall_time_s"), rows[0].index("steps_per_second")}
    return [[x for i, x in enumerate(row) if i not in drop] for row in rows]


def test_vectorized_seeds_train_what_one_process_per_run_trains(tmp_path: Path) -> None:
    """``--vectorize-seeds``: a variant's seeds in one process on stacked weights, one log per
    group; every run's metrics, config and final weights equal those of the same ablation run one
    process per run; run again, it resumes only the run that lost its summary."""
    import torch

    from ppox.io.checkpoint import load_checkpoint

    def ablate(out: Path, *extra: str) -> list[str]:
        args = ["ablate", *TINY, "--variant", "lr: learning_rate=0.0005", "--seeds", "1", "2", "3",
                "--jobs", "2", "--out", str(out), "--rollout-episodes", "0", *extra]  # fmt: skip
        assert main(args) == 0
        return sorted(p.name for p in (out / "logs").iterdir())

    assert ablate(tmp_path / "v", "--vectorize-seeds") == ["base-s1+2+3.log", "lr-s1+2+3.log"]
    assert (
        "base-s1, base-s2, base-s3 stacked in one process"
        in (tmp_path / "v" / "logs" / "base-s1+2+3.log").read_text()
    )
    assert len(ablate(tmp_path / "p")) == 6
    for run in ("base-s1", "base-s3", "lr-s2"):
        a, b = tmp_path / "v" / "runs" / run, tmp_path / "p" / "runs" / run
        assert _metrics_without_speed(a) == _metrics_without_speed(b), run
        ca, cb = (json.loads((r / "config.json").read_text()) for r in (a, b))
        assert ca["origin"] == {"config": str(tmp_path / "v" / "configs" / f"{run[:-3]}.json")}
        ca["run"]["run_dir"] = cb["run"]["run_dir"]
        ca["origin"] = cb["origin"] = None
        assert ca == cb, run
        wa, wb = (load_checkpoint(r / "checkpoint.pt")["model"] for r in (a, b))
        assert all(torch.equal(wa[k], wb[k]) for k in wb), run

    done = {
        r.name: (r / "summary.json").stat().st_mtime_ns for r in (tmp_path / "v" / "runs").iterdir()
    }
    (tmp_path / "v" / "runs" / "lr-s2" / "summary.json").unlink()
    ablate(tmp_path / "v", "--vectorize-seeds")
    for name, mtime in done.items():
        summary = tmp_path / "v" / "runs" / name / "summary.json"
        assert (summary.stat().st_mtime_ns == mtime) == (name != "lr-s2"), name


def test_vectorized_seeds_fall_back_to_one_process_per_run(tmp_path: Path, capsys) -> None:
    """Runs that cannot be stacked (the autograd update) go back to one process each, and the
    command says why."""
    out = tmp_path / "abl"
    args = ["ablate", *TINY, "--update-backend", "autograd", "--seeds", "1", "2", "--jobs", "1",
            "--vectorize-seeds", "--out", str(out), "--rollout-episodes", "0"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "base-s1+2 not stacked (the update runs in autograd" in text, text
    assert "its runs train one per process" in text
    assert {p.name for p in (out / "logs").iterdir()} == {
        "base-s1+2.log",
        "base-s1.log",
        "base-s2.log",
    }
    assert all((out / "runs" / r / "summary.json").is_file() for r in ("base-s1", "base-s2"))


def test_vectorized_seeds_split_the_seed_left_over_and_train_what_one_process_per_run_trains(
    tmp_path: Path,
) -> None:
    """One variant, three seeds, two processes: seeds 1 and 3 in one, 2 in the other, and seed
    3's second half resumed in the second process; every run equals the per-process ablation's."""
    import torch

    from ppox.io.checkpoint import load_checkpoint

    def ablate(out: Path, *extra: str) -> list[str]:
        args = ["ablate", *TINY, "--seeds", "1", "2", "3", "--jobs", "2", "--out", str(out),
                "--rollout-episodes", "0", *extra]  # fmt: skip
        assert main(args) == 0
        return sorted(p.name for p in (out / "logs").iterdir())

    assert ablate(tmp_path / "v", "--vectorize-seeds") == ["base-s1+3.log", "base-s2.log"]
    first = (tmp_path / "v" / "logs" / "base-s1+3.log").read_text()
    second = (tmp_path / "v" / "logs" / "base-s2.log").read_text()
    assert "base-s3's second half in another" in first and "ppox: seed 3:" not in first
    assert "base-s3's second half from another" in second and "ppox: seed 3:" in second
    ablate(tmp_path / "p")
    for run in ("base-s1", "base-s2", "base-s3"):
        a, b = tmp_path / "v" / "runs" / run, tmp_path / "p" / "runs" / run
        assert _metrics_without_speed(a) == _metrics_without_speed(b), run
        wa, wb = (load_checkpoint(r / "checkpoint.pt")["model"] for r in (a, b))
        assert all(torch.equal(wa[k], wb[k]) for k in wb), run
