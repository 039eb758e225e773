"""Which run a directory holds, where a new run may go, whether an existing one continues, and
the lock that keeps two runs from writing one directory.

The rule of ``ppox train`` is that a new run never overwrites anything. ``--auto-resume``
(:func:`resumable`) adds the one exception a restarting launcher needs: the same command, run
again, continues the run it started — from its checkpoint, or from scratch when it died before
its first checkpoint (then the few files it had written are cleared). Only rank 0 calls these;
it tells the other workers what it found (``ppox.training.distributed.main_decides``).

A run holds an exclusive lock on its directory while it writes it (:func:`lock_run_dir`): a
POSIX record lock (``fcntl.lockf``) on the file ``.ppox.lock`` inside it, which the kernel
releases when the process ends however it ends, ``kill -9`` included, so a killed run resumes
at once. A record lock belongs to the process: the env worker processes a run forks do not
inherit it (``flock`` locks would be shared with them and outlive a killed trainer while they
wind down); and for the same reason a process never excludes itself (two Trainers of one
Python process on one directory are not kept apart). Another run on the same directory — new, ``--resume`` or ``--auto-resume`` — is
refused before it writes anything. Readers (``ppox eval``, ``ppox report``, ``ppox plot``) take
no lock. Directory problems (a file, a path inside a file, no permission to write) are reported
by :func:`check_run_dir` before anything is created.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from ppox.config import Config, flat_values
from ppox.errors import ConfigError
from ppox.io import checkpoint as ckpt

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked (docs/trust.md)
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".ppox.lock"
"""The lock file a run holds in its directory (removed when the run ends; a killed run leaves
it, unlocked, and the next run takes it over)."""
STARTED_FILES = ("metrics.csv", "summary.json", "curve.svg", "curve.png")
"""What a run writes before (or besides) its first checkpoint, next to ``tb/`` (``curve.png``: the
figure of runs made before ppox drew ``curve.svg``)."""
FREE_TO_DIFFER = ("total_steps", "run_dir", "progress")
"""Fields in which a continued run may differ from its checkpoint's config (a new budget, the
same directory spelled another way, the progress bar); the run continues with its own config
and the new budget, as ``--resume`` does."""


def default_run_dir(cfg: Config) -> Path:
    name = cfg.env.env_id.replace("/", "_").replace(":", "_")
    return Path("runs") / f"{name}-s{cfg.run.seed}-{datetime.now():%Y%m%d-%H%M%S}"


def _entries(path: Path) -> list[Path]:
    """What ``path`` holds besides the lock file."""
    return [p for p in path.iterdir() if p.name != LOCK_NAME]


def check_run_dir(path: Path) -> None:
    """Raise :class:`ConfigError` when ``path`` cannot be a run directory: it is a file, it lies
    inside a file, or this user cannot create files where it is (or would be) made."""
    try:
        if os.path.lexists(path) and not path.is_dir():
            raise ConfigError(
                f"run_dir={str(path)!r} is a file, not a directory; choose another --run-dir"
            )
        nearest = path
        while not nearest.exists():
            nearest = nearest.parent
    except PermissionError:
        raise ConfigError(
            f"run_dir={str(path)!r} cannot be reached (permission denied); choose another --run-dir"
        ) from None
    if not nearest.is_dir():
        raise ConfigError(
            f"run_dir={str(path)!r} lies inside {str(nearest)!r}, which is a file, not a directory; "
            "choose another --run-dir"
        )
    if not _writable(nearest):
        where = "it" if nearest == path else repr(str(nearest))
        raise ConfigError(
            f"run_dir={str(path)!r} is not writable (this user cannot create files in {where}); "
            "choose another --run-dir"
        )


def _writable(directory: Path) -> bool:
    """Whether files can be created in ``directory`` (tried: permissions alone say yes to root
    on a read-only file system); the probe is an unnamed temporary file."""
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def new_run_dir(cfg: Config, run_dir: str | Path | None) -> Path:
    """The directory for a new run: ``run_dir``, the config's, or a fresh default; never one
    that holds files (checked again under the lock by :func:`claim_new_run_dir`)."""
    path = Path(run_dir or cfg.run.run_dir or default_run_dir(cfg))
    check_run_dir(path)
    if path.exists() and _entries(path):
        raise ConfigError(f"run_dir={str(path)!r} already holds files; {_how_to_go_on(path)}")
    return path


def _how_to_go_on(path: Path) -> str:
    """What to do about a run directory that holds files: resume it where it has a checkpoint;
    where it has none (a run stopped before its first one) there is nothing to resume."""
    if (path / ckpt.CHECKPOINT_NAME).is_file():
        return f"resume it with --resume {path} or choose another --run-dir"
    return (
        "it has no checkpoint to resume (a run stopped before its first one?): choose another "
        "--run-dir, or remove that directory to start there again"
    )


def claim_new_run_dir(path: Path) -> RunLock:
    """Create ``path`` (checked by :func:`new_run_dir`), lock it and make sure it is still empty:
    of two runs started at once on one directory, exactly one gets it."""
    check_run_dir(path)
    path.mkdir(parents=True, exist_ok=True)
    lock = lock_run_dir(path)
    if _entries(path):
        lock.release()
        raise ConfigError(
            f"run_dir={str(path)!r} already holds files (another run started there); "
            f"{_how_to_go_on(path)}"
        )
    return lock


class RunLock:
    """An exclusive lock on a run directory, held until :meth:`release` (or until the process
    ends: the kernel drops it). See the module docstring."""

    def __init__(self, path: Path, key: tuple[int, int]) -> None:
        self.path, self._key, self.held = path, key, True

    def release(self) -> None:
        """Give the lock up (idempotent). When no lock of this process holds the directory any
        more, the lock file is removed (if it is still ours) and the lock dropped."""
        if not self.held:
            return
        self.held = False
        fd, count = _HELD.pop(self._key, (None, 0))
        if count > 1:
            _HELD[self._key] = (fd, count - 1)
        elif fd is not None:
            _unlink_if_ours(self.path / LOCK_NAME, fd)
            os.close(fd)  # closing the file drops the record lock

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def _same_file(path: Path, fd: int) -> bool:
    try:
        st, mine = path.stat(), os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _unlink_if_ours(path: Path, fd: int) -> None:
    if _same_file(path, fd):
        path.unlink(missing_ok=True)


_HELD: dict[tuple[int, int], tuple[int | None, int]] = {}
"""The directories this process holds, by (device, inode): the lock file's descriptor and how
many :class:`RunLock` objects share it. A record lock belongs to the process, so a second
:class:`RunLock` of the same process shares the first one's lock (a process never excludes
itself: a finished Trainer kept in a variable does not block the next one); the file is opened
once, since closing any copy of it would drop the lock."""


def lock_run_dir(path: Path) -> RunLock:
    """Lock the existing run directory ``path`` for this process, or raise :class:`ConfigError`
    naming it when another process holds it."""
    check_run_dir(path)
    st = path.stat()
    key = (st.st_dev, st.st_ino)
    if key in _HELD:
        fd, count = _HELD[key]
        _HELD[key] = (fd, count + 1)
        return RunLock(path, key)
    _HELD[key] = (_lock_file(path), 1)
    return RunLock(path, key)


def _lock_file(path: Path) -> int | None:
    """Open and lock ``path``'s lock file; its descriptor (None where there is no ``fcntl``).

    A run removes its lock file when it ends, so the file locked here must still be the one at
    that name (a run ending between our open and our lock leaves us holding a removed file):
    checked, and tried again otherwise."""
    if fcntl is None:  # pragma: no cover
        return None
    for _ in range(10):
        fd = _open_locked(path)
        if _same_file(path / LOCK_NAME, fd):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)
    raise ConfigError(
        f"run_dir={str(path)!r}: its lock file {LOCK_NAME} keeps changing; is another run starting there?"
    )


def _open_locked(path: Path) -> int:
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ConfigError(
            f"run_dir={str(path)!r}: cannot create its lock file {LOCK_NAME} ({exc.strerror}); choose another --run-dir"
        ) from None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(
            f"run_dir={str(path)!r} is in use by another ppox run (process {pid}); wait until it "
            "ends, or choose another --run-dir"
        ) from None
    return fd


def check_not_foreign(path: Path) -> None:
    """Raise :class:`ConfigError` when ``path`` holds files but no ppox run (checked before the
    directory is locked, so that nothing is written into a directory that is not a run's)."""
    if path.is_dir() and _entries(path):
        if not (path / "config.json").is_file() and not (path / ckpt.CHECKPOINT_NAME).is_file():
            raise ConfigError(
                f"run_dir={str(path)!r} holds files but no ppox run; choose another --run-dir"
            )


def resumable(cfg: Config, path: Path) -> dict[str, Any] | None:
    """The checkpoint to continue ``cfg``'s run in ``path`` from, or None to start it there.

    None for a missing or empty directory, and for one holding only the beginnings of this same
    run (its ``config.json`` equals ``cfg``, no checkpoint yet), whose logs are then cleared.
    Raises :class:`ConfigError` for a directory that holds another run or no run at all. The
    caller holds the directory's lock (:func:`lock_run_dir`) when it exists.
    """
    if path.is_dir():
        ckpt.remove_stale_tmp(path)  # a write cut short by a kill
    if (path / ckpt.CHECKPOINT_NAME).is_file():
        state = ckpt.load_checkpoint(path, map_location="cpu")
        _same_run(cfg, ckpt.config_of(state, path / ckpt.CHECKPOINT_NAME), path)
        return state
    if not path.exists() or not _entries(path):
        return None
    config_file = path / "config.json"
    check_not_foreign(path)
    _same_run(cfg, _config_file(config_file), path)
    for name in STARTED_FILES:
        (path / name).unlink(missing_ok=True)
    shutil.rmtree(path / "tb", ignore_errors=True)
    config_file.unlink()
    return None


def _config_file(path: Path) -> Config:
    """The config in a run's ``config.json`` (reading it imports nothing)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read a JSON config ({exc})") from None
    return ckpt.config_of({"config": data}, path)


def _same_run(want: Config, have: Config, path: Path) -> None:
    a, b = flat_values(want), flat_values(have)
    diff = [f"{k}: {b[k]!r} → {a[k]!r}" for k in a if a[k] != b[k] and k not in FREE_TO_DIFFER]
    if diff:
        raise ConfigError(
            f"run_dir={str(path)!r} holds a run with another config ({'; '.join(diff)}); "
            f"continue it with --resume {path}, or choose another --run-dir"
        )
