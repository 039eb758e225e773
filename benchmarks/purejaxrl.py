"""Many seeds: ppox against PureJaxRL's CartPole PPO (a JAX loop compiled whole, seeds vmapped).

PureJaxRL (Lu et al. 2022, "Discovered Policy Optimisation"; github.com/luchris429/purejaxrl)
compiles collection and update into one XLA program and trains several seeds at once with
``jax.vmap``. This script times, as whole processes (start to exit, one thread each where the
library allows it), rounds alternating between:

- ``purejaxrl``: its ``purejaxrl/ppo.py`` ``make_train`` with its own CartPole-v1 settings
  (gymnax, 4 envs × 128 steps, 500k steps, 4 epochs × 4 minibatches), JIT compilation
  included, one seed (``jax.jit``) and S seeds (``jax.jit(jax.vmap(...))``, as its README does;
  ``--pjx-seeds loop``: the one-seed program compiled once and run for each seed in turn);
- ``ppox``: ``ppox train`` with the ``cartpole`` preset (100k steps, what ppox needs to solve
  it), one seed, and S seeds as ``ppox ablate --seeds ... --jobs 2`` (one process per seed,
  two at a time on this 2-core machine);
- ``ppox-pjx``: ppox with PureJaxRL's settings and budget (500k steps; evaluation only at the
  end), one seed and S seeds the same way.

JAX is not a ppox dependency: give a Python that has ``jax``, ``gymnax``, ``flax``, ``optax``
and ``distrax`` and a checkout of PureJaxRL (its ``wrappers.py`` also imports brax and navix, for
other environments; the driver gives it empty stand-ins, CartPole's path uses neither). gymnax
0.0.9: PureJaxRL calls ``env.step`` as gymnax did before 1.0 (five values returned)::

    python -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install "jax[cpu]" gymnax==0.0.9 flax optax distrax
    .venv/bin/python benchmarks/purejaxrl.py --jax-python /tmp/jaxenv/bin/python \\
        --purejaxrl /path/to/purejaxrl --seeds 5 --rounds 2 --out benchmarks/results/purejaxrl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from whole_process import timed, write_info  # noqa: E402

PJX_CONFIG = {
    "LR": 2.5e-4, "NUM_ENVS": 4, "NUM_STEPS": 128, "TOTAL_TIMESTEPS": 5e5, "UPDATE_EPOCHS": 4,
    "NUM_MINIBATCHES": 4, "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "ENT_COEF": 0.01,
    "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5, "ACTIVATION": "tanh", "ENV_NAME": "CartPole-v1",
    "ANNEAL_LR": True, "DEBUG": False,
}  # fmt: skip
"""purejaxrl/ppo.py's own CartPole-v1 settings (its ``__main__``), without the debug prints."""
PPOX_PJX = ["--num-envs", "4", "--num-steps", "128", "--total-steps", "500000", "--num-epochs", "4",
            "--num-minibatches", "4", "--learning-rate", "2.5e-4", "--anneal-lr", "--gamma", "0.99", "--lam", "0.95",
            "--clip-coef", "0.2", "--ent-coef", "0.01", "--vf-coef", "0.5", "--max-grad-norm", "0.5",
            "--norm-adv", "minibatch", "--eval-every", "0"]  # fmt: skip
"""The same settings as ppox flags (both value losses are ½·MSE, so vf_coef means the same)."""

DRIVER = r"""
import json, sys, time, types
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
# purejaxrl/wrappers.py imports brax and navix for its other environments; CartPole's path uses
# neither, so empty stand-ins spare installing them (a physics engine and a grid world)
for name in ("brax", "brax.envs", "brax.envs.wrappers", "brax.envs.wrappers.training", "navix"):
    sys.modules[name] = types.ModuleType(name)
sys.modules["brax"].envs = sys.modules["brax.envs"]
sys.modules["brax.envs.wrappers.training"].EpisodeWrapper = type("EpisodeWrapper", (), {})
sys.modules["brax.envs.wrappers.training"].AutoResetWrapper = type("AutoResetWrapper", (), {})
import jax, jax.numpy as jnp
from ppo import make_train
config, seeds, mode = json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = jax.random.PRNGKey(30)
train = make_train(config)
if seeds == 1 or mode == "loop":  # loop: one compiled seed, run once per seed in this process
    fn, arg = jax.jit(train), rng
else:
    fn, arg = jax.jit(jax.vmap(train)), jax.random.split(rng, seeds)
t1 = time.perf_counter()
compiled = fn.lower(arg).compile()
t2 = time.perf_counter()
if seeds > 1 and mode == "loop":
    outs = [jax.block_until_ready(compiled(k)) for k in jax.random.split(rng, seeds)]
    out = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *outs)
else:
    out = jax.block_until_ready(compiled(arg))
t3 = time.perf_counter()
m = out["metrics"]
ret, done = m["returned_episode_returns"], m["returned_episode"]
last = -max(1, ret.shape[-3] // 20)  # the last 5% of updates
r, d = ret.reshape(-1, *ret.shape[-3:])[:, last:], done.reshape(-1, *done.shape[-3:])[:, last:]
finals = [float((r[i] * d[i]).sum() / d[i].sum()) for i in range(r.shape[0])]
print(json.dumps({"import_s": t1 - t0, "compile_s": t2 - t1, "run_s": t3 - t2, "finals": finals,
                  "jax": jax.__version__, "devices": str(jax.devices())}))
"""


def run_pjx(a: argparse.Namespace, seeds: int, work: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}
    cmd = [
        str(a.jax_python),
        "-c",
        DRIVER,
        str(a.purejaxrl / "purejaxrl"),
        json.dumps(PJX_CONFIG),
        str(seeds),
        a.pjx_seeds,
    ]
    for attempt in range(2):  # a JAX process once sat idle on its locks here: retried, and recorded
        try:
            wall, out = timed(cmd, env, work, f"purejaxrl × {seeds}", timeout=300)
            return {
                "process_s": wall,
                "hung_before": attempt,
                **json.loads(out.strip().splitlines()[-1]),
            }
        except subprocess.TimeoutExpired:
            print(f"purejaxrl × {seeds}: no result after 300 s; started again", flush=True)
    raise SystemExit(f"purejaxrl × {seeds}: no result twice")


def run_ppox(flags: list[str], seeds: int, work: Path, tag: str) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = work / f"{tag}-{seeds}-{time.monotonic_ns()}"
    if seeds == 1:
        cmd = [
            sys.executable,
            "-m",
            "ppox",
            "train",
            "--seed",
            "1",
            "--run-dir",
            str(out),
            "--no-progress",
            *flags,
        ]
        wall, _ = timed(cmd, env, work, f"ppox × {seeds}", timeout=1800)
        finals = [json.loads((out / "summary.json").read_text())["eval_return_mean"]]
    else:
        cmd = [sys.executable, "-m", "ppox", "ablate", "--seeds", *map(str, range(1, seeds + 1)), "--jobs", "2",
               "--out", str(out), *flags]  # fmt: skip
        wall, _ = timed(cmd, env, work, f"ppox × {seeds}", timeout=1800)
        finals = [
            json.loads(p.read_text())["eval_return_mean"]
            for p in sorted(out.glob("runs/*/summary.json"))
        ]
    return {"process_s": wall, "finals": finals}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jax-python", type=Path, required=True)
    p.add_argument(
        "--purejaxrl", type=Path, required=True, help="a checkout of luchris429/purejaxrl"
    )
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--pjx-seeds", choices=["vmap", "loop"], default="vmap",
                   help="PureJaxRL's seeds: vmapped in one program (its README), or one compiled seed run once "
                        "per seed in the same process")  # fmt: skip
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/purejaxrl")
    a = p.parse_args(argv)
    sides = {
        "purejaxrl": lambda s, w: run_pjx(a, s, w),
        "ppox": lambda s, w: run_ppox(["--preset", "cartpole"], s, w, "ppox"),
        "ppox-pjx": lambda s, w: run_ppox(PPOX_PJX, s, w, "pjx"),
    }
    rows: list[dict[str, Any]] = []
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ppox-pjx-") as tmp:
        for rnd in range(a.rounds):
            order = list(sides) if rnd % 2 == 0 else list(reversed(sides))
            for side in order:
                for seeds in (1, a.seeds):
                    row = {
                        "side": side,
                        "seeds": seeds,
                        "round": rnd,
                        **sides[side](seeds, Path(tmp)),
                    }
                    rows.append(row)
                    print(f"{side:>9} × {seeds}: {row['process_s']:6.1f} s, finals {[round(x) for x in row['finals']]}",
                          flush=True)  # fmt: skip
    write(a, rows, list(sides), load0)


def write(
    a: argparse.Namespace, rows: list[dict[str, Any]], sides: list[str], load0: tuple[float, ...]
) -> None:
    pjx = next(r for r in rows if r["side"] == "purejaxrl")
    info = write_info(
        a.out,
        load0,
        jax=pjx.get("jax"),
        purejaxrl_config=PJX_CONFIG,
        ppox_pjx_flags=PPOX_PJX,
        runs=rows,
    )

    def med(side: str, seeds: int, key: str = "process_s") -> float:
        return statistics.median(r[key] for r in rows if r["side"] == side and r["seeds"] == seeds)

    lines = [
        "# Many seeds: ppox against PureJaxRL's CartPole PPO",
        "",
        f"`benchmarks/purejaxrl.py --seeds {a.seeds} --rounds {a.rounds}` · {info['generated']} · commit "
        f"`{info['commit']}` · {info['machine']}, load {load0[0]:.2f} at start, {info['load_at_end'][0]:.2f} at end · "
        f"jax {info['jax']} (CPU) · whole processes, medians over {a.rounds} rounds (the sides alternate) · "
        f"PureJaxRL's seeds: {a.pjx_seeds}.",
        "",
        f"| side | steps per seed | 1 seed (s) | {a.seeds} seeds (s) | {a.seeds} seeds / 1 seed | final returns ({a.seeds} seeds, last round) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    steps = {"purejaxrl": "500k", "ppox": "100k", "ppox-pjx": "500k"}
    for s in sides:
        one, many = med(s, 1), med(s, a.seeds)
        last = [r for r in rows if r["side"] == s and r["seeds"] == a.seeds][-1]
        lines.append(f"| {s} | {steps[s]} | {one:.1f} | {many:.1f} | {many / one:.2f}× | "
                     f"{', '.join(f'{x:.0f}' for x in last['finals'])} |")  # fmt: skip
    lines += ["", "PureJaxRL's time split (medians): "
              + ", ".join(f"{n} seed(s): import {med('purejaxrl', n, 'import_s'):.1f} s, compile {med('purejaxrl', n, 'compile_s'):.1f} s, "
                          f"run {med('purejaxrl', n, 'run_s'):.1f} s" for n in (1, a.seeds)) + ".",
              "", "Final returns: PureJaxRL's are the mean return of the training episodes finished in its last 5% of "
              "updates (what it logs; it has no evaluation); ppox's the final deterministic evaluation (10 episodes)."]  # fmt: skip
    (a.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
