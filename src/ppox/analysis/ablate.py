"""Ablations: a base config and named variants, each trained on several seeds (docs/metrics.md).

``ppox ablate --variant "ent: ent_coef=0.01" --seeds 1 2 3 --out abl`` lays out::

    abl/ablation.json                 base overrides, variants, seeds, the command
    abl/configs/<variant>.json        the resolved config of each variant (base included)
    abl/runs/<variant>-s<seed>/       one ppox run directory per (variant, seed)
    abl/logs/<variant>-s<seed>.log    that run's output
    abl/report.md, report.json, curves.png   (ppox.analysis.report)

Every run is its own ``ppox train`` process (forked from the command's, or a new interpreter;
not a multiprocessing pool, so a run may start its own env worker processes), at most ``jobs`` at
a time, each with one torch thread. With ``stack`` (``--vectorize-seeds``) a variant's seeds are
trained in one process on stacked weights (:func:`ppox.training.stacked.train_together`) and
write one log, ``abl/logs/<variant>-s<seed>+<seed>....log``. Running the same command again skips
finished runs (they have ``summary.json``), resumes killed ones from their checkpoint, and
restarts those killed before their first checkpoint.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ppox.config import RECORD_KEYS, Config, field_sections, parse_field_value
from ppox.errors import ConfigError, PpoxError
from ppox.io.trust import imports_named

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
# split "a=1, hidden_sizes=64,64, b=2" at the commas that start a new `field=`
ITEM = re.compile(r",\s*(?=[A-Za-z_][A-Za-z0-9_-]*\s*=)")
PER_RUN = ("seed", "run_dir", "progress")  # set by ablate for every run


@dataclass(frozen=True)
class Variant:
    """A named set of config changes on top of the base config."""

    name: str
    overrides: dict[str, Any]


@dataclass(frozen=True)
class Job:
    """One (variant, seed) run."""

    variant: str
    seed: int
    config: Config
    run_dir: Path

    @property
    def name(self) -> str:
        return f"{self.variant}-s{self.seed}"


def parse_variant(text: str) -> Variant:
    """``"NAME: field=value[, field=value...]"`` → :class:`Variant`; values are parsed as the
    ``ppox train`` flags parse them (booleans as true/false). Raises :class:`ConfigError` naming the
    variant and the field."""

    name, colon, body = (s.strip() for s in text.partition(":"))
    if not colon or not NAME.match(name):
        raise ConfigError(
            f"--variant {text!r}: expected 'NAME: field=value[, field=value...]' with a NAME of "
            "letters, digits, '_', '.', '+', '-'"
        )
    if name == "base":
        raise ConfigError("--variant: the name 'base' is reserved for the base config")
    overrides: dict[str, Any] = {}
    for item in ITEM.split(body) if body else []:
        key, eq, value = (s.strip() for s in item.partition("="))
        key = key.replace("-", "_")
        if not eq or not key:
            raise ConfigError(f"variant {name!r}: {item.strip()!r} is not field=value")
        if key not in field_sections():
            raise ConfigError(
                f"variant {name!r}: unknown config field {key!r} (see `ppox train --help`)"
            )
        if key in PER_RUN or key in overrides:
            raise ConfigError(
                f"variant {name!r}: field {key!r} is "
                + ("set per run by ppox ablate" if key in PER_RUN else "given twice")
            )
        try:
            overrides[key] = parse_field_value(key, value)
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            raise ConfigError(
                f"variant {name!r}: {key}={value!r} is not a valid value ({exc})"
            ) from None
    if not overrides:
        raise ConfigError(f"variant {name!r} changes no field")
    return Variant(name, overrides)


def plan(base: Config, variants: list[Variant], seeds: list[int], out: Path) -> list[Job]:
    """Every (variant, seed) run, base first. Validates every variant's config, and that runs already
    in ``out`` were trained with the same config, before anything starts."""
    names = ["base"] + [v.name for v in variants]
    if len(set(names)) < len(names):
        raise ConfigError(f"variant names must be unique (got {', '.join(names)})")
    if not seeds or len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seeds must be distinct and at least one (got {seeds})")
    jobs = []
    for v in [Variant("base", {}), *variants]:
        try:
            cfg = base.replace(**v.overrides).validate()
        except ConfigError as exc:
            raise ConfigError(f"variant {v.name!r}: {exc}") from None
        for s in seeds:
            run_dir = out / "runs" / f"{v.name}-s{s}"
            job = Job(v.name, s, cfg.replace(seed=s, run_dir=str(run_dir), progress=False), run_dir)
            _check_existing(job)
            jobs.append(job)
    return jobs


def _flat(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in json.loads(json.dumps(cfg)).items() if k not in PER_RUN}


def _check_existing(job: Job) -> None:
    path = job.run_dir / "config.json"
    if not path.is_file():
        return
    recorded = json.loads(path.read_text())
    have = _flat(
        {k: v for name, s in recorded.items() if name not in RECORD_KEYS for k, v in s.items()}
    )
    want = _flat({k: v for s in job.config.to_dict().values() for k, v in s.items()})
    # fields the run did not record (added to ppox since) are taken to be unchanged
    diff = [
        f"{k}: {have[k]!r} → {want[k]!r}"
        for k in sorted(set(have) & set(want))
        if have[k] != want[k]
    ]
    if diff:
        raise ConfigError(
            f"{job.run_dir} was trained with another config ({'; '.join(diff)}); use another --out"
        )


def write_manifest(
    out: Path,
    jobs: list[Job],
    *,
    preset: str,
    overrides: dict[str, Any],
    variants: list[Variant],
    command: str,
) -> None:
    """``ablation.json`` and ``configs/<variant>.json`` (what ``ppox report`` and the runs read)."""
    (out / "configs").mkdir(parents=True, exist_ok=True)
    for job in {j.variant: j for j in jobs}.values():
        cfg = job.config.replace(seed=jobs[0].config.run.seed, run_dir=None)
        (out / "configs" / f"{job.variant}.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    manifest = {
        "preset": preset,
        "overrides": overrides,
        "variants": {v.name: v.overrides for v in variants},
        "seeds": sorted({j.seed for j in jobs}),
        "command": command,
        "commit": source_commit(),
    }
    (out / "ablation.json").write_text(json.dumps(manifest, indent=2))


def source_commit() -> str | None:
    """The git commit ppox runs from (with ``+dirty`` for uncommitted changes), or None when it
    is not a git checkout (an installed package)."""
    root = Path(__file__).resolve().parents[3]  # src/ppox/analysis/ablate.py → the checkout
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def command(job: Job, out: Path) -> list[str] | None:
    """The ``ppox train`` command that finishes ``job``, or None when it is already finished."""
    ppox = [sys.executable, "-m", "ppox", "train"]
    if (job.run_dir / "summary.json").is_file():
        return None
    # the job's config is the user's own (preset, flags, variants): its runs may import the
    # modules it names, from the files ablate writes for them (docs/trust.md)
    trust = ["--trust-imports"] if imports_named(job.config) else []
    if (job.run_dir / "checkpoint.pt").is_file():
        return [*ppox, "--resume", str(job.run_dir), *trust]
    if job.run_dir.exists():  # killed before its first checkpoint: nothing to resume from
        shutil.rmtree(job.run_dir)
    return [
        *ppox,
        "--config",
        str(out / "configs" / f"{job.variant}.json"),
        "--seed",
        str(job.seed),
        "--run-dir",
        str(job.run_dir),
        "--no-progress",
        *trust,
    ]


class _Forked:
    """A run in a process forked from this one (what :func:`run_jobs` reads of a ``Popen``)."""

    def __init__(self, main: Callable[[list[str]], int], argv: list[str], log: Any) -> None:
        self.proc = multiprocessing.get_context("fork").Process(
            target=_forked_main, args=(main, argv, log.fileno())
        )
        self.proc.start()

    @property
    def returncode(self) -> int | None:
        return self.proc.exitcode

    def poll(self) -> int | None:
        return self.proc.exitcode

    def terminate(self) -> None:
        self.proc.terminate()

    def wait(self) -> None:
        self.proc.join()


def _forked_main(main: Callable[[list[str]], int], argv: list[str], log_fd: int) -> None:
    """The forked run: its output to the run's log (as a ``ppox train`` process's), then the command."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    # Python's streams on those descriptors (a caller may have replaced sys.stdout, as pytest does)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


NOT_STACKED = 75
"""The exit code of a stacked group whose runs cannot be stacked (they then train one per process)."""


def run_jobs(
    jobs: list[Job],
    out: Path,
    *,
    max_jobs: int,
    echo: Callable[[str], None] = print,
    fork_main: Callable[[list[str]], int] | None = None,
    stack: bool = False,
) -> list[str]:
    """Run the unfinished jobs, ``max_jobs`` processes at a time; returns the names of the runs
    that failed.

    Each job is its ``ppox train`` command (:func:`command`), run as a new process, or with
    ``fork_main`` (the command line's ``main``) in a process forked from this one, which skips
    the interpreter's and torch's start-up (about a second a run) and trains the same numbers.
    With ``stack`` a variant's unfinished seeds are dealt into groups (as many per variant as
    ``max_jobs`` leaves room for, at least one), and each group trains in one forked process on
    stacked weights (:func:`_stacked_group`); a group whose runs cannot be stacked
    (:func:`ppox.training.stacked.stack_support`) says why and its runs go back one per process."""
    todo = [(j, cmd) for j in jobs if (cmd := command(j, out)) is not None]
    echo(
        f"ppox: {len(jobs) - len(todo)} of {len(jobs)} runs already finished; {len(todo)} to run, {max_jobs} at a time"
        + (" (a variant's seeds stacked in one process)" if stack and todo else "")
    )
    splits: dict[str, _Split] = {}  # by group name: the seeds a group shares with another
    units = _groups(todo, max_jobs, splits) if stack else [[item] for item in todo]
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    # process → (its group, the runs it ends, start time, log)
    running: dict[Any, tuple[list[Job], list[Job], float, Any]] = {}
    failed: list[str] = []
    done = 0
    try:
        while units or running:
            while units and len(running) < max_jobs:
                unit = units.pop(0)
                group = [job for job, _ in unit]
                split = splits.pop(_group_name(group), None)
                if len(unit) == 1 and split is None:
                    job, cmd = unit[0]
                    log = (out / "logs" / f"{job.name}.log").open("ab")
                    log.write(f"$ {' '.join(cmd)}\n".encode())
                    log.flush()
                    if fork_main is not None:
                        proc: Any = _Forked(fork_main, cmd[3:], log)  # argv after `python -m ppox`
                    else:
                        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                else:
                    log = (out / "logs" / f"{_group_name(group)}.log").open("ab")
                    log.write(
                        f"$ ppox ablate: {', '.join(j.name for j in group)} stacked in one process\n".encode()
                    )
                    log.flush()
                    proc = _Forked(
                        functools.partial(_stacked_group, jobs=group, out=out, split=split), [], log
                    )
                    if split is not None:
                        split.close_own()  # the forked group holds them now
                finishes = group if split is None else split.finishes(group)
                running[proc] = (group, finishes, time.time(), log)
            time.sleep(0.1)
            for proc in [p for p in running if p.poll() is not None]:
                group, finishes, t0, log = running.pop(proc)
                log.close()
                if len(group) > 1 and proc.returncode == NOT_STACKED:
                    why = Path(log.name).read_text(errors="replace").strip().splitlines()[-1]
                    echo(f"ppox: {_group_name(group)} not stacked ({why.removeprefix('ppox: not stacked: ')}); "
                         "its runs train one per process")  # fmt: skip
                    units[:0] = [[(j, cmd)] for j in group if (cmd := command(j, out)) is not None]
                    continue
                if len(group) == 1 and finishes == group:
                    lost = [group[0].name] if proc.returncode else []
                else:  # a stacked group: the runs it did not finish
                    lost = [j.name for j in finishes if not (j.run_dir / "summary.json").is_file()]
                done += len(finishes)
                status = (
                    "done"
                    if not lost
                    else f"FAILED{'' if len(group) == 1 else ' ' + ', '.join(lost)} "
                    f"(exit {proc.returncode}; see {log.name})"
                )
                failed += lost
                echo(
                    f"ppox: [{done}/{done + sum(map(len, units)) + sum(len(f) for _, f, _, _ in running.values())}] "
                    f"{_group_name(group)} {status} in {time.time() - t0:.0f} s"
                )
    finally:
        for proc, entry in running.items():  # interrupted: stop our children, keep checkpoints
            proc.terminate()
            proc.wait()
            entry[-1].close()
    return failed


def _groups(
    todo: list[tuple[Job, list[str]]], max_jobs: int, splits: dict[str, _Split]
) -> list[list[tuple[Job, list[str]]]]:
    """Each variant's runs dealt into ``max(1, max_jobs // variants)`` groups
    (:func:`ppox.training.stacked.deal`): round-robin, and a seed left over split at half its
    budget between two of the variant's groups, which run at the same time (all the groups fit
    in ``max_jobs``). ``splits`` receives, by group name, the pipes of the seeds a group shares."""
    from ppox.training.stacked import deal

    by_variant: dict[str, list[tuple[Job, list[str]]]] = {}
    for item in todo:
        by_variant.setdefault(item[0].variant, []).append(item)
    per = max(1, max_jobs // max(1, len(by_variant)))
    units = []
    for items in by_variant.values():
        groups, moves = deal(range(len(items)), per, split=True)
        made = [[items[i] for i in g] for g in groups if g]
        for i, (first, second) in moves.items():
            recv, send = multiprocessing.get_context("fork").Pipe(duplex=False)
            job = items[i][0]
            a, b = (_group_name([j for j, _ in made[w]]) for w in (first, second))
            splits.setdefault(a, _Split()).moving[job.name] = send
            splits.setdefault(b, _Split()).incoming[job.name] = (job, recv)
        units += made
    every = [c for split in splits.values() for c in split.ends()]
    for split in splits.values():
        split.others = [c for c in every if all(c is not mine for mine in split.ends())]
    return units


@dataclass
class _Split:
    """A stacked group's part in the seeds split between two groups
    (:func:`ppox.training.stacked.deal`): pipes to announce the seeds whose first half it trains,
    and to receive those whose second half it trains."""

    # run name → the sending end (first halves trained here)
    moving: dict[str, Any] = field(default_factory=dict)
    # run name → (the run, the receiving end) (second halves trained here)
    incoming: dict[str, tuple[Job, Any]] = field(default_factory=dict)
    # the other groups' ends, inherited by the fork: closed in the group
    others: list[Any] = field(default_factory=list)

    def ends(self) -> list[Any]:
        return [*self.moving.values(), *(c for _, c in self.incoming.values())]

    def close_own(self) -> None:
        for conn in self.ends():
            conn.close()

    def finishes(self, group: list[Job]) -> list[Job]:
        """The runs the group ends: its own but those it passes on, and those it receives."""
        kept = [j for j in group if j.name not in self.moving]
        return kept + [j for j, _ in self.incoming.values()]


def _group_name(group: list[Job]) -> str:
    """``base-s1`` for one run, ``base-s1+3+5`` for a stacked group."""
    return f"{group[0].name}" + "".join(f"+{j.seed}" for j in group[1:])


def _stacked_group(
    argv: list[str], *, jobs: list[Job], out: Path, split: _Split | None = None
) -> int:
    """A forked process: train ``jobs`` (one variant's seeds) together on stacked weights, each
    run as its own ``ppox train`` command would (a new run from the variant's config file, or a
    resume from its checkpoint); with ``split``, passing on the second half of some and taking
    over the second half of others (:func:`ppox.training.stacked.train_together`). Exit code 0
    when every run it ends finished, 1 when one failed, and :data:`NOT_STACKED` (nothing
    trained) when the runs cannot be stacked."""
    from ppox.config import read_config_file
    from ppox.training.stacked import MOVED, Arrivals, seed_line, stack_support, train_together
    from ppox.training.trainer import Trainer

    split = split or _Split()
    for conn in split.others:
        conn.close()

    def resume(job: Job) -> Trainer:
        return Trainer.resume(job.run_dir, trust_imports=bool(imports_named(job.config)))

    trainers = []
    try:
        for job in jobs:
            if (job.run_dir / "checkpoint.pt").is_file():
                trainers.append(resume(job))
            else:  # `ppox train --config configs/<variant>.json --seed S --run-dir DIR --no-progress`
                path = out / "configs" / f"{job.variant}.json"
                cfg = read_config_file(path).replace(
                    seed=job.seed, run_dir=str(job.run_dir), progress=False
                )
                trainers.append(Trainer.create(cfg, origin={"config": str(path)}))
    except PpoxError as exc:  # as `ppox train` reports it
        print(f"ppox: error: {exc}", flush=True)
        return 1
    shared = bool(split.moving or split.incoming)  # a split group that cannot stack trains nothing
    reason = stack_support(trainers) if len(trainers) > 1 or shared else None
    if reason is not None:
        for t in trainers:
            t.envs.close()
        print(f"ppox: not stacked: {reason}", flush=True)
        return NOT_STACKED
    moving = {i: split.moving[j.name] for i, j in enumerate(jobs) if j.name in split.moving}
    incoming = {job.seed: (job, conn) for job, conn in split.incoming.values()}
    arrivals = (
        Arrivals({s: c for s, (_, c) in incoming.items()}, lambda s: resume(incoming[s][0]))
        if incoming
        else None
    )
    print(f"ppox: training {', '.join(j.name for j in jobs)} stacked in one process"
          + "".join(f"; {name}'s second half in another" for name in split.moving)
          + "".join(f"; {name}'s second half from another" for name in split.incoming), flush=True)  # fmt: skip
    results, _, _ = train_together(trainers, moving=moving, arrivals=arrivals)
    came = [incoming[seed][0] for seed, _, _ in arrivals.came] if arrivals else []
    failed = False
    for job, result in zip([*jobs, *came], results):
        if result is MOVED:
            continue
        print(seed_line(job.seed, result, job.run_dir), flush=True)
        failed |= isinstance(result, BaseException)
    for seed, why in arrivals.failed.items() if arrivals else ():
        print(f"ppox: seed {seed} failed: {why}", flush=True)
        failed = True
    return 1 if failed else 0
