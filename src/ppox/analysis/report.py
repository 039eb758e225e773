"""Reports over groups of runs (Chan et al. 2020, "Measuring the Reliability of Reinforcement Learning
Algorithms"; Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice"): curves with bootstrap bands, final-return aggregates with
stratified-bootstrap intervals, and the reliability metrics of :mod:`ppox.analysis.metrics` (docs/metrics.md).

A *group* (variant) is the runs of one config on several seeds. :func:`collect` builds the groups
from an ablation directory (``ablation.json``) or from run directories named ``<group>-s<seed>``;
:func:`write_report` writes ``report.md``, ``report.json`` and ``curves.png``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ppox.analysis import metrics
from ppox.config import RECORD_KEYS
from ppox.errors import CheckpointError
from ppox.io.logging import read_csv

Array = metrics.Array
RUN_NAME = re.compile(
    r"^(?P<group>.+)-s(?P<seed>\d+)(?:-\d{8}-\d{6})?$"
)  # <group>-s<seed>[-<time>]
IGNORED_FIELDS = ("seed", "run_dir", "progress")  # differ between the runs of one group by design
CURVES = {"eval": "eval_return_mean", "train": "train_return_mean"}


@dataclass(frozen=True)
class ReportOptions:
    """How the report's numbers are computed (every one is stated in the report)."""

    episodes: int = 20
    """Episodes per run for the across-rollout metrics (0: skip them)."""
    window: int = 5
    """Within-run dispersion window, in first differences of the metric curve."""
    alpha: float = 0.05
    """CVaR level of every risk metric."""
    smooth: int = 5
    """Width (points, odd) of the moving average applied before the across-run dispersion."""
    reps: int = 2000
    """Bootstrap resamples for confidence intervals and bands."""
    level: float = 0.95
    """Confidence level of intervals and bands."""
    curve: str = "auto"
    """Curve for the within/across-run metrics: `eval`, `train` or `auto` (eval when every run
    has at least 3 evaluations)."""
    seed: int = 0
    """Seed of the bootstrap generator."""


@dataclass
class Run:
    """One finished run: its flat config, its curves ``(steps[T], values[T])`` and final return."""

    path: Path
    config: dict[str, Any]
    curves: dict[str, tuple[Array, Array]]
    final: float
    total_steps: int
    wall_time_s: float | None = None  # the training loop's wall time (summary.json)

    @classmethod
    def load(cls, path: Path) -> Run:
        if not (path / "metrics.csv").is_file():
            raise CheckpointError(f"{path} is not a ppox run directory (no metrics.csv)")
        summary = json.loads((path / "summary.json").read_text())
        config = {
            k: v
            for name, section in json.loads((path / "config.json").read_text()).items()
            if name not in RECORD_KEYS  # what the run resolved, not its settings
            for k, v in section.items()
        }
        rows = read_csv(path / "metrics.csv")
        curves = {}
        for name, key in CURVES.items():
            pts = [(float(r["global_step"]), float(r[key])) for r in rows if r.get(key)]
            curves[name] = (np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
        final = summary.get("eval_return_mean")
        return cls(
            path,
            config,
            curves,
            float(final if final is not None else curves["eval"][1][-1]),
            int(summary["total_steps"]),
            summary.get("wall_time_s"),
        )


@dataclass
class Study:
    """Groups of runs in display order, each group's config changes, and where they came from."""

    groups: dict[str, list[Run]]
    overrides: dict[str, dict[str, Any]]
    command: str | None = None
    commit: str | None = None
    skipped: list[str] = field(default_factory=list)


def collect(paths: list[Path]) -> Study:
    """An ablation directory (one path holding ``ablation.json``) or run directories → a Study."""
    if len(paths) == 1 and (paths[0] / "ablation.json").is_file():
        meta = json.loads((paths[0] / "ablation.json").read_text())
        variants = {
            "base": {"preset": meta.get("preset"), **meta.get("overrides", {})},
            **meta["variants"],
        }
        dirs = [paths[0] / "runs" / f"{v}-s{s}" for v in variants for s in meta["seeds"]]
        study = _group(dirs)
        study.overrides = {v: o for v, o in variants.items() if v in study.groups}
        study.command = meta.get("command")
        study.commit = meta.get("commit")
        return study
    return _group(paths)


def _group(dirs: list[Path]) -> Study:
    groups: dict[str, list[Run]] = {}
    skipped = []
    for d in dirs:
        if not (d / "summary.json").is_file():
            skipped.append(str(d))
            continue
        m = RUN_NAME.match(d.name)
        groups.setdefault(m["group"] if m else d.name, []).append(Run.load(d))
    if not groups:
        raise CheckpointError(
            f"no finished run (with summary.json) among {', '.join(map(str, dirs))}"
        )
    first = next(iter(groups.values()))[0].config
    overrides = {g: _config_diff(first, runs[0].config) for g, runs in groups.items()}
    return Study(groups, overrides, skipped=skipped)


def _config_diff(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in other.items() if k not in IGNORED_FIELDS and base.get(k) != v}


def rollout_returns(run: Run, episodes: int, trust_imports: bool = False) -> Array:
    """Returns ``[episodes]`` of the run's final policy on its first ``episodes`` evaluation seeds
    (deterministic as the run evaluated), cached in ``rollouts.json`` next to the checkpoint
    (when the run directory is writable). A checkpoint whose config imports a module is refused
    unless ``trust_imports`` (:func:`ppox.io.policy.load_policy`)."""
    from ppox.io.evaluate import evaluate
    from ppox.io.policy import load_policy
    from ppox.training.seeding import evaluation_seeds

    c = run.config
    key = {
        "episodes": episodes,
        "first_seed": c["eval_seed"],
        "deterministic": c["eval_deterministic"],
        "total_steps": run.total_steps,
    }
    cache = run.path / "rollouts.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if all(cached.get(k) == v for k, v in key.items()):
            return np.asarray(cached["returns"], dtype=np.float64)
    policy = load_policy(run.path, trust_imports=trust_imports)
    returns = evaluate(
        policy,
        policy.config.env,
        evaluation_seeds(c["eval_seed"], episodes),
        deterministic=c["eval_deterministic"],
    )
    try:
        cache.write_text(json.dumps({**key, "returns": returns.tolist()}, indent=1))
    except OSError:  # a read-only run directory: the report still gets its numbers
        pass
    return returns


def _safe(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """The metric, or None where the data cannot give it (too short, one run): shown as n/a."""
    try:
        return fn(*args, **kw)
    except ValueError:
        return None


def _spread(values: list[float | None]) -> dict[str, float] | None:
    v = [x for x in values if x is not None]
    return {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)} if v else None


def _choose_curve(study: Study, opts: ReportOptions) -> tuple[str, int]:
    """The metric curve and the window actually used (capped by the shortest curve)."""
    runs = [r for g in study.groups.values() for r in g]
    name = opts.curve
    if name == "auto":
        name = "eval" if all(r.curves["eval"][0].size >= 3 for r in runs) else "train"
    shortest = min(r.curves[name][0].size for r in runs)
    return name, min(opts.window, shortest - 1)


def group_numbers(
    runs: list[Run], curve: str, window: int, opts: ReportOptions, trust_imports: bool = False
) -> dict[str, Any]:
    """Every number of one group's report row (None where a metric is not defined);
    ``trust_imports`` as in :func:`rollout_returns`."""
    a = opts.alpha
    ys = [r.curves[curve][1] for r in runs]
    out: dict[str, Any] = {
        "runs": [r.path.name for r in runs],
        "final": {
            k: e._asdict()
            for k, e in metrics.aggregate(
                [r.final for r in runs], reps=opts.reps, level=opts.level, seed=opts.seed
            ).items()
        },
        "within_run": {
            "dispersion": _spread([_safe(metrics.dispersion_within_run, y, window) for y in ys]),
            "short_term_risk": _spread([_safe(metrics.short_term_risk, y, a) for y in ys]),
            "long_term_risk": _spread([_safe(metrics.long_term_risk, y, a) for y in ys]),
        },
    }
    aligned = _safe(metrics.align_curves, [r.curves[curve] for r in runs])
    areas = [_safe(_time_average, *r.curves["train"]) for r in runs]
    if all(x is not None for x in areas):
        out["area"] = {
            k: e._asdict()
            for k, e in metrics.aggregate(
                areas, reps=opts.reps, level=opts.level, seed=opts.seed
            ).items()
        }
    walls = [r.wall_time_s for r in runs if r.wall_time_s is not None]
    if walls:
        out["wall_time_s"] = {"median": float(np.median(walls)), "min": min(walls), "max": max(walls),
                              "steps_per_second": float(np.median([r.total_steps / r.wall_time_s for r in runs
                                                                   if r.wall_time_s]))}  # fmt: skip
    out["across_runs"] = {
        "dispersion": None
        if aligned is None
        else _safe(metrics.dispersion_across_runs, aligned[1], width=opts.smooth),
        "risk": metrics.risk_across_runs([r.final for r in runs], a),
    }
    if opts.episodes > 0:
        rets = [rollout_returns(r, opts.episodes, trust_imports) for r in runs]
        out["across_rollouts"] = {
            "return": _spread([float(x.mean()) for x in rets]),
            "dispersion": _spread([metrics.iqr(x) for x in rets]),
            "risk": _spread([metrics.cvar(x, a) for x in rets]),
        }
    return out


def _time_average(steps: Array, values: Array) -> float:
    """Mean of a curve over its step span (trapezoids): the area under the learning curve divided
    by its length, a learning-speed score that still separates runs whose final returns tie."""
    if steps.size < 2:
        raise ValueError("a curve needs at least two points")
    area = np.sum((values[1:] + values[:-1]) / 2 * np.diff(steps))
    return float(area / (steps[-1] - steps[0]))


def write_report(
    study: Study, out: Path, opts: ReportOptions | None = None, *, trust_imports: bool = False
) -> Path:
    """``report.md``, ``report.json`` and ``curves.png`` in ``out``; returns the report's path.
    ``trust_imports``: let the runs' checkpoints import the modules their configs name, to
    roll out their final policies (docs/trust.md); refused otherwise."""
    opts = opts or ReportOptions()
    curve, window = _choose_curve(study, opts)
    numbers = {
        g: group_numbers(runs, curve, window, opts, trust_imports)
        for g, runs in study.groups.items()
    }
    out.mkdir(parents=True, exist_ok=True)
    plot_groups(study, out / "curves.png", opts)
    meta = {
        "options": asdict(opts),
        "curve": curve,
        "window": window,
        "command": study.command,
        "commit": study.commit,
        "overrides": study.overrides,
        "skipped": study.skipped,
    }
    (out / "report.json").write_text(json.dumps({**meta, "groups": numbers}, indent=2, default=str))
    (out / "report.md").write_text(render_markdown(study, numbers, curve, window, opts))
    return out / "report.md"


# --- rendering ------------------------------------------------------------------------------------
def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _pm(s: dict[str, float] | None) -> str:
    return "n/a" if s is None else f"{_f(s['mean'])} ± {_f(s['std'])}"


def _ci(e: dict[str, float]) -> str:
    return f"{_f(e['value'])} [{_f(e['low'])}, {_f(e['high'])}]"


def _overrides_text(o: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in o.items()) or "(base config)"


def render_markdown(
    study: Study, numbers: dict[str, Any], curve: str, window: int, opts: ReportOptions
) -> str:
    runs = [r for g in study.groups.values() for r in g]
    envs = sorted({str(r.config["env_id"]) for r in runs})
    steps = sorted({r.total_steps for r in runs})
    ci, a = f"{opts.level:.0%}", opts.alpha
    lines = [
        "# Ablation report",
        "",
        f"{len(study.groups)} variant(s), {len(runs)} finished run(s) on {', '.join(envs)}; "
        f"{'/'.join(f'{s:,}' for s in steps)} environment steps per run.",
    ]
    if study.command:
        lines += [
            "",
            f"Command: `{study.command}`"
            + (f" (ppox at commit `{study.commit[:12]}`)" if study.commit else ""),
        ]
    if study.skipped:
        lines += ["", f"Skipped (not finished, no summary.json): {', '.join(study.skipped)}"]
    lines += [
        "",
        "The first variant is the reference; every other one lists the config fields it changes.",
        "",
        "| variant | runs | config |",
        "|---|---|---|",
    ]
    lines += [
        f"| {g} | {len(r)} | {_overrides_text(study.overrides.get(g, {}))} |"
        for g, r in study.groups.items()
    ]
    lines += [
        "",
        "![learning curves: mean over seeds with a bootstrap band](curves.png)",
        "",
        "## Final return",
        "",
        f"Final return of a run = its last evaluation (`eval_return_mean` in summary.json). Median, "
        f"interquartile mean and mean over the seeds, with {ci} stratified-bootstrap confidence "
        f"intervals ({opts.reps:,} resamples; docs/metrics.md).",
        "",
        "| variant | runs | median | IQM | mean |",
        "|---|---|---|---|---|",
    ]
    for g, n in numbers.items():
        f = n["final"]
        lines.append(
            f"| {g} | {len(n['runs'])} | {_ci(f['median'])} | {_ci(f['iqm'])} | {_ci(f['mean'])} |"
        )
    if all("area" in n for n in numbers.values()):
        lines += [
            "",
            "Learning speed: the training-return curve averaged over the run (area under the curve over "
            "its length; it separates variants whose final returns tie at the task's ceiling). IQM and "
            f"mean over the seeds with {ci} bootstrap intervals.",
            "",
            "| variant | IQM | mean |",
            "|---|---|---|",
        ]
        lines += [
            f"| {g} | {_ci(n['area']['iqm'])} | {_ci(n['area']['mean'])} |"
            for g, n in numbers.items()
        ]
    if all("wall_time_s" in n for n in numbers.values()):
        lines += [
            "",
            "Wall time per run: the training loop (`wall_time_s` in summary.json: collection, updates, logging "
            "and checkpoints, not the evaluations), "
            "median [min, max] over the seeds, and the median steps per second; runs that shared the "
            "machine with others are slower, so compare variants run the same way.",
            "",
            "| variant | wall time per run (s) | steps/s |",
            "|---|---|---|",
        ]
        for g, n in numbers.items():
            w = n["wall_time_s"]
            lines.append(
                f"| {g} | {w['median']:.1f} [{w['min']:.1f}, {w['max']:.1f}] | {w['steps_per_second']:,.0f} |"
            )
    lines += [
        "",
        "## Reliability",
        "",
        f"Higher return is better. ↑ = higher is better, ↓ = lower is better. CVaR level α = {a}; with "
        f"fewer than 1/α samples the CVaR is the single worst one. Metric curve: **{curve}** "
        f"(`{CURVES[curve]}` from metrics.csv); Δ = its first differences (return change between "
        "consecutive points). Definitions and caveats: docs/metrics.md.",
        "",
        f"### Within each run (mean ± std over seeds; window = {window} differences"
        + (f", capped from {opts.window} by the shortest curve)" if window < opts.window else ")"),
        "",
        "| variant | dispersion: IQR of Δ in window ↓ | short-term risk: CVaR of Δ ↑ | long-term risk: CVaR of drawdown ↓ |",
        "|---|---|---|---|",
    ]
    for g, n in numbers.items():
        w = n["within_run"]
        lines.append(
            f"| {g} | {_pm(w['dispersion'])} | {_pm(w['short_term_risk'])} | {_pm(w['long_term_risk'])} |"
        )
    lines += [
        "",
        f"### Across runs (moving average over {opts.smooth} points before the IQR)",
        "",
        "| variant | dispersion: median over points of IQR across runs ↓ | risk: CVaR of final return across runs ↑ |",
        "|---|---|---|",
    ]
    lines += [
        f"| {g} | {_f(n['across_runs']['dispersion'])} | {_f(n['across_runs']['risk'])} |"
        for g, n in numbers.items()
    ]
    if opts.episodes > 0:
        lines += [
            "",
            f"### Across rollouts of the final policy ({opts.episodes} episodes per run on the run's "
            "evaluation seeds; mean ± std over seeds)",
            "",
            "| variant | mean return ↑ | dispersion: IQR ↓ | risk: CVaR ↑ |",
            "|---|---|---|---|",
        ]
        for g, n in numbers.items():
            r = n["across_rollouts"]
            lines.append(
                f"| {g} | {_pm(r['return'])} | {_pm(r['dispersion'])} | {_pm(r['risk'])} |"
            )
    return "\n".join(lines) + "\n"


def plot_groups(study: Study, out: Path, opts: ReportOptions) -> Path:
    """Evaluation and training curves: per group the mean over seeds and a bootstrap band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    titles = {
        "eval": "evaluation return",
        "train": "training return (mean of the last 100 episodes)",
    }
    for ax, (curve, title) in zip(axes, titles.items()):
        for g, runs in study.groups.items():
            aligned = _safe(metrics.align_curves, [r.curves[curve] for r in runs])
            if aligned is None:
                continue
            grid, ys = aligned
            mean, low, high = metrics.mean_band(
                ys, reps=opts.reps, level=opts.level, seed=opts.seed
            )
            (line,) = ax.plot(grid, mean, label=f"{g} (n={len(runs)})")
            ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
        ax.set(title=title, xlabel="environment steps", ylabel="return")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"mean over seeds with a {opts.level:.0%} bootstrap band", fontsize=10)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
