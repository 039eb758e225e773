"""The ``ppox`` command: train, eval, plot, presets, ablate, report.

Every config field is a flag of ``ppox train`` (``--learning-rate 3e-4``, ``--no-anneal-lr``),
with its docstring as the help text. Bad input ends with one line naming the problem.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from ppox.config import Config, field_docs, field_sections, field_types, parser_for
from ppox.errors import ConfigError, PpoxError
from ppox.io.trust import check_imports, imports_named
from ppox.presets import DEFAULT_PRESET, PRESETS, get_preset

# short aliases the issue and the docs use
ALIASES = {
    "env_id": ["--env"],
    "total_steps": ["--total-steps"],
    "run_dir": ["--run-dir"],
    "seed": ["--seed"],
}


def add_config_flags(p: argparse.ArgumentParser) -> None:
    docs, types_ = field_docs(), field_types()
    defaults = dataclasses.asdict(Config())
    groups = {s: p.add_argument_group(f"{s} options") for s in ("env", "policy", "ppo", "run")}
    for name, section in field_sections().items():
        flags = [f"--{name.replace('_', '-')}"] + [
            a for a in ALIASES.get(name, []) if a != f"--{name.replace('_', '-')}"
        ]
        default = defaults[section][name]
        help_ = f"{docs.get(name, '')} (default: {default})".replace(
            "%", "%%"
        )  # argparse formats help with %
        if types_[name] is bool:
            groups[section].add_argument(
                *flags, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_
            )
        else:
            groups[section].add_argument(
                *flags,
                dest=name,
                type=parser_for(types_[name], name),
                default=None,
                metavar=name.upper(),
                help=help_,
            )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ppox", description="Train and evaluate PPO agents.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a policy (default preset: cartpole)")
    t.add_argument(
        "--preset",
        default=None,
        help=f"start from a tuned preset (default: {DEFAULT_PRESET}; see `ppox presets`)",
    )
    t.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the run in RUN_DIR exactly where its checkpoint left it",
    )
    t.add_argument(
        "--config", metavar="JSON", default=None, help="start from a config.json of an earlier run"
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
        help="torch.distributed backend under torchrun: auto (gloo; NCCL for CUDA tensors), gloo or nccl "
        "(default: $PPOX_DIST_BACKEND or auto)",
    )
    add_trust_flag(t)
    add_config_flags(t)
    sub.add_parser("presets", help="list the presets")
    e = sub.add_parser("eval", help="evaluate a run's policy on its evaluation seeds")
    e.add_argument("run_dir")
    e.add_argument(
        "--episodes", type=int, default=None, help="episodes (default: the run's eval_episodes)"
    )
    e.add_argument(
        "--stochastic", action="store_true", help="sample actions instead of taking the mode"
    )
    e.add_argument(
        "--gif",
        type=Path,
        default=None,
        help="also render the first evaluation episode to this GIF",
    )
    add_trust_flag(e)
    pl = sub.add_parser("plot", help="plot the learning curves of one or more runs into one PNG")
    pl.add_argument("run_dirs", nargs="+")
    pl.add_argument("--out", type=Path, default=Path("curves.png"))
    a = sub.add_parser(
        "ablate", help="train a base config and named variants on several seeds, then report"
    )
    a.add_argument(
        "--preset",
        default=None,
        help=f"base preset (default: {DEFAULT_PRESET}); config flags below change the base",
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
        type=int,
        nargs="+",
        default=[1, 2, 3, 4, 5],
        help="seeds of every variant (default: 1 2 3 4 5)",
    )
    a.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="runs at a time, one torch thread each (default: CPUs)",
    )
    a.add_argument(
        "--out",
        type=Path,
        required=True,
        help="ablation directory (run the same command again to resume)",
    )
    add_report_flags(a)
    add_config_flags(a)
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


def add_report_flags(p: argparse.ArgumentParser) -> None:
    from ppox.analysis.report import ReportOptions

    d, g = ReportOptions(), p.add_argument_group("report options (docs/metrics.md)")
    g.add_argument(
        "--rollout-episodes",
        type=int,
        default=d.episodes,
        help=f"episodes per final policy for the across-rollout metrics; 0 skips them (default: {d.episodes})",
    )
    g.add_argument(
        "--metric-window",
        type=int,
        default=d.window,
        help=f"within-run dispersion window, in first differences (default: {d.window})",
    )
    g.add_argument(
        "--cvar-alpha",
        type=float,
        default=d.alpha,
        help=f"CVaR level of the risk metrics (default: {d.alpha})",
    )
    g.add_argument(
        "--smooth-width",
        type=int,
        default=d.smooth,
        help=f"moving-average width (odd) before the across-run IQR (default: {d.smooth})",
    )
    g.add_argument(
        "--metric-curve",
        choices=("auto", "eval", "train"),
        default=d.curve,
        help="curve of the within/across-run metrics (default: auto = eval when every run has ≥ 3 evaluations)",
    )
    g.add_argument(
        "--bootstrap-reps",
        type=int,
        default=d.reps,
        help=f"bootstrap resamples (default: {d.reps})",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    overrides = {k: v for k, v in vars(args).items() if k in field_sections() and v is not None}
    if args.config:
        try:
            cfg = Config.from_dict(json.loads(Path(args.config).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"--config {args.config}: cannot read a JSON config ({exc})"
            ) from None
        check_imports(cfg, f"--config {args.config}", args.trust_imports, typed=overrides)
    else:
        cfg = get_preset(args.preset or DEFAULT_PRESET).config()
    return cfg.replace(**overrides).validate()


def cmd_train(args: argparse.Namespace) -> int:
    from ppox.training import distributed
    from ppox.training.trainer import Trainer

    distributed.init(
        backend=args.dist_backend
    )  # joins torchrun's process group; nothing in a single process
    if args.resume:
        extra = {k for k, v in vars(args).items() if k in field_sections() and v is not None} - {
            "total_steps"
        }
        if extra or args.preset or args.config:
            raise ConfigError(
                f"--resume continues a run with its own config; only --total-steps may change (got {sorted(extra)})"
            )
        if args.auto_resume:
            raise ConfigError(
                "--resume RUN_DIR and --auto-resume exclude each other (--auto-resume takes --run-dir and the config)"
            )
        trainer = Trainer.resume(
            args.resume, total_steps=args.total_steps, trust_imports=args.trust_imports
        )
    elif args.auto_resume:
        trainer = Trainer.create_or_resume(config_from_args(args))
    else:
        trainer = Trainer.create(config_from_args(args))
    main = distributed.is_main()  # only rank 0 talks
    if main:
        workers = f" on {trainer.world} workers" if trainer.world > 1 else ""
        print(f"ppox: training {trainer.cfg.env.env_id}{workers} → {trainer.run_dir}")
    s = trainer.train()
    if main:
        print(
            f"ppox: {s['total_steps']:,} steps in {s['wall_time_s']:.1f} s ({s['steps_per_second']:,.0f} steps/s); "
            f"eval return {s['eval_return_mean']:.2f} ± {s['eval_return_std']:.2f} on seeds {s['eval_seeds'][0]}…{s['eval_seeds'][-1]}"
        )
    distributed.shutdown()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ppox.io.evaluate import evaluate, record_gif
    from ppox.io.policy import load_policy
    from ppox.training.seeding import evaluation_seeds

    policy = load_policy(args.run_dir, trust_imports=args.trust_imports)
    r = policy.config.run
    seeds = evaluation_seeds(r.eval_seed, args.episodes or r.eval_episodes)
    returns = evaluate(policy, policy.config.env, seeds, deterministic=not args.stochastic)
    print(
        json.dumps(
            {
                "episodes": len(seeds),
                "seeds": [seeds[0], seeds[-1]],
                "return_mean": float(returns.mean()),
                "return_std": float(returns.std()),
                "return_min": float(returns.min()),
                "return_max": float(returns.max()),
            },
            indent=2,
        )
    )
    if args.gif:
        ret = record_gif(
            policy, policy.config.env, seeds[0], args.gif, deterministic=not args.stochastic
        )
        print(f"ppox: wrote {args.gif} (seed {seeds[0]}, return {ret:.2f})")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from ppox.io.plotting import plot_runs

    out = plot_runs([Path(d) for d in args.run_dirs], args.out)
    print(f"ppox: wrote {out}")
    return 0


def _report_options(args: argparse.Namespace) -> Any:
    from ppox.analysis.report import ReportOptions

    o = ReportOptions(
        episodes=args.rollout_episodes,
        window=args.metric_window,
        alpha=args.cvar_alpha,
        smooth=args.smooth_width,
        curve=args.metric_curve,
        reps=args.bootstrap_reps,
    )
    for name, ok in (
        ("--rollout-episodes", o.episodes >= 0),
        ("--metric-window", o.window >= 2),
        ("--cvar-alpha", 0 < o.alpha <= 1),
        ("--smooth-width", o.smooth >= 1 and o.smooth % 2 == 1),
        ("--bootstrap-reps", o.reps >= 1),
    ):
        if not ok:
            raise ConfigError(f"{name} is out of range (see `ppox report --help`)")
    return o


def cmd_ablate(args: argparse.Namespace) -> int:
    from ppox.analysis.ablate import parse_variant, plan, run_jobs, write_manifest
    from ppox.analysis.report import collect, write_report

    opts = _report_options(args)
    overrides = {k: v for k, v in vars(args).items() if k in field_sections() and v is not None}
    for name in ("seed", "run_dir"):
        if name in overrides:
            raise ConfigError(
                f"--{name.replace('_', '-')} is set per run by ppox ablate (use --seeds / --out)"
            )
    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs} must be ≥ 1")
    preset = args.preset or DEFAULT_PRESET
    base = get_preset(preset).config().replace(**{"threads": 1, **overrides})
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
    failed = run_jobs(jobs, args.out, max_jobs=args.jobs)
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
    study, opts = collect(args.run_dirs), _report_options(args)
    print(f"ppox: wrote {write_report(study, out, opts, trust_imports=args.trust_imports)}")
    return 0


def cmd_presets(_: argparse.Namespace) -> int:
    width = max(map(len, PRESETS))
    for name, preset in sorted(PRESETS.items()):
        print(f"{name:<{width}}  {preset.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv  # recorded in ablation.json
    commands = {
        "train": cmd_train,
        "eval": cmd_eval,
        "plot": cmd_plot,
        "presets": cmd_presets,
        "ablate": cmd_ablate,
        "report": cmd_report,
    }
    try:
        return commands[args.command](args)
    except PpoxError as exc:
        print(f"ppox: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\nppox: interrupted; the last checkpoint is intact (resume with --resume RUN_DIR)",
            file=sys.stderr,
        )
        return 130
