"""The reparameterization demo (examples/reparameterization.py, docs/reparameterization.md):
the closed-form gradients, both estimators' means against them, and their variances.

The example is a script, not part of the package, so it is loaded from its file.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "reparameterization" / "results.json"
SIZES = (10, 100, 1000)


def load_example() -> ModuleType:
    path = ROOT / "examples" / "reparameterization.py"
    spec = importlib.util.spec_from_file_location("reparameterization_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


rp = load_example()


def x_squared_variances(mu: float, sigma: float) -> dict[str, tuple[float, float]]:
    """Per-sample ``Var`` of the plain estimators' terms for ``f(x) = x²``, by hand from the
    moments of ε ~ N(0, 1) (1, 3, 15, 105 for ε², ε⁴, ε⁶, ε⁸): score ``(x²ε/σ, x²(ε² − 1)/σ)``,
    pathwise ``(2x, 2xε)`` with ``x = μ + σε``."""
    m2, s2 = mu * mu, sigma * sigma
    score = (m2 * m2 / s2 + 14 * m2 + 15 * s2, (2 * m2 * m2 + 60 * m2 * s2 + 74 * s2 * s2) / s2)
    return {"score": score, "pathwise": (4 * s2, 4 * m2 + 8 * s2)}


@pytest.fixture(scope="module")
def measured() -> dict[str, list[dict]]:
    """2000 estimates at n = 10, 100, 1000 for x² and sin(x) at μ = σ = 1 (about 0.3 s)."""
    fns = {fn.name: fn for fn in rp.FUNCTIONS}
    return {
        name: rp.measure(fns[name], 1.0, 1.0, SIZES, 2000, (7, i))
        for i, name in enumerate(["x²", "sin(x)"])
    }


@pytest.mark.parametrize("fn", rp.FUNCTIONS, ids=lambda fn: fn.name)
@pytest.mark.parametrize(("mu", "sigma"), [(1.0, 1.0), (-0.3, 0.4), (2.0, 1.5)])
def test_both_identities_give_the_closed_form_gradient(fn, mu: float, sigma: float) -> None:
    """Without sampling noise (the expectation by Gauss–Hermite quadrature), ``E[f·∇log p]`` and
    ``E[f'·∂x/∂θ]`` both equal the closed form."""
    eps, w = np.polynomial.hermite_e.hermegauss(120)
    terms = rp.per_sample_terms(fn, mu, sigma, eps)
    expected = np.array(fn.grad(mu, sigma))
    for name in ("score", "pathwise"):
        np.testing.assert_allclose(w / w.sum() @ terms[name], expected, atol=1e-10, err_msg=name)


@pytest.mark.parametrize(("mu", "sigma"), [(1.0, 1.0), (0.0, 1.0), (0.5, 2.0)])
def test_exact_variances_match_the_hand_computed_ones(mu: float, sigma: float) -> None:
    exact = rp.exact_variance(rp.square(), mu, sigma)
    for name, by_hand in x_squared_variances(mu, sigma).items():
        np.testing.assert_allclose(exact[name], by_hand, rtol=1e-10, err_msg=name)


def test_every_estimator_agrees_with_the_analytic_gradient(measured) -> None:
    for name, rows in measured.items():
        for row in rows:
            for est in rp.ESTIMATORS:
                z = (np.array(row[est]["mean"]) - row["grad"]) / np.array(row[est]["se"])
                assert np.all(np.abs(z) < 4), (name, row["n"], est, z)


def test_score_function_variance_exceeds_pathwise_for_x_squared(measured) -> None:
    """At μ = σ = 1 the exact ratios are 30/4 = 7.5 (∂/∂μ) and 136/12 ≈ 11.3 (∂/∂σ)."""
    exact = x_squared_variances(1.0, 1.0)
    ratio = np.divide(exact["score"], exact["pathwise"])
    np.testing.assert_allclose(ratio, [7.5, 136 / 12])
    for row in measured["x²"]:
        measured_ratio = np.divide(row["score"]["var"], row["pathwise"]["var"])
        assert np.all(measured_ratio > 1), (row["n"], measured_ratio)
        np.testing.assert_allclose(measured_ratio, ratio, rtol=0.25, err_msg=str(row["n"]))


def test_variance_falls_as_one_over_n(measured) -> None:
    for name, rows in measured.items():
        for row in rows:
            for est in ("score", "pathwise"):
                n_var = row["n"] * np.array(row[est]["var"])
                per_sample = row["n"] * np.array(row["exact_var"][est])
                np.testing.assert_allclose(n_var, per_sample, rtol=0.25, err_msg=f"{name} {est}")


def test_the_leave_one_out_baseline_keeps_the_estimate_unbiased() -> None:
    """``n/(n − 1)·mean((f − f̄)·s)`` is the mean of ``(f_i − b_i)·s_i`` with leave-one-out
    ``b_i``, so its expectation is the plain score function's."""
    eps = np.random.default_rng(0).standard_normal((3, 5))  # μ = σ = 1: x = 1 + ε
    fn = rp.sine(1.0)
    est = rp.estimate(fn, 1.0, 1.0, eps)["score_loo"]
    f = fn.f(1.0 + eps)
    baseline = (f.sum(-1, keepdims=True) - f) / 4  # the mean of the other four
    score = np.stack([eps, eps * eps - 1], axis=-1)  # ∇log p at σ = 1
    by_hand = ((f - baseline)[..., None] * score).mean(-2)
    np.testing.assert_allclose(est, by_hand, rtol=1e-12)
    with pytest.raises(ValueError, match="n >= 2"):
        rp.estimate(fn, 1.0, 1.0, eps[:, :1])


def test_the_script_writes_its_results(tmp_path: Path) -> None:
    argv = ["--sizes", "10", "20", "--repeats", "50", "--no-plot", "--out", str(tmp_path)]
    result = rp.main(argv)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert [row["n"] for row in saved["functions"]["x²"]] == [10, 20]
    markdown = (tmp_path / "results.md").read_text()
    assert "| x² | μ | 10 | 2.000 |" in markdown and "**ratio score / pathwise**" in markdown
    assert not (tmp_path / "variance.png").exists()


def test_the_committed_results_come_from_this_script() -> None:
    """Each n has its own random stream, so the committed n = 10 rows can be recomputed alone."""
    if not RESULTS.exists():
        pytest.skip("no committed results")
    committed = json.loads(RESULTS.read_text())
    again = rp.run(
        committed["mu"], committed["sigma"], [10], committed["repeats"], committed["seed"]
    )
    for name, rows in again["functions"].items():
        row = next(r for r in committed["functions"][name] if r["n"] == 10)
        for est in rp.ESTIMATORS:
            for key in ("mean", "var"):
                np.testing.assert_allclose(rows[0][est][key], row[est][key], rtol=1e-9)
