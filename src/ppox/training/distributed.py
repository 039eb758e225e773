"""Distributed overlay: synchronous data-parallel PPO on ``torch.distributed`` (docs/distributed.md).

``torchrun --nproc-per-node W -m ppox train ...`` starts W workers (ranks). Each runs the whole
loop on its own environments; they agree only at the few places below, where the trainer, the
learner and the normalizers call these helpers:

- parameters are broadcast from rank 0 at start and after a resume (:func:`broadcast_`);
- gradients are averaged with one all-reduce of the learner's flat gradient buffer per
  minibatch (:func:`all_reduce_mean_`; CleanRL ``ppo_atari_multigpu.py``), and clipped after
  it, so every rank takes the same optimizer step and the replicas stay bit-identical; on one
  machine the workers exchange it through shared memory (:func:`all_reduce_sum_`);
- normalizer statistics and advantage statistics are merged exactly across ranks
  (:func:`merge_across_ranks`, the parallel-variance formula folded in rank order, so every
  rank gets the same bits; Chan, Golub & LeVeque, "Updating Formulae and a Pairwise Algorithm
  for Computing Sample Variances");
- decisions that precede a collective (target-KL early stop, the KL coefficient, skipping a
  step) are taken on all-reduced values (:func:`all_reduce_sums`), so no rank waits alone;
- rank 0 decides what touches the run directory and tells the others (:func:`main_decides`).

Without torchrun (or with ``WORLD_SIZE=1``) every helper is a no-op that answers "rank 0 of a
world of 1", so the single-process path does exactly what it did before this module existed.

The process group is joined lazily by :func:`init` (the trainer calls it): backend ``auto`` is
gloo for CPU tensors plus NCCL for CUDA tensors when CUDA is present (``cpu:gloo,cuda:nccl``),
overridable with ``ppox train --dist-backend`` or ``PPOX_DIST_BACKEND``; collectives time out
after ``PPOX_DIST_TIMEOUT`` seconds (default 1800), so a dead peer ends the group with an error
that torchrun can act on (restart with ``--max-restarts``) instead of a hang.
"""

from __future__ import annotations

import os
import platform
import socket
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from ppox.core.losses import normalize_advantages as _normalize_local
from ppox.core.normalize import Moments, merge_moments
from ppox.errors import ConfigError

BACKEND_ENV = "PPOX_DIST_BACKEND"
TIMEOUT_ENV = "PPOX_DIST_TIMEOUT"
BACKENDS = ("gloo", "nccl", "mpi", "ucc")
DEFAULT_TIMEOUT_S = 1800.0
"""Seconds a collective may wait: long enough for rank 0's evaluation and checkpoint writes,
which the other ranks wait out in their next collective."""

T = TypeVar("T")


# --- the process group --------------------------------------------------------------------------
def launched_world_size() -> int:
    """``WORLD_SIZE`` as torchrun set it (1 without torchrun); readable before :func:`init`."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """This worker's index on its machine (``LOCAL_RANK``; picks the GPU)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def init(backend: str | None = None, timeout_s: float | None = None) -> None:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
    ``MASTER_PORT``). Does nothing in a single process or when the group already exists (a
    caller that set one up itself keeps it).

    ``backend``: ``auto`` (default; ``PPOX_DIST_BACKEND`` overrides it: gloo, plus NCCL for
    CUDA tensors when CUDA is present), ``gloo``, ``nccl``, ``mpi``, ``ucc`` or a per-device
    list such as ``cpu:gloo,cuda:nccl``. ``timeout_s``: how long a collective may wait for the
    others (``PPOX_DIST_TIMEOUT``, default 1800).
    """
    if torch.distributed.is_initialized() or launched_world_size() <= 1:
        return
    name = backend or os.environ.get(BACKEND_ENV) or "auto"
    if name == "auto":
        name = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if not all(part.rpartition(":")[2] in BACKENDS for part in name.split(",")):
        raise ConfigError(
            f"dist backend {name!r} is unknown: use auto, {', '.join(BACKENDS)} or a per-device list such as cpu:gloo,cuda:nccl"
        )
    if "nccl" in name:
        if not torch.cuda.is_available():
            raise ConfigError(
                f"dist backend {name!r} needs CUDA, which this machine lacks; use gloo"
            )
        torch.cuda.set_device(local_rank() % torch.cuda.device_count())
    timeout = timedelta(
        seconds=timeout_s or float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    )
    try:
        torch.distributed.init_process_group(name, timeout=timeout, **_attempt_store(timeout))
    except ValueError as exc:  # a backend this torch build lacks
        raise ConfigError(f"dist backend {name!r} cannot be started: {exc}") from None


def _attempt_store(timeout: timedelta) -> dict[str, Any]:
    """After ``torchrun --max-restarts`` restarts the group, the new workers meet in the same
    agent store as the dead ones (same MASTER_PORT), where gloo finds the dead workers' addresses
    still under the keys it reads, and a new worker can connect to them before its peer has
    overwritten them ("Connection refused"; seen with torch 2.13). On a single machine every
    worker shares one agent, so ``TORCHELASTIC_RESTART_COUNT`` names the attempt alike for all:
    each attempt gets its own key prefix. Across machines the agents count restarts apart, so
    torch's own store is used as it is."""
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is None or os.environ.get("LOCAL_WORLD_SIZE") != os.environ.get("WORLD_SIZE"):
        return {}
    store, rank, world = next(torch.distributed.rendezvous("env://", timeout=timeout))
    return {
        "store": torch.distributed.PrefixStore(f"ppox/attempt-{attempt}", store),
        "rank": rank,
        "world_size": world,
    }


def shutdown() -> None:
    """Leave the process group (if any); the end of a ``ppox train`` process. Every rank first
    waits for the others at a barrier: a rank that tears its connections down while a peer still
    exchanges with it can make gloo abort the process."""
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    _SHARED.clear()
    _ONE_MACHINE.clear()


def world_size() -> int:
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def is_main() -> bool:
    """Rank 0 logs, evaluates and writes checkpoints."""
    return rank() == 0


def backend() -> str | None:
    """The process group's backend (None in a single process)."""
    return str(torch.distributed.get_backend()) if torch.distributed.is_initialized() else None


# --- collectives (no-ops in one process) --------------------------------------------------------
def _comm(t: Tensor) -> Tensor:
    """``t`` on a device the backend can reduce: a pure NCCL group takes CUDA tensors only."""
    if t.device.type == "cpu" and backend() == "nccl":
        return t.cuda()
    return t


def _in_place(t: Tensor, op: Callable[[Tensor], None]) -> Tensor:
    buf = _comm(t)
    op(buf)
    if buf is not t:
        t.copy_(buf)
    return t


ALLREDUCE_ENV = "PPOX_ALLREDUCE"
ALLREDUCE_MODES = ("auto", "shared", "doubling", "collective")


def all_reduce_sum_(t: Tensor) -> Tensor:
    """Sum ``t`` over all ranks, in place; returns ``t``. Every rank ends with the same bits.

    CPU tensors on a gloo group take the fastest route that applies (``PPOX_ALLREDUCE`` picks
    one: ``auto``, the default, or ``shared``, ``doubling``, ``collective``):

    - ``shared``, when every rank runs on this machine (x86-64): through a shared-memory
      segment that the workers read and write themselves (:class:`_SharedSum`). gloo moves data
      in background threads; on a machine whose cores are all busy with workers, each exchange
      then waits for the scheduler to run them, about 1 ms, which at one exchange per minibatch
      was most of a 2-worker run's time.
    - ``doubling``, for a power-of-two world: recursive doubling over point-to-point exchanges
      (log2 W rounds of "send mine, receive my partner's, add"; 2 ranks, 11k floats: ~0.16 ms
      against ~1.3 ms for gloo's all_reduce on a 2-core machine).
    - ``collective``: gloo's all_reduce (any world; what other backends always use).
    """
    w = world_size()
    if w == 1:
        return t
    mode = os.environ.get(ALLREDUCE_ENV) or "auto"
    if mode not in ALLREDUCE_MODES:
        raise ConfigError(f"{ALLREDUCE_ENV}={mode!r} is not one of {ALLREDUCE_MODES}")
    if backend() == "gloo" and t.device.type == "cpu" and mode != "collective":
        if mode in ("auto", "shared") and _one_machine():
            return _shared_sum(t)
        if w & (w - 1) == 0:
            return _doubling_sum_(t)
    return _in_place(
        t, lambda b: torch.distributed.all_reduce(b, op=torch.distributed.ReduceOp.SUM)
    )


_ONE_MACHINE: list[bool] = []
_SHARED: dict[tuple[int, torch.dtype], _SharedSum] = {}


def _one_machine() -> bool:
    """Whether every rank runs on this machine, on x86-64 (decided once, by all ranks together).

    Shared-memory exchange relies on x86's ordering of stores (a counter written after the data
    is never seen before the data), so other architectures use the point-to-point route."""
    if not _ONE_MACHINE:
        boot = Path("/proc/sys/kernel/random/boot_id")
        me = (
            socket.gethostname(),
            boot.read_text().strip() if boot.exists() else "",
            platform.machine(),
        )
        everyone: list[Any] = [None] * world_size()
        torch.distributed.all_gather_object(everyone, me)
        _ONE_MACHINE.append(all(x == me for x in everyone) and me[2].lower() in ("x86_64", "amd64"))
    return _ONE_MACHINE[0]


def _shared_sum(t: Tensor) -> Tensor:
    key = (t.numel(), t.dtype)
    if key not in _SHARED:  # every rank reduces the same shapes in the same order: created in step
        _SHARED[key] = _SharedSum(*key)
    return _SHARED[key](t)


class _SharedSum:
    """Sums tensors of ``numel`` elements of ``dtype`` over the ranks of one machine through a
    file in shared memory (``/dev/shm`` where there is one), unlinked as soon as every rank has
    mapped it, so nothing is left behind even when a worker is killed.

    Layout: ``arrived[W]`` and ``left[W]`` (int64 call counters, one writer each), then one slot
    of ``numel`` values per rank. Call k on rank r: wait until every rank has left call k - 1
    (its slot is free), write the tensor into slot r, set ``arrived[r] = k``, wait until every
    ``arrived`` is k, sum the slots in rank order (every rank computes the same sum of the same
    data: the same bits), set ``left[r] = k``. Waiting spins and yields the CPU; a rank that does
    not arrive within ``PPOX_DIST_TIMEOUT`` seconds ends the wait with an error.
    """

    def __init__(self, numel: int, dtype: torch.dtype) -> None:
        w, r = world_size(), rank()
        itemsize = torch.empty((), dtype=dtype).element_size()
        header = 2 * w * 8
        nbytes = header + w * numel * itemsize
        path = main_decides(lambda: _new_shared_file(nbytes))
        mem = np.memmap(path, dtype=np.uint8, mode="r+", shape=(nbytes,))
        torch.distributed.barrier()  # everyone has it mapped: the name can go
        if r == 0:
            os.unlink(path)
        self.arrived = mem[: w * 8].view(np.int64)
        self.left = mem[w * 8 : header].view(np.int64)
        self.slots = torch.from_numpy(mem[header:]).view(dtype).view(w, numel)
        self.rank, self.calls, self.mem = r, 0, mem
        self.timeout = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)

    def __call__(self, t: Tensor) -> Tensor:
        self.calls += 1
        k = self.calls
        self._wait(self.left, k - 1)
        self.slots[self.rank].copy_(t.reshape(-1))
        self.arrived[self.rank] = k
        self._wait(self.arrived, k)
        if t.is_contiguous():
            torch.sum(self.slots, dim=0, out=t.view(-1))
        else:
            t.copy_(self.slots.sum(dim=0).view_as(t))
        self.left[self.rank] = k
        return t

    def _wait(self, counters: np.ndarray, k: int) -> None:
        if int(counters.min()) >= k:
            return
        deadline, spins = time.monotonic() + self.timeout, 0
        while int(counters.min()) < k:
            spins += 1
            if spins % 64 == 0:
                os.sched_yield()
                if time.monotonic() > deadline:
                    missing = [i for i, c in enumerate(counters.tolist()) if c < k]
                    raise RuntimeError(
                        f"ppox: rank(s) {missing} did not reach the exchange within {self.timeout:.0f} s"
                    )


def _new_shared_file(nbytes: int) -> str:
    """A new zero-filled file of ``nbytes`` in shared memory (the temp dir where there is none)."""
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix="ppox-allreduce-", dir=folder)
    with os.fdopen(fd, "wb") as f:
        f.truncate(nbytes)
    return path


def _doubling_sum_(t: Tensor) -> Tensor:
    buf = t if t.is_contiguous() else t.contiguous()
    other = torch.empty_like(buf)
    me, step = rank(), 1
    while step < world_size():
        peer = me ^ step
        for req in (torch.distributed.isend(buf, peer), torch.distributed.irecv(other, peer)):
            req.wait()  # type: ignore[union-attr]
        buf.add_(other)
        step <<= 1
    if buf is not t:
        t.copy_(buf)
    return t


def all_reduce_mean_(t: Tensor) -> Tensor:
    """Average ``t`` over all ranks, in place (the gradient all-reduce); returns ``t``."""
    if world_size() == 1:
        return t
    return all_reduce_sum_(t).div_(world_size())


def all_reduce_sums(*values: float) -> list[float]:
    """Each value summed over all ranks (float64), e.g. ``total, count`` for a global mean."""
    if world_size() == 1:
        return list(values)
    return all_reduce_sum_(torch.tensor(values, dtype=torch.float64)).tolist()


def broadcast_(t: Tensor, src: int = 0) -> Tensor:
    """Overwrite ``t`` with rank ``src``'s values, in place; returns ``t``."""
    if world_size() == 1:
        return t
    return _in_place(t, lambda b: torch.distributed.broadcast(b, src=src))


def main_decides(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and give every rank its result (or raise its exception on
    every rank), so that a decision about the run directory is taken once, from the machine
    that holds it, and no rank is left waiting in a collective when it fails."""
    if world_size() == 1:
        return fn()
    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = (True, fn())
        except Exception as exc:  # re-raised below, on every rank
            box[0] = (False, exc)
    torch.distributed.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


# --- statistics ---------------------------------------------------------------------------------
def _gather_fold(rows: Tensor) -> Tensor:
    """``[..., 3]`` rows of (count, mean, m2) from this rank → the same rows for every rank's
    data together, the same bits on every rank.

    The rows are all-gathered in float64 and folded with the exact parallel merge (Chan, Golub &
    LeVeque, "Updating Formulae and a Pairwise Algorithm for Computing Sample Variances") in rank
    order, so unequal counts (zero included) weigh right.
    """
    local = _comm(rows.detach().to("cpu", torch.float64).contiguous())
    parts = [torch.empty_like(local) for _ in range(world_size())]
    torch.distributed.all_gather(parts, local)
    acc = Moments(*parts[0].cpu().unbind(-1))
    for part in parts[1:]:
        acc = merge_moments(acc, Moments(*part.cpu().unbind(-1)))
    return torch.stack([acc.count, acc.mean, acc.m2], dim=-1)


def merge_across_ranks(m: Moments) -> Moments:
    """The moments of every rank's data together: each rank passes its own ``Moments`` (any
    count, zero included) and every rank gets the same answer (see :func:`_gather_fold`).
    Mean and m2 come back as NumPy float64 arrays of the input's feature shape."""
    if world_size() == 1:
        return m
    mean = torch.as_tensor(m.mean).detach().to("cpu", torch.float64)
    m2 = torch.as_tensor(m.m2).detach().to("cpu", torch.float64).reshape(-1)
    count = torch.full_like(m2, float(m.count))  # one row per feature, each with the count
    out = _gather_fold(torch.stack([count, mean.reshape(-1), m2], dim=-1))
    shape = tuple(mean.shape)
    return Moments(
        float(out[0, 0]), out[:, 1].reshape(shape).numpy(), out[:, 2].reshape(shape).numpy()
    )


def normalize_advantages_chunks(chunks: list[Tensor], eps: float = 1e-8) -> list[Tensor]:
    """Each ``chunks[j]`` standardized with the mean and std of chunk ``j`` of every rank
    together (the PPO × Family course's Q&A, A5: all-reduce the statistics, then normalize;
    docs/design/losses.md), all chunks in one collective: rank ``r``'s ``chunks[j]`` is its share
    of the global minibatch ``j``. The rules of :func:`ppox.core.normalize_advantages` hold over all ranks: fewer than two
    samples leave a chunk unchanged, all-equal values give zeros. A rank's share may be empty."""
    if world_size() == 1:
        return [_normalize_local(c, eps) for c in chunks]
    if not chunks:
        return []
    rows = []
    for c in chunks:
        x = c.detach().double()
        n = x.new_tensor(float(x.numel()))
        mean = x.mean() if x.numel() else x.new_zeros(())
        rows.append(torch.stack([n, mean, (x - mean).square().sum()]))
    stats = _gather_fold(torch.stack(rows)).tolist()
    out = []
    for c, (n, mean, m2) in zip(chunks, stats):
        out.append(c.clone() if n < 2 else (c - mean) / ((m2 / n) ** 0.5 + eps))
    return out


def normalize_advantages(adv: Tensor, eps: float = 1e-8) -> Tensor:
    """:func:`ppox.core.normalize_advantages` with the statistics of every rank's ``adv``
    together (a rank may hold none); see :func:`normalize_advantages_chunks`."""
    return normalize_advantages_chunks([adv], eps)[0]
