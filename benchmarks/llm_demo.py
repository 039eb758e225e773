"""The language-model demo on 3 seeds: PPO (GAE + critic) vs RLOO vs GRPO on one budget.

Builds the demo model once (``ppox.llm.demo.build``: a tiny GPT-2 pre-trained on synthetic
digit strings, saved and loaded back with ``from_pretrained``), then runs ``ppox llm demo`` for
each method and seed as its own process (start to exit timed), interleaved by seed. Every run has
the presets' budget: 60 iterations of 16 prompts × 4 completions of at most 10 tokens.

Writes ``results.json``, ``results.md`` and ``curves.png`` to ``--out``:
the reward at start (mean of the first 3 iterations) and at the end (mean of the last 5), the
largest KL to the reference model over the run (summed over a completion's tokens), generated
tokens, tokens per second and the whole process's time.

    python benchmarks/llm_demo.py --out benchmarks/results/llm   # about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

METHODS = {"ppo": "gae", "rloo": "rloo", "grpo": "grpo"}
KL_BOUND = 4.0
"""The bound the demo's KL (nats per completion, to the pre-trained model) must stay under."""


def run_one(work: Path, method: str, seed: int, iterations: int) -> dict:
    run = work / f"{method}-s{seed}"
    cmd = [sys.executable, "-m", "ppox", "llm", "demo", "--out", str(work / "demo"),
           "--advantage", METHODS[method], "--seed", str(seed), "--iterations", str(iterations),
           "--run-dir", str(run), "--no-progress", "--no-tensorboard"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                   stdout=subprocess.DEVNULL)  # fmt: skip
    process_s = time.perf_counter() - t0
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    reward = [float(r["reward_mean"]) for r in rows]
    kl = [float(r["kl"]) for r in rows]
    return {
        "method": method, "seed": seed, "process_s": process_s,
        "train_s": float(rows[-1]["wall_time_s"]),
        "generated_tokens": int(rows[-1]["generated_tokens"]),
        "tokens_per_second": int(rows[-1]["generated_tokens"]) / float(rows[-1]["wall_time_s"]),
        "reward_start": statistics.mean(reward[:3]), "reward_end": statistics.mean(reward[-5:]),
        "kl_max": max(kl), "kl_end": statistics.mean(kl[-5:]),
        "curve": {"reward": reward, "kl": kl,
                  "tokens": [int(r["generated_tokens"]) for r in rows]},
    }  # fmt: skip


def table(results: list[dict]) -> list[str]:
    lines = [
        "| method | reward at start | reward at end (3 seeds) | mean | max KL (nats) | tokens generated | tokens/s | process (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in METHODS:
        rs = [r for r in results if r["method"] == m]
        ends = ", ".join(f"{r['reward_end']:.3f}" for r in rs)
        lines.append(
            f"| {m} | {statistics.mean(r['reward_start'] for r in rs):.3f} | {ends} | "
            f"{statistics.mean(r['reward_end'] for r in rs):.3f} | "
            f"{max(r['kl_max'] for r in rs):.2f} | "
            f"{statistics.mean(r['generated_tokens'] for r in rs):,.0f} | "
            f"{statistics.mean(r['tokens_per_second'] for r in rs):,.0f} | "
            f"{statistics.mean(r['process_s'] for r in rs):.1f} |"
        )
    return lines


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, m in enumerate(METHODS):
        rs = [r for r in results if r["method"] == m]
        for j, r in enumerate(rs):
            label = m if j == 0 else None
            axes[0].plot(r["curve"]["reward"], color=f"C{i}", alpha=0.8, label=label)
            axes[1].plot(r["curve"]["kl"], color=f"C{i}", alpha=0.8, label=label)
    axes[0].set(
        xlabel="iteration", ylabel="mean reward (score)", title="digit-sum reward, 3 seeds each"
    )
    axes[1].axhline(KL_BOUND, color="grey", ls="--", lw=1, label=f"bound {KL_BOUND:g}")
    axes[1].set(xlabel="iteration", ylabel="KL to the reference (nats per completion)", title="KL")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/llm"))
    p.add_argument("--work", type=Path, default=Path("runs/llm-bench"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=60)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        for m in METHODS:
            r = run_one(args.work, m, seed, args.iterations)
            print(f"{m} seed {seed}: reward {r['reward_start']:.3f} → {r['reward_end']:.3f}, "
                  f"max KL {r['kl_max']:.2f}, {r['process_s']:.1f} s", flush=True)  # fmt: skip
            results.append(r)
    import torch
    import transformers

    meta = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "torch": torch.__version__, "transformers": transformers.__version__,
            "iterations": args.iterations, "seeds": args.seeds, "kl_bound": KL_BOUND,
            "command": "python benchmarks/llm_demo.py"}  # fmt: skip
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "runs": results}, indent=1))
    plot(results, args.out / "curves.png")
    ok = all(r["kl_max"] < KL_BOUND for r in results)
    md = [
        "# The language-model demo: PPO vs RLOO vs GRPO (3 seeds)",
        "",
        f"`python benchmarks/llm_demo.py` on {meta['machine']}, torch {meta['torch']}, "
        f"transformers {meta['transformers']}, one thread per process, runs one after another.",
        f"Budget per run: {args.iterations} iterations × 16 prompts × 4 completions (≤ 10 tokens).",
        "Reward at start: mean of the first 3 iterations; at end: mean of the last 5. KL: the",
        "completions' KL to the pre-trained model, summed over tokens (k1), largest iteration mean.",
        "",
        *table(results),
        "",
        f"KL stayed below the bound of {KL_BOUND:g} nats in every run: {'yes' if ok else 'NO'}.",
        "",
        "![curves](curves.png)",
    ]
    (args.out / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(table(results)))


if __name__ == "__main__":
    main()
