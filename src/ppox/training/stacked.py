"""Seeds trained together in one process, their networks stacked along a leading axis.

Users run every configuration over 5–10 seeds. Each seed of a small MLP policy spends most of
its time in calls that cost microseconds whatever they compute (docs/performance.md): the
same matrix product on five seeds' weights stacked as ``[S, out, in]`` costs little more than
one. :func:`train_together` builds one :class:`~ppox.training.trainer.Trainer` per seed (its own
environments, RNG streams, normalizers, optimizer, run directory and checkpoints, exactly as
alone) and steps their loops in lockstep (:mod:`ppox.training.lockstep`): at every acting step,
and at every minibatch's forward pass and gradient, the seeds' requests are made as one stacked
call by :class:`StackedCalls`. Everything between the requests is each seed's own code, so a
seed trained with others ends with the numbers it ends with alone, bit for bit (the stacked
products are the per-seed BLAS calls on the same operands; a test checks whole runs).

What is stacked, and what falls back (:func:`stack_support` says why, and the run records it):

- acting, when every seed acts through the NumPy policy (``backends.act == "numpy"``) with the
  same joint actor-critic plan (:data:`~ppox.nn.numpy_policy.JOINT_MAX_WIDTH`); a shared trunk,
  trunks wider than that, or a head kernel that reads the actor's features (gSDE) act seed by
  seed;
- the update's forward pass and gradient, when every seed updates through the NumPy step
  (``backends.update == "numpy"``) on minibatches of one size;
- everything else (a torch policy, autograd, TRPO, a policy with memory) runs seed by seed in
  the same lockstep, which is correct but not faster: ``ppox train --seeds`` then runs the
  seeds one after the other instead (:func:`stack_support`).

Requests that are not all alike (a seed whose epochs stopped early at the target KL, a resumed
seed further along) are made seed by seed, never guessed at.

:func:`train_seeds` deals the seeds over forked processes. Stacked, seeds that do not divide
evenly among them are split at half their budget (:func:`deal`): one process trains the first
half, writes the checkpoint and lets the directory go; another resumes it and trains it in step
with its own seeds (:class:`Arrivals`). Only runs whose resume is exact are split.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, NamedTuple

import numpy as np

from ppox.distributions.base import float32_ones
from ppox.nn.numpy_policy import (
    NumpyActorCritic,
    NumpyLinear,
    NumpyPass,
    activate,
    activation_grad,
    run_plan,
)
from ppox.training.lockstep import QUIET, Request, Steps
from ppox.training.update_step import NumpyBatch, NumpyStep

__all__ = [
    "MOVED",
    "Arrivals",
    "StackedCalls",
    "deal",
    "drive_together",
    "seed_line",
    "stack_support",
    "train_seeds",
    "train_together",
]


def drive_together(
    runs: Sequence[Steps[Any]],
    calls: Callable[[list[Request]], list[Any]],
    arrivals: Arrivals | None = None,
) -> list[Any]:
    """Step every generator to its end in lockstep: each round, all pending requests go to
    ``calls`` at once (which returns their results in order). Returns each generator's return
    value, or the exception that stopped it: a run that fails stops only itself.

    ``arrivals`` adds runs while it goes (their results follow, in the order they came): taken
    in a round where a run starts an iteration (a ``boundary`` request, which a new run's loop
    makes first), so that the new run's requests are in step with that run's; when no run is
    left, it waits for them."""
    runs = list(runs)
    results: list[Any] = [None] * len(runs)
    pending: dict[int, Request] = {}

    def advance(i: int, value: Any, first: bool = False) -> None:
        try:
            pending[i] = next(runs[i]) if first else runs[i].send(value)
        except StopIteration as stop:
            pending.pop(i, None)
            results[i] = stop.value
        except Exception as exc:  # noqa: BLE001  (returned: the caller reports it per run)
            pending.pop(i, None)
            results[i] = exc

    with np.errstate(**QUIET):  # type: ignore[arg-type]  # as lockstep.drive
        for i in range(len(runs)):
            advance(i, None, first=True)
        try:
            while pending or (arrivals is not None and arrivals.waiting):
                if (
                    arrivals is not None
                    and arrivals.waiting
                    and (not pending or any(r.method == "boundary" for r in pending.values()))
                ):
                    for run in arrivals.take(block=not pending):
                        runs.append(run)
                        results.append(None)
                        advance(len(runs) - 1, None, first=True)
                    if not pending:
                        continue
                order = list(pending)
                answers = calls([pending[i] for i in order])
                for i, answer in zip(order, answers):
                    advance(i, answer)
        finally:
            for run in runs:
                run.close()  # a run abandoned by an interrupt closes its logger and environments
    return results


class StackedCalls:
    """Makes a round of requests (:func:`drive_together`): alike ones as one stacked call."""

    def __init__(self) -> None:
        self._act_src: list[Any] = []  # the seeds' acting plans the stacked one was made from
        self._act_plan: list[tuple[np.ndarray, np.ndarray, Any]] = []
        self._nets: dict[tuple[int, ...], _StackedNet | None] = {}
        self.stacked = {"act": 0, "forward": 0, "gradient": 0}
        """How many rounds of each call were made stacked (the rest seed by seed)."""

    def __call__(self, requests: list[Request]) -> list[Any]:
        method = requests[0].method
        if len(requests) > 1 and all(r.method == method for r in requests):
            if method == "act":
                out = self._act(requests)
            elif method in ("forward", "gradient"):
                out = self._update(requests)
            else:
                out = None
            if out is not None:
                self.stacked[method] += 1
                return out
        return [getattr(r.target, r.method)(*r.args) for r in requests]

    # --- acting ------------------------------------------------------------------------------
    def _act(self, requests: list[Request]) -> list[Any] | None:
        leans: list[NumpyActorCritic] = [r.target for r in requests]
        first = leans[0]
        if not first._plan or first.kernel_reads_features:
            return None
        plans = [lean._plan for lean in leans]  # a new list at every refresh()
        if len(plans) != len(self._act_src) or any(
            a is not b for a, b in zip(plans, self._act_src)
        ):
            if any(len(p) != len(plans[0]) for p in plans) or any(
                a[0].shape != b[0].shape for p in plans for a, b in zip(p, plans[0])
            ):
                return None
            self._act_plan = [
                (np.stack([p[k][0] for p in plans]), np.stack([p[k][1] for p in plans])[:, None, :], plans[0][k][2])
                for k in range(len(plans[0]))
            ]  # fmt: skip
            self._act_src = plans  # held: the identity test above is sound while they live
        obs = [r.args[0] for r in requests]
        if any(o.shape != obs[0].shape for o in obs):
            return None
        x = run_plan(
            self._act_plan, np.stack([o if o.ndim == 2 else o.reshape(o.shape[0], -1) for o in obs])
        )
        answers = []
        for s, (lean, r) in enumerate(zip(leans, requests)):
            both = x[s]
            action, logp = lean.kernel.act(both[:, :-1], r.args[1], r.args[2])
            answers.append((action, logp, both[:, -1]))
        return answers

    # --- the update ----------------------------------------------------------------------------
    def _update(self, requests: list[Request]) -> list[Any] | None:
        steps: list[NumpyStep] = [r.target for r in requests]
        if not all(type(s) is NumpyStep for s in steps):
            return None
        key = tuple(id(s) for s in steps)  # the nets hold their steps: the ids stay theirs
        if key not in self._nets:  # None: these seeds cannot be stacked (asked once)
            self._nets[key] = _StackedNet.build(steps)
        net = self._nets[key]
        if net is None:
            return None
        if requests[0].method == "forward":
            return net.forward([r.args[0] for r in requests])
        return net.gradient(steps, [r.args for r in requests])


class _StackedNet:
    """S seeds' :class:`NumpyActorCritic` (same shapes) as stacked weights: every layer's
    ``W [S, out, in]``, ``b [S, out]`` and their gradients, views of one ``[S, P]`` buffer each,
    filled from the seeds' parameters before a forward pass and copied back after a backward
    pass (2·S copies a minibatch instead of S calls per product)."""

    def __init__(self, steps: list[NumpyStep], layers: list[list[NumpyLinear]]) -> None:
        self.steps = steps
        self.nets = nets = [step.net for step in steps]
        self.S = S = len(nets)
        self.flat_w = [step.learner.flat.flat.detach().numpy() for step in steps]
        self.flat_g = [step.learner.flat.grad.numpy() for step in steps]
        P = self.flat_w[0].shape[0]
        self.w = np.empty((S, P), np.float32)
        self.g = np.zeros((S, P), np.float32)
        first = layers[0]
        spans = []
        self.views: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        for i, layer in enumerate(first):
            w0, b0 = layer.linear.weight, layer.linear.bias
            ow, ob = _offset(w0), _offset(b0)
            spans += [(ow, ow + w0.numel()), (ob, ob + b0.numel())]
            shape = tuple(w0.shape)
            self.views[i] = (
                self.w[:, ow : ow + w0.numel()].reshape(S, *shape),
                self.w[:, ob : ob + b0.numel()],
                self.g[:, ow : ow + w0.numel()].reshape(S, *shape),
                self.g[:, ob : ob + b0.numel()],
            )
        self.index = {id(layer): i for i, layer in enumerate(first)}
        self.chunks = _merge(spans)  # the flat ranges the layers' gradients cover
        net = nets[0]
        self.actor = [self.index[id(x)] for x in net.actor.layers]
        self.critic = self.actor if net.shared else [self.index[id(x)] for x in net.critic.layers]
        self.kinds = {self.index[id(x)]: x.kind for x in first}
        self.out = [self.index[id(x)] for x in net.out]
        self.value = self.index[id(net.value_out)]
        self._last: tuple[list[NumpyPass], list[np.ndarray], list[np.ndarray]] | None = None
        self._bufs: dict[tuple[Any, ...], np.ndarray] = {}

    def _buf(self, name: tuple[Any, ...], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A work array of this net, made once per name, shape and dtype and reused at every
        minibatch: the stacked arrays are large (``[S, B, width]``), and left to the allocator,
        five seeds' of them took 3.2 s or 4.6 s for the same loop depending on where they fell
        (docs/performance.md). Each starts at another offset within a memory page, so that the
        arrays one operation reads and writes at once never share their page offsets. The
        results are the same: the same products and ufuncs, written into a given array."""
        key = (*name, shape, np.dtype(dtype).str)
        buf = self._bufs.get(key)
        if buf is None:
            n, item = int(np.prod(shape)), np.dtype(dtype).itemsize
            shift = (len(self._bufs) + 1) * 272 % 4096 // item  # 272 bytes: 4¼ cache lines
            raw = np.empty(n + 4096 // item, dtype)
            buf = self._bufs[key] = raw[shift : shift + n].reshape(shape)
        return buf

    @classmethod
    def build(cls, steps: list[NumpyStep]) -> _StackedNet | None:
        """None unless every seed's network has the same layers, shapes and flat layout."""
        nets = [step.net for step in steps]
        layers = [_layers(net) for net in nets]

        def layout(net: NumpyActorCritic, ls: list[NumpyLinear]) -> tuple[Any, ...]:
            return (net.shared, len(net.out), len(net.actor.layers),
                    [(x.w.shape, x.kind, _offset(x.linear.weight), _offset(x.linear.bias)) for x in ls])  # fmt: skip

        first = layout(nets[0], layers[0])
        if any(layout(net, ls) != first for net, ls in zip(nets, layers)):
            return None
        if len({step.learner.flat.flat.numel() for step in steps}) != 1:
            return None
        return cls(steps, layers)

    def _read_weights(self) -> None:
        """The seeds' current parameters into the stacked buffer (they change at every step)."""
        for s in range(self.S):
            np.copyto(self.w[s], self.flat_w[s])

    def _dense(self, i: int, x: np.ndarray) -> np.ndarray:
        """``NumpyLinear.out`` on ``[S, B, in]``."""
        w, b, _, _ = self.views[i]
        wt = w.transpose(0, 2, 1)
        shape = (x.shape[0], x.shape[1], wt.shape[2])
        z = np.matmul(x, wt, out=self._buf(("z", i), shape, np.result_type(x, wt)))
        z += b[:, None, :]
        return activate(z, self.kinds[i])

    def _trunk(self, ids: list[int], x: np.ndarray) -> list[np.ndarray]:
        hs = [x]
        for i in ids:
            hs.append(self._dense(i, hs[-1]))
        return hs

    def forward(self, mbs: list[NumpyBatch]) -> list[Any] | None:
        """:meth:`NumpyStep.forward` of every seed's minibatch."""
        if any(mb.x.shape != mbs[0].x.shape for mb in mbs):
            return None
        self._read_weights()
        x0 = mbs[0].x
        x = np.stack([mb.x for mb in mbs], out=self._buf(("x",), (len(mbs), *x0.shape), x0.dtype))
        self._last = None
        actor = self._trunk(self.actor, x)
        critic = actor if self.critic is self.actor else self._trunk(self.critic, x)
        h = actor[-1]
        if len(self.out) == 1:
            out = self._dense(self.out[0], h)
        else:
            out = np.concatenate([self._dense(i, h) for i in self.out], 2)
        w, b, _, _ = self.views[self.value]
        value = np.matmul(critic[-1], w.transpose(0, 2, 1))[..., 0]  # NumpyLinear.scalar_out
        value += b
        answers = []
        for s, (net, mb) in enumerate(zip(self.nets, mbs)):
            head = net.kernel.forward(out[s], mb.action, mb.mask)
            p = NumpyPass(head, [a[s] for a in actor], [c[s] for c in critic], value[s])
            answers.append((p, head.logp - mb.old_logp))
        self._last = ([p for p, _ in answers], actor, critic)
        return answers

    def gradient(self, steps: list[NumpyStep], args: list[tuple[Any, ...]]) -> list[Any]:
        """:meth:`NumpyStep.gradient` of every seed: the loss terms per seed, the backward
        pass of :meth:`NumpyActorCritic.backward` stacked."""
        answers, g_outs, g_values = [], [], []
        for step, (f, mb, ent_coef) in zip(steps, args):
            terms, g_logp, g_entropy, g_value = step.loss(f, mb, ent_coef)
            step.learner.flat.zero_grad()
            g_outs.append(
                step.net.kernel.backward(f[0].head, mb.action, mb.mask, g_logp, g_entropy)
            )
            g_values.append(g_value)
            answers.append(terms)
        passes = [f[0] for f, _, _ in args]
        last = self._last
        if last is not None and all(a is b for a, b in zip(last[0], passes)):
            actor_hs, critic_hs = last[1], last[2]  # this net's own forward pass, as stacked
        else:  # passes made by another grouping of the seeds: stack them, read the weights
            actor_hs = [np.stack([p.actor[k] for p in passes]) for k in range(len(passes[0].actor))]
            critic_hs = (
                actor_hs
                if self.critic is self.actor
                else [np.stack([p.critic[k] for p in passes]) for k in range(len(passes[0].critic))]
            )
            self._read_weights()
        self._last = None
        g_out = np.stack(g_outs)
        h = actor_hs[-1]
        ones = float32_ones(h.shape[1])
        if len(self.out) == 1:
            g_actor = self._grad(self.out[0], g_out, h, ones)
        else:
            g_actor, start = None, 0
            for i in self.out:
                end = start + self.views[i][0].shape[1]
                part = self._grad(i, np.ascontiguousarray(g_out[:, :, start:end]), h, ones)
                g_actor = part if g_actor is None else g_actor + part
                start = end
        assert g_actor is not None
        w, _, gw, gb = self.views[self.value]
        g_value = np.stack(g_values)
        gw[:, 0, :] = np.matmul(g_value[:, None, :], critic_hs[-1])[
            :, 0, :
        ]  # NumpyLinear.scalar_grad
        gb[:, 0] = g_value.sum(1)
        g_critic = g_value[:, :, None] * w[:, 0, None, :]
        if self.critic is self.actor:
            g_actor += g_critic
            self._backward(self.actor, actor_hs, g_actor, ones)
        else:
            self._backward(self.actor, actor_hs, g_actor, ones)
            self._backward(self.critic, critic_hs, g_critic, ones)
        for s in range(self.S):
            for lo, hi in self.chunks:
                np.copyto(self.flat_g[s][lo:hi], self.g[s, lo:hi])
        return answers

    def _grad(
        self, i: int, g: np.ndarray, x: np.ndarray, ones: np.ndarray, need_input: bool = True
    ) -> np.ndarray | None:
        """``NumpyLinear.grad`` on ``[S, B, ·]``."""
        w, _, gw, gb = self.views[i]
        gt = g.transpose(0, 2, 1)
        gw[...] = np.matmul(
            gt,
            x,
            out=self._buf(("gw", i), (g.shape[0], gt.shape[1], x.shape[2]), np.result_type(g, x)),
        )
        gb[...] = np.matmul(ones, g)
        if not need_input:
            return None
        shape = (g.shape[0], g.shape[1], w.shape[2])
        return np.matmul(g, w, out=self._buf(("gx", i), shape, np.result_type(g, w)))

    def _backward(
        self, ids: list[int], hs: list[np.ndarray], g: np.ndarray, ones: np.ndarray
    ) -> None:
        """``NumpyMLP.backward`` on ``[S, B, ·]``."""
        for k in range(len(ids) - 1, -1, -1):
            i = ids[k]
            if self.kinds[i] is not None:
                y = hs[k + 1]
                out = self._buf(("act", i), y.shape, y.dtype)
                g = activation_grad(g, y, self.kinds[i], out)  # type: ignore[arg-type]
            nxt = self._grad(i, g, hs[k], ones, need_input=k > 0)
            if nxt is not None:
                g = nxt


def _layers(net: NumpyActorCritic) -> list[NumpyLinear]:
    seen: dict[int, NumpyLinear] = {}
    for layer in [*net.actor.layers, *net.critic.layers, *net.out, net.value_out]:
        seen.setdefault(id(layer), layer)
    return list(seen.values())


def _offset(param: Any) -> int:
    """Where ``param`` starts in its learner's flat buffer (:class:`~ppox.training.optim.FlatParams`), in elements."""
    return int(param.detach().storage_offset())


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def stack_support(trainers: Sequence[Any]) -> str | None:
    """None when the runs' loops are stacked (acting and update in NumPy, one worker each, the
    same shapes), else why not."""
    for t in trainers:
        if t.world > 1:
            return "a distributed run (torchrun) trains one seed per group of workers"
        if t.collector.act_backend != "numpy":
            return f"acting runs in torch ({t.collector.act_backend_reason})"
        if t.learner.backend != "numpy":
            return f"the update runs in autograd ({t.learner.backend_reason})"
        if t.cfg.run.overlap_collection:
            return "overlap_collection collects in a worker process"
    shapes = {tuple(p.shape for p in t.model.parameters()) for t in trainers}
    if len(shapes) > 1:
        return "the seeds' networks differ in shape"
    return None


def train_together(
    trainers: Sequence[Any],
    *,
    moving: Mapping[int, Connection] | None = None,
    arrivals: Arrivals | None = None,
) -> tuple[list[Any], StackedCalls | None, str | None]:
    """Train every run to its end; returns each run's summary (or the exception that stopped
    it), the stacked calls made (None when the runs went one after the other) and why they were
    not stacked (None when they were).

    The runs are stacked when :func:`stack_support` allows it, else trained one after the other
    (the same numbers; a lockstep of unstacked calls would only interleave them).

    ``moving`` (index → pipe) names runs trained here only to half their budget and then handed
    to another process through the pipe (their result: :data:`MOVED`); ``arrivals`` brings
    such runs from other processes, each joining the lockstep at an iteration's start and
    appended to the results in the order they came (:class:`Arrivals`). Unstacked, a run to
    move is trained whole here instead."""
    moving = moving or {}
    reason = stack_support(trainers) if len(trainers) > 1 or arrivals is not None else "one seed"
    if reason is not None:
        for conn in moving.values():
            _tell(conn, None)  # trained whole here, and reported here
        results = [_train_alone(t) for t in trainers]
        if arrivals is not None:  # none comes from a process that could not stack either
            results += drive_together([], _one_by_one, arrivals)
        return results, None, reason
    calls = StackedCalls()
    runs = [
        _first_half(t, moving[i]) if i in moving else t.train_steps(t.open_logger())
        for i, t in enumerate(trainers)
    ]
    return drive_together(runs, calls, arrivals), calls, None


def _one_by_one(requests: list[Request]) -> list[Any]:
    return [getattr(r.target, r.method)(*r.args) for r in requests]


def _train_alone(trainer: Any) -> Any:
    try:
        return trainer.train()
    except Exception as exc:  # noqa: BLE001  (returned: reported per run)
        return exc


class _Moved:
    def __repr__(self) -> str:
        return "MOVED"


MOVED = _Moved()
"""The result of a run whose second half another process trained (and reports)."""


def _tell(conn: Connection, message: int | None) -> None:
    """Send the step a moved run paused at (None: it will not come) and close the pipe; a
    receiver that is gone already has nothing to wait for."""
    try:
        conn.send(message)
    except OSError:
        pass
    finally:
        conn.close()


def _first_half(trainer: Any, conn: Connection) -> Steps[Any]:
    """Train ``trainer`` to half its budget, then pass it on: the checkpoint is written there
    and the run directory released, and the step goes through ``conn`` to the process that
    resumes it (:class:`Arrivals`). A run whose checkpoint would not continue its episodes
    exactly (:meth:`~ppox.training.trainer.Trainer.resumes_exactly`), or that ends or fails
    before, stays here: ``conn`` then says None."""
    pause_at = max(1, trainer.cfg.run.total_steps // 2) if trainer.resumes_exactly() else None
    try:
        summary = yield from trainer.train_steps(trainer.open_logger(), pause_at)
    except BaseException:
        _tell(conn, None)
        raise
    _tell(conn, None if summary is not None else trainer.progress.global_step)
    return MOVED if summary is None else summary


class Arrivals:
    """Runs whose first half other processes train (:func:`deal`), each announced through its
    pipe by the step it paused at, and then resumed here from its checkpoint by ``resume(seed)``
    (:func:`drive_together` takes them at the start of an iteration, in step with the runs it
    has)."""

    def __init__(self, incoming: Mapping[int, Connection], resume: Callable[[int], Any]) -> None:
        self.waiting = dict(incoming)
        self.resume = resume
        self.came: list[tuple[int, Any, int]] = []
        """``(seed, trainer, step)`` of every run taken, in the order of :meth:`take`."""
        self.failed: dict[int, str] = {}
        """Seeds that did not come: why (their first half's process ended, or the resume failed)."""

    def take(self, block: bool) -> list[Steps[Any]]:
        """The loops of the runs announced by now (with ``block``, waits for one pipe at least)."""
        ready = wait(list(self.waiting.values()), timeout=None if block else 0)
        runs: list[Steps[Any]] = []
        for seed in [s for s, c in self.waiting.items() if c in ready]:
            conn = self.waiting.pop(seed)
            try:
                step = conn.recv()
            except (EOFError, OSError):
                self.failed[seed] = (
                    "the process training its first half ended before handing it over"
                )
                continue
            finally:
                conn.close()
            if step is None:  # trained whole there, and reported there
                continue
            try:
                trainer = self.resume(seed)
                if trainer.progress.global_step != step:
                    trainer.release_run_dir()
                    raise RuntimeError(f"its checkpoint is at step {trainer.progress.global_step:,}, "
                                       f"not at step {step:,} where it was handed over")  # fmt: skip
            except Exception as exc:  # noqa: BLE001  (reported per seed)
                self.failed[seed] = _message(exc)
                continue
            self.came.append((seed, trainer, step))
            runs.append(trainer.train_steps(trainer.open_logger()))
        return runs


SeedOutcome = tuple[int, "dict[str, Any] | str", str, str]
"""``(seed, summary or error message, how it ran, run directory)``."""


def deal(
    seeds: Sequence[int], jobs: int, split: bool = False
) -> tuple[list[list[int]], dict[int, tuple[int, int]]]:
    """The seeds each of ``jobs`` processes starts, and the seeds split between two of them:
    ``{seed: (first half's process, second half's)}``.

    Without ``split`` the seeds are dealt round-robin. With it, every process gets
    ``len(seeds) // jobs`` whole seeds and each seed left over is split at half its budget: the
    first half goes to the process with the least work, the second to the next one, so that
    five seeds on two processes are two and a half each instead of three and two."""
    jobs = min(jobs, len(seeds))
    if not split or jobs < 2 or len(seeds) % jobs == 0:
        return [list(seeds[i::jobs]) for i in range(jobs)], {}
    whole = len(seeds) // jobs * jobs
    groups = [list(seeds[:whole][i::jobs]) for i in range(jobs)]
    load = [float(len(g)) for g in groups]
    moves: dict[int, tuple[int, int]] = {}
    for seed in seeds[whole:]:
        first = min(range(jobs), key=lambda w: (load[w], w))
        load[first] += 0.5
        second = min((w for w in range(jobs) if w != first), key=lambda w: (load[w], w))
        load[second] += 0.5
        groups[first].append(seed)
        moves[seed] = (first, second)
    return groups, moves


def train_seeds(
    make: Callable[[int], Any],
    seeds: Sequence[int],
    jobs: int,
    *,
    stack: bool = False,
    resume: Callable[[int], Any] | None = None,
    echo: Callable[[str], None] = print,
) -> list[SeedOutcome]:
    """Train one run per seed (``make(seed)`` builds its :class:`~ppox.training.trainer.Trainer`)
    in ``jobs`` processes forked from this one (start-up paid once), the seeds dealt round-robin.
    A process with several seeds trains them one after another, or with ``stack`` together
    (:func:`train_together`). With ``stack`` and ``resume`` (``resume(seed)`` continues a
    seed's run from its checkpoint), seeds that do not divide evenly among the processes are
    split at half their budget between two of them (:func:`deal`): a resumed run continues
    exactly, so every seed still ends as it would alone. Returns every seed's outcome in
    ``seeds``' order; a seed that fails does not stop the others."""
    groups, moves = deal(seeds, jobs, split=stack and resume is not None)
    if len(groups) == 1:
        alone = {outcome[0]: outcome for outcome in _train_group(make, groups[0], stack, echo)}
        return [alone[s] for s in seeds]
    ctx = multiprocessing.get_context("fork")
    pipes = {seed: ctx.Pipe(duplex=False) for seed in moves}  # (receiving end, sending end)
    procs = []
    for w, group in enumerate(groups):
        recv, send = ctx.Pipe(duplex=False)
        moving = {s: pipes[s][1] for s, (first, _) in moves.items() if first == w}
        incoming = {s: pipes[s][0] for s, (_, second) in moves.items() if second == w}
        mine = {id(c) for c in (*moving.values(), *incoming.values())}
        others = [c for ends in pipes.values() for c in ends if id(c) not in mine]
        handoff = _Handoff(moving, incoming, resume, others)
        proc = ctx.Process(
            target=_group_worker, args=(make, group, stack, send, handoff), daemon=False
        )
        proc.start()
        send.close()
        procs.append((proc, recv, group))
    for ends in pipes.values():  # the workers hold them now: a worker's death closes its ends
        for conn in ends:
            conn.close()
    outcomes: dict[int, SeedOutcome] = {}
    lost: dict[int, SeedOutcome] = {}
    for proc, recv, group in procs:
        try:
            for outcome in recv.recv():
                outcomes[outcome[0]] = outcome
        except EOFError:  # the worker died without a word (killed)
            proc.join()
            for seed in group:
                lost[seed] = (
                    seed,
                    f"its worker process ended (exit code {proc.exitcode})",
                    "–",
                    "",
                )
        proc.join()
    return [outcomes.get(s) or lost[s] for s in seeds]


class _Handoff(NamedTuple):
    """A worker's part in the seeds split between processes (:func:`deal`)."""

    moving: dict[int, Connection]  # seeds whose first half it trains: where to announce them
    incoming: dict[int, Connection]  # seeds whose second half it trains: where they come from
    resume: Callable[[int], Any] | None
    others: list[Connection]  # the other workers' ends, closed at the start


def _group_worker(
    make: Callable[[int], Any], group: list[int], stack: bool, conn: Any, handoff: _Handoff
) -> None:
    """A forked worker: train ``group``, send the outcomes back. Interrupted (Ctrl-C reaches the
    whole process group), it leaves quietly: its runs' checkpoints are intact and the parent
    says how to go on. Killed with it (a kill of the command leaves no process training on:
    every run's last checkpoint is intact, and ``--auto-resume`` continues them)."""
    from ppox.training.overlap import die_with_parent

    die_with_parent()
    for other in handoff.others:
        other.close()
    try:
        conn.send(_train_group(make, group, stack, print, handoff))
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        conn.close()


def _train_group(
    make: Callable[[int], Any],
    group: list[int],
    stack: bool,
    echo: Callable[[str], None],
    handoff: _Handoff | None = None,
) -> list[SeedOutcome]:
    built: list[tuple[int, Any]] = []
    outcomes: dict[int, SeedOutcome] = {}
    moving = dict(handoff.moving) if handoff else {}
    for seed in group:
        try:
            built.append((seed, make(seed)))
        except Exception as exc:  # noqa: BLE001  (reported per seed)
            outcomes[seed] = (seed, _message(exc), "not started", "")
            echo(_outcome_line(outcomes[seed]))
            if seed in moving:
                _tell(moving.pop(seed), None)
    arrivals = (
        Arrivals(handoff.incoming, handoff.resume)
        if handoff and handoff.incoming and handoff.resume
        else None
    )
    index = {seed: i for i, (seed, _) in enumerate(built)}
    if stack:
        results, calls, reason = train_together(
            [t for _, t in built],
            moving={index[s]: c for s, c in moving.items()},
            arrivals=arrivals,
        )
    else:
        results, calls, reason = (
            [_train_alone(t) for _, t in built],
            None,
            "--stack-seeds not given",
        )
    came = [(seed, trainer) for seed, trainer, _ in arrivals.came] if arrivals else []
    runs = [*built, *came]
    names = " ".join(str(s) for s, _ in built)
    if calls is not None:
        how = f"seeds {names} stacked in one process"
        moved = [s for (s, _), r in zip(built, results) if r is MOVED]
        how += "".join(f", seed {s}'s second half in another" for s in moved)
        how += (
            "".join(f", seed {s} from another at step {step:,}" for s, _, step in arrivals.came)
            if arrivals
            else ""
        )
    elif len(runs) > 1:
        how = f"one after another in one process ({reason})"
    else:
        how = "alone in its process"
    for (seed, trainer), result in zip(runs, results):
        if result is MOVED:
            continue  # reported by the process that trained its second half
        summary = _message(result) if isinstance(result, BaseException) else result
        outcome = (seed, summary, how, str(trainer.run_dir))
        outcomes[seed] = outcome
        echo(_outcome_line(outcome))
    for seed, why in arrivals.failed.items() if arrivals else ():
        outcomes[seed] = (seed, why, "–", "")
        echo(_outcome_line(outcomes[seed]))
    return list(outcomes.values())


def seed_line(seed: int, result: Any, run_dir: Any) -> str:
    """The line that reports how one seed's run ended: its summary, or the exception that
    stopped it (as :func:`train_together` returns them)."""
    summary = _message(result) if isinstance(result, BaseException) else result
    return _outcome_line((seed, summary, "", str(run_dir)))


def _message(exc: BaseException) -> str:
    from ppox.errors import PpoxError

    if isinstance(exc, PpoxError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _outcome_line(outcome: SeedOutcome) -> str:
    seed, result, _, run_dir = outcome
    if isinstance(result, str):
        return f"ppox: seed {seed} failed: {result}"
    ret = result.get("eval_return_mean")
    words = (
        "no evaluation"
        if ret is None
        else f"eval return {ret:.2f} ± {result['eval_return_std']:.2f}"
    )
    return f"ppox: seed {seed}: {result['total_steps']:,} steps, {words} → {run_dir}"
