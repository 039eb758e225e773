"""The run's own learning-curve figure (``curve.svg``), drawn without a plotting library."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ppox.io.svg_curve import LEFT, PANEL_H, PANEL_W, TOP, nice_ticks, write_curve_svg

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("lo", "hi", "want"),
    [
        (0, 100096, [0, 25000, 50000, 75000, 100000, 125000]),
        (0, 500, [0, 100, 200, 300, 400, 500]),
        (-3.7, 1.2, [-4, -3, -2, -1, 0, 1, 2]),
        (139, 500, [100, 200, 300, 400, 500]),
        (0.0, 0.012, [0, 0.0025, 0.005, 0.0075, 0.01, 0.0125]),
        (5, 5, [2, 3, 4, 5, 6, 7, 8]),  # one value: a range around it
    ],
)
def test_ticks_are_round_numbers_covering_the_range(lo, hi, want):
    assert nice_ticks(lo, hi) == pytest.approx(want)


def _metrics(path: Path, rows: list[dict[str, str]]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    keys = ["global_step", "train_return_mean", "eval_return_mean", "eval_return_std"]
    with (path / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def test_points_sit_where_their_values_are(tmp_path):
    rows = [{"global_step": str(s), "train_return_mean": str(s / 1000), "eval_return_mean": "", "eval_return_std": ""}
            for s in range(1000, 11000, 1000)]  # fmt: skip
    rows[4].update(eval_return_mean="50", eval_return_std="10")
    rows[9].update(eval_return_mean="nan", eval_return_std="")  # a non-finite value is left out
    rows[9]["train_return_mean"] = "inf"
    _metrics(tmp_path, rows)
    out = write_curve_svg(tmp_path, tmp_path / "curve.svg", title="a <title> & more")
    root = ET.parse(out).getroot()  # well-formed XML, the title escaped
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "a <title> & more" in texts
    train = [p for p in root.iter(f"{SVG}polyline")][-1]
    pts = [tuple(map(float, p.split(","))) for p in train.get("points").split()]
    assert len(pts) == 9  # the inf row left out
    # x: steps 0 … 9000 (the last finite row) across the panel; y: 1 … 9 on ticks 0 … 10
    right = LEFT + PANEL_W + 100
    assert pts[0][0] == pytest.approx(right + 1000 / 9000 * PANEL_W, abs=0.06)
    assert pts[-1][0] == pytest.approx(right + PANEL_W, abs=0.06)
    assert pts[0][1] == pytest.approx(TOP + PANEL_H - 0.1 * PANEL_H, abs=0.06)
    (marker,) = root.iter(f"{SVG}circle")  # one evaluation
    band = next(root.iter(f"{SVG}polygon"))
    ys = [float(p.split(",")[1]) for p in band.get("points").split()]
    assert max(ys) - min(ys) == pytest.approx(PANEL_H, abs=0.06)  # 40 … 60 spans the axis 40 … 60
    assert float(marker.get("cy")) == pytest.approx(TOP + PANEL_H / 2, abs=0.06)


def test_a_run_without_values_yet_still_draws(tmp_path):
    _metrics(tmp_path, [])
    root = ET.parse(write_curve_svg(tmp_path, tmp_path / "c.svg")).getroot()
    assert [t.text for t in root.iter(f"{SVG}text")].count("no values yet") == 2
    assert not list(root.iter(f"{SVG}polyline"))
