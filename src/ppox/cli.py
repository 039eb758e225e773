"""The ``ppox`` command: train, eval, plot, presets, ablate, report, and ``ppox llm`` (ppox.llm.cli).

Every config field is a flag of ``ppox train`` (``--learning-rate 3e-4``, ``--no-anneal-lr``),
with its docstring as the help text. Flag values are parsed by the config's own parser
(:func:`ppox.config.parse_text`), the one a ``--config`` file and the Python API go through, so
the three agree on what is allowed. Bad input ends with one line ``ppox: error: …`` naming the
flag or field, the value and what is allowed, exit status 2, before anything is written: no
usage block, no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

from ppox.config import (
    SEED_LIMIT,
    Config,
    Span,
    allowed,
    field_docs,
    field_sections,
    field_types,
    is_bool_field,
    parse_text,
    read_config_file,
)
from ppox.errors import ConfigError, PpoxError
from ppox.io.trust import check_imports, imports_named
from ppox.presets import DEFAULT_PRESET, PRESETS, get_preset

_LOADED = time.perf_counter()  # process_seconds() where /proc cannot say when the process began

# short aliases the issue and the docs use
ALIASES = {
    "env_id": ["--env"],
    "total_steps": ["--total-steps"],
    "run_dir": ["--run-dir"],
    "seed": ["--seed"],
}
NEGATIVE_NUMBER = re.compile(
    r"^-(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE
)
"""What argparse should read as a (negative) value rather than a flag: ``-1e-3``, ``-inf``
(its own pattern knows only ``-1`` and ``-0.5``)."""


class UsageError(PpoxError):
    """A command line argparse cannot read (unknown flag, missing or bad value)."""


class Parser(argparse.ArgumentParser):
    """argparse with ppox's error rule: one line, no usage block, and flags spelled in full
    (a prefix such as ``--learning`` is not silently taken for ``--learning-rate``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        if "ignored explicit argument" in message:  # --normalize-obs=no
            message += " (an on/off flag takes no value: --flag or --no-flag)"
        raise UsageError(message)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # argparse reads `--opt=--` as an empty list for a one-value option (the `--` is dropped
        # as the end-of-options marker), which would reach the command as a value
        if action.option_strings and action.nargs is None and arg_strings in ([], ["--"]):
            self.error(f"argument {'/'.join(action.option_strings)}: expected one argument")
        return super()._get_values(action, arg_strings)

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}{self._hint(extras, ns)}")
        return ns

    def _hint(self, extras: list[str], ns: argparse.Namespace) -> str:
        """' (did you mean --x?)' for the first unknown flag, among the subcommand's flags."""
        flag = next((e.split("=")[0] for e in extras if e.startswith("--")), None)
        sub = _subparser(self, getattr(ns, "command", None))
        if flag is None or sub is None:
            return ""
        options = [o for a in sub._actions for o in a.option_strings]
        close = difflib.get_close_matches(flag, options, n=1, cutoff=0.75)
        return f" (did you mean {close[0]}?)" if close else ""


def _subparser(parser: argparse.ArgumentParser, name: str | None) -> Any:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]
    return None


class _Once(argparse.Action):
    """Store a flag's value, refusing the same flag given twice with different values (argparse
    would keep the last one silently)."""

    def __call__(self, parser: Any, ns: Any, values: Any, option_string: Any = None) -> None:
        _set_once(self, ns, values)


class _OnceBool(argparse.BooleanOptionalAction):
    """``--flag`` / ``--no-flag``, refusing both on one command line."""

    def __call__(self, parser: Any, ns: Any, values: Any, option_string: Any = None) -> None:
        _set_once(self, ns, not str(option_string).startswith("--no-"))


def _set_once(action: argparse.Action, ns: argparse.Namespace, value: Any) -> None:
    if hasattr(ns, action.dest) and getattr(ns, action.dest) != value:
        raise argparse.ArgumentError(
            action, f"given twice, as {getattr(ns, action.dest)!r} and {value!r}; give it once"
        )
    setattr(ns, action.dest, value)


def typed(label: str, tp: Any) -> Callable[[str], Any]:
    """An argparse ``type=``: command-line text → a value of the annotation ``tp``, by the
    config's parser; a bad value is one line naming ``label``, the value and what is allowed."""

    def convert(text: str) -> Any:
        try:
            return parse_text(label, text, tp)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = label
    return convert


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per config field, help from its docstring and annotation. A flag that is not
    given is absent from the namespace (so an explicit ``none`` is kept: see
    :func:`config_overrides`)."""
    docs, types_ = field_docs(), field_types()
    defaults = dataclasses.asdict(Config())
    groups = {s: p.add_argument_group(f"{s} options") for s in ("env", "policy", "ppo", "run")}
    for name, section in field_sections().items():
        flag = f"--{name.replace('_', '-')}"
        flags = [flag] + [a for a in ALIASES.get(name, []) if a != flag]
        help_ = (
            f"{docs.get(name, '')} Allowed: {allowed(name)}. (default: {defaults[section][name]})"
        )
        kwargs: dict[str, Any] = {
            "dest": name,
            "default": argparse.SUPPRESS,
            "help": help_.replace("%", "%%"),
        }
        if is_bool_field(name):
            groups[section].add_argument(*flags, action=_OnceBool, **kwargs)
        else:
            groups[section].add_argument(*flags, action=_Once, type=typed(name, types_[name]),
                                         metavar=name.upper(), **kwargs)  # fmt: skip


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields given on the command line, parsed (``none`` included)."""
    return {k: v for k, v in vars(args).items() if k in field_sections()}


def _int(lo: int, hi: int) -> Any:
    return Annotated[int, Span(lo, hi)]


def build_parser() -> Parser:
    p = Parser(prog="ppox", description="Train and evaluate PPO agents.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    _train_parser(sub)
    sub.add_parser("presets", help="list the presets")
    _eval_parser(sub)
    pl = sub.add_parser("plot", help="plot the learning curves of one or more runs into one PNG")
    pl.add_argument("run_dirs", nargs="+")
    pl.add_argument("--out", type=Path, default=Path("curves.png"),
                    help=f"the figure ({', '.join(FIGURE_SUFFIXES)}; default: curves.png)")  # fmt: skip
    _ablate_parser(sub)
    r = sub.add_parser(
        "report", help="report on an ablation directory or on runs named <variant>-s<seed>"
    )
    r.add_argument("run_dirs", nargs="+", type=Path)
    r.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where report.md goes (default: the ablation directory)",
    )
    add_report_flags(r)
    add_trust_flag(r)
    doc = sub.add_parser(
        "doctor", help="check a run's logs for the usual symptoms (docs/doctor.md); exit 1 if any"
    )
    doc.add_argument("run_dir", type=Path, help="a run directory (finished or still running)")
    doc.add_argument("--reference", default=None, metavar="PRESET",
                     help="compare with this preset's reference run (default: the preset whose "
                     "config the run's matches, if any)")  # fmt: skip
    doc.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    ex = sub.add_parser("export", help="export a run's policy to ONNX (docs/export.md)")
    ex.add_argument("run_dir", help="a run directory or a checkpoint.pt")
    ex.add_argument(
        "--onnx", type=Path, required=True, metavar="PATH", help="the .onnx file to write"
    )
    ex.add_argument("--opset", type=typed("opset", _int(11, 30)), default=None,
                    help="the ONNX opset, 11 to 30 (default: 17)")  # fmt: skip
    ex.add_argument("--mask", action=argparse.BooleanOptionalAction, default=None,
                    help="give the graph an action_mask input (default: when the env gives masks)")  # fmt: skip
    ex.add_argument("--no-check", action="store_true",
                    help="skip the check against Policy.predict before writing (not advised)")  # fmt: skip
    ex.add_argument("--verify", type=typed("verify", _int(0, 10**7)), default=0, metavar="N",
                    help="after writing, compare with Policy.predict on N observations the policy "
                    "meets in its env (exit 1 if any action differs)")  # fmt: skip
    ex.add_argument("--seed", type=typed("seed", _int(0, SEED_LIMIT - 1)), default=0,
                    help="the env seed of --verify's observations (default: 0)")  # fmt: skip
    add_trust_flag(ex)
    rec = sub.add_parser("record", help="record a run's policy acting: expert data for `ppox bc`")
    rec.add_argument("run_dir", help="a run directory or a checkpoint.pt")
    rec.add_argument("--steps", type=typed("steps", _int(1, 10**8)), required=True,
                     help="environment steps to record")  # fmt: skip
    rec.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    rec.add_argument("--seed", type=typed("seed", _int(0, SEED_LIMIT - 1)), default=0,
                     help="the env's seed (default: 0)")  # fmt: skip
    rec.add_argument("--sample", action="store_true",
                     help="sample the expert's actions (default: its deterministic action)")  # fmt: skip
    add_trust_flag(rec)
    bc = sub.add_parser(
        "bc", help="clone expert data into policy architectures and compare (docs/bc.md)"
    )
    bc.add_argument("data", type=Path, help="a file written by `ppox record`")
    bc.add_argument("--variant", action="append", default=[], metavar="'NAME: field=value, ...'",
                    help="an architecture to clone, as changes to the expert's config (repeat; "
                    "default: the expert's own)")  # fmt: skip
    bc.add_argument("--seeds", type=typed("seeds", _int(0, SEED_LIMIT - 1)), nargs="+", default=[1])
    bc.add_argument("--out", type=Path, required=True, help="the directory of the clones and bc.md")
    bc.add_argument("--epochs", type=typed("epochs", _int(1, 10**5)), default=30)
    bc.add_argument("--minibatch-size", type=typed("minibatch_size", _int(1, 10**7)), default=64)
    bc.add_argument("--learning-rate", type=typed("learning_rate", Annotated[float, Span(0, 1, lo_open=True)]),
                    default=1e-3)  # fmt: skip
    bc.add_argument("--holdout", type=typed("holdout", Annotated[float, Span(0, 1, lo_open=True, hi_open=True)]),
                    default=0.2, help="the share of the data held out for the log-likelihood (default 0.2)")  # fmt: skip
    bc.add_argument("--eval-episodes", type=typed("eval_episodes", _int(1, 10_000)), default=20,
                    help="episodes each clone plays for its return (default 20)")  # fmt: skip
    add_trust_flag(bc)
    from ppox.llm.cli import add_llm_parser

    add_llm_parser(sub)
    return p


def add_trust_flag(p: argparse.ArgumentParser) -> None:
    """``--trust-imports``: the opt-in for config values read from files that import code
    (ppox.io.trust; docs/trust.md)."""
    p.add_argument(
        "--trust-imports",
        action="store_true",
        help="let a config read from a file (checkpoint, run directory, --config) import the module "
        "it names in env_id 'module:Id' or obs_encoders 'module:callable'; refused without it (docs/trust.md)",
    )


def _train_parser(sub: Any) -> None:
    t = sub.add_parser("train", help="train a policy (default preset: cartpole)")
    t.add_argument(
        "--preset",
        default=None,
        help=f"start from a tuned preset (see `ppox presets`; default: with --env-id, the base of the task's kind, "
        f"docs/presets.md; without it, {DEFAULT_PRESET})",
    )
    t.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the run in RUN_DIR exactly where its checkpoint left it",
    )
    t.add_argument(
        "--config",
        metavar="JSON",
        default=None,
        help="start from a config.json of an earlier run (instead of a preset; flags change it)",
    )
    t.add_argument(
        "--auto-resume",
        action="store_true",
        help="continue the run in --run-dir if it holds a checkpoint of this config, else start it there "
        "(the command to give torchrun --max-restarts; docs/distributed.md)",
    )
    t.add_argument(
        "--dist-backend",
        default=None,
        metavar="NAME",
        type=_dist_backend,
        help="torch.distributed backend under torchrun: auto (gloo; NCCL for CUDA tensors), gloo or nccl "
        "(default: $PPOX_DIST_BACKEND or auto)",
    )
    t.add_argument(
        "--seeds",
        type=typed("seeds", _int(0, SEED_LIMIT - 1)),
        nargs="+",
        default=None,
        help="train one run per seed from one command, in --run-dir/seed-N (default: one directory per seed "
        "under runs/), each as --seed N alone would; the seeds share one start-up and train in processes "
        'forked from it (docs/performance.md, "Many seeds")',
    )
    t.add_argument(
        "--jobs",
        type=typed("jobs", _int(1, 1024)),
        default=None,
        help="with --seeds: processes to deal the seeds over, forked after start-up (default: one per seed, at "
        "most 4 per core this process may use; with --stack-seeds, one per core)",
    )
    t.add_argument(
        "--stack-seeds",
        action="store_true",
        help="with --seeds: a process with several seeds steps them in lockstep and makes their NumPy calls as "
        "one call on stacked weights (the same numbers; docs/performance.md); seeds left over when they do not "
        "divide among the processes are split at half their budget between two of them, which resumes exactly",
    )
    add_trust_flag(t)
    add_config_flags(t)


def _dist_backend(text: str) -> str:
    from ppox.training.distributed import BACKENDS

    parts = [part.rpartition(":")[2] for part in text.split(",")]
    if text != "auto" and not all(part in BACKENDS for part in parts):
        raise argparse.ArgumentTypeError(
            f"dist_backend={text!r} is not allowed: auto, {', '.join(BACKENDS)} or a "
            "per-device list such as cpu:gloo,cuda:nccl"
        )
    return text


def _eval_parser(sub: Any) -> None:
    e = sub.add_parser("eval", help="evaluate a run's policy on its evaluation seeds")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=typed("episodes", _int(1, 10_000)), default=None,
                   help="episodes, 1 to 10000 (default: the run's eval_episodes)")  # fmt: skip
    e.add_argument(
        "--max-steps",
        type=typed("max_steps", _int(1, 10**9)),
        default=None,
        help="the most steps of one episode; an episode cut there is reported in "
        "truncated_at_cap (default: the run's eval_max_steps)",
    )
    e.add_argument(
        "--stochastic", action="store_true", help="sample actions instead of taking the mode"
    )
    e.add_argument(
        "--backend",
        choices=("auto", "torch"),
        default="auto",
        help="what computes the actions: auto (the NumPy actor where it serves the policy, as "
        "training's evaluations; torch otherwise) or torch (the reference path). The two agree "
        "to float32 rounding, which can move a MuJoCo or Box2D episode (docs/performance.md)",
    )
    e.add_argument(
        "--gif",
        type=Path,
        default=None,
        help="also render the first evaluation episode to this GIF (a .gif path)",
    )
    add_trust_flag(e)


def _ablate_parser(sub: Any) -> None:
    a = sub.add_parser(
        "ablate", help="train a base config and named variants on several seeds, then report"
    )
    a.add_argument(
        "--preset",
        default=None,
        help=f"base preset (default: with --env-id, the base of the task's kind; without it, {DEFAULT_PRESET}); "
        "config flags below change the base",
    )
    a.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar='"NAME: FIELD=VALUE[, FIELD=VALUE...]"',
        help="a variant: config changes on top of the base (repeatable); the base runs as variant 'base'",
    )
    a.add_argument(
        "--seeds",
        type=typed("seeds", _int(0, SEED_LIMIT - 1)),
        nargs="+",
        default=[1, 2, 3, 4, 5],
        help="seeds of every variant (default: 1 2 3 4 5)",
    )
    a.add_argument(
        "--jobs",
        type=typed("jobs", _int(1, 1024)),
        default=os.cpu_count() or 1,
        help="runs at a time, one thread each, 1 to 1024 (default: CPUs)",
    )
    a.add_argument(
        "--vectorize-seeds",
        action="store_true",
        help="train a variant's seeds in one process on stacked weights (as `ppox train --seeds "
        "--stack-seeds`; the same numbers as alone): a variant's seeds are dealt into --jobs / "
        "variants processes, at least one; where stacking is not covered the runs train one per "
        "process (docs/performance.md, 'Many seeds')",
    )
    a.add_argument(
        "--out",
        type=Path,
        required=True,
        help="ablation directory (run the same command again to resume)",
    )
    add_report_flags(a)
    add_config_flags(a)


def add_report_flags(p: argparse.ArgumentParser) -> None:
    from ppox.analysis.report import ReportOptions

    d, g = ReportOptions(), p.add_argument_group("report options (docs/metrics.md)")
    g.add_argument(
        "--rollout-episodes",
        type=typed("rollout_episodes", _int(0, 10_000)),
        default=d.episodes,
        help=f"episodes per final policy for the across-rollout metrics, 0 to 10000; 0 skips them (default: {d.episodes})",
    )
    g.add_argument(
        "--metric-window",
        type=typed("metric_window", _int(2, 10**6)),
        default=d.window,
        help=f"within-run dispersion window, in first differences, ≥ 2 (default: {d.window})",
    )
    g.add_argument(
        "--cvar-alpha",
        type=typed("cvar_alpha", Annotated[float, Span(0, 1, lo_open=True)]),
        default=d.alpha,
        help=f"CVaR level of the risk metrics, in (0, 1] (default: {d.alpha})",
    )
    g.add_argument(
        "--smooth-width",
        type=_odd_width,
        default=d.smooth,
        help=f"moving-average width (odd, 1 to 10001) before the across-run IQR (default: {d.smooth})",
    )
    g.add_argument(
        "--metric-curve",
        choices=("auto", "eval", "train"),
        default=d.curve,
        help="curve of the within/across-run metrics (default: auto = eval when every run has ≥ 3 evaluations)",
    )
    g.add_argument(
        "--bootstrap-reps",
        type=typed("bootstrap_reps", _int(1, 10**6)),
        default=d.reps,
        help=f"bootstrap resamples, 1 to 1000000 (default: {d.reps})",
    )


def _odd_width(text: str) -> int:
    width: int = typed("smooth_width", _int(1, 10_001))(text)
    if width % 2 == 0:
        raise argparse.ArgumentTypeError(f"smooth_width={width} is not allowed: an odd integer")
    return width


FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg")


def check_output_path(label: str, path: Path, suffixes: Sequence[str] = ()) -> None:
    """Refuse, before any work, an output path that cannot be written: a directory where a
    file goes, a parent that is a file, a place without write permission, a suffix the writer
    does not know."""
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{label} {str(path)!r}: expected a path ending in {', '.join(suffixes)}")
    if suffixes and path.is_dir():
        raise ConfigError(f"{label} {str(path)!r} is a directory; expected a file path")
    check_writable_dir(label, path.parent if suffixes else path)


def check_writable_dir(label: str, path: Path) -> None:
    """``path`` is a directory, or can be made one, where this process may write."""
    if "\x00" in str(path):
        raise ConfigError(f"{label} {str(path)!r}: a path cannot hold a NUL character")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"{label} {str(path)!r}: {str(probe)!r} is a file, not a directory")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{label} {str(path)!r}: no permission to write in {str(probe)!r}")


@contextlib.contextmanager
def writing(label: str, path: Path) -> Iterator[None]:
    """An OSError while the command writes ``path`` (or reads what it needs) becomes one line
    naming the option, the path and the system's reason."""
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        raise ConfigError(f"{label} {str(path)!r}: {exc.strerror or exc}{where}") from None


def config_from_args(args: argparse.Namespace) -> Config:
    """The config of ``ppox train`` / ``ppox ablate``: a preset, the base of the task's kind or
    a ``--config`` file, changed by the flags given, validated (see :func:`start_config`)."""
    return start_config(args)[0]


def start_config(args: argparse.Namespace) -> tuple[Config, dict[str, Any]]:
    """``(config, origin)``: the config a command starts from and what it started from.

    ``--config FILE``: that run's config. ``--preset NAME``: the preset. Neither, with
    ``--env-id``: the base of the task's kind (:mod:`ppox.presets.bases`; the env is made once to
    read its spaces). Neither, without ``--env-id``: the default preset (CartPole). The flags
    given change it, and the result is validated."""
    overrides = config_overrides(args)
    if getattr(args, "config", None):
        if args.preset:
            raise ConfigError(
                "--preset and --config exclude each other (a config file holds every field)"
            )
        cfg = read_config_file(args.config)
        trusted = getattr(args, "trust_imports", False)
        check_imports(cfg, f"--config {args.config}", trusted, typed=overrides)
        origin: dict[str, Any] = {"config": str(args.config)}
    else:
        cfg, origin = preset_or_base(args.preset, overrides)
    cfg = cfg.replace(**overrides).validate()
    if cfg.run.run_dir is not None:
        check_writable_dir("--run-dir", Path(cfg.run.run_dir))
    return cfg, origin


def preset_or_base(preset: str | None, overrides: dict[str, Any]) -> tuple[Config, dict[str, Any]]:
    """The named preset; else, when the flags name an env, the base of the task's kind; else the
    default preset. Returns the config before the flags and the origin record."""
    if preset or "env_id" not in overrides:
        name = preset or DEFAULT_PRESET
        return get_preset(name).config(), {"preset": name}
    from ppox.presets.bases import kind_base

    return kind_base(overrides)


def describe_origin(origin: dict[str, Any], env_id: str) -> str | None:
    """The line ``ppox train`` prints about a base chosen by the task's kind (None otherwise)."""
    if "base" not in origin:
        return None
    from ppox.presets.bases import SHORTFALLS, kind_overrides

    base = Config().replace(
        **kind_overrides(origin["base"], origin["memory_overlay"]), env_id=env_id
    )
    named = [p for p in PRESETS.values() if p.overrides.get("env_id") == env_id]
    tuned = [p.name for p in named if p.config() != base]
    hint = (
        f"; a tuned preset exists: --preset {tuned[0]}"
        if tuned
        else f"; --preset {named[0].name} is this same base"
        if named
        else ""
    )
    if env_id in SHORTFALLS and not origin["memory_overlay"]:  # measured on the plain base
        hint += f"; the base is known to fall short on this task ({SHORTFALLS[env_id]})"
    overlay = " + the memory overlay" if origin["memory_overlay"] else ""
    return (
        f"ppox: no preset given: {origin['base']}{overlay} for {env_id} ({origin['kind']}; "
        f"docs/presets.md), changed by the flags given{hint}"
    )


def cmd_train(args: argparse.Namespace) -> int:
    from ppox.training import distributed
    from ppox.training.trainer import Trainer

    if args.seeds is not None:
        return _train_seeds(args)
    if args.jobs is not None or args.stack_seeds:
        flag = "--jobs" if args.jobs is not None else "--stack-seeds"
        raise ConfigError(f"{flag} is for training several seeds; give --seeds too")
    if args.resume:
        trainer = _resume(args)
    else:
        cfg, origin = start_config(args)
        distributed.init(backend=args.dist_backend)  # torchrun's process group; nothing alone
        line = describe_origin(origin, cfg.env.env_id)
        if line and distributed.is_main():
            print(line, flush=True)
        create = Trainer.create_or_resume if args.auto_resume else Trainer.create
        trainer = create(cfg, origin=origin)
    main = distributed.is_main()  # only rank 0 talks
    if main:
        workers = f" on {trainer.world} workers" if trainer.world > 1 else ""
        print(f"ppox: training {trainer.cfg.env.env_id}{workers} → {trainer.run_dir}")
    s = trainer.train()
    if main:
        print(f"ppox: {s['total_steps']:,} steps in {s['wall_time_s']:.1f} s of training ({s['steps_per_second']:,.0f} "
              f"steps/s), {process_seconds():.1f} s in all; " + _eval_words(s))  # fmt: skip
    distributed.shutdown()
    return 0


def _train_seeds(args: argparse.Namespace) -> int:
    """``ppox train --seeds S...``: one run per seed (:func:`ppox.training.stacked.train_seeds`)."""
    from ppox.io.rundir import default_run_dir, new_run_dir
    from ppox.training.stacked import train_seeds
    from ppox.training.trainer import Trainer, usable_cores

    seeds = list(args.seeds)
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seeds must be distinct (got {' '.join(map(str, seeds))})")
    if args.resume:
        raise ConfigError("--seeds starts one run per seed; --resume continues one run (give --auto-resume with "
                          "--seeds and --run-dir to continue them all)")  # fmt: skip
    if "seed" in config_overrides(args):
        raise ConfigError("--seed and --seeds exclude each other")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "--seeds trains in ordinary processes, not under torchrun (give one --seed per torchrun)"
        )
    cfg, origin = start_config(args)
    root = cfg.run.run_dir
    if args.auto_resume and root is None:
        raise ConfigError(
            "--auto-resume with --seeds needs the directory of the runs (--run-dir DIR)"
        )
    if root and (Path(root) / "config.json").is_file():  # e.g. from --config RUN/config.json
        raise ConfigError(f"run_dir={root!r} is a run's own directory; --seeds puts one run per seed in a "
                          "directory of their own (give another --run-dir)")  # fmt: skip
    configs = {}
    for seed in seeds:  # every seed's config and directory checked before anything is written
        where = Path(root) / f"seed-{seed}" if root else default_run_dir(cfg.replace(seed=seed))
        configs[seed] = cfg.replace(seed=seed, run_dir=str(where), progress=False).validate()
        if not args.auto_resume:
            try:
                new_run_dir(configs[seed], None)
            except ConfigError as exc:
                raise ConfigError(
                    f"{exc} (or continue every seed: the same command with --auto-resume)"
                ) from None
    line = describe_origin(origin, cfg.env.env_id)
    if line:
        print(line, flush=True)
    # stacked seeds share a process's calls: one process per core; else one per seed (at most 4 a core)
    jobs = min(
        args.jobs or (usable_cores() if args.stack_seeds else 4 * usable_cores()), len(seeds)
    )
    create = Trainer.create_or_resume if args.auto_resume else Trainer.create
    print(f"ppox: training {cfg.env.env_id} with seeds {' '.join(map(str, seeds))} in {jobs} process(es) → "
          f"{root or 'runs/'}", flush=True)  # fmt: skip
    try:
        outcomes = train_seeds(
            lambda seed: create(configs[seed], origin=origin),
            seeds,
            jobs,
            stack=args.stack_seeds,
            resume=lambda seed: Trainer.create_or_resume(configs[seed], origin=origin),
        )
    except KeyboardInterrupt:
        go_on = (
            "the same command with --auto-resume" if root else "--resume on each seed's directory"
        )
        print(
            f"\nppox: interrupted; every seed's last checkpoint is intact (continue them: {go_on})",
            file=sys.stderr,
        )
        return 130
    failed = [o[0] for o in outcomes if isinstance(o[1], str)]
    how = sorted({o[2] for o in outcomes if not isinstance(o[1], str)})
    print(f"ppox: {len(seeds) - len(failed)} of {len(seeds)} seeds trained in {process_seconds():.1f} s in all"
          + (f" ({'; '.join(how)})" if how else "")
          + (f"; failed: seed {' '.join(map(str, failed))} (their messages above)" if failed else ""))  # fmt: skip
    return 1 if failed else 0


def process_seconds() -> float:
    """Seconds since this process started, what a user waits for (the interpreter's start-up
    included, read from ``/proc`` on Linux; elsewhere since this module was loaded)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter() - _LOADED


def _eval_words(s: dict[str, Any]) -> str:
    """The final evaluation of a summary, in words (none when no iteration ran: a resumed run
    whose budget was already spent)."""
    if s["eval_return_mean"] is None:
        return "no evaluation (no iteration ran: the run had reached its budget)"
    seeds = s["eval_seeds"]
    return f"eval return {s['eval_return_mean']:.2f} ± {s['eval_return_std']:.2f} on seeds {seeds[0]}…{seeds[-1]}"


def _resume(args: argparse.Namespace) -> Any:
    from ppox.training import distributed
    from ppox.training.trainer import Trainer

    given = config_overrides(args)
    extra = set(given) - {"total_steps"}
    if extra or args.preset or args.config:
        raise ConfigError(
            f"--resume continues a run with its own config; only --total-steps may change (got {sorted(extra)})"
        )
    if args.auto_resume:
        raise ConfigError(
            "--resume RUN_DIR and --auto-resume exclude each other (--auto-resume takes --run-dir and the config)"
        )
    distributed.init(backend=args.dist_backend)
    return Trainer.resume(
        args.resume, total_steps=given.get("total_steps"), trust_imports=args.trust_imports
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from ppox.io.evaluate import evaluate_episodes, record_gif
    from ppox.io.policy import load_policy
    from ppox.training.seeding import evaluation_seeds

    if args.gif is not None:
        check_output_path("--gif", args.gif, (".gif",))
    policy = load_policy(args.run_dir, trust_imports=args.trust_imports)
    r = policy.config.run
    episodes = args.episodes or r.eval_episodes
    if r.eval_seed + episodes > SEED_LIMIT:
        raise ConfigError(
            f"--episodes {episodes}: the run's evaluation seeds start at {r.eval_seed}, so at most "
            f"{SEED_LIMIT - r.eval_seed} episodes stay below 2³²"
        )
    max_steps = args.max_steps or r.eval_max_steps
    seeds = evaluation_seeds(r.eval_seed, episodes)
    result = evaluate_episodes(
        policy, policy.config.env, seeds, deterministic=not args.stochastic, max_steps=max_steps,
        backend=args.backend,
    )  # fmt: skip
    out = {"episodes": len(seeds), "seeds": [seeds[0], seeds[-1]], **result.summary()}
    print(json.dumps({**out, "backend": result.backend}, indent=2))
    if args.gif:
        with writing("--gif", args.gif):
            gif = record_gif(policy, policy.config.env, seeds[0], args.gif,
                             deterministic=not args.stochastic, max_steps=max_steps)  # fmt: skip
        cut = f"; cut at {max_steps} steps" if gif.cut else ""
        print(
            f"ppox: wrote {args.gif} (seed {seeds[0]}, return {gif.ret:.2f}, {gif.length} steps{cut})"
        )
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from ppox.io.plotting import plot_runs

    check_output_path("--out", args.out, FIGURE_SUFFIXES)
    with writing("--out", args.out):
        out = plot_runs([Path(d) for d in args.run_dirs], args.out)
    print(f"ppox: wrote {out}")
    return 0


def _report_options(args: argparse.Namespace) -> Any:
    from ppox.analysis.report import ReportOptions

    return ReportOptions(
        episodes=args.rollout_episodes,
        window=args.metric_window,
        alpha=args.cvar_alpha,
        smooth=args.smooth_width,
        curve=args.metric_curve,
        reps=args.bootstrap_reps,
    )


def cmd_ablate(args: argparse.Namespace) -> int:
    from ppox.analysis.ablate import parse_variant, plan, run_jobs, write_manifest
    from ppox.analysis.report import collect, write_report

    opts = _report_options(args)
    overrides = config_overrides(args)
    for name in ("seed", "run_dir"):
        if name in overrides:
            raise ConfigError(
                f"--{name.replace('_', '-')} is set per run by ppox ablate (use --seeds / --out)"
            )
    check_writable_dir("--out", args.out)
    start, origin = preset_or_base(args.preset, overrides)  # as ppox train
    preset = origin.get("preset") or origin["base"]
    base = start.replace(**{"threads": 1, **overrides})
    variants = [parse_variant(v) for v in args.variant]
    jobs = plan(base, variants, args.seeds, args.out)
    write_manifest(
        args.out,
        jobs,
        preset=preset,
        overrides=overrides,
        variants=variants,
        command=shlex.join(["ppox", *args.argv]),
    )
    failed = run_jobs(
        jobs, args.out, max_jobs=args.jobs, fork_main=main, stack=args.vectorize_seeds
    )
    # the configs are the user's own (preset and flags): their runs may import what they name
    trusted = any(imports_named(j.config) for j in jobs)
    report = write_report(collect([args.out]), args.out, opts, trust_imports=trusted)
    print(
        f"ppox: wrote {report}"
        + (
            f"; {len(failed)} run(s) failed: {', '.join(failed)} (run the command again to retry)"
            if failed
            else ""
        )
    )
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from ppox.analysis.report import collect, write_report

    is_ablation = len(args.run_dirs) == 1 and (args.run_dirs[0] / "ablation.json").is_file()
    out = args.out or (args.run_dirs[0] if is_ablation else None)
    if out is None:
        raise ConfigError("--out DIR is needed when the report is not on one ablation directory")
    check_writable_dir("--out", out)
    with writing("--out", out):
        study, opts = collect(args.run_dirs), _report_options(args)
        report = write_report(study, out, opts, trust_imports=args.trust_imports)
    print(f"ppox: wrote {report}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ppox.analysis.doctor import diagnose

    d = diagnose(args.run_dir, args.reference)
    print(json.dumps(d.to_dict(), indent=2) if args.json else d.text())
    return 1 if d.findings else 0


def cmd_export(args: argparse.Namespace) -> int:
    from ppox.io.export import export_onnx, record_observations, verify_onnx
    from ppox.io.policy import load_policy

    check_output_path("--onnx", args.onnx, (".onnx",))
    policy = load_policy(args.run_dir, trust_imports=args.trust_imports)
    info = export_onnx(policy, args.onnx, opset=args.opset, mask=args.mask, check=not args.no_check)
    print(info.summary())
    if args.verify:
        rec = record_observations(policy, args.verify, seed=args.seed)
        result = verify_onnx(
            args.onnx, policy, rec.obs, rec.masks, episode_starts=rec.episode_starts
        )
        print(f"ppox: verified on {result.n} observations: {result.mismatches} actions differ "
              f"(largest difference {result.max_abs_diff:.3g})")  # fmt: skip
        return 0 if result.ok else 1
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from ppox.analysis.bc import record

    check_output_path("--out", args.out, (".npz",))
    data = record(args.run_dir, args.steps, seed=args.seed, deterministic=not args.sample,
                  trust_imports=args.trust_imports)  # fmt: skip
    data.save(args.out)
    r = data.episode_returns
    print(f"ppox: recorded {len(data.obs):,} steps ({len(r)} whole episodes"
          + (f", return {r.mean():.3g} ± {r.std():.3g}" if len(r) else "") + f") → {args.out}")  # fmt: skip
    return 0


def cmd_bc(args: argparse.Namespace) -> int:
    from ppox.analysis.ablate import parse_variant
    from ppox.analysis.bc import CloneOptions, Demonstrations, compare

    data = Demonstrations.load(args.data)
    variants = [parse_variant(v) for v in args.variant]
    base = Config.from_dict(data.config)
    check_imports(base, str(args.data), args.trust_imports)
    named = [(v.name, dict(v.overrides)) for v in variants] or [("expert", {})]
    for _, overrides in named:
        base.replace(**overrides).validate()  # every variant checked before anything is written
    check_writable_dir("--out", args.out)
    opts = CloneOptions(args.epochs, args.minibatch_size, args.learning_rate, args.holdout,
                        args.eval_episodes)  # fmt: skip
    report = compare(data, base, named, list(args.seeds), args.out, opts)
    print((args.out / "bc.md").read_text(), end="")
    return 0 if report["runs"] else 1


def cmd_presets(_: argparse.Namespace) -> int:
    width = max(map(len, PRESETS))
    for name, preset in sorted(PRESETS.items()):
        print(f"{name:<{width}}  {preset.description}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train,
    "eval": cmd_eval,
    "plot": cmd_plot,
    "presets": cmd_presets,
    "ablate": cmd_ablate,
    "report": cmd_report,
    "doctor": cmd_doctor,
    "export": cmd_export,
    "record": cmd_record,
    "bc": cmd_bc,
    "llm": lambda args: _llm(args),
}


def _llm(args: argparse.Namespace) -> int:
    from ppox.llm.cli import cmd_llm

    return cmd_llm(args)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.argv = sys.argv[1:] if argv is None else argv  # recorded in ablation.json
        return COMMANDS[args.command](args)
    except (PpoxError, OSError) as exc:  # OSError: a path that cannot be read or written
        print(f"ppox: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\nppox: interrupted; the last checkpoint is intact (resume with --resume RUN_DIR)",
            file=sys.stderr,
        )
        return 130
