"""One run writes a run directory at a time; run-directory problems are clear errors before
anything is written; leftovers of a killed checkpoint write are removed on every resume path.

Before the lock, two runs started at once on one ``--run-dir`` both exited 0 and ``metrics.csv``
held every step twice; a run directory that is a file (or read-only) gave a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trust_helpers import TINY, assert_one_error, in_process, tiny_run

import ppox
from ppox.errors import ConfigError
from ppox.io.checkpoint import load_checkpoint
from ppox.io.logging import read_csv
from ppox.io.rundir import LOCK_NAME, lock_run_dir
from ppox.training.trainer import Trainer

SLOW = ["--num-envs", "2", "--num-steps", "32", "--num-epochs", "1", "--total-steps", "2000000",
        "--eval-every", "0", "--eval-episodes", "1", "--checkpoint-every", "1",
        "--no-progress", "--no-tensorboard"]  # fmt: skip
"""A run that goes on until it is stopped (checkpoint every iteration)."""

HOLDER = """
import sys, time
from pathlib import Path
from ppox.io.rundir import lock_run_dir
locks = [lock_run_dir(Path(p)) for p in sys.argv[1:]]
print("locked", flush=True)
time.sleep(600)
"""


def _popen(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def holder(tmp_path: Path):
    """``holder(*paths)``: another process holds the paths' locks until the test ends."""
    procs: list[subprocess.Popen] = []

    def hold(*paths: Path) -> int:
        p = _popen("-c", HOLDER, *map(str, paths))
        procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "locked"
        return p.pid

    yield hold
    for p in procs:
        p.kill()
        p.wait()


def _cfg(**kw) -> ppox.Config:
    """The config of :data:`TINY` (``tiny_run``), with changes."""
    base = dict(num_envs=2, num_steps=32, num_epochs=1, total_steps=128, eval_every=0, eval_episodes=1,
                checkpoint_every=1, progress=False, tensorboard=False)  # fmt: skip
    return ppox.Config().replace(**{**base, **kw})


def test_a_directory_held_by_another_process_is_refused_on_every_path(
    tmp_path: Path, holder
) -> None:
    run = tiny_run(tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    empty = tmp_path / "empty"
    empty.mkdir()
    pid = holder(run, empty)
    msg = rf"run_dir='{run}' is in use by another ppox run \(process {pid}\); wait until it ends"
    with pytest.raises(ConfigError, match=msg):
        Trainer.resume(run)
    with pytest.raises(ConfigError, match=msg):
        Trainer.create_or_resume(_cfg(total_steps=256), run)
    with pytest.raises(ConfigError, match=rf"in use by another ppox run \(process {pid}\)"):
        Trainer.create(_cfg(), empty)
    assert [p.name for p in empty.iterdir()] == [LOCK_NAME]
    assert {
        p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != LOCK_NAME
    } == {k: v for k, v in before.items() if k != LOCK_NAME}


def test_the_lock_is_released_when_a_run_ends_or_its_process_dies(tmp_path: Path) -> None:
    run = tiny_run(tmp_path / "run")
    assert not (run / LOCK_NAME).exists()  # a finished run leaves no lock file
    lock = lock_run_dir(run)  # this process again: a process never excludes itself
    Trainer.resume(run, total_steps=192).train()
    assert (run / LOCK_NAME).read_text() == f"{os.getpid()}\n"  # still held by `lock`
    lock.release()
    assert not (run / LOCK_NAME).exists()
    p = _popen("-c", HOLDER, str(run))
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert Trainer.resume(run, total_steps=256).train()["total_steps"] == 256


def budget(steps: int) -> list[str]:
    """TINY with another --total-steps (a flag may be given once)."""
    i = TINY.index("--total-steps")
    return [*TINY[:i], *TINY[i + 2 :], "--total-steps", str(steps)]


def test_two_runs_started_at_once_on_one_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["-m", "ppox", "train", *budget(640), "--run-dir", str(run)]
    a, b = _popen(*args), _popen(*args)
    results = [(p.wait(timeout=600), *p.communicate()) for p in (a, b)]
    codes = sorted(rc for rc, _, _ in results)
    assert codes == [0, 2], results
    err = next(e for rc, _, e in results if rc == 2)
    lines = [line for line in err.splitlines() if line.startswith("ppox: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert "is in use by another ppox run" in lines[0] or "already holds files" in lines[0]
    steps = [int(r["global_step"]) for r in read_csv(run / "metrics.csv")]
    assert steps == [64 * i for i in range(1, 11)]  # every step once


def test_a_running_run_refuses_other_writers_but_not_readers(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    proc = _popen("-m", "ppox", "train", *SLOW, "--run-dir", str(run))
    try:
        _wait_for(lambda: (run / "checkpoint.pt").is_file(), proc)
        needle = f"run_dir='{run}' is in use by another ppox run (process {proc.pid})"
        assert_one_error(in_process(capsys, "train", "--resume", str(run)), needle)
        assert_one_error(
            in_process(capsys, "train", *SLOW, "--auto-resume", "--run-dir", str(run)), needle
        )
        assert_one_error(
            in_process(capsys, "train", *SLOW, "--run-dir", str(run)), "already holds files"
        )
        r = in_process(capsys, "eval", str(run), "--episodes", "1")  # readers take no lock
        assert r.returncode == 0, r.stderr
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
    steps = [int(r["global_step"]) for r in read_csv(run / "metrics.csv")]
    assert steps == sorted(set(steps))


def test_kill_9_of_an_async_run_resumes_at_once(tmp_path: Path) -> None:
    """The env worker processes of a killed run may outlive it for a moment; the lock is the
    trainer's own (a record lock, not inherited by them), so the resume is not refused."""
    run = tmp_path / "run"
    proc = _popen("-m", "ppox", "train", *SLOW, "--vectorization", "async", "--run-dir", str(run))
    _wait_for(lambda: (run / "checkpoint.pt").is_file(), proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = load_checkpoint(run)["progress"]["global_step"]
    assert Trainer.resume(run, total_steps=done + 64).train()["total_steps"] == done + 64


@pytest.mark.parametrize("kind", ["file", "inside a file"])
def test_a_run_dir_that_is_a_file_is_a_clear_error(tmp_path: Path, kind: str, capsys) -> None:
    f = tmp_path / "f"
    f.write_text("not a directory")
    target = f if kind == "file" else f / "sub" / "run"
    needle = f"'{f}' is a file, not a directory"  # the CLI checks --run-dir before the trainer does
    for extra in ([], ["--auto-resume"]):
        assert_one_error(
            in_process(capsys, "train", *TINY, *extra, "--run-dir", str(target)), needle
        )
    assert f.read_text() == "not a directory"


def _read_only_dir(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        return d
    for d in (Path("/sys"), Path("/proc/self")):  # root writes anywhere but in these
        if d.is_dir() and _cannot_create_in(d):
            return d
    pytest.skip("no read-only directory to try as root")


def _cannot_create_in(d: Path) -> bool:
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=d):
            return False
    except OSError:
        return True


def test_a_read_only_run_dir_is_a_clear_error(tmp_path: Path, capsys) -> None:
    ro = _read_only_dir(tmp_path)
    target = ro / "ppox-run"
    for extra in ([], ["--auto-resume"]):
        assert_one_error(
            in_process(capsys, "train", *TINY, *extra, "--run-dir", str(target)),
            f"run_dir='{target}' is not writable",
        )
    assert not target.exists()


def test_a_read_only_run_cannot_be_resumed_but_can_be_evaluated(tmp_path: Path, capsys) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    run = tiny_run(tmp_path / "run")
    run.chmod(0o555)
    try:
        assert_one_error(
            in_process(capsys, "train", "--resume", str(run)), f"run_dir='{run}' is not writable"
        )
        assert in_process(capsys, "eval", str(run), "--episodes", "1").returncode == 0
    finally:
        run.chmod(0o755)


@pytest.mark.parametrize("how", ["resume", "auto-resume"])
def test_leftovers_of_a_killed_checkpoint_write_are_removed_on_resume(
    tmp_path: Path, how: str, capsys
) -> None:
    run = tiny_run(tmp_path / "run")
    torn = run / ".checkpoint.pt.k1ll3d.tmp"
    torn.write_bytes(b"torn")
    if how == "resume":
        r = in_process(capsys, "train", "--resume", str(run), "--total-steps", "192")
    else:
        r = in_process(capsys, "train", *budget(192), "--auto-resume", "--run-dir", str(run))
    assert r.returncode == 0, r.stderr
    assert not torn.exists()
    assert [int(r["global_step"]) for r in read_csv(run / "metrics.csv")] == [64, 128, 192]
