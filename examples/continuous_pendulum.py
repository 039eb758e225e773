"""Continuous actions (Box): a diagonal Gaussian whose σ is learned, fixed or state-dependent.

Samples are stored unclipped and clipped (or rescaled, ``action_bound="rescale"``) only on the
way to the environment.

    python examples/continuous_pendulum.py [independent|fixed|state]
"""

from __future__ import annotations

import sys

import ppox

if __name__ == "__main__":
    sigma = sys.argv[1] if len(sys.argv) > 1 else "independent"
    cfg = ppox.get_preset("pendulum").config().replace(sigma_mode=sigma, total_steps=100_000)
    if sigma == "fixed":
        cfg = cfg.replace(init_log_std=-1.0)  # σ ≈ 0.37 throughout
    summary = ppox.train(cfg, run_dir=f"runs/examples/pendulum-{sigma}")
    print(f"sigma_mode={sigma}: greedy return {summary['eval_return_mean']:.1f} (swing-up ≈ -150)")
