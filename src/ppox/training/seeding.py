"""Seeds for collection vs evaluation, and the RNG states that make a resume exact
(docs/design/seeds_and_evaluation.md)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CUDA included) from one number."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def collection_seeds(
    seed: int, n: int, avoid: range, *, rank: int = 0, world: int = 1
) -> list[int]:
    """``n`` well-spread env seeds derived from ``seed``, none of them in ``avoid``
    (the evaluation seeds), so training never replays an evaluation episode's start.

    With ``world`` workers, worker ``rank`` gets the ``rank``-th block of ``n`` out of
    ``n·world`` distinct seeds: the workers' envs never share a seed, worker 0 of a world of 1 gets
    what a single process gets, and a global env count split over more workers keeps the same
    set of seeds (docs/distributed.md)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    out: list[int] = []
    seen: set[int] = set()
    while len(out) < n * world:
        s = int(rng.integers(0, 2**31 - 1))
        if s not in avoid and s not in seen:
            out.append(s)
            seen.add(s)
    return out[rank * n : (rank + 1) * n]


def worker_seed(seed: int, rank: int) -> int:
    """The seed of worker ``rank``'s own generator (action sampling): ``seed`` itself on worker 0,
    so a single-process run is unchanged, and distinct well-spread values on the others."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank, 0xD1]).generate_state(1)[0])


def evaluation_seeds(first: int, episodes: int) -> list[int]:
    """The fixed, reported evaluation seed set: ``first, first + 1, …``."""
    return list(range(first, first + episodes))


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every RNG state as plain Python / tensors (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    return {
        "python": random.getstate(),
        "numpy": [
            kind,
            torch.from_numpy(np.asarray(keys).astype(np.int64)),
            pos,
            has_gauss,
            cached,
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {k: g.get_state() for k, g in generators.items()},
    }


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in generators.items():
        g.set_state(state["generators"][k])


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x
