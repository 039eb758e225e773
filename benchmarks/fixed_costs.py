"""The two fixed costs of PPO on small networks: choosing an action and one minibatch step.

**Acting.** Times the policy's share of one vector step (observations in, actions,
log-probabilities and values out as NumPy arrays, as the collector stores them) for
``run.act_backend`` ``torch`` (the model, a distribution object, a sample, copies to NumPy)
and ``numpy`` (:class:`ppox.nn.numpy_policy.NumpyActorCritic`), on observations drawn beforehand.

**Updating.** Times ``Learner.update`` on batches sampled from the policy itself (observations from a fixed
normal draw, actions and log-probabilities from the current policy, random advantages and
returns: a fresh batch for every update, as in training) and reports microseconds per
minibatch step, everything in the update included: advantage normalization, the shuffle and
copy by index, forward, loss, gradient, clipping and the Adam step. Each case is one of the
network and minibatch shapes the benchmarks train with; the two backends (``run.update_backend``
``autograd`` and ``numpy``) alternate for ``--repeats`` rounds in one process with one thread,
and the table gives medians and the min–max range.

    .venv/bin/python benchmarks/fixed_costs.py                     # writes results/fixed_costs.{json,md}
    .venv/bin/python benchmarks/fixed_costs.py --repeats 1 --updates 1 --out /tmp/f.json   # a quick look
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

sys.path.insert(0, str(Path(__file__).parent))
from compare_sb3 import header, machine_info, write_results  # noqa: E402

from ppox.config import Config  # noqa: E402
from ppox.nn.actor_critic import ActorCritic  # noqa: E402
from ppox.nn.numpy_policy import NumpyActorCritic  # noqa: E402
from ppox.training.learner import Learner  # noqa: E402
from ppox.types import Batch  # noqa: E402

# name: (observation size, action space, policy settings, batch, epochs, minibatches)
CASES: dict[str, tuple[int, spaces.Space, dict[str, Any], int, int, int]] = {
    "cartpole preset (64x64 tanh, Discrete(2), 256 x 1 minibatch, 20 epochs)":
        (4, spaces.Discrete(2), {}, 256, 20, 1),
    "compare_sb3 cartpole (64x64 tanh, Discrete(2), 512 / 4 = 128)":
        (4, spaces.Discrete(2), {}, 512, 4, 4),
    "compare_sb3 halfcheetah (64x64 tanh, Box(6), 2048 / 32 = 64)":
        (17, spaces.Box(-1.0, 1.0, (6,), np.float32), {}, 2048, 1, 32),
    "halfcheetah preset (256x256 ReLU, Box(6), 512 / 8 = 64)":
        (17, spaces.Box(-1.0, 1.0, (6,), np.float32), {"hidden_sizes": (256, 256), "activation": "relu"}, 512, 4, 8),
}  # fmt: skip
BACKENDS = ("autograd", "numpy")
# name: (observation size, action space, envs)
ACT_CASES: dict[str, tuple[int, spaces.Space, int]] = {
    "CartPole, 8 envs (the cartpole preset)": (4, spaces.Discrete(2), 8),
    "CartPole, 4 envs (compare_sb3 cartpole)": (4, spaces.Discrete(2), 4),
    "HalfCheetah, 1 env (compare_sb3 halfcheetah)": (
        17,
        spaces.Box(-1.0, 1.0, (6,), np.float32),
        1,
    ),
}
ACT_BACKENDS = ("torch", "numpy")
ACT_STEPS = 2000


def sample_batch(model: ActorCritic, obs: torch.Tensor, g: torch.Generator) -> Batch:
    with torch.no_grad():
        dist, value = model(obs)
        action, logp = dist.sample_log_prob(g)
    n = obs.shape[0]
    return Batch(
        obs,
        action,
        logp,
        value,
        torch.randn(n, generator=g),
        value + torch.randn(n, generator=g),
        None,
    )


def time_case(
    case: tuple[int, spaces.Space, dict[str, Any], int, int, int], backend: str, updates: int
) -> float:
    """Microseconds per minibatch step over ``updates`` updates of a fresh learner."""
    obs_dim, space, policy, n, epochs, minibatches = case
    cfg = Config().replace(num_steps=n, num_envs=1, num_epochs=epochs, num_minibatches=minibatches,
                           update_backend=backend, **policy).validate()  # fmt: skip
    torch.manual_seed(0)
    model = ActorCritic(spaces.Box(-10.0, 10.0, (obs_dim,), np.float32), space, cfg.policy)
    learner = Learner(model, cfg, torch.Generator().manual_seed(0))
    assert learner.backend == backend
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(n, obs_dim, generator=g)
    learner.update(sample_batch(model, obs, g), progress=0.0)  # warm-up
    spent, steps = 0.0, 0
    for _ in range(updates):
        batch = sample_batch(model, obs, g)  # not timed: what the collector would have stored
        t = time.perf_counter()
        m = learner.update(batch, progress=0.0)
        spent += time.perf_counter() - t
        steps += int(m["updates"])
    return spent / steps * 1e6


def time_acting(case: tuple[int, spaces.Space, int], backend: str) -> float:
    """Microseconds per vector step of the policy alone (64x64 tanh, separate trunks)."""
    obs_dim, space, n = case
    torch.manual_seed(0)
    model = ActorCritic(
        spaces.Box(-10.0, 10.0, (obs_dim,), np.float32), space, Config().validate().policy
    )
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(ACT_STEPS, n, obs_dim, generator=g).numpy()
    if backend == "numpy":
        lean = NumpyActorCritic(model)
        lean.refresh()
        noise = lean.noise(ACT_STEPS, n, g)
        t = time.perf_counter()
        for i in range(ACT_STEPS):
            lean.act(obs[i], noise[i])
        return (time.perf_counter() - t) / ACT_STEPS * 1e6
    t = time.perf_counter()
    with torch.inference_mode():
        for i in range(ACT_STEPS):
            dist, value = model(torch.from_numpy(obs[i]))
            action, logp = dist.sample_log_prob(g)
            action.numpy(), logp.numpy(), value.numpy()
    return (time.perf_counter() - t) / ACT_STEPS * 1e6


def _row(name: str, base: dict[str, float], ours: dict[str, float]) -> str:
    return (f"| {name} | {base['median']:.1f} [{base['min']:.1f}–{base['max']:.1f}] | "
            f"{ours['median']:.1f} [{ours['min']:.1f}–{ours['max']:.1f}] | {base['median'] / ours['median']:.2f}× |")  # fmt: skip


def _stats(t: list[float]) -> dict[str, Any]:
    return dict(median=statistics.median(t), min=min(t), max=max(t), runs=t)


def to_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        *header("The fixed costs: acting and one PPO-Clip minibatch step, ppox's fast paths vs torch", result,
                f"torch {m['torch']}, numpy {m['numpy']}, ppox {m['ppox']}", "one thread"),
        "Microseconds (medians over rounds, min–max in brackets). 64×64 tanh networks with separate actor and "
        "critic unless the case says otherwise.", "",
        "## Acting: the policy's share of one vector step", "",
        "| case | `act_backend=torch` µs | `numpy` µs | speed-up |", "|---|---:|---:|---:|",
        *(_row(name, r["torch"], r["numpy"]) for name, r in result["acting"].items()), "",
        "## Updating: one minibatch step, the whole update included", "",
        "| case | `update_backend=autograd` µs | `numpy` µs | speed-up |", "|---|---:|---:|---:|",
        *(_row(name, r["autograd"], r["numpy"]) for name, r in result["cases"].items()),
    ]  # fmt: skip
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="rounds of both backends per case")
    p.add_argument("--updates", type=int, default=20, help="timed updates per round")
    p.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "fixed_costs.json"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    machine = machine_info()
    acting: dict[str, dict[str, Any]] = {}
    for name, act_case in ACT_CASES.items():
        act_times: dict[str, list[float]] = {b: [] for b in ACT_BACKENDS}
        for _ in range(args.repeats):
            for backend in ACT_BACKENDS:
                act_times[backend].append(time_acting(act_case, backend))
        acting[name] = {b: _stats(t) for b, t in act_times.items()}
        print(
            f"{name}: "
            + ", ".join(f"{b} {acting[name][b]['median']:.1f} us" for b in ACT_BACKENDS),
            file=sys.stderr,
        )
    cases: dict[str, dict[str, Any]] = {}
    for name, case in CASES.items():
        times: dict[str, list[float]] = {b: [] for b in BACKENDS}
        for _ in range(args.repeats):
            for backend in BACKENDS:
                times[backend].append(time_case(case, backend, args.updates))
        cases[name] = {b: _stats(t) for b, t in times.items()}
        print(
            f"{name}: " + ", ".join(f"{b} {cases[name][b]['median']:.0f} us" for b in BACKENDS),
            file=sys.stderr,
        )
    result = dict(command=shlex.join(["python", *sys.argv]), machine=machine,
                  args=dict(repeats=args.repeats, updates=args.updates), acting=acting, cases=cases)  # fmt: skip
    write_results(args.out, result, to_markdown(result))


if __name__ == "__main__":
    main()
