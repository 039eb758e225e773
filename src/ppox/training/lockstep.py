"""The loop's compute requests, so that several runs can be stepped together.

The collector (:meth:`~ppox.training.rollout.Collector.collect_steps`), the learner
(:meth:`~ppox.training.learner.Learner.update_steps`) and the trainer
(:meth:`~ppox.training.trainer.Trainer.iterate_steps`) are written as generators that *yield*
the calls a NumPy policy makes at each step, as :class:`Request` tuples, and receive their
results; everything else (environments, storage, advantages, clipping, Adam, logging,
checkpoints) runs inside the generator.

One run drives its generator with :func:`drive`, which simply makes each call. Seeds trained in
one process (:mod:`ppox.training.stacked`) drive one generator per seed in lockstep and make the
same call of all seeds at once on weights stacked along a leading axis. Both go through the same
code between the requests, which is what makes a seed trained with others give the numbers it
gives alone.

A block of code that needs a torch mode (``torch.inference_mode``) or a NumPy error state
must not contain a ``yield``: several generators interleaved would enter and leave it out of
order. The drivers run the loop with NumPy's overflow and invalid-value warnings off
(:data:`QUIET`): the NaN guard and the collector's checks report non-finite numbers.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple, TypeVar

import numpy as np

__all__ = ["QUIET", "Request", "Steps", "drive"]

QUIET = {"over": "ignore", "invalid": "ignore"}
"""``np.errstate`` of a driven loop."""

R = TypeVar("R")


class Request(NamedTuple):
    """A call to make for a run: ``getattr(target, method)(*args)``."""

    target: Any  # the run's NumpyActorCritic (acting) or its UpdateStep (training)
    method: str  # "act", "forward" or "gradient"
    args: tuple[Any, ...]


Steps = Generator[Request, Any, R]
"""A generator of :class:`Request` that returns an ``R``."""


def drive(steps: Steps[R]) -> R:
    """Run one run's generator to its end, making each request's call; its return value."""
    with np.errstate(**QUIET):  # type: ignore[arg-type]
        try:
            request = next(steps)
            while True:
                request = steps.send(getattr(request.target, request.method)(*request.args))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
