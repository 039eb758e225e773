"""Run logging: ``metrics.csv``, TensorBoard (scalars and histograms), a live progress line.

Columns of ``metrics.csv`` (one row per iteration): see :data:`COLUMNS`. Evaluation columns are
empty on iterations without an evaluation.
"""

from __future__ import annotations

import csv
import math
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppox.errors import ConfigError, PpoxError

if TYPE_CHECKING:
    import torch

COLUMNS = (
    "iteration", "global_step", "wall_time_s", "steps_per_second",
    "train_return_mean", "train_length_mean", "episodes",
    "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm",
    "explained_variance", "learning_rate", "ent_coef", "updates", "skipped_updates", "early_stop",
    "nonfinite_updates", "rollbacks", "skipped_transitions",
    "kl_coef", "kl_after_update", "baseline",
    "line_search_fraction", "line_search_tries", "expected_improvement", "surrogate_improvement",
    "eval_return_mean", "eval_return_std", "eval_truncated_at_cap",
)  # fmt: skip
"""``kl_coef`` / ``kl_after_update`` are filled by ``algo=ppo-penalty``, ``baseline`` by
``algo=reinforce`` with ``baseline=mean``, the ``line_search_*`` / ``*_improvement`` columns
by ``algo=trpo`` (the fraction of the full step taken, 0 when the line search accepted none; the
tries; the quadratic model's expected and the actual surrogate gain); empty otherwise. ``nonfinite_updates`` counts minibatch steps the NaN guard skipped, ``rollbacks``
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
        progress_interval: float = 30.0,
        wandb: WandbOptions | None = None,
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
            from tensorboard.compat.proto.summary_pb2 import Summary
            from torch.utils.tensorboard import SummaryWriter

            self._summary = Summary

            # purge_step drops events a resumed run is about to write again
            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)
        self.live = progress and sys.stderr.isatty()
        self.lines = progress and not self.live
        self.progress_interval = progress_interval
        self.total_steps = total_steps
        self._t0, self._s0 = time.perf_counter(), start_step
        self._last_line = -math.inf
        self.wandb = None if wandb is None else wandb.start(run_dir)

    def log(self, row: dict[str, Any], histograms: dict[str, torch.Tensor] | None = None) -> None:
        self._csv.writerow({k: _fmt(row.get(k)) for k in self.columns})
        self._file.flush()
        step = int(row[self.step_key])
        if self.tb is not None:
            self._tb_scalars(row, step)
            for k, h in (histograms or {}).items():
                self.tb.add_histogram(f"policy/{k}", h, step)
        if self.wandb is not None:
            self.wandb.log(
                {_tb_name(k): v for k, v in row.items() if _is_number(v) and k != self.step_key},
                step=step,
            )
        if self.live:
            self._progress(row)
        elif self.lines:
            self._status_line(row)

    def _tb_scalars(self, row: dict[str, Any], step: int) -> None:
        """The row's numbers as one TensorBoard event of many values (what ``add_scalar`` writes
        one event each for: the same tags and ``simple_value`` fields, read by TensorBoard alike,
        at a twentieth of the cost per row)."""
        assert self.tb is not None
        values = [self._summary.Value(tag=_tb_name(k), simple_value=float(v)) for k, v in row.items()
                  if k not in ("iteration", self.step_key) and v is not None]  # fmt: skip
        self.tb._get_file_writer().add_summary(self._summary(value=values), step)

    def _status(self, row: dict[str, Any], now: float) -> tuple[int, str, str, str, str]:
        """``(step, rate, headline value, ETA, percent)`` of the progress displays at ``now``."""
        step = int(row[self.step_key])
        rate = (step - self._s0) / max(now - self._t0, 1e-9)
        eta = (self.total_steps - step) / rate if rate > 0 else float("nan")
        ret = row.get(self.headline[0])
        ret_s = "   n/a" if ret is None else format(ret, self.headline[2])
        pct = f"{100 * min(step / self.total_steps, 1.0):3.0f}%"
        return step, f"{rate:7.0f}", ret_s, _hms(eta), pct

    def _progress(self, row: dict[str, Any]) -> None:
        step, rate, ret_s, eta, _ = self._status(row, time.perf_counter())
        frac = min(step / self.total_steps, 1.0)
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        sys.stderr.write(
            f"\r[{bar}] {step:>10,}/{self.total_steps:,} {self.unit}  {rate} {self.unit}/s  "
            f"{self.headline[1]} {ret_s}  ETA {eta} "
        )
        sys.stderr.flush()

    def _status_line(self, row: dict[str, Any]) -> None:
        """Where stderr is not a terminal: one plain line every ``progress_interval`` seconds
        and at the end (no carriage returns, so CI logs and nohup files read well)."""
        now = time.perf_counter()
        step = int(row[self.step_key])
        if now - self._last_line < self.progress_interval and step < self.total_steps:
            return
        self._last_line = now
        step, rate, ret_s, eta, pct = self._status(row, now)
        sys.stderr.write(
            f"ppox: {step:,}/{self.total_steps:,} {self.unit} ({pct.strip()})  "
            f"{rate.strip()} {self.unit}/s  {self.headline[1]} {ret_s.strip()}  ETA {eta}\n"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.live:
            sys.stderr.write("\n")
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
        self._file.close()


@dataclass(frozen=True)
class WandbOptions:
    """Weights & Biases beside TensorBoard (``wandb``, ``wandb_project``, ``wandb_group``,
    ``wandb_tags``). The W&B run id is kept in the run directory (``wandb_id``), so a resumed run
    continues the same W&B run; its files go under the run directory too (``wandb/``)."""

    project: str
    group: str | None
    tags: tuple[str, ...]
    config: dict[str, Any]

    def start(self, run_dir: Path) -> Any:
        try:
            import wandb
        except ImportError:
            raise ConfigError(
                "wandb=True needs the wandb package: pip install 'ppox[wandb]'"
            ) from None
        id_file = run_dir / "wandb_id"
        if id_file.exists():
            run_id = id_file.read_text().strip()
        else:
            run_id = secrets.token_hex(6)  # W&B run ids are short alphanumeric strings
            id_file.write_text(run_id + "\n")
        try:
            return wandb.init(
                project=self.project, group=self.group, tags=list(self.tags) or None,
                config=self.config, dir=str(run_dir), id=run_id, resume="allow",
                name=run_dir.name,
            )  # fmt: skip
        except Exception as exc:  # W&B's own errors (network, login): one line, no traceback
            raise PpoxError(
                f"W&B could not start a run ({type(exc).__name__}: {' '.join(str(exc).split())}); "
                "the run's checkpoint is intact; WANDB_MODE=offline logs to disk"
            ) from None


def wandb_problem() -> str | None:
    """Why ``wandb=True`` cannot work here, or None: checked before a run writes anything. The
    package must be importable, and logging online needs a W&B login (``wandb login`` or
    ``WANDB_API_KEY``); ``WANDB_MODE=offline`` (or ``disabled``) needs none."""
    import importlib.util
    import os

    if importlib.util.find_spec("wandb") is None:
        return "wandb=True needs the wandb package: pip install 'ppox[wandb]'"
    if os.environ.get("WANDB_MODE", "online") in ("offline", "disabled", "dryrun"):
        return None
    if os.environ.get("WANDB_API_KEY"):
        return None
    try:
        import netrc

        if netrc.netrc().authenticators("api.wandb.ai"):
            return None
    except (OSError, netrc.NetrcParseError):
        pass
    return (
        "wandb=True logs online, which needs a W&B login (`wandb login` or WANDB_API_KEY); "
        "WANDB_MODE=offline logs to the run directory instead (sync it later with `wandb sync`)"
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


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
