"""Atomic checkpoint writes and safe, validated loads.

A checkpoint is written to a temporary file in the same directory, flushed to disk, then renamed
over the old one, so a crash or ``kill -9`` at any moment leaves either the previous or the new
checkpoint, never a torn one. Loading uses ``torch.load(weights_only=True)`` (no arbitrary
pickles at the top level) and checks the format tag, so a foreign or corrupted file is reported
by name instead of failing somewhere deep in training.

The collector's env snapshots inside are pickles of the environments themselves: load
checkpoints only from sources you trust, as with any pickle.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ppox.errors import CheckpointError

FORMAT = "ppox-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


def save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    save_atomic({"format": FORMAT, "version": VERSION, **state}, path)


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
    p = resolve(path)
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{p} is not a readable ppox checkpoint (corrupted or foreign file): {exc.__class__.__name__}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a ppox checkpoint (no '{FORMAT}' tag)")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"{p} has checkpoint version {state.get('version')}; this ppox reads version {VERSION}"
        )
    return state
