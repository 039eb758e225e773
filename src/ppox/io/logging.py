"""Run logging: ``metrics.csv``, TensorBoard (scalars and histograms), a live progress line.

Columns of ``metrics.csv`` (one row per iteration): see :data:`COLUMNS`. Evaluation columns are
empty on iterations without an evaluation.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

COLUMNS = (
    "iteration", "global_step", "wall_time_s", "steps_per_second",
    "train_return_mean", "train_length_mean", "episodes",
    "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm",
    "explained_variance", "learning_rate", "ent_coef", "updates", "skipped_updates", "early_stop",
    "nonfinite_updates", "rollbacks", "skipped_transitions",
    "kl_coef", "kl_after_update", "baseline",
    "eval_return_mean", "eval_return_std", "eval_truncated_at_cap",
)  # fmt: skip
"""``kl_coef`` / ``kl_after_update`` are filled by ``algo=ppo-penalty``, ``baseline`` by
``algo=reinforce`` with ``baseline=mean``; empty otherwise. ``nonfinite_updates`` counts minibatch steps the NaN guard skipped, ``rollbacks``
is 1 on an update it rolled back, ``skipped_transitions`` counts environment steps left out with
``nonfinite_env="skip"`` (docs/numerics.md)."""


def truncate_csv(
    path: Path, max_step: int, columns: tuple[str, ...] = COLUMNS, step_key: str = "global_step"
) -> None:
    """Drop rows past ``max_step`` (work after the checkpoint a resumed run will redo)."""
    if not path.exists():
        return
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r[step_key]) <= max_step]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


class RunLogger:
    """Writes one row per iteration; TensorBoard is imported only when enabled.

    ``columns`` and ``step_key`` (the column that counts progress, TensorBoard's step) default to
    an environment run's; ``unit`` and ``headline`` (the column the progress line shows, its
    label and format) too."""

    def __init__(
        self,
        run_dir: Path,
        *,
        tensorboard: bool,
        progress: bool,
        total_steps: int,
        start_step: int,
        columns: tuple[str, ...] = COLUMNS,
        step_key: str = "global_step",
        unit: str = "steps",
        headline: tuple[str, str, str] = ("train_return_mean", "return", "8.1f"),
    ) -> None:
        self.csv_path = run_dir / "metrics.csv"
        new = not self.csv_path.exists()
        self.columns, self.step_key, self.unit, self.headline = columns, step_key, unit, headline
        self._file = self.csv_path.open("a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=columns, extrasaction="ignore")
        if new:
            self._csv.writeheader()
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a resumed run is about to write again
            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)
        self.progress = progress and sys.stderr.isatty()
        self.total_steps = total_steps
        self._t0, self._s0 = time.perf_counter(), start_step

    def log(self, row: dict[str, Any], histograms: dict[str, torch.Tensor] | None = None) -> None:
        self._csv.writerow({k: _fmt(row.get(k)) for k in self.columns})
        self._file.flush()
        step = int(row[self.step_key])
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("iteration", self.step_key) and v is not None:
                    self.tb.add_scalar(_tb_name(k), v, step)
            for k, h in (histograms or {}).items():
                self.tb.add_histogram(f"policy/{k}", h, step)
        if self.progress:
            self._progress(row)

    def _progress(self, row: dict[str, Any]) -> None:
        step = int(row[self.step_key])
        frac = min(step / self.total_steps, 1.0)
        rate = (step - self._s0) / max(time.perf_counter() - self._t0, 1e-9)
        eta = (self.total_steps - step) / rate if rate > 0 else float("nan")
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        ret = row.get(self.headline[0])
        ret_s = "   n/a" if ret is None else format(ret, self.headline[2])
        sys.stderr.write(
            f"\r[{bar}] {step:>10,}/{self.total_steps:,} {self.unit}  {rate:7.0f} {self.unit}/s  "
            f"{self.headline[1]} {ret_s}  ETA {_hms(eta)} "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.progress:
            sys.stderr.write("\n")
        if self.tb is not None:
            self.tb.close()
        self._file.close()


def _fmt(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def _tb_name(key: str) -> str:
    if key.startswith("eval_"):
        return f"eval/{key[5:]}"
    if key.startswith("train_") or key == "episodes":
        return f"train/{key.removeprefix('train_')}"
    if key in ("wall_time_s", "steps_per_second"):
        return f"time/{key}"
    return f"loss/{key}"


def _hms(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "--:--"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
