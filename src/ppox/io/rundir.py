"""Which run a directory holds: where a new run may go, and whether an existing one continues.

The rule of ``ppox train`` is that a new run never overwrites anything. ``--auto-resume``
(:func:`resumable`) adds the one exception a restarting launcher needs: the same command, run
again, continues the run it started — from its checkpoint, or from scratch when it died before
its first checkpoint (then the few files it had written are cleared). Only rank 0 calls these;
it tells the other workers what it found (``ppox.training.distributed.main_decides``).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from ppox.config import Config, flat_values
from ppox.errors import ConfigError
from ppox.io import checkpoint as ckpt

STARTED_FILES = ("metrics.csv", "summary.json", "curve.png")
"""What a run writes before (or besides) its first checkpoint, next to ``tb/``."""
FREE_TO_DIFFER = ("total_steps", "run_dir", "progress")
"""Fields in which a continued run may differ from its checkpoint's config (a new budget, the
same directory spelled another way, the progress bar); the run continues with its own config
and the new budget, as ``--resume`` does."""


def default_run_dir(cfg: Config) -> Path:
    name = cfg.env.env_id.replace("/", "_").replace(":", "_")
    return Path("runs") / f"{name}-s{cfg.run.seed}-{datetime.now():%Y%m%d-%H%M%S}"


def new_run_dir(cfg: Config, run_dir: str | Path | None) -> Path:
    """The directory for a new run: ``run_dir``, the config's, or a fresh default; never one
    that holds files."""
    path = Path(run_dir or cfg.run.run_dir or default_run_dir(cfg))
    if path.exists() and any(path.iterdir()):
        raise ConfigError(
            f"run_dir={str(path)!r} already holds files; resume it with --resume {path} or choose another --run-dir"
        )
    return path


def resumable(cfg: Config, path: Path) -> dict[str, Any] | None:
    """The checkpoint to continue ``cfg``'s run in ``path`` from, or None to start it there.

    None for a missing or empty directory, and for one holding only the beginnings of this same
    run (its ``config.json`` equals ``cfg``, no checkpoint yet), whose logs are then cleared.
    Raises :class:`ConfigError` for a directory that holds another run or no run at all.
    """
    for stale in path.glob(f".{ckpt.CHECKPOINT_NAME}.*.tmp"):  # a write cut short by a kill
        stale.unlink(missing_ok=True)
    if (path / ckpt.CHECKPOINT_NAME).is_file():
        state = ckpt.load_checkpoint(path, map_location="cpu")
        _same_run(cfg, Config.from_dict(state["config"]), path)
        return state
    if not path.exists() or not any(path.iterdir()):
        return None
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConfigError(
            f"run_dir={str(path)!r} holds files but no ppox run; choose another --run-dir"
        )
    _same_run(cfg, Config.from_dict(json.loads(config_file.read_text())), path)
    for name in STARTED_FILES:
        (path / name).unlink(missing_ok=True)
    shutil.rmtree(path / "tb", ignore_errors=True)
    config_file.unlink()
    return None


def _same_run(want: Config, have: Config, path: Path) -> None:
    a, b = flat_values(want), flat_values(have)
    diff = [f"{k}: {b[k]!r} → {a[k]!r}" for k in a if a[k] != b[k] and k not in FREE_TO_DIFFER]
    if diff:
        raise ConfigError(
            f"run_dir={str(path)!r} holds a run with another config ({'; '.join(diff)}); "
            f"continue it with --resume {path}, or choose another --run-dir"
        )
