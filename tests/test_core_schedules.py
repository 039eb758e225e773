"""Hand-computed checks of ``schedule_value`` (src/ppox/core/schedules.py)."""

from __future__ import annotations

import pytest

from ppox.core.schedules import SCHEDULES, schedule_value


@pytest.mark.parametrize("p", [-1.0, 0.0, 0.5, 1.0, 2.0])
def test_constant(p):
    assert schedule_value("constant", 3.0, 1.0, p) == 3.0


@pytest.mark.parametrize(
    "p, expected",
    [
        (0.0, 1.0),
        (0.25, 0.75),  # 1 + (0 - 1)*0.25
        (0.5, 0.5),
        (1.0, 0.0),
        (-0.5, 1.0),  # clamped to p = 0
        (3.0, 0.0),  # clamped to p = 1
    ],
)
def test_linear_decreasing(p, expected):
    assert schedule_value("linear", 1.0, 0.0, p) == pytest.approx(expected)


def test_linear_increasing():
    # 0 + (10 - 0)*0.25 = 2.5
    assert schedule_value("linear", 0.0, 10.0, 0.25) == pytest.approx(2.5)
    assert schedule_value("linear", 0.0, 10.0, 1.5) == pytest.approx(10.0)


@pytest.mark.parametrize(
    "p, expected",
    [
        (0.0, 1e-3),
        (0.5, 1e-4),  # 1e-3 * (1e-5/1e-3)^0.5 = 1e-3 * 0.1
        (1.0, 1e-5),
        (-2.0, 1e-3),  # clamped
        (5.0, 1e-5),  # clamped
    ],
)
def test_exponential(p, expected):
    assert schedule_value("exponential", 1e-3, 1e-5, p) == pytest.approx(expected, rel=1e-9)


def test_exponential_negative_same_sign():
    # -1 * (-4 / -1)^0.5 = -1 * 2 = -2   (linear would give -2.5)
    assert schedule_value("exponential", -1.0, -4.0, 0.5) == pytest.approx(-2.0)


@pytest.mark.parametrize("start, end", [(0.0, 1.0), (1.0, 0.0), (1.0, -1.0), (-2.0, 3.0)])
def test_exponential_invalid_raises(start, end):
    with pytest.raises(ValueError):
        schedule_value("exponential", start, end, 0.5)


def test_unknown_kind_raises():
    with pytest.raises(ValueError):
        schedule_value("cosine", 1.0, 0.0, 0.5)
    assert set(SCHEDULES) == {"constant", "linear", "exponential"}
