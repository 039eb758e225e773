"""The reparameterization demo: two Monte Carlo gradients of a Gaussian expectation, in NumPy.

For ``J(μ, σ) = E_{x~N(μ, σ²)}[f(x)]`` the gradient ``(∂J/∂μ, ∂J/∂σ)`` can be estimated from
``n`` samples in two ways (docs/reparameterization.md; the PPO × Family course's Q&A, Q1 and Q11):

- **score function** (likelihood ratio, REINFORCE; "Simple Statistical Gradient-Following
  Algorithms for Connectionist Reinforcement Learning", Williams 1992):
  ``∇J = E[f(x)·∇log p(x; μ, σ)]``, with ``∂log p/∂μ = ε/σ`` and ``∂log p/∂σ = (ε² − 1)/σ``
  where ``ε = (x − μ)/σ``. It needs f's values only; f may be a black box. Also shown with a
  leave-one-out baseline: sample i uses ``f(x_i) − b_i``, ``b_i`` the mean of the other
  ``n − 1`` values (independent of ``x_i``, so the estimator stays unbiased; "Buy 4 REINFORCE
  Samples, Get a Baseline for Free!", Kool et al. 2019);
- **pathwise** (reparameterization; "Auto-Encoding Variational Bayes", Kingma & Welling 2014):
  write ``x = μ + σ·ε`` with ``ε ~ N(0, 1)`` and differentiate through the sample,
  ``∇J = E[f'(x)·∂x/∂θ]`` with ``∂x/∂μ = 1`` and ``∂x/∂σ = ε``. It needs f's derivative.

Both are unbiased; their variances differ ("Monte Carlo Gradient Estimation in Machine
Learning", Mohamed et al. 2020, compares them at length). The script checks each estimator's mean
against the closed-form gradient (with a standard error over ``--repeats`` independent
estimates), measures each one's variance at every sample size, and computes the exact per-sample
variance by Gauss–Hermite quadrature, so the measured ratio can be read against the true one.

The test functions have closed-form expectations under ``N(μ, σ²)``:

- ``f(x) = x²``: ``J = μ² + σ²``, ``∇J = (2μ, 2σ)``;
- ``f(x) = sin(kx)``: ``J = sin(kμ)·exp(−k²σ²/2)``,
  ``∇J = (k·cos(kμ), −k²σ·sin(kμ))·exp(−k²σ²/2)``, for k = 1 and k = 5. At k = 5, f' = 5·cos(5x)
  swings fast and the score function wins: pathwise is not always the lower-variance choice.

Writes ``results.md``, ``results.json`` and ``variance.png`` to ``--out``.

    python examples/reparameterization.py                    # benchmarks/results/reparameterization/
    python examples/reparameterization.py --repeats 200 --sizes 10 100 --no-plot --out runs/reparam
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Array = np.ndarray
PARAMS = ("mu", "sigma")
"""The two parameters of ``N(μ, σ²)``, in the order of every ``[..., 2]`` gradient array."""
ESTIMATORS = ("score", "score_loo", "pathwise")
"""score function; score function with the leave-one-out baseline; pathwise."""
LABELS = {
    "score": "score function",
    "score_loo": "score function + leave-one-out baseline",
    "pathwise": "pathwise (reparameterized)",
}
TABLE_SIZES = (10, 100, 1000)
"""The sample sizes of the markdown tables."""
PLOT_SIZES = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
"""The default sample sizes: every one is measured and plotted."""
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "reparameterization"
MAX_CHUNK = 1 << 20
"""At most this many samples of ε are drawn at once (memory stays a few tens of MB)."""


@dataclass(frozen=True)
class TestFunction:
    """A function f with its derivative and the closed-form gradient of ``E_{N(μ,σ²)}[f]``."""

    name: str
    f: Callable[[Array], Array]
    df: Callable[[Array], Array]
    grad: Callable[[float, float], tuple[float, float]]
    """``(μ, σ) → (∂J/∂μ, ∂J/∂σ)``."""

    __test__ = False  # not a pytest class, despite the name


def square() -> TestFunction:
    """``f(x) = x²``: ``E[f] = μ² + σ²``."""
    return TestFunction(
        "x²", lambda x: x * x, lambda x: 2.0 * x, lambda mu, sigma: (2.0 * mu, 2.0 * sigma)
    )


def sine(k: float) -> TestFunction:
    """``f(x) = sin(kx)``: ``E[f] = sin(kμ)·exp(−k²σ²/2)`` (the characteristic function of the
    normal, imaginary part)."""

    def grad(mu: float, sigma: float) -> tuple[float, float]:
        damp = math.exp(-0.5 * (k * sigma) ** 2)
        return k * math.cos(k * mu) * damp, -(k**2) * sigma * math.sin(k * mu) * damp

    name = "sin(x)" if k == 1 else f"sin({k:g}x)"
    return TestFunction(name, lambda x: np.sin(k * x), lambda x: k * np.cos(k * x), grad)


FUNCTIONS = (square(), sine(1.0), sine(5.0))


# --- the estimators -----------------------------------------------------------------------------
def per_sample_terms(fn: TestFunction, mu: float, sigma: float, eps: Array) -> dict[str, Array]:
    """The one-sample gradient terms whose mean over samples is each plain estimator.

    Args:
        eps: ``[..., n]`` standard normal draws; the samples are ``x = μ + σ·ε``.

    Returns:
        ``{"score": [..., n, 2], "pathwise": [..., n, 2]}``, the last axis ``(∂/∂μ, ∂/∂σ)``:
        ``f(x)·∇log p(x)`` and ``f'(x)·∂x/∂θ``.
    """
    x = mu + sigma * eps
    fx, dfx = fn.f(x), fn.df(x)
    score = np.stack([fx * eps / sigma, fx * (eps * eps - 1.0) / sigma], axis=-1)
    pathwise = np.stack([dfx, dfx * eps], axis=-1)
    return {"score": score, "pathwise": pathwise}


def estimate(fn: TestFunction, mu: float, sigma: float, eps: Array) -> dict[str, Array]:
    """Each estimator's gradient estimate from the samples of ``eps`` ``[R, n]``: ``[R, 2]``.

    The leave-one-out baseline ``b_i = (Σ_j f_j − f_i)/(n − 1)`` gives
    ``1/n·Σ_i (f_i − b_i)·s_i = n/(n − 1) · 1/n·Σ_i (f_i − f̄)·s_i`` with ``s_i`` the score, so it
    costs one centring; it needs ``n ≥ 2``.
    """
    n = eps.shape[-1]
    if n < 2:
        raise ValueError(f"the leave-one-out baseline needs n >= 2 samples (got {n})")
    x = mu + sigma * eps
    fx, dfx = fn.f(x), fn.df(x)
    scores = (eps / sigma, (eps * eps - 1.0) / sigma)  # ∂log p/∂μ, ∂log p/∂σ
    centred = fx - fx.mean(axis=-1, keepdims=True)
    return {
        "score": np.stack([(fx * s).mean(-1) for s in scores], axis=-1),
        "score_loo": np.stack([(centred * s).mean(-1) for s in scores], axis=-1) * n / (n - 1),
        "pathwise": np.stack([dfx.mean(-1), (dfx * eps).mean(-1)], axis=-1),
    }


def exact_variance(fn: TestFunction, mu: float, sigma: float, nodes: int = 120) -> dict[str, Array]:
    """The per-sample variance ``Var[g(ε)]`` ``[2]`` of the plain score-function and pathwise
    terms, by Gauss–Hermite quadrature (exact for polynomial f up to degree ≈ ``nodes``; an
    ``n``-sample mean has ``1/n`` of it)."""
    eps, weights = np.polynomial.hermite_e.hermegauss(nodes)  # weight exp(−ε²/2)
    weights = weights / weights.sum()
    out = {}
    for name, terms in per_sample_terms(fn, mu, sigma, eps).items():
        mean = weights @ terms
        out[name] = weights @ (terms - mean) ** 2
    return out


def measure(
    fn: TestFunction,
    mu: float,
    sigma: float,
    sizes: Sequence[int],
    repeats: int,
    seed: Sequence[int],
) -> list[dict[str, Any]]:
    """``repeats`` independent n-sample estimates per estimator for every n in ``sizes``.

    The draws for one n come from their own stream ``SeedSequence([*seed, n])``, so a row does not
    depend on the other sizes measured; the three estimators share the draws.

    Returns:
        One row per n: ``{"n", "grad": [2] analytic, "exact_var": {plain estimator: [2]},
        estimator: {"mean", "se", "var"}}`` (lists of two floats, μ then σ; ``se`` is the
        standard error of the mean over the repeats, ``var`` their sample variance).
    """
    exact = {k: v.tolist() for k, v in exact_variance(fn, mu, sigma).items()}
    rows = []
    for n in sizes:
        rng = np.random.default_rng(np.random.SeedSequence([*seed, n]))
        chunk = max(1, MAX_CHUNK // n)
        parts: dict[str, list[Array]] = {e: [] for e in ESTIMATORS}
        for start in range(0, repeats, chunk):
            eps = rng.standard_normal((min(chunk, repeats - start), n))
            for name, est in estimate(fn, mu, sigma, eps).items():
                parts[name].append(est)
        row: dict[str, Any] = {
            "n": n,
            "grad": list(fn.grad(mu, sigma)),
            "exact_var": {k: [v / n for v in var] for k, var in exact.items()},
        }
        for name, chunks in parts.items():
            est = np.concatenate(chunks)
            var = est.var(axis=0, ddof=1)
            row[name] = {
                "mean": est.mean(0).tolist(),
                "se": np.sqrt(var / repeats).tolist(),
                "var": var.tolist(),
            }
        rows.append(row)
    return rows


def run(
    mu: float = 1.0,
    sigma: float = 1.0,
    sizes: Sequence[int] = PLOT_SIZES,
    repeats: int = 2000,
    seed: int = 0,
    functions: Sequence[TestFunction] = FUNCTIONS,
) -> dict[str, Any]:
    """:func:`measure` for every function (function i draws from the stream ``(seed, i, n)``); the
    dictionary written to ``results.json``."""
    return {
        "mu": mu,
        "sigma": sigma,
        "repeats": repeats,
        "seed": seed,
        "sizes": list(sizes),
        "numpy": np.__version__,
        "functions": {
            fn.name: measure(fn, mu, sigma, sizes, repeats, (seed, i))
            for i, fn in enumerate(functions)
        },
    }


# --- report -------------------------------------------------------------------------------------
def _g(x: float, digits: int = 4) -> str:
    """``x`` to ``digits`` significant digits (trailing zeros kept), an exponent below 10⁻³."""
    return f"{x:#.{digits}g}".rstrip(".") if abs(x) >= 1e-3 or x == 0 else f"{x:.{digits - 1}e}"


def to_markdown(result: dict[str, Any], command: str, sizes: Sequence[int] = TABLE_SIZES) -> str:
    """The two tables (means vs the analytic gradient; variances and their ratio)."""
    sym = {"mu": "μ", "sigma": "σ"}
    lines = [
        "# Score-function vs pathwise gradients of a Gaussian expectation",
        "",
        f"`{command}`",
        "",
        f"∇ of `E[f(x)]`, `x ~ N(μ = {result['mu']:g}, σ² = {result['sigma'] ** 2:g})`; every "
        f"entry is over {result['repeats']} independent n-sample estimates (seed "
        f"{result['seed']}, NumPy {result['numpy']}). Explained in "
        "[docs/reparameterization.md](../../../docs/reparameterization.md).",
        "",
        "## Means: both agree with the analytic gradient",
        "",
        "Mean ± standard error of the estimates; z = (mean − analytic) / standard error.",
        "",
        "| f | ∂/∂ | n | analytic | score function | z | score + baseline | z | pathwise | z |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_n = {name: {row["n"]: row for row in rows} for name, rows in result["functions"].items()}
    for name, rows in by_n.items():
        for p, param in enumerate(PARAMS):
            for n in (n for n in sizes if n in rows):
                row = rows[n]
                cells = [name, sym[param], str(n), _g(row["grad"][p])]
                for est in ESTIMATORS:
                    mean, se = row[est]["mean"][p], row[est]["se"][p]
                    cells += [f"{_g(mean)} ± {_g(se, 2)}", f"{(mean - row['grad'][p]) / se:+.1f}"]
                lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Variances and the ratio score function / pathwise",
        "",
        "Measured variance of one n-sample estimate; the exact ratio is the per-sample variance "
        "ratio by quadrature (the same at every n).",
        "",
        "| f | ∂/∂ | n | Var score function | Var score + baseline | Var pathwise "
        "| **ratio score / pathwise** | exact ratio | ratio baseline / pathwise |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in by_n.items():
        for p, param in enumerate(PARAMS):
            for n in (n for n in sizes if n in rows):
                row = rows[n]
                var = {est: row[est]["var"][p] for est in ESTIMATORS}
                exact = row["exact_var"]["score"][p] / row["exact_var"]["pathwise"][p]
                lines.append(
                    f"| {name} | {sym[param]} | {n} | {_g(var['score'])} | {_g(var['score_loo'])}"
                    f" | {_g(var['pathwise'])} | **{var['score'] / var['pathwise']:#.3g}** "
                    f"| {exact:#.3g} | {var['score_loo'] / var['pathwise']:#.3g} |"
                )
    lines += ["", "![variance against n](variance.png)", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Variance against n, log–log: one panel per (function, parameter); the dashed lines are
    the exact ``Var₁/n`` of the two plain estimators."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["functions"])
    fig, axes = plt.subplots(
        len(PARAMS), len(names), figsize=(3.6 * len(names), 6.4), squeeze=False
    )
    colors = {"score": "tab:red", "score_loo": "tab:orange", "pathwise": "tab:blue"}
    for j, name in enumerate(names):
        rows = result["functions"][name]
        n = np.array([row["n"] for row in rows])
        for p, param in enumerate(PARAMS):
            ax = axes[p, j]
            for est in ESTIMATORS:
                var = [row[est]["var"][p] for row in rows]
                ax.loglog(n, var, "o-", ms=3, color=colors[est], label=LABELS[est])
                if est in ("score", "pathwise"):
                    exact = [row["exact_var"][est][p] for row in rows]
                    ax.loglog(n, exact, "--", lw=0.8, color=colors[est])
            ax.set_title(f"f = {name}, ∂/∂{'μ' if param == 'mu' else 'σ'}", fontsize=9)
            ax.grid(True, which="major", alpha=0.3)
            ax.tick_params(labelsize=7)
            if p == len(PARAMS) - 1:
                ax.set_xlabel("samples n", fontsize=8)
            if j == 0:
                ax.set_ylabel("variance of the estimate", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        f"Gradient of E[f(x)], x ~ N({result['mu']:g}, {result['sigma'] ** 2:g}): "
        f"variance over {result['repeats']} repeats (dashed: exact, Var₁/n)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mu", type=float, default=1.0, help="mean of the Gaussian")
    p.add_argument("--sigma", type=float, default=1.0, help="standard deviation (> 0)")
    p.add_argument("--sizes", type=int, nargs="+", default=list(PLOT_SIZES), help="samples n")
    p.add_argument("--repeats", type=int, default=2000, help="independent estimates per n")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the results")
    p.add_argument("--no-plot", action="store_true", help="skip variance.png")
    args = p.parse_args(argv)
    if args.sigma <= 0 or args.repeats < 2 or min(args.sizes) < 2:
        p.error("need --sigma > 0, --repeats >= 2 and every --sizes >= 2")
    result = run(args.mu, args.sigma, sorted(set(args.sizes)), args.repeats, args.seed)
    flags = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "examples/reparameterization.py", *flags])
    markdown = to_markdown(result, command)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown)
    if not args.no_plot:
        plot(result, args.out / "variance.png")
    print(markdown)
    return result


if __name__ == "__main__":
    main()
