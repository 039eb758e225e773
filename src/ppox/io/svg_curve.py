"""A run's learning curves as an SVG file, written without a plotting library.

Every ``ppox train`` ends by drawing ``curve.svg``: the evaluation return (mean ± std over the
evaluation seeds, one marker per evaluation) and the mean return of the last 100 training
episodes, against environment steps. Importing matplotlib alone takes about half a second, a
tenth of a whole CartPole run, so the run's own figure is plain SVG text (a few milliseconds;
any browser shows it, and it stays sharp at any size). ``ppox plot`` still draws PNG figures of
several runs with matplotlib (:mod:`ppox.io.plotting`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from ppox.io.checkpoint import save_atomic
from ppox.io.logging import read_csv

__all__ = ["nice_ticks", "write_curve_svg"]

WIDTH, HEIGHT = 1000, 380
PANEL_W, PANEL_H = 400, 270  # the plotting area of each panel
LEFT, TOP = 80, 60  # the first panel's plotting area starts here
GAP = 100  # between the two panels' plotting areas
COLOR = "#1f77b4"


def nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 × 10ⁿ apart) covering ``[lo, hi]``, at most ``most``
    (plus the ends' rounding)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        lo, hi = lo - (abs(lo) or 1.0) * 0.5, hi + (abs(hi) or 1.0) * 0.5
    raw = (hi - lo) / max(most - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks, k = [], 0
    while True:
        t = first + k * step
        ticks.append(round(t, 12))
        if t >= hi - 1e-9 * step:
            return ticks
        k += 1


def _label(v: float) -> str:
    """A tick label: 20k, 1.5M, 0.25, -300."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _line(x1: float, y1: float, x2: float, y2: float) -> str:
    """A light grid line."""
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#e5e5e5"/>'


def _text(x: float, y: float, anchor: str, text: str) -> str:
    """A tick label anchored at ``(x, y)``."""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{text}</text>'


class _Panel:
    """One plotting area with its axes, in SVG user units."""

    def __init__(self, x0: float, title: str, xs: Sequence[float], ys: Sequence[float]) -> None:
        self.x0, self.title = x0, title
        lo_x, hi_x = (min(xs), max(xs)) if xs else (0.0, 1.0)
        lo_y, hi_y = (min(ys), max(ys)) if ys else (0.0, 1.0)
        self.xt, self.yt = nice_ticks(min(lo_x, 0.0), hi_x), nice_ticks(lo_y, hi_y)
        self.x_lo, self.x_hi = self.xt[0], max(hi_x, self.xt[1])  # the axis ends at the last step
        self.xt = [t for t in self.xt if t <= self.x_hi]
        self.y_lo, self.y_hi = self.yt[0], self.yt[-1]

    def px(self, x: float) -> float:
        return self.x0 + (x - self.x_lo) / ((self.x_hi - self.x_lo) or 1.0) * PANEL_W

    def py(self, y: float) -> float:
        return TOP + PANEL_H - (y - self.y_lo) / ((self.y_hi - self.y_lo) or 1.0) * PANEL_H

    def frame(self, ylabel: str, empty: bool) -> list[str]:
        out = [f'<text x="{self.x0 + PANEL_W / 2:.1f}" y="{TOP - 12}" text-anchor="middle" font-size="13">'
               f"{escape(self.title)}</text>"]  # fmt: skip
        for t in self.xt:  # vertical grid lines, labels below the axis
            x = self.px(t)
            out += [
                _line(x, TOP, x, TOP + PANEL_H),
                _text(x, TOP + PANEL_H + 16, "middle", _label(t)),
            ]
        for t in self.yt:  # horizontal grid lines, labels left of the axis
            y = self.py(t)
            out += [
                _line(self.x0, y, self.x0 + PANEL_W, y),
                _text(self.x0 - 6, y + 4, "end", _label(t)),
            ]
        out.append(
            f'<rect x="{self.x0}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#444"/>'
        )
        out.append(f'<text x="{self.x0 + PANEL_W / 2:.1f}" y="{TOP + PANEL_H + 36}" text-anchor="middle">'
                   "environment steps</text>")  # fmt: skip
        cy = TOP + PANEL_H / 2
        out.append(f'<text x="{self.x0 - 50}" y="{cy:.1f}" text-anchor="middle" '
                   f'transform="rotate(-90 {self.x0 - 50} {cy:.1f})">{escape(ylabel)}</text>')  # fmt: skip
        if empty:
            out.append(f'<text x="{self.x0 + PANEL_W / 2:.1f}" y="{cy:.1f}" text-anchor="middle" fill="#888">'
                       "no values yet</text>")  # fmt: skip
        return out

    def points(self, xs: Sequence[float], ys: Sequence[float]) -> str:
        return " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in zip(xs, ys))


def _series(
    rows: list[dict[str, str]], key: str, std: str | None = None
) -> tuple[list[float], ...]:
    """``(steps, values[, stds])`` of the rows where ``key`` holds a finite number."""
    xs: list[float] = []
    ys: list[float] = []
    sd: list[float] = []
    for r in rows:
        try:
            x, y = float(r["global_step"]), float(r.get(key) or "nan")
            s = float(r.get(std) or 0.0) if std else 0.0
        except ValueError:
            continue
        if math.isfinite(x) and math.isfinite(y):
            xs.append(x)
            ys.append(y)
            sd.append(s if math.isfinite(s) else 0.0)
    return (xs, ys, sd) if std else (xs, ys)


def write_curve_svg(run_dir: Path, out: Path, *, title: str | None = None) -> Path:
    """Draw ``run_dir``'s ``metrics.csv`` to ``out`` (an SVG file, replaced atomically)."""
    rows = read_csv(Path(run_dir) / "metrics.csv")
    ex, ey, es = _series(rows, "eval_return_mean", "eval_return_std")
    tx, ty = _series(rows, "train_return_mean")
    band_lo, band_hi = [y - s for y, s in zip(ey, es)], [y + s for y, s in zip(ey, es)]
    left = _Panel(LEFT, "evaluation return (mean ± std over eval seeds)", ex, band_lo + band_hi)
    right = _Panel(LEFT + PANEL_W + GAP, "training episodes (mean of last 100)", tx, ty)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
    ]
    if title:
        parts.append(
            f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>'
        )
    parts += left.frame("return", not ex) + right.frame("return", not tx)
    if ex:
        band = left.points(ex, band_hi) + " " + left.points(ex[::-1], band_lo[::-1])
        parts.append(f'<polygon points="{band}" fill="{COLOR}" fill-opacity="0.15" stroke="none"/>')
        parts.append(
            f'<polyline points="{left.points(ex, ey)}" fill="none" stroke="{COLOR}" stroke-width="1.5"/>'
        )
        parts += [f'<circle cx="{left.px(x):.1f}" cy="{left.py(y):.1f}" r="2.5" fill="{COLOR}"/>'
                  for x, y in zip(ex, ey)]  # fmt: skip
    if tx:
        parts.append(
            f'<polyline points="{right.points(tx, ty)}" fill="none" stroke="{COLOR}" stroke-width="1.5"/>'
        )
    parts.append("</svg>\n")
    save_atomic("\n".join(parts).encode("utf-8"), Path(out))
    return Path(out)
