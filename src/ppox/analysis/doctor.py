"""``ppox doctor RUN``: what a practitioner looks for in a run's logs, checked (docs/doctor.md).

The PPO × Family course's Q&A notes that beginners cannot tell a healthy run from a sick one.
This module reads a run directory's ``metrics.csv`` and ``config.json`` (a finished run or one
still writing: it only reads) and flags the usual symptoms, each with what it measured, the range
healthy runs keep to and the switch that usually helps:

- update size: ``approx_kl`` and ``clip_fraction`` above their usual ranges (steps too large),
  or ``approx_kl`` near zero with nothing clipped (the policy is not moving);
- exploration: the entropy collapsing while the return stalls (below the reference, or flat);
- the critic: explained variance stuck near 0 after the first quarter, the value loss exploding;
- numerics: NaN or infinite values in the log, skipped or rolled-back updates, skipped
  transitions;
- reward scale: rewards per step far from unit scale with ``scale_reward`` off;
- against a reference: the return far behind a reference run of the same preset at the same
  step (``src/ppox/presets/reference``: one full seed-1 run per preset).

Each rule reads a window of recent iterations (the last :data:`WINDOW`, medians), so one noisy
iteration does not raise a flag. Thresholds are the named constants below.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ppox.errors import CheckpointError

WINDOW = 10
"""Recent iterations a rule reads (medians over them)."""
KL_HIGH = 0.05
"""Median approx_kl above this: updates too large (healthy PPO-Clip runs keep 0.002–0.03)."""
KL_LOW = 1e-5
"""Median approx_kl below this with nothing clipped: the policy is hardly moving."""
CLIP_HIGH = 0.35
"""Median clip fraction above this × 0.2 / clip_coef (0.35 at ε = 0.2, 0.7 at ε = 0.1; at most
0.9): the steps overshoot. For a given KL the share of ratios beyond ε grows as ε shrinks (the
HalfCheetah preset, ε = 0.1, clips 40–60% of its samples while learning well)."""
ENTROPY_COLLAPSE = 0.1
"""Entropy below this fraction of its first value (when that is positive) counts as collapsed."""
EV_STUCK = 0.05
"""Median explained variance below this after a quarter of the budget: the critic learns nothing."""
VALUE_BLOWUP = 100.0
"""Value loss this many times above its smallest median window: exploding."""
REWARD_SCALE = (1e-3, 10.0)
"""Mean |reward| per step outside this range with scale_reward off: out of the usual scale."""
BEHIND = 0.5
"""Return behind the reference by more than this fraction of the reference's gain so far."""


@dataclass
class Finding:
    """One symptom: ``check`` names it, ``seen`` says what was measured, ``advice`` what to try."""

    check: str
    seen: str
    advice: str
    severity: str = "warning"  # or "error" (numerical failures)


@dataclass
class Diagnosis:
    run_dir: str
    summary: str
    findings: list[Finding] = field(default_factory=list)
    reference: str | None = None
    checks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        lines = [f"run: {self.summary}"]
        if self.reference:
            lines.append(f"reference: {self.reference}")
        for f in self.findings:
            mark = "ERROR" if f.severity == "error" else "warn "
            lines.append(f"{mark} {f.check}: {f.seen}\n      → {f.advice}")
        if not self.findings:
            lines.append(f"no problems found ({self.checks} checks)")
        return "\n".join(lines)


def read_run(run_dir: Path) -> tuple[list[dict[str, float | None]], dict[str, Any]]:
    """The run's rows (numbers, None where empty) and its config as plain data (never executed:
    the JSON is only read)."""
    metrics, config = run_dir / "metrics.csv", run_dir / "config.json"
    if not metrics.is_file():
        raise CheckpointError(f"{run_dir} holds no metrics.csv (is it a ppox run directory?)")
    try:
        with metrics.open(newline="") as f:
            rows = [{k: _num(v) for k, v in r.items() if k is not None} for r in csv.DictReader(f)]
        cfg = json.loads(config.read_text()) if config.is_file() else {}
    except (OSError, ValueError, csv.Error) as exc:
        raise CheckpointError(f"{run_dir}: cannot read its logs ({exc})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{config} is not a ppox config")
    if cfg.get("kind") == "llm":
        raise CheckpointError(
            f"{run_dir} is a language-model run (ppox llm); ppox doctor reads environment runs "
            "(its rules and references are theirs); see docs/llm.md for what to watch there"
        )
    return rows, cfg


def _num(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _flat(cfg: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section in cfg.values():
        if isinstance(section, dict):
            out.update(section)
    return out


def _column(rows: list[dict[str, float | None]], key: str) -> list[float]:
    return [v for r in rows if (v := r.get(key)) is not None and math.isfinite(v)]


def _recent(rows: list[dict[str, float | None]], key: str) -> float | None:
    vals = _column(rows[-WINDOW:], key)
    return statistics.median(vals) if vals else None


def diagnose(run_dir: str | Path, reference: str | None = None) -> Diagnosis:
    """Check the run in ``run_dir``; ``reference``: a preset name to compare with (default: the
    preset whose config the run's matches, if any)."""
    path = Path(run_dir)
    rows, cfg = read_run(path)
    flat = _flat(cfg)
    total = flat.get("total_steps")
    step = rows[-1].get("global_step") if rows else 0
    summary = (
        f"{flat.get('env_id', '?')}, {flat.get('algo', '?')}, {int(step or 0):,}"
        + (f"/{int(total):,} steps ({100 * (step or 0) / total:.0f}%)" if total else " steps")
        + f", {len(rows)} iterations"
    )
    d = Diagnosis(str(path), summary)
    if not rows:
        d.findings.append(Finding("progress", "no iteration logged yet", "wait for the first one"))
        return d
    progress = (step or 0) / total if total else 1.0
    checks = [
        _numerics, _update_size, _critic, _value_blowup, _reward_scale, _entropy,
    ]  # fmt: skip
    ref = _reference(flat, reference)
    for check in checks:
        d.checks += 1
        d.findings += check(rows, flat, progress, ref)
    if ref is not None:
        d.checks += 1
        d.reference, behind = _compare(rows, ref)
        d.findings += behind
    return d


# --- the checks -------------------------------------------------------------------------------
Rows = list[dict[str, float | None]]
Ref = tuple[str, Rows] | None


def _numerics(rows: Rows, flat: dict[str, Any], progress: float, ref: Ref) -> list[Finding]:
    out = []
    bad = sorted({k for r in rows for k, v in r.items() if v is not None and not math.isfinite(v)})
    if bad:
        out.append(Finding("non-finite values", f"NaN or infinity logged in {', '.join(bad)}",
                           "see docs/numerics.md: lower --learning-rate, turn on --scale-reward "
                           "and --normalize-obs, keep --nan-guard rollback", "error"))  # fmt: skip
    for key, what, advice in (
        ("nonfinite_updates", "minibatch steps skipped for non-finite gradients",
         "lower --learning-rate or --max-grad-norm; check the environment's observations"),
        ("rollbacks", "updates rolled back by the NaN guard",
         "lower --learning-rate; check rewards and observations for extreme values"),
        ("skipped_transitions", "environment steps skipped for non-finite values",
         "the environment returns NaN or infinity: fix it, or keep --nonfinite-env skip knowingly"),
        ("skipped_updates", "updates skipped", "see the run's messages (docs/numerics.md)"),
    ):  # fmt: skip
        n = sum(_column(rows, key))
        if n > 0:
            out.append(
                Finding(
                    key, f"{n:g} {what}", advice, "error" if key != "skipped_updates" else "warning"
                )
            )
    return out


def _peak(rows: Rows, key: str) -> tuple[float, int] | None:
    """The largest median over any :data:`WINDOW` consecutive iterations, and the iteration its
    window starts at (a burst of oversized updates early on counts, even if the learning rate
    has since decayed)."""
    pairs = [(r.get("iteration") or i + 1, v) for i, r in enumerate(rows)
             if (v := r.get(key)) is not None and math.isfinite(v)]  # fmt: skip
    if len(pairs) < WINDOW:
        return None
    best = max(
        (statistics.median(v for _, v in pairs[i : i + WINDOW]), i)
        for i in range(len(pairs) - WINDOW + 1)
    )
    return best[0], int(pairs[best[1]][0])


def _trust_region(rows: Rows, flat: dict[str, Any]) -> list[Finding]:
    """TRPO: the KL of every step is bounded by ``max_kl`` by construction; the symptom is the
    line search accepting no step (the quadratic model is wrong at that radius)."""
    taken = [
        v for r in rows if (v := r.get("line_search_fraction")) is not None and math.isfinite(v)
    ]
    if len(taken) < WINDOW:
        return []
    worst, at = max(
        (sum(f == 0.0 for f in taken[i : i + WINDOW]), i) for i in range(len(taken) - WINDOW + 1)
    )
    if worst <= WINDOW // 2:
        return []
    return [Finding(
        "line_search", f"no step accepted in {worst} of iterations {at + 1}–{at + WINDOW} (healthy TRPO runs "
        "accept nearly every update)",
        f"the trust region is too large for the quadratic model: lower --max-kl (now {flat.get('max_kl')}) "
        "or raise --cg-damping",
    )]  # fmt: skip


def _update_size(rows: Rows, flat: dict[str, Any], progress: float, ref: Ref) -> list[Finding]:
    if flat.get("algo") == "reinforce":
        return []
    if flat.get("algo") == "trpo":
        return _trust_region(rows, flat)
    kl, clip = _peak(rows, "approx_kl"), _peak(rows, "clip_fraction")
    lr = flat.get("learning_rate")
    out = []
    if kl is not None and kl[0] > KL_HIGH:
        out.append(Finding(
            "approx_kl", f"median {kl[0]:.3g} over iterations {kl[1]}–{kl[1] + WINDOW - 1} "
            "(healthy runs: 0.002–0.03)",
            f"the updates are too large: lower --learning-rate (now {lr}), fewer --num-epochs, "
            "or set --target-kl 0.02",
        ))  # fmt: skip
    eps = float(flat.get("clip_coef") or 0.2)
    clip_high = min(0.9, CLIP_HIGH * 0.2 / eps)
    if clip is not None and clip[0] > clip_high:
        out.append(Finding(
            "clip_fraction", f"median {clip[0]:.2f} of the samples clipped over iterations "
            f"{clip[1]}–{clip[1] + WINDOW - 1} (at clip_coef {eps:g}, healthy runs stay below "
            f"{clip_high:.2f})",
            f"the steps overshoot the trust region: lower --learning-rate (now {lr}) or "
            "--num-epochs",
        ))  # fmt: skip
    now_kl, now_clip = _recent(rows, "approx_kl"), _recent(rows, "clip_fraction")
    if now_kl is not None and now_kl < KL_LOW and (now_clip or 0.0) == 0.0 and progress < 0.9:
        out.append(Finding(
            "approx_kl", f"median {now_kl:.2g} over the last {WINDOW} iterations: the policy is "
            "hardly changing", f"raise --learning-rate (now {lr}); if a reward exists, check its "
            "scale (a huge value loss can drown the policy's gradient under --max-grad-norm)",
        ))  # fmt: skip
    return out


def _critic(rows: Rows, flat: dict[str, Any], progress: float, ref: Ref) -> list[Finding]:
    ev = _recent(rows, "explained_variance")
    if ev is None or progress < 0.25 or flat.get("algo") == "reinforce":
        return []  # REINFORCE's critic is only a baseline, one step per batch: it learns slowly
    if ev < EV_STUCK:
        return [Finding(
            "explained_variance", f"median {ev:.2f} after {100 * progress:.0f}% of the budget "
            "(a critic that learns reaches 0.5–0.99)",
            "the critic predicts no better than a constant: check the reward scale "
            "(--scale-reward), --vf-coef, --learning-rate, and --normalize-obs",
        )]  # fmt: skip
    return []


def _value_blowup(rows: Rows, flat: dict[str, Any], progress: float, ref: Ref) -> list[Finding]:
    vals = _column(rows, "value_loss")
    if len(vals) < 2 * WINDOW:
        return []
    windows = [statistics.median(vals[i : i + WINDOW]) for i in range(0, len(vals) - WINDOW + 1)]
    low, now = min(windows), windows[-1]
    if low > 0 and now > VALUE_BLOWUP * low and now > 1.0:
        return [Finding(
            "value_loss", f"median {now:.3g} now, {now / low:.0f}× its lowest ({low:.3g})",
            "the value loss is exploding: turn on --scale-reward, set --value-clip, lower "
            "--learning-rate",
        )]  # fmt: skip
    return []


def _reward_scale(rows: Rows, flat: dict[str, Any], progress: float, ref: Ref) -> list[Finding]:
    if flat.get("scale_reward") or flat.get("sign_reward"):
        return []
    ret, length = _column(rows, "train_return_mean"), _column(rows, "train_length_mean")
    if not ret or not length:
        return []
    per_step = statistics.median(abs(r) / max(n, 1.0) for r, n in zip(ret, length))
    lo, hi = REWARD_SCALE
    if per_step > hi or 0 < per_step < lo:
        return [Finding(
            "reward scale", f"mean |reward| per step ≈ {per_step:.3g} (usual: {lo:g} to {hi:g}) "
            "with scale_reward off",
            "turn on --scale-reward (a running scale of the discounted return), or rescale the "
            "rewards in the environment",
        )]  # fmt: skip
    return []


def _entropy(rows: Rows, flat: dict[str, Any], progress: float, ref: Ref) -> list[Finding]:
    ent = _column(rows, "entropy")
    if len(ent) < WINDOW or ent[0] <= 0:
        return []
    now = statistics.median(ent[-WINDOW:])
    if now >= ENTROPY_COLLAPSE * ent[0]:
        return []
    if not _stalled(rows, ref):
        return []
    return [Finding(
        "entropy", f"median {now:.3g}, below {ENTROPY_COLLAPSE:.0%} of its start ({ent[0]:.3g}), "
        "while the return stalls",
        f"the policy stopped exploring before it found the reward: raise --ent-coef (now "
        f"{flat.get('ent_coef')}), e.g. 0.01, or keep it up longer with --ent-schedule",
    )]  # fmt: skip


def _stalled(rows: Rows, ref: Ref) -> bool:
    """The return is behind the reference at this step, or (no reference) has not improved over
    the second half of the run."""
    if ref is not None:
        return bool(_compare(rows, ref)[1])
    ret = _column(rows, "train_return_mean")
    if len(ret) < 2 * WINDOW:
        return False
    half = len(ret) // 2
    first, last = statistics.median(ret[:WINDOW]), statistics.median(ret[-WINDOW:])
    mid = max(statistics.median(ret[i : i + WINDOW]) for i in range(0, half - WINDOW + 1) or [0])
    scale = max(abs(first), abs(last), 1e-9)
    return last - max(first, mid) < 0.05 * scale


# --- the reference ----------------------------------------------------------------------------
REFERENCE_DIR = Path(__file__).resolve().parents[1] / "presets" / "reference"
IGNORED = {"seed", "run_dir", "progress", "progress_interval", "tensorboard", "device", "threads",
           "wandb", "wandb_project", "wandb_group", "wandb_tags", "eval_every", "eval_episodes",
           "checkpoint_every", "act_backend", "update_backend", "total_steps"}  # fmt: skip
"""Fields that do not change what a run learns (or only its length): a run matches a preset's
reference when every other field is the preset's."""


def _reference(flat: dict[str, Any], name: str | None) -> Ref:
    from ppox.presets import PRESETS, get_preset

    names = [name] if name else sorted(PRESETS)
    for n in names:
        file = REFERENCE_DIR / f"{n}.csv"
        if not file.is_file():
            if name:
                raise CheckpointError(f"--reference {name}: ppox has no reference run for it")
            continue
        if name is None:
            want = {k: v for s in get_preset(n).config().to_dict().values() for k, v in s.items()}
            if any(_canon(flat.get(k)) != _canon(v) for k, v in want.items() if k not in IGNORED):
                continue
        rows, _ = read_run_file(file)
        return n, rows
    return None


def read_run_file(file: Path) -> tuple[Rows, None]:
    with file.open(newline="") as f:
        return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)], None


def _canon(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _at(rows: Rows, step: float) -> float | None:
    """The reference's return (median of the window ending) at ``step``."""
    seen = [r for r in rows if (r.get("global_step") or 0) <= step]
    vals = _column(seen[-WINDOW:], "train_return_mean")
    return statistics.median(vals) if vals else None


def _compare(rows: Rows, ref: tuple[str, Rows]) -> tuple[str, list[Finding]]:
    name, ref_rows = ref
    step = rows[-1].get("global_step") or 0
    mine, theirs = _recent(rows, "train_return_mean"), _at(ref_rows, step)
    start = _column(ref_rows[:WINDOW], "train_return_mean")
    if mine is None or theirs is None or not start:
        return f"preset {name}: nothing to compare at {int(step):,} steps yet", []
    gain = theirs - statistics.median(start)
    text = f"preset {name} (seed 1): at {int(step):,} steps its return is {theirs:.4g}, this run's {mine:.4g}"
    if gain > 0 and theirs - mine > BEHIND * gain:
        return text, [Finding(
            "behind the reference", f"return {mine:.4g} vs the reference's {theirs:.4g} at the "
            "same step", "compare the config with the preset's (`ppox presets`), and see the "
            "other findings",
        )]  # fmt: skip
    return text, []
