"""Overlapped collection (``run.overlap_collection``): the environments step for the next batch
while the learner updates on this one (docs/performance.md, "Overlapped collection").

A worker process, forked from the trainer once its collector is built (or restored from a
checkpoint), owns the collector from then on: the environments, the observation and reward
normalizers, the episode statistics and the sampling generator. Each iteration the trainer
receives the rollout the worker collected, sends the worker the policy as it is *before* this
iteration's update, and updates while the worker collects the next rollout with it. So every
rollout but the first is collected by the policy of one update earlier than a synchronous run
would use (a lag of one iteration): its stored log-probabilities and values are that policy's,
PPO's ratio and clipping are taken against it, as for any behaviour policy.

The lag is deterministic, so a run is reproducible: before each checkpoint (and the last
iteration) no collection is started, the worker is idle when its state is saved, and the
rollout after a checkpoint is collected with the policy just saved, whether the run continues
or is resumed from that checkpoint. After each rollout the trainer takes the worker's
normalizer statistics and episode statistics, so evaluations, logs and checkpoints read what a
synchronous run's would at the same point.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv
from torch import Tensor

from ppox.config import Config
from ppox.errors import ConfigError
from ppox.training.rollout import Collector
from ppox.types import Rollout

__all__ = ["OverlapWorker", "check_overlap"]


def check_overlap(cfg: Config, device: torch.device) -> None:
    """Raise :class:`ConfigError` when ``overlap_collection`` cannot serve this run (``cfg`` with
    its env backend resolved; the number of workers is checked by ``Config.validate_world``)."""
    if "fork" not in mp.get_all_start_methods():
        raise ConfigError("overlap_collection=True forks its collection worker, which this platform cannot "
                          "(no 'fork' start method); turn it off")  # fmt: skip
    if cfg.run.threads != 1:
        raise ConfigError(f"overlap_collection=True needs threads=1 (got {cfg.run.threads}): torch's thread pool "
                          "does not survive the fork that starts the collection worker, and the worker and the "
                          "learner already take a core each")  # fmt: skip
    if cfg.env.env_backend == "envpool":
        raise ConfigError("overlap_collection=True forks its collection worker, and EnvPool's threads do not "
                          "survive a fork; use env_backend='gymnasium' with it")  # fmt: skip
    if device.type != "cpu":
        raise ConfigError(f"overlap_collection=True collects in a CPU worker process; device={cfg.run.device!r} "
                          f"trains on {device}: turn one of them off")  # fmt: skip


class OverlapWorker:
    """The collector in a process of its own; :meth:`start` a rollout, then :meth:`result`."""

    def __init__(self, collector: Collector, sample_gen: torch.Generator) -> None:
        ctx = mp.get_context("fork")  # the child continues from the collector as it is now
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(collector, sample_gen, child, self.conn), daemon=True,
                                name="ppox-collector")  # fmt: skip
        self.proc.start()
        child.close()
        self.pending = False

    def start(self, model_state: dict[str, Tensor]) -> None:
        """Collect the next rollout with these parameters (the model's ``state_dict``)."""
        assert not self.pending, "one rollout at a time"
        self._send("collect", {k: v.detach().numpy().copy() for k, v in model_state.items()})
        self.pending = True

    def result(self) -> tuple[Rollout, dict[str, Any]]:
        """The rollout started last, with the worker's state after it: ``obs_norm`` and
        ``stats`` (state dicts) and ``skipped`` (transitions skipped in it)."""
        assert self.pending, "start() first"
        # interrupted here (Ctrl-C), it is still pending: close() kills it
        fields, after = self._recv()
        self.pending = False
        return Rollout(*(_tensors(x) for x in fields)), after

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds of collection (the worker idle): ``collector`` and
        ``reward_scaler`` state dicts and the sampling generator's state ``sample``."""
        assert not self.pending, "the worker is collecting"
        self._send("state", None)
        return self._recv()  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the worker (its environments closed). A worker in the middle of a rollout (the run
        stopped by an error or Ctrl-C) or one that does not answer is killed: its state is not
        needed, the last checkpoint holds the run."""
        if self.proc.is_alive() and not self.pending:
            try:
                self._send("close", None)
                self._recv()
            # closing a run that already failed: its own error is the one to report
            except Exception:
                pass
            self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()

    def _send(self, cmd: str, arg: Any) -> None:
        self.conn.send((cmd, arg))

    def _recv(self) -> Any:
        try:
            kind, value = self.conn.recv()
        except EOFError:
            raise RuntimeError(
                f"the collection worker (overlap_collection) ended unexpectedly (exit code {self.proc.exitcode})"
            ) from None
        if kind == "error":  # the worker's exception, as collection in this process raises it
            raise value
        return value


def _arrays(x: Any) -> Any:
    """Tensors (alone or in a dict) as NumPy arrays: pickled as raw buffers, where a pickled
    tensor goes through torch's serializer (about 0.2 ms each, milliseconds per rollout)."""
    if isinstance(x, Tensor):
        return x.numpy()
    if isinstance(x, dict):
        return {k: _arrays(v) for k, v in x.items()}
    return x


def _tensors(x: Any) -> Any:
    """The inverse of :func:`_arrays` (sharing the received arrays' memory)."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if isinstance(x, dict):
        return {k: _tensors(v) for k, v in x.items()}
    return x


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling both ways (ppox's own errors do), else a RuntimeError with
    its type and message: some exceptions pickle but cannot be rebuilt on the other side."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def die_with_parent() -> None:
    """Linux: have the kernel end this (forked) process when its parent ends, however it ends."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the trainer was gone before the request took effect
            os._exit(0)
    except (OSError, AttributeError):  # not Linux: the closed pipe end above ends the loop
        pass


def _serve(
    collector: Collector, sample_gen: torch.Generator, conn: Connection, trainers_end: Connection
) -> None:
    """The worker's loop: one command at a time until ``close`` or the trainer goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the trainer, which stops this
    # the trainer's end of the pipe, inherited by the fork: closed here, so that the trainer's
    # death (a kill, a crash) ends this loop at the next read instead of leaving it waiting
    trainers_end.close()
    die_with_parent()
    # never a thread pool inherited across the fork (threads=1 is required)
    torch.set_num_threads(1)
    while True:
        try:
            cmd, arg = conn.recv()
        except (EOFError, OSError):
            break
        try:
            if cmd == "collect":
                collector.model.load_state_dict({k: torch.from_numpy(v) for k, v in arg.items()})
                rollout = collector.collect()
                out: Any = ([_arrays(x) for x in rollout], {"obs_norm": collector.obs_norm.state_dict(),
                                      "stats": collector.stats.state_dict(),
                                      "skipped": collector.buffer.skipped})  # fmt: skip
            elif cmd == "state":
                out = {"collector": collector.state_dict(), "reward_scaler": collector.reward_scaler.state_dict(),
                       "sample": sample_gen.get_state()}  # fmt: skip
            else:
                # the envs stepped in this process; AsyncVectorEnv's env processes are the
                # trainer's children: it closes them
                if not isinstance(collector.envs, AsyncVectorEnv):
                    collector.envs.close()
                conn.send(("ok", None))
                break
        except BaseException as exc:  # handed to the trainer, which raises it
            conn.send(("error", _portable(exc)))
            continue
        conn.send(("ok", out))
    conn.close()
