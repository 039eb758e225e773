"""``ppox llm train|demo|generate|eval|presets`` (docs/llm.md).

Every field of :class:`~ppox.llm.config.LLMConfig` is a flag of ``ppox llm train``, parsed by
the config's own parser; bad input is one ``ppox: error: …`` line before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ppox.config import describe_type, loads_json
from ppox.errors import ConfigError
from ppox.llm.config import LLMConfig, llm_field_docs, llm_field_types
from ppox.llm.presets import LLM_PRESETS, get_llm_preset


def add_llm_parser(sub: Any) -> None:
    from ppox.cli import Parser, add_trust_flag

    llm = sub.add_parser("llm", help="fine-tune a language model with PPO, RLOO or GRPO")
    cmds = llm.add_subparsers(dest="llm_command", required=True, parser_class=Parser)
    t = cmds.add_parser("train", help="fine-tune a causal LM against a reward")
    t.add_argument("--preset", default=None, help=f"start from a preset ({', '.join(LLM_PRESETS)})")
    t.add_argument("--config", metavar="JSON", default=None,
                   help="start from a config.json of an earlier run (flags change it)")  # fmt: skip
    t.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its last checkpoint (only --iterations and --[no-]progress may change)")  # fmt: skip
    add_trust_flag(t)
    _add_field_flags(t)
    d = cmds.add_parser("demo", help="build the tiny CPU demo model (no download) and fine-tune it")
    d.add_argument("--out", type=Path, default=Path("runs/llm-demo"),
                   help="where the demo model and prompts go (default: runs/llm-demo; reused when present)")  # fmt: skip
    d.add_argument("--advantage", choices=("gae", "rloo", "grpo"), default="gae",
                   help="PPO with a critic (gae), RLOO or GRPO (default: gae)")  # fmt: skip
    _add_field_flags(d, skip=("model", "prompts", "advantage"))
    g = cmds.add_parser("generate", help="sample completions of prompts from a model or a run")
    g.add_argument("source", help="a model directory (save_pretrained) or a ppox llm run directory")
    g.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for more)")
    _add_field_flags(g, only=("max_new_tokens", "temperature", "top_k", "top_p", "seed"))
    g.add_argument("--greedy", action="store_true", help="take the most likely token each step")
    e = cmds.add_parser("eval", help="mean reward of a model or run on a prompt file")
    e.add_argument("source", help="a model directory (save_pretrained) or a ppox llm run directory")
    _add_field_flags(e, only=("prompts", "prompt_field", "reward_fn", "reward_model",
                              "max_new_tokens", "temperature", "top_k", "top_p", "seed",
                              "samples_per_prompt"))  # fmt: skip
    e.add_argument("--greedy", action="store_true", help="take the most likely token each step")
    add_trust_flag(e)
    cmds.add_parser("presets", help="list the llm presets")


def _add_field_flags(
    p: argparse.ArgumentParser, only: tuple[str, ...] | None = None, skip: tuple[str, ...] = ()
) -> None:
    from ppox.cli import _Once, _OnceBool, typed

    docs, types_, defaults = llm_field_docs(), llm_field_types(), LLMConfig().to_dict()
    for name, tp in types_.items():
        if (only is not None and name not in only) or name in skip:
            continue
        help_ = f"{docs.get(name, '')} Allowed: {describe_type(tp)}. (default: {defaults[name]})"
        kw: dict[str, Any] = {
            "dest": name,
            "default": argparse.SUPPRESS,
            "help": help_.replace("%", "%%"),
        }
        flag = f"--{name.replace('_', '-')}"
        if tp is bool:
            p.add_argument(flag, action=_OnceBool, **kw)
        else:
            p.add_argument(flag, action=_Once, type=typed(name, tp), metavar=name.upper(), **kw)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k in llm_field_types()}


def _config(args: argparse.Namespace) -> LLMConfig:
    from ppox.llm.trainer import check_reward_import

    if args.config:
        if args.preset:
            raise ConfigError("--preset and --config exclude each other")
        try:
            data = loads_json(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--config {args.config}: cannot be read ({exc})") from None
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in ("kind", "versions")}
        try:
            cfg = LLMConfig.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"--config {args.config}: {exc}") from None
        if "reward_fn" not in _given(args):
            check_reward_import(cfg, f"--config {args.config}", args.trust_imports)
    else:
        cfg = get_llm_preset(args.preset).config() if args.preset else LLMConfig()
    return cfg.replace(**_given(args)).validate()


def cmd_llm(args: argparse.Namespace) -> int:
    from ppox.training import distributed

    if args.llm_command == "presets":
        width = max(map(len, LLM_PRESETS))
        for name, preset in LLM_PRESETS.items():
            print(f"{name:<{width}}  {preset.description}")
        return 0
    if args.llm_command in ("generate", "eval"):
        return _sample_command(args)
    from ppox.llm.trainer import LLMTrainer

    if args.llm_command == "demo":
        trainer = LLMTrainer(_demo_config(args))
    elif args.resume:
        trainer = _resume(args)
    else:
        trainer = LLMTrainer(_config(args))
    main = distributed.is_main()
    if main:
        print(f"ppox: fine-tuning {trainer.cfg.model} ({trainer.cfg.advantage}) → "
              f"{trainer.run_dir}", file=sys.stderr)  # fmt: skip
    s = trainer.train()
    if main:
        f = s["final"]
        tail = f"; last iteration: reward {f['reward_mean']:.3f}, KL {f['kl']:.3f}" if f else ""
        print(f"ppox: {s['iterations']} iterations, {s['generated_tokens']:,} tokens generated in "
              f"{s['wall_time_s']:.1f} s → {trainer.run_dir}{tail}")  # fmt: skip
    distributed.shutdown()
    return 0


def _resume(args: argparse.Namespace) -> Any:
    from ppox.llm.trainer import (
        RESUME_MAY_CHANGE,
        LLMTrainer,
        check_reward_import,
        read_run_config,
    )

    given = _given(args)
    extra = set(given) - set(RESUME_MAY_CHANGE)
    if extra or args.preset or args.config:
        raise ConfigError(
            f"--resume continues a run with its own config; only {', '.join('--' + f.replace('_', '-') for f in RESUME_MAY_CHANGE)} may change (got {sorted(extra)})"
        )
    run = Path(args.resume)
    cfg = read_run_config(run)
    check_reward_import(cfg, f"{run / 'config.json'}", args.trust_imports)
    return LLMTrainer(cfg.replace(**given), resume=run)


def _demo_config(args: argparse.Namespace) -> LLMConfig:
    from ppox.llm import demo

    out: Path = args.out
    if not (out / "model" / "config.json").is_file():
        print(
            f"ppox: building the demo model in {out} (pre-training: 10-20 s)",
            file=sys.stderr,
        )
        info = demo.build(out)
        print(f"ppox: demo model: {info['parameters']:,} parameters, pre-training loss "
              f"{info['pretrain_loss']:.3f}", file=sys.stderr)  # fmt: skip
    name = {"gae": "demo-ppo", "rloo": "demo-rloo", "grpo": "demo-grpo"}[args.advantage]
    values = {"model": str(out / "model"), "prompts": str(out / "prompts.jsonl"), **_given(args)}
    return get_llm_preset(name).config().replace(**values).validate()


def _sample_command(args: argparse.Namespace) -> int:
    import torch

    from ppox.llm.data import Scorer, read_prompts
    from ppox.llm.models import load_causal_lm, load_tokenizer, quiet_transformers, sample
    from ppox.llm.trainer import check_reward_import, latest_checkpoint

    quiet_transformers()
    path = Path(args.source)
    if (path / "checkpoint.json").is_file():
        path = latest_checkpoint(path) / "policy"
    cfg = LLMConfig().replace(model=str(path), **_given(args))
    tok = load_tokenizer(str(path))
    model = load_causal_lm(str(path), "model")
    if args.llm_command == "generate":
        prompts, columns = list(args.prompt), {}
    else:
        if cfg.prompts is None or (cfg.reward_fn is None) == (cfg.reward_model is None):
            raise ConfigError(
                "ppox llm eval needs --prompts and one of --reward-fn, --reward-model"
            )
        rows = read_prompts(cfg.prompts, cfg.prompt_field)
        rows = [r for r in rows for _ in range(cfg.samples_per_prompt)]
        prompts = [r[cfg.prompt_field] for r in rows]
        columns = {k: [r.get(k) for r in rows] for k in rows[0] if k != cfg.prompt_field}
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    g = torch.Generator().manual_seed(cfg.seed)
    s = sample(
        model, enc["input_ids"], enc["attention_mask"].bool(),
        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
        top_k=1 if args.greedy else cfg.top_k, top_p=cfg.top_p, eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id, stop_at_eos=True, generator=g,
    )  # fmt: skip
    completions = tok.batch_decode(s.response_ids, skip_special_tokens=True)
    if args.llm_command == "generate":
        for p, c in zip(prompts, completions):
            print(json.dumps({"prompt": p, "completion": c}))
        return 0
    check_reward_import(cfg, "the command line", trust_imports=True)
    scores = Scorer(cfg.reward_fn, cfg.reward_model, torch.device("cpu"))(
        prompts, completions, columns
    )
    print(json.dumps({
        "model": str(path), "prompts": len(prompts), "reward_mean": float(scores.mean()),
        "reward_std": float(scores.std(correction=0)),
        "response_length": float(s.response_mask.sum(dim=1).float().mean()),
        "eos_fraction": float(s.ended.float().mean()),
    }, indent=2))  # fmt: skip
    return 0
