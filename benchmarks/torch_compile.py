"""Does ``torch.compile`` pay off on the CPU for PPO's two fixed costs? (Issue 6 asked to consider it.)

For the ``cartpole`` preset's shapes (64x64 tanh actor and critic, Discrete(2)) it times, in one
process with one thread:

- **a minibatch step** of 256 samples (forward, PPO-Clip loss, backward, Adam): eager
  autograd, the same function under ``torch.compile`` (default inductor backend), and ppox's
  hand-written NumPy gradient (``update_backend=numpy``, through ``Learner.update``);
- **acting** for 8 envs (forward, sample, log-probability, value): eager torch, the same under
  ``torch.compile``, and ppox's NumPy actor (``act_backend=numpy``).

Compilation time is reported separately (it is paid at the start of every run and again on
every recompilation); inductor's kernel cache is pointed at a fresh temporary folder, so it is
a cold start. Writes ``--out`` (JSON) and a Markdown table beside it::

    .venv/bin/python benchmarks/torch_compile.py
"""

from __future__ import annotations

import argparse
import copy
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# a cold start, as a new run has: no compiled kernels cached from an earlier invocation
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="ppox-inductor-"))
# compile in this process: a pool of compile workers would share the cores with the timed loops
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gymnasium import spaces

sys.path.insert(0, str(Path(__file__).parent))
from compare_sb3 import header, machine_info, write_results  # noqa: E402
from fixed_costs import sample_batch  # noqa: E402

from ppox.config import Config  # noqa: E402
from ppox.core.losses import clipped_surrogate, value_loss  # noqa: E402
from ppox.nn.actor_critic import ActorCritic  # noqa: E402
from ppox.nn.numpy_policy import NumpyActorCritic  # noqa: E402
from ppox.training.learner import Learner  # noqa: E402

B, ENVS = 256, 8


def per_call(fn: Callable[[], Any], n: int) -> float:
    """Microseconds per call of ``fn`` after three untimed calls."""
    for _ in range(3):
        fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def compiled_cost(fn: Callable[[], Any], n: int) -> dict[str, float]:
    """``fn`` under ``torch.compile``: seconds of the first call (compilation) and µs per call after."""
    compiled = torch.compile(fn)
    t = time.perf_counter()
    compiled()
    return {"compile_s": time.perf_counter() - t, "compiled_us": per_call(compiled, n)}


def model_and_batch() -> tuple[ActorCritic, Config, Any]:
    cfg = Config().replace(num_steps=B, num_envs=1, num_epochs=20, num_minibatches=1).validate()
    torch.manual_seed(0)
    model = ActorCritic(spaces.Box(-10.0, 10.0, (4,), np.float32), spaces.Discrete(2), cfg.policy)
    g = torch.Generator().manual_seed(1)
    return model, cfg, sample_batch(model, torch.randn(B, 4, generator=g), g)


def update_step(steps: int) -> dict[str, Any]:
    model, cfg, mb = model_and_batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-5)

    def step() -> None:
        dist, value = model(mb.obs)
        log_ratio = dist.log_prob(mb.action) - mb.logp
        loss = (
            clipped_surrogate(mb.adv, log_ratio, clip_coef=0.2).mean()
            + 0.5 * value_loss(value, mb.value, mb.ret).mean()
        )
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()

    out: dict[str, Any] = {"eager_us": per_call(step, steps)}
    twin = copy.deepcopy(model)
    learner = Learner(twin, cfg, torch.Generator().manual_seed(0))
    assert learner.backend == "numpy"
    updates = max(1, steps // cfg.ppo.num_epochs)
    out["ppox_numpy_us"] = (
        per_call(lambda: learner.update(mb, progress=0.0), updates) / cfg.ppo.num_epochs
    )
    return {**out, **compiled_cost(step, steps)}


def acting(steps: int) -> dict[str, Any]:
    model, _, _ = model_and_batch()
    g = torch.Generator().manual_seed(2)
    obs = torch.randn(ENVS, 4, generator=g)

    @torch.no_grad()
    def act() -> None:
        dist, value = model(obs)
        action, logp = dist.sample_log_prob(g)
        action.numpy(), logp.numpy(), value.numpy()

    out: dict[str, Any] = {"eager_us": per_call(act, steps)}
    lean = NumpyActorCritic(model)
    lean.refresh()
    noise, x = lean.noise(1, ENVS, g)[0], obs.numpy()
    out["ppox_numpy_us"] = per_call(lambda: lean.act(x, noise), steps)
    return {**out, **compiled_cost(act, steps)}


def to_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        *header("torch.compile on the CPU for PPO's fixed costs (the cartpole preset's shapes)", result,
                f"torch {m['torch']}", "one thread"),
        "| cost | eager torch µs | torch.compile µs | compile time s | ppox NumPy path µs |", "|---|---:|---:|---:|---:|",
    ]  # fmt: skip
    for name, r in (
        ("minibatch step, 256 samples", result["update"]),
        (f"acting, {ENVS} envs", result["acting"]),
    ):
        lines.append(
            f"| {name} | {r['eager_us']:.0f} | {r['compiled_us']:.0f} | {r['compile_s']:.1f} | {r['ppox_numpy_us']:.0f} |"
        )
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1000, help="timed calls per variant")
    p.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "torch_compile.json"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    machine = machine_info()
    acts = acting(args.steps * 5)  # first: the update's compilation leaves threads behind
    result = dict(command=shlex.join(["python", *sys.argv]), machine=machine, update=update_step(args.steps),
                  acting=acts)  # fmt: skip
    write_results(args.out, result, to_markdown(result))


if __name__ == "__main__":
    main()
