"""The fast paths' fixed costs, best of many repeats: the steady harness of ``ab_commits.py``.

``fixed_costs.py`` times each case once per round, which on a shared machine lets one slow
moment move a case by 20%. This harness times each case in many short repeats and keeps the
fastest (the cost with the least interference), for the NumPy acting path, the torch acting
path and the update with the default backend (``auto``), on the shapes of ``fixed_costs.py``.
It runs against whichever ppox is first on ``PYTHONPATH``; to compare with commits from before
the package was grouped into folders (``ppox.learner``, ``ppox.nn.lean.LeanActor``) it falls
back to those names, which serve the same role::

    PYTHONPATH=src .venv/bin/python benchmarks/ab_micro.py /tmp/micro.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from ppox.config import Config
from ppox.nn.actor_critic import ActorCritic
from ppox.types import Batch

try:
    from ppox.nn.numpy_policy import NumpyActorCritic as Actor
    from ppox.training.learner import Learner
except ImportError:  # a commit before the folders by role
    from ppox.learner import Learner  # type: ignore[import-not-found,no-redef]
    from ppox.nn.lean import LeanActor as Actor  # type: ignore[import-not-found,no-redef]

D2, B6 = spaces.Discrete(2), spaces.Box(-1.0, 1.0, (6,), np.float32)
# name: (observation size, action space, envs)
ACTING: dict[str, tuple[int, spaces.Space, int]] = {
    "CartPole, 8 envs": (4, D2, 8),
    "CartPole, 4 envs": (4, D2, 4),
    "HalfCheetah, 1 env": (17, B6, 1),
}
# name: (observation size, action space, batch, epochs, minibatches, hidden sizes, activation)
UPDATES: dict[str, tuple[int, spaces.Space, int, int, int, tuple[int, ...], str]] = {
    "cartpole preset (256 x 1, 20 epochs)": (4, D2, 256, 20, 1, (64, 64), "tanh"),
    "compare_sb3 cartpole (512 / 4)": (4, D2, 512, 4, 4, (64, 64), "tanh"),
    "compare_sb3 halfcheetah (2048 / 32)": (17, B6, 2048, 1, 32, (64, 64), "tanh"),
    "halfcheetah preset (256x256 ReLU, 512 / 8)": (17, B6, 512, 4, 8, (256, 256), "relu"),
}


def _model(obs_dim: int, space: spaces.Space, cfg: Config) -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(spaces.Box(-10.0, 10.0, (obs_dim,), np.float32), space, cfg.policy)


def numpy_acting(
    obs_dim: int, space: spaces.Space, n: int, steps: int = 500, repeats: int = 30
) -> float:
    """Best µs per vector step of the NumPy acting path."""
    actor = Actor(_model(obs_dim, space, Config().validate()))
    actor.refresh()
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(steps, n, obs_dim, generator=g).numpy()
    noise = actor.noise(steps, n, g)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(steps):
            actor.act(obs[i], noise[i])
        best = min(best, (time.perf_counter() - t) / steps * 1e6)
    return float(best)


def torch_acting(
    obs_dim: int, space: spaces.Space, n: int, steps: int = 200, repeats: int = 20
) -> float:
    """Best µs per vector step through the torch model and its distribution."""
    model = _model(obs_dim, space, Config().validate())
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(steps, n, obs_dim, generator=g).numpy()
    best = np.inf
    with torch.inference_mode():
        for _ in range(repeats):
            t = time.perf_counter()
            for i in range(steps):
                dist, value = model(torch.from_numpy(obs[i]))
                action, logp = dist.sample_log_prob(g)
                action.numpy(), logp.numpy(), value.numpy()
            best = min(best, (time.perf_counter() - t) / steps * 1e6)
    return float(best)


def update(obs_dim: int, space: spaces.Space, n: int, epochs: int, mbs: int, hidden: tuple[int, ...],
           activation: str, updates: int = 12) -> float:  # fmt: skip
    """Best µs per minibatch step (the whole update included) over ``updates`` updates."""
    cfg = Config().replace(num_steps=n, num_envs=1, num_epochs=epochs, num_minibatches=mbs, hidden_sizes=hidden,
                           activation=activation).validate()  # fmt: skip
    model = _model(obs_dim, space, cfg)
    learner = Learner(model, cfg, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(n, obs_dim, generator=g)

    def batch() -> Batch:
        with torch.no_grad():
            dist, value = model(obs)
            action, logp = dist.sample_log_prob(g)
        return Batch(
            obs,
            action,
            logp,
            value,
            torch.randn(n, generator=g),
            value + torch.randn(n, generator=g),
            None,
        )

    batches = [batch() for _ in range(updates + 1)]
    learner.update(batches[0], progress=0.0)  # warm-up
    best = np.inf
    for b in batches[1:]:
        t = time.perf_counter()
        learner.update(b, progress=0.0)
        best = min(best, (time.perf_counter() - t) / (epochs * mbs) * 1e6)
    return float(best)


def measure() -> dict[str, Any]:
    torch.set_num_threads(1)
    out: dict[str, float] = {}
    for name, (d, space, n) in ACTING.items():
        out[f"acting numpy: {name}"] = numpy_acting(d, space, n)
        out[f"acting torch: {name}"] = torch_acting(d, space, n)
    for name, case in UPDATES.items():
        out[f"update auto: {name}"] = update(*case)
    return out


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(measure(), indent=1))
