"""Helpers of the trust tests (checkpoints, run directories, imports named in files): tiny runs,
rewritten and crafted checkpoints, pickle payloads that would leave a marker file, and the CLI
in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ppox.cli import main
from ppox.io.checkpoint import FORMAT, load_checkpoint, save_checkpoint

TINY = ["--num-envs", "2", "--num-steps", "32", "--num-epochs", "1", "--total-steps", "128",
        "--eval-every", "0", "--eval-episodes", "1", "--checkpoint-every", "1",
        "--no-progress", "--no-tensorboard"]  # fmt: skip
"""A CartPole run of two iterations: everything a checkpoint holds, in a second."""


class Payload:
    """Unpickled, this object would create ``marker`` (its ``__reduce__`` calls ``open``): the
    stand-in for any code a crafted pickle could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def tiny_run(path: Path, *extra: str) -> Path:
    assert main(["train", *TINY, *extra, "--run-dir", str(path)]) == 0
    return path


def write_v1(state: dict[str, Any], path: Path) -> None:
    """A version-1 checkpoint as ppox wrote it before checksums: a bare ``torch.save``."""
    torch.save({**state, "format": FORMAT, "version": 1}, path)


def rewrite(run: Path, change: Callable[[dict[str, Any]], None], version: int = 2) -> None:
    """Load ``run``'s checkpoint, ``change`` it in place and write it back, checksummed
    (version 2) or as a bare version-1 file; either is what a crafted file could be."""
    state = load_checkpoint(run)
    change(state)
    for key in ("format", "version"):
        state.pop(key, None)
    if version == 1:
        write_v1(state, run / "checkpoint.pt")
    else:  # save_checkpoint itself would refuse non-finite values: write what it would
        import hashlib
        import io

        buf = io.BytesIO()
        torch.save({"format": FORMAT, "version": 2, **state}, buf)
        payload = buf.getvalue()
        head = f"ppox-checkpoint v2 sha256:{hashlib.sha256(payload).hexdigest()} bytes:{len(payload)}\n"
        (run / "checkpoint.pt").write_bytes(head.encode() + payload)


def ppox_cli(
    *args: str, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "ppox", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)  # fmt: skip


def in_process(capsys: Any, *args: str) -> subprocess.CompletedProcess:
    """``ppox ARGS`` through :func:`ppox.cli.main` in this process (what a subprocess would
    print, without its start-up time); an exception other than ppox's errors propagates."""
    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["ppox", *args], rc, out.out, out.err)


def assert_one_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit status 2, no traceback, exactly one ``ppox: error:`` line holding every needle."""
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("ppox: error:")]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


__all__ = ["TINY", "Payload", "assert_one_error", "in_process", "ppox_cli", "rewrite",
           "save_checkpoint", "tiny_run", "write_v1"]  # fmt: skip
