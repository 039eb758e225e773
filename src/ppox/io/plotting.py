"""Learning-curve figures from runs' ``metrics.csv`` (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

from ppox.errors import CheckpointError
from ppox.io.logging import read_csv


def _series(rows: list[dict[str, str]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        if r.get(key):
            xs.append(float(r["global_step"]))
            ys.append(float(r[key]))
    return xs, ys


def plot_runs(run_dirs: list[Path], out: Path, *, title: str | None = None) -> Path:
    """One PNG with the evaluation curve (mean ± std) and the training-episode curve of each run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_eval, ax_train) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for run in run_dirs:
        path = Path(run) / "metrics.csv"
        if not path.is_file():
            raise CheckpointError(f"{run} is not a ppox run directory (no metrics.csv)")
        rows = read_csv(path)
        label = Path(run).name
        xs, ys = _series(rows, "eval_return_mean")
        _, sd = _series(rows, "eval_return_std")
        (line,) = ax_eval.plot(xs, ys, marker="o", ms=3, label=label)
        ax_eval.fill_between(
            xs,
            [y - s for y, s in zip(ys, sd)],
            [y + s for y, s in zip(ys, sd)],
            color=line.get_color(),
            alpha=0.15,
        )
        ax_train.plot(*_series(rows, "train_return_mean"), color=line.get_color(), label=label)
    ax_eval.set(
        title="evaluation return (mean ± std over eval seeds)",
        xlabel="environment steps",
        ylabel="return",
    )
    ax_train.set(
        title="training episodes (mean of last 100)", xlabel="environment steps", ylabel="return"
    )
    for ax in (ax_eval, ax_train):
        ax.grid(alpha=0.3)
    if len(run_dirs) <= 10:
        ax_eval.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
