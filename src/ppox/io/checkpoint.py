"""Atomic, checksummed checkpoint writes and safe, validated loads.

A checkpoint file (version 2) is one ASCII header line and the payload it describes::

    ppox-checkpoint v2 sha256:<64 hex digits> bytes:<payload length>\\n
    <payload: torch.save of the state dict>

It is written to a temporary file in the same directory, flushed to disk, then renamed over the
old one, so a crash or ``kill -9`` at any moment leaves either the previous or the new
checkpoint, never a torn one (a leftover ``.checkpoint.pt.*.tmp`` is removed by the next run
that takes the directory, :func:`remove_stale_tmp`). Loading reads the header, checks the
payload's length and SHA-256 before anything parses it (a flipped byte is reported as
"corrupted: checksum mismatch"), then loads it with ``torch.load(weights_only=True)``: tensors
and plain data only, no object is ever constructed from the file and nothing in it runs. The
config it carries must be present and valid. What the trainer and the policy loader check
beyond that (shapes, dtypes, finiteness, counters, RNG states) is in :mod:`ppox.io.validate`.

Nothing non-finite is ever written: :func:`save_checkpoint` refuses NaN or infinite values in
the model, the optimizer, the normalizers and the learner's state, naming them, and the
previous checkpoint stays as it was.

Version-1 files (before ppox wrote checksums; a bare ``torch.save``) are still read, without an
integrity check and with a note; their environment snapshots are pickles, which are never
unpickled (a resumed run restarts those episodes from new resets). The next checkpoint the
resumed run writes is version 2. docs/trust.md has the whole picture.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from ppox.config import Config
from ppox.errors import CheckpointError, ConfigError

FORMAT = "ppox-checkpoint"
VERSION = 2
READS = (1, 2)
"""Checkpoint versions this ppox reads (1: no checksum, pickled env snapshots refused)."""
CHECKPOINT_NAME = "checkpoint.pt"
_HEADER = re.compile(rb"ppox-checkpoint v([0-9]{1,4}) sha256:([0-9a-f]{64}) bytes:([0-9]{1,15})\n")
_MAGIC = b"ppox-checkpoint "
FINITE_PARTS = ("model", "optimizer", "obs_norm", "reward_scaler", "learner")
"""The parts of a checkpoint that must hold finite numbers only (saving refuses otherwise)."""


def save_atomic(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (never a torn file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_tmp(run_dir: Path) -> list[Path]:
    """Remove what a checkpoint write cut short by a kill left behind (only safe while holding the
    run directory's lock, :func:`ppox.io.rundir.lock_run_dir`); returns the removed files."""
    stale = sorted(run_dir.glob(f".{CHECKPOINT_NAME}.*.tmp"))
    for f in stale:
        f.unlink(missing_ok=True)
    return stale


def nonfinite(value: Any, name: str) -> list[str]:
    """The names of the NaN / infinite tensors and numbers in ``value`` (nested dicts, lists)."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex():
            return [] if bool(torch.isfinite(value).all()) else [name]
        return []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [name]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in nonfinite(v, f"{name}.{k}")]
    if isinstance(value, (list, tuple)):
        return [n for i, v in enumerate(value) for n in nonfinite(v, f"{name}[{i}]")]
    return []


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` as a version-2 checkpoint (atomic, checksummed). Raises
    :class:`CheckpointError` naming the values when a part in :data:`FINITE_PARTS` holds NaN or
    infinity; the file at ``path`` is then left as it was."""
    bad = [n for part in FINITE_PARTS if part in state for n in nonfinite(state[part], part)]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise CheckpointError(
            f"refusing to write {path}: non-finite values (NaN or infinity) in {shown}; "
            "the previous checkpoint is kept"
        )
    save_atomic(encode({"format": FORMAT, "version": VERSION, **state}), path)


def encode(state: dict[str, Any]) -> bytes:
    """``state`` as a version-2 file: the checksummed header and the ``torch.save`` payload."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    return f"ppox-checkpoint v{VERSION} sha256:{digest} bytes:{len(payload)}\n".encode() + payload


def decode(p: Path, map_location: str | torch.device = "cpu") -> Any:
    """What :func:`encode` wrote to ``p``, its length and checksum verified, loaded with
    ``weights_only=True``; :class:`CheckpointError` naming ``p`` otherwise."""
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{p} cannot be read ({exc.strerror or exc})") from None
    if not data.startswith(_MAGIC):
        raise CheckpointError(f"{p} is not a ppox checkpoint (no ppox-checkpoint header)")
    return _load_torch(p, _payload(p, data), map_location)


def resolve(path: str | Path) -> Path:
    """A run directory or a checkpoint file → the checkpoint file (which must exist)."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise CheckpointError(
            f"no ppox checkpoint at {p} (expected a run directory or a {CHECKPOINT_NAME} file)"
        )
    return p


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state in the checkpoint of ``path`` (a run directory or a file), checked as the
    module docstring says; raises :class:`CheckpointError` naming the file."""
    p = resolve(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{p} cannot be read ({exc.strerror or exc})") from None
    if data.startswith(_MAGIC):
        state = _load_torch(p, _payload(p, data), map_location)
        expect = VERSION
    else:  # version 1: a bare torch.save
        state = _load_torch(p, data, map_location)
        expect = 1
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a ppox checkpoint (no '{FORMAT}' tag)")
    if state.get("version") != expect:
        if expect == 1 and state.get("version") == VERSION:
            raise CheckpointError(
                f"{p} is corrupted: a version-{VERSION} checkpoint without its header"
            )
        raise CheckpointError(
            f"{p} has checkpoint version {state.get('version')!r}; this ppox reads versions {READS}"
        )
    if expect == 1:
        print(f"ppox: note: {p} is a version-1 checkpoint, written before ppox checked checksums: "
              "it is read without an integrity check", file=sys.stderr)  # fmt: skip
    config_of(state, p)
    return state


def _payload(p: Path, data: bytes) -> bytes:
    head, sep, _ = data[:200].partition(b"\n")
    m = _HEADER.fullmatch(head + sep)
    if m is None:
        raise CheckpointError(f"{p} is corrupted: its ppox-checkpoint header is unreadable")
    version, digest, size = int(m[1]), m[2].decode(), int(m[3])
    if version not in READS or version == 1:
        raise CheckpointError(
            f"{p} has checkpoint version {version}; this ppox reads versions {READS}"
        )
    payload = data[len(head) + 1 :]
    if len(payload) != size:
        raise CheckpointError(
            f"{p} is corrupted: truncated or extended ({len(payload)} payload bytes, the header says {size})"
        )
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{p} is corrupted: checksum mismatch (SHA-256 of the payload)")
    return payload


def _load_torch(p: Path, data: bytes, map_location: str | torch.device) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f" (it names {found[1]})" if found else ""
        raise CheckpointError(
            f"{p} is refused: it holds objects other than tensors and plain data{what}, which "
            "ppox never loads (corrupted or foreign file)"
        ) from None
    except Exception as exc:
        raise CheckpointError(
            f"{p} is not a readable ppox checkpoint (corrupted or foreign file): {exc.__class__.__name__}"
        ) from None


def config_of(state: dict[str, Any], where: str | Path) -> Config:
    """The valid :class:`Config` a checkpoint carries (building it imports nothing)."""
    if "config" not in state:
        raise CheckpointError(
            f"{where} holds no 'config' entry (every ppox checkpoint carries its run's config); it cannot be used"
        )
    try:
        if not isinstance(state["config"], dict):
            raise ConfigError(f"a {type(state['config']).__name__}, not a mapping of sections")
        return Config.from_dict(state["config"]).validate()
    except (ConfigError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{where} holds an invalid config: {exc}") from None
