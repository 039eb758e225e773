"""How close ppox's training loop runs to the environment alone, per preset, and where the rest goes.

For each preset, in one process with one thread, rounds interleave three measurements on the
same kind of vector env the run trains on (``make_vec_env`` of the preset's env settings):

- **env only**: the vector env stepped with random actions drawn beforehand (the ceiling: no
  policy, no storage, no learning);
- **collection**: ``Collector.collect()``, a whole rollout (acting, storage, episode statistics,
  normalizers, truncation bootstraps);
- **update**: ``Learner.update()`` on those rollouts (advantages and every epoch and minibatch).

The training loop's steps/s is ``steps / (collection + update)`` (logging and checkpoints add a
little more in a real run; ``ppox train`` reports its own loop in ``summary.json``).

Each round also times the update's **matrix products alone** (:func:`products_floor`): the forward
and backward products of every layer of the preset's networks, on random float32 arrays of one
minibatch's shape, as many as the epochs and minibatches of one batch need, with nothing else (no
activations, loss, head, optimizer or Python bookkeeping). No implementation of the same update
on this core can spend less, so the report gives the best ``loop / env`` any implementation could
reach: with collection as fast as the env itself, run one after the other (one core:
``env / (env + products)``), and overlapped on a second core (``env / max(env, products)``).
The same products counted in floating-point operations (:func:`products_flops`) and divided by
the core's best float32 rate (:func:`core_peak_gflops`, a large product) bound any
implementation of the same arithmetic, however its products are cut or fused. One BLAS thread
throughout. Medians over rounds::

    .venv/bin/python benchmarks/ceiling.py --presets cartpole halfcheetah lunarlander \\
        --out benchmarks/results/ceiling

The report names the BLAS kernel NumPy's products ran on. Some machines set
``OPENBLAS_CORETYPE`` (and ``OPENBLAS_L2_SIZE``) in their environment, which makes OpenBLAS use
an older CPU's kernels (on ppox's benchmark machine: Haswell's AVX2 kernels on a CPU with
AVX-512); to measure with the kernel OpenBLAS picks itself, unset both for that command alone::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/ceiling.py \\
        --out benchmarks/results/ceiling/own_kernel
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import ppox
from ppox.envs.make import make_vec_env
from ppox.training.backends import blas_kernel
from ppox.training.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whole_process import write_info  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _layers(net: Any) -> list[tuple[np.ndarray, bool]]:
    """``(W, needs_input)`` for every layer of :class:`ppox.nn.numpy_policy.NumpyActorCritic`
    (``W`` is ``[out, in]``; the first layer of a trunk does not need its input's gradient)."""
    layers: list[tuple[np.ndarray, bool]] = []
    for trunk in [net.actor] if net.shared else [net.actor, net.critic]:
        layers += [(layer.w, i > 0) for i, layer in enumerate(trunk.layers)]
    return layers + [(layer.w, True) for layer in [*net.out, net.value_out]]


def _products(net: Any, minibatch: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]]:
    """Random operands of one minibatch step's products: ``(x, g, W, needs_input)`` per layer."""
    rng = np.random.default_rng(0)
    work = []
    for w, needs_input in _layers(net):
        x = rng.standard_normal((minibatch, w.shape[1])).astype(np.float32)
        g = rng.standard_normal((minibatch, w.shape[0])).astype(np.float32)
        work.append((x, g, np.array(w), needs_input))
    return work


def products_floor(net: Any, minibatch: int, repeats: int) -> float:
    """Seconds for the matrix products of ``repeats`` minibatch steps of ``minibatch`` samples
    through the NumPy update's networks: per layer ``x Wᵀ`` forward, ``gᵀ x`` (the weight
    gradient) and ``g W`` (the input's gradient, which the first layer of a trunk does not need)
    backward, as the update computes them."""
    work = _products(net, minibatch)
    t = time.perf_counter()
    for _ in range(repeats):
        for x, g, w, needs_input in work:
            x @ w.T
            g.T @ x
            if needs_input:
                g @ w
    return time.perf_counter() - t


def products_flops(net: Any, minibatch: int, repeats: int) -> int:
    """Floating-point operations of those products (2·m·k·n for an ``[m, k] @ [k, n]``)."""
    per_step = sum(
        (3 if needs_input else 2) * 2 * minibatch * w.shape[0] * w.shape[1]
        for w, needs_input in _layers(net)
    )
    return per_step * repeats


def core_peak_gflops(sizes: tuple[int, ...] = (256, 512, 1024), repeats: int = 20) -> float:
    """This core's float32 matrix-product rate at its best, GFLOP/s: the fastest of ``repeats``
    square products of each size (large enough for BLAS to run near the core's peak; the best
    size depends on the caches). Whatever their shapes, the update's products cannot run faster."""
    rng = np.random.default_rng(0)
    best = 0.0
    for size in sizes:
        a = rng.standard_normal((size, size)).astype(np.float32)
        b = rng.standard_normal((size, size)).astype(np.float32)
        out = np.empty_like(a)
        np.matmul(a, b, out=out)
        fastest = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            np.matmul(a, b, out=out)
            fastest = min(fastest, time.perf_counter() - t)
        best = max(best, 2 * size**3 / fastest / 1e9)
    return best


def measure(preset: str, rounds: int, min_steps: int) -> dict[str, Any]:
    cfg = ppox.get_preset(preset).config().replace(progress=False, tensorboard=False, eval_every=0)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer.create(cfg, Path(tmp) / "run")
        c, learner = trainer.collector, trainer.learner
        T, N = c.T, c.N
        iters = max(1, -(-min_steps // (T * N)))
        envs = make_vec_env(cfg.env)
        envs.reset(seed=list(range(N)))
        envs.single_action_space.seed(0)
        actions = [
            np.stack([envs.single_action_space.sample() for _ in range(N)]) for _ in range(64)
        ]
        learner.update(c.collect(), progress=0.0)  # warm: first-call costs out of the numbers
        samples: dict[str, list[float]] = {"env": [], "collect": [], "update": [], "products": []}
        net = getattr(learner.step, "net", None)  # the NumPy update's networks (None: autograd)
        minibatch = -(-T * N // cfg.ppo.num_minibatches)
        repeats = iters * cfg.ppo.num_epochs * cfg.ppo.num_minibatches
        for _ in range(rounds):
            t = time.perf_counter()
            for i in range(iters * T):
                envs.step(actions[i % 64])
            samples["env"].append(time.perf_counter() - t)
            rollouts, t = [], time.perf_counter()
            for _ in range(iters):
                rollouts.append(c.collect())
            samples["collect"].append(time.perf_counter() - t)
            t = time.perf_counter()
            for r in rollouts:
                learner.update(r, progress=0.5)
            samples["update"].append(time.perf_counter() - t)
            if net is not None:
                samples["products"].append(products_floor(net, minibatch, repeats))
        envs.close()
        backends = trainer.backends()
        trainer.envs.close()
        trainer.release_run_dir()
    steps = iters * T * N
    med = {k: statistics.median(v) for k, v in samples.items() if v}
    sps = {
        "env": steps / med["env"],
        "collect": steps / med["collect"],
        "loop": steps / (med["collect"] + med["update"]),
    }
    return {
        "preset": preset, "env_id": cfg.env.env_id, "num_envs": N, "num_steps": T, "steps_per_round": steps,
        "epochs": cfg.ppo.num_epochs, "minibatches": cfg.ppo.num_minibatches, "hidden_sizes": list(cfg.policy.hidden_sizes),
        "seconds": samples, "median_s": med, "sps": sps,
        "collect_fraction": sps["collect"] / sps["env"], "loop_fraction": sps["loop"] / sps["env"],
        "update_share": med["update"] / (med["collect"] + med["update"]),
        "policy_and_bookkeeping_us_per_vector_step": (med["collect"] - med["env"]) / (iters * T) * 1e6,
        "backends": backends, **bounds(med, steps),
        **({"products_flops_per_step": products_flops(net, minibatch, repeats) / steps} if net is not None else {}),
    }  # fmt: skip


def best_fractions(env: float, work: float) -> tuple[float, float]:
    """The best ``loop / env`` when the loop adds ``work`` to the env's own time ``env`` (any
    unit): run one after the other on one core, and overlapped on two."""
    return env / (env + work), env / max(env, work)


def bounds(med: dict[str, float], steps: int) -> dict[str, float]:
    """What the update's matrix products alone (``med["products"]``) leave possible: their µs
    per env step, the best ``loop / env`` with collection as fast as the env, one core and two
    (overlapped), and the µs per step a loop at 40% of the env's speed may spend."""
    if "products" not in med:
        return {}
    env, prod = med["env"], med["products"]
    one_core, overlapped = best_fractions(env, prod)
    return {
        "products_us_per_step": prod / steps * 1e6,
        "update_us_per_step": med["update"] / steps * 1e6,
        "best_fraction_one_core": one_core,
        "best_fraction_overlapped": overlapped,
        "us_per_step_at_40pct": env / steps * 1e6 / 0.4,
    }


def at_peak(row: dict[str, Any], peak_gflops: float) -> dict[str, float]:
    """The products' time per env step if they ran at the core's best rate (``peak_gflops``),
    and the best ``loop / env`` that leaves: no implementation of the same arithmetic on this
    core does better, however its products are cut."""
    if "products_flops_per_step" not in row:
        return {}
    us = row["products_flops_per_step"] / (peak_gflops * 1e9) * 1e6
    one_core, overlapped = best_fractions(1e6 / row["sps"]["env"], us)
    return {
        "peak_us_per_step": us,
        "best_fraction_one_core_at_peak": one_core,
        "best_fraction_overlapped_at_peak": overlapped,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=["cartpole", "halfcheetah", "lunarlander"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-steps", type=int, default=20_000, help="env steps per measurement")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ceiling")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    threadpool_limits(limits=1, user_api="blas")
    load0 = os.getloadavg()
    peak = core_peak_gflops()
    rows = [measure(name, a.rounds, a.min_steps) for name in a.presets]
    peak = max(peak, core_peak_gflops())
    for r in rows:
        r.update(at_peak(r, peak))
    blas = blas_kernel()
    info = write_info(
        a.out,
        load0,
        torch=torch.__version__,
        rounds=a.rounds,
        presets=rows,
        core_peak_gflops=peak,
        blas=blas,
    )
    lines = [
        "# The training loop against the environment alone",
        "",
        f"`benchmarks/ceiling.py --presets {' '.join(a.presets)}` · {info['generated']} · commit `{info['commit']}` · "
        f"{info['machine']}, load {load0[0]:.2f} at start, {info['load_at_end'][0]:.2f} at end · one thread · "
        f"medians of {a.rounds} interleaved rounds · NumPy's BLAS: {blas}.",
        "",
        "| preset | envs × steps, epochs × minibatches | env only steps/s | collection steps/s | loop steps/s "
        "| collection / env | loop / env | update's share of the loop | policy + bookkeeping µs per vector step |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r["sps"]
        lines.append(
            f"| {r['preset']} | {r['num_envs']} × {r['num_steps']}, {r['epochs']} × {r['minibatches']} | {s['env']:,.0f} | "
            f"{s['collect']:,.0f} | {s['loop']:,.0f} | {100 * r['collect_fraction']:.0f}% | {100 * r['loop_fraction']:.0f}% | "
            f"{100 * r['update_share']:.0f}% | {r['policy_and_bookkeeping_us_per_vector_step']:.1f} |"
        )
    lines += [
        "",
        "The update's matrix products alone (every layer's forward and backward products on random arrays of the "
        "minibatch's shape, nothing else), against the budget of a loop at 40% of the env's speed; the best loop / env "
        "any implementation of the same update could reach, with collection as fast as the env itself:",
        "",
        "| preset | update µs per env step | its matrix products alone | a loop at 40% may spend | best loop / env, one core | overlapped on two |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "products_us_per_step" in r:
            lines.append(
                f"| {r['preset']} | {r['update_us_per_step']:.1f} | {r['products_us_per_step']:.1f} | "
                f"{r['us_per_step_at_40pct']:.1f} | {100 * r['best_fraction_one_core']:.0f}% | "
                f"{100 * r['best_fraction_overlapped']:.0f}% |"
            )
    lines += [
        "",
        f"The same products counted in floating-point operations and run at this core's best float32 rate "
        f"({peak:.0f} GFLOP/s, the fastest square product of 256, 512 or 1024, one thread): a bound on any implementation "
        "of the same arithmetic here, however well its products are cut:",
        "",
        "| preset | MFLOP per env step | µs per env step at the peak | a loop at 40% may spend | best loop / env, one core | overlapped on two |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "peak_us_per_step" in r:
            lines.append(
                f"| {r['preset']} | {r['products_flops_per_step'] / 1e6:.2f} | {r['peak_us_per_step']:.1f} | "
                f"{r['us_per_step_at_40pct']:.1f} | {100 * r['best_fraction_one_core_at_peak']:.0f}% | "
                f"{100 * r['best_fraction_overlapped_at_peak']:.0f}% |"
            )
    (a.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
