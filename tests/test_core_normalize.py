"""Hand-computed checks of the mergeable moments (src/ppox/core/normalize.py)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from ppox.core.normalize import Moments, merge_moments, moments_of, normalize


def close(m: Moments, count: float, mean, m2) -> bool:
    return (
        m.count == count
        and np.allclose(np.asarray(m.mean, dtype=float), mean, atol=1e-10)
        and np.allclose(np.asarray(m.m2, dtype=float), m2, atol=1e-10)
    )


def same(a: Moments, b: Moments) -> bool:
    return close(a, b.count, np.asarray(b.mean, dtype=float), np.asarray(b.m2, dtype=float))


def test_moments_of_1d():
    m = moments_of(np.array([1.0, 2.0, 3.0, 6.0]))
    # mean 12/4 = 3;  m2 = 4 + 1 + 0 + 9 = 14;  var = 14/4 = 3.5
    assert close(m, 4.0, 3.0, 14.0)
    assert float(m.var) == pytest.approx(3.5)


def test_moments_of_features_numpy_and_torch():
    rows = [[1.0, 10.0], [3.0, 10.0], [5.0, 16.0]]
    # column 0: mean 3, m2 = 4 + 0 + 4 = 8;  column 1: mean 12, m2 = 4 + 4 + 16 = 24
    for x in (np.array(rows), torch.tensor(rows, dtype=torch.float64)):
        m = moments_of(x)
        assert close(m, 3.0, [3.0, 12.0], [8.0, 24.0])
        assert np.allclose(np.asarray(m.var), [8 / 3, 8.0])


def test_zero_count_variance_is_zero():
    assert Moments(0.0, 0.0, 0.0).var == 0.0


def test_merge_hand_numbers():
    a = moments_of(np.array([1.0, 2.0, 3.0]))  # (3, 2, 2)
    b = moments_of(np.array([6.0]))  # (1, 6, 0)
    m = merge_moments(a, b)
    # n = 4, delta = 4, mean = 2 + 4*1/4 = 3, m2 = 2 + 0 + 16*3*1/4 = 14  == moments_of([1,2,3,6])
    assert close(m, 4.0, 3.0, 14.0)
    assert close(merge_moments(b, a), 4.0, 3.0, 14.0)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("cut", [1, 2, 5, 7])  # 5+2 rows split after `cut`: equal and unequal
def test_merge_two_splits_equals_concatenation(lib, cut):
    data = np.array(
        [[0.5, -1.0], [2.0, 4.0], [-3.0, 0.0], [1.5, 1.5], [7.0, -2.0], [0.0, 3.0], [4.0, 4.0]]
    )
    x = data if lib == "numpy" else torch.tensor(data)
    a, b = x[:cut], x[cut:]
    whole = moments_of(x)
    if len(b) == 0:
        b_m = Moments(0.0, 0.0, 0.0)
    else:
        b_m = moments_of(b)
    assert same(merge_moments(moments_of(a), b_m), whole)
    assert same(merge_moments(b_m, moments_of(a)), whole)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_merge_with_empty_side(lib):
    x = (
        np.array([1.0, 2.0, 3.0])
        if lib == "numpy"
        else torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    )
    a = moments_of(x)
    empty = Moments(0.0, 0.0, 0.0)
    # empty + a: n = 3, delta = 2, mean = 0 + 2*3/3 = 2, m2 = 0 + 2 + 4*0*3/3 = 2
    assert close(merge_moments(empty, a), 3.0, 2.0, 2.0)
    assert close(merge_moments(a, empty), 3.0, 2.0, 2.0)
    assert merge_moments(empty, empty).count == 0.0


def test_merge_does_not_mutate():
    a = moments_of(np.array([[1.0], [2.0]]))
    b = moments_of(np.array([[5.0]]))
    a_mean, a_m2 = a.mean.copy(), a.m2.copy()
    merge_moments(a, b)
    assert np.array_equal(a.mean, a_mean) and np.array_equal(a.m2, a_m2)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_merge_property_random_splits(lib):
    rng = np.random.default_rng(1234)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        data = rng.normal(rng.normal(0, 10), rng.uniform(0.1, 5), size=(n, 3))
        cuts = np.sort(rng.integers(0, n + 1, size=int(rng.integers(0, 5))))
        chunks = np.split(data, cuts)  # may contain empty chunks
        if lib == "torch":
            data = torch.tensor(data)
            chunks = [torch.tensor(c) for c in chunks]
        parts = [moments_of(c) if len(c) else Moments(0.0, 0.0, 0.0) for c in chunks]
        merged = functools.reduce(merge_moments, parts, Moments(0.0, 0.0, 0.0))
        whole = moments_of(data)
        assert merged.count == whole.count
        assert np.allclose(np.asarray(merged.mean), np.asarray(whole.mean), rtol=1e-9, atol=1e-9)
        assert np.allclose(np.asarray(merged.m2), np.asarray(whole.m2), rtol=1e-9, atol=1e-9)


def test_normalize_hand_numbers_and_clip():
    m = moments_of(np.array([1.0, 2.0, 3.0, 6.0]))  # mean 3, var 3.5
    s = math.sqrt(3.5)  # 1.870829
    x = np.array([3.0, 3.0 + s, 10.0, -10.0])
    # (x - 3)/sqrt(3.5): [0, 1, 7/1.870829 = 3.741657, -13/1.870829 = -6.948792]
    out = normalize(x, m, eps=0.0)
    assert out.tolist() == pytest.approx([0.0, 1.0, 3.741657, -6.948792], abs=1e-6)
    assert normalize(x, m, clip=2.0, eps=0.0).tolist() == pytest.approx([0.0, 1.0, 2.0, -2.0])
    assert x.tolist()[2:] == [10.0, -10.0]  # not mutated
    # default eps = 1e-8 barely moves it
    assert normalize(x, m).tolist() == pytest.approx([0.0, 1.0, 3.741657, -6.948792], abs=1e-6)


def test_normalize_torch_features():
    m = moments_of(torch.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0]], dtype=torch.float64))
    # mean [3, 12], var [8/3, 8] -> std [1.632993, 2.828427]
    x = torch.tensor([[3.0 + math.sqrt(8 / 3), 12.0 - 2 * math.sqrt(8.0)]], dtype=torch.float64)
    out = normalize(x, m, eps=0.0)
    assert out.tolist()[0] == pytest.approx([1.0, -2.0])
    assert normalize(x, m, clip=1.5, eps=0.0).tolist()[0] == pytest.approx([1.0, -1.5])


def test_merge_moments_with_a_count_per_row():
    x, y = np.array([[1.0], [3.0]]), np.array([[5.0]])
    a, b = moments_of(x), moments_of(y)
    # two rows: row 0 merges [1, 3] with [5]; row 1 merges two empty statistics
    rows = merge_moments(Moments(np.array([a.count, 0.0]), np.array([a.mean[0], 0.0]), np.array([a.m2[0], 0.0])),
                         Moments(np.array([b.count, 0.0]), np.array([b.mean[0], 0.0]), np.array([b.m2[0], 0.0])))  # fmt: skip
    np.testing.assert_allclose(rows.count, [3.0, 0.0])
    np.testing.assert_allclose(rows.mean, [3.0, 0.0])  # mean of 1, 3, 5
    np.testing.assert_allclose(rows.m2, [8.0, 0.0])  # 4 + 0 + 4
