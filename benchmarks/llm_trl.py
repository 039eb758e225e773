"""ppox.llm vs TRL (GRPOTrainer / RLOOTrainer): same model, prompts, reward and hyper-parameters.

For each algorithm and seed, runs TRL's trainer and then ``ppox llm train`` (interleaved, so that
drift in the machine's load hits both alike), each in a fresh interpreter with ``OMP_NUM_THREADS``
and torch threads = ``--threads``, one run at a time, on a local Hugging Face causal LM (a
``save_pretrained`` directory, tokenizer included); then writes a combined report::

    OMP_NUM_THREADS=1 python benchmarks/llm_trl.py --model runs/llm-trl-demo/model \\
        --prompts runs/llm-trl-demo/prompts.jsonl --reward ppox.llm.demo:digit_sum_reward \\
        --algo grpo rloo --seeds 0 1 2 --steps 60 --prompts-per-step 16 --generations 4 \\
        --max-new-tokens 10 --lr 2e-4 --lr-schedule linear --beta 0.05 --epochs 4 \\
        --minibatches 4 --impl both --out benchmarks/results/llm_trl
    python benchmarks/llm_trl.py --report-only --out benchmarks/results/llm_trl  # (re)build report

Inputs
    ``--prompts``: JSON lines, each with a string ``"prompt"``; the other keys (e.g.
    ``"target"``) reach the reward function as lists, one entry per completion.
    ``--reward MODULE:FUNCTION`` (an importable module, or ``path/file.py:FUNCTION``): TRL's
    convention, ``fn(prompts=[str], completions=[str], **columns, **extras) -> [float]``; it must
    take ``**kwargs`` (TRL adds ``completion_ids``, ``trainer_state``, ...). Plain-text prompts,
    no chat template; completions decoded with ``skip_special_tokens=True``.

What one "step" (round) is
    ``--prompts-per-step`` P prompts x ``--generations`` G completions, then ``--epochs`` E
    passes over them in ``--minibatches`` M optimizer steps each. TRL: ``num_generations=G``,
    ``per_device_train_batch_size=P*G/M``, ``steps_per_generation=M``, ``num_iterations=E``,
    ``gradient_accumulation_steps=1``, ``max_steps=steps*E*M``, ``logging_steps=E*M`` (one TRL
    log per round, its metrics averaged over the round). Fixed: CPU, float32, no vLLM, no gradient
    checkpointing, dropout off (TRL samples and recomputes old log-probs in train mode; ppox keeps
    its models in eval mode), ``report_to="none"``, no checkpoints, no Hub, ``HF_HUB_OFFLINE=1``.

Outputs (``--out``)
    Per run ``{impl}_{algo}_seed{S}.csv``: ``step, generated_tokens`` (cumulative),
    ``reward_mean, kl, wall_time_s, reward_std, mean_completion_length, kl_per_completion``,
    ``entropy, clip_fraction, grad_norm`` (diagnostics; TRL's grad_norm is the round's last
    optimizer step's, ppox's the round's mean, both before clipping); and
    ``{impl}_{algo}_seed{S}.json``: timings, versions, machine, the hyper-parameters and the full
    TRL config or ppox command and config (paths relative, temporary ones masked).
    Report: ``results.md``, ``results.json``, ``curves_{algo}.png`` (see :func:`report`).

How TRL's numbers are taken
    * generated_tokens: counted by wrapping the reward function, which TRL calls once per round
      with ``completion_ids`` (each completion's ids, EOS included when sampled, no padding).
      TRL's ``completions/mean_length`` x completions is kept as a cross-check
      (``generated_tokens_from_trl_logs`` in the JSON).
    * reward_mean / reward_std: TRL's ``reward`` / ``reward_std`` (raw reward, before RLOO's KL
      penalty; TRL's logged std is Bessel-corrected, ppox's logged one is not).
    * kl: TRL's ``kl`` (absent when beta = 0), a token mean: GRPO's k3 = exp(r) - r - 1,
      r = logp_ref - logp, at the policy being optimized, averaged over the round's optimizer
      steps; RLOO's k1 = logp_old - logp_ref at generation. ``kl_per_completion`` = kl x mean
      completion length, the scale of ppox's ``kl`` (k1 summed over a completion, averaged).
    * train_s: duration of ``trainer.train()`` (model loading and trainer construction excluded,
      reported as setup_s); ppox: its last ``wall_time_s`` (its training loop). whole_process_s:
      the run's interpreter from start to exit, imports and model loading included.

ppox mapping (``run_ppox``; flags as in ``ppox llm train --help``)
    ``--advantage grpo|rloo``, ``--iterations`` steps, ``--prompts-per-iteration`` P,
    ``--samples-per-prompt`` G, ``--epochs`` E, ``--minibatches`` M, ``--max-new-tokens``,
    ``--temperature`` (``--top-k 0 --top-p 1 --stop-at-eos``, TRL's sampling), ``--learning-rate``,
    ``--anneal-lr`` iff ``--lr-schedule linear``, ``--adam-eps``, ``--max-grad-norm``,
    ``--clip-coef`` epsilon, ``--kl-coef`` beta with GRPO ``--kl-estimator k3 --kl-penalty loss``
    and RLOO ``--kl-estimator k1 --kl-penalty reward`` (TRL's placements), ``--grpo-scale``
    = TRL ``scale_rewards``, ``--loss-aggregation`` from TRL ``loss_type`` (dapo/bnpo: token,
    grpo: sequence, dr_grpo: constant; RLOO: constant, see ``ppox_aggregation``),
    ``--no-whiten-advantages`` (``--whiten-advantages`` for RLOO with ``--normalize-advantages``),
    ``--ent-coef 0``, cpu, float32, ``--checkpoint-every`` steps, no TensorBoard, no samples.
    Not aligned (listed in results.md too): TRL's RLOO clips a sequence-level ratio, ppox a
    per-token one (identical at E = M = 1); TRL's linear schedule decays per optimizer step, ppox's
    per round. Both use the Bessel-corrected group std + 1e-4 for GRPO's advantages.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import functools
import importlib
import importlib.util
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ALGOS = ("grpo", "rloo")
IMPLS = ("trl", "ppox", "both")
CSV_COLUMNS = (
    "step",
    "generated_tokens",
    "reward_mean",
    "kl",
    "wall_time_s",
    "reward_std",
    "mean_completion_length",
    "kl_per_completion",
    "entropy",
    "clip_fraction",
    "grad_norm",
)
# TRL GRPO loss_type -> ppox --loss-aggregation (dapo/bnpo: per token; grpo: per sequence;
# dr_grpo: batch x max_new_tokens). Others (cispo, sapo, ...) have no ppox counterpart.
LOSS_AGGREGATION = {"dapo": "token", "bnpo": "token", "grpo": "sequence", "dr_grpo": "constant"}
VERSIONED = ("torch", "transformers", "trl", "accelerate", "datasets", "tokenizers", "ppox")
TEMP = "<temporary directory>"
WORKER_FLAGS = ("--worker-impl", "--worker-seed", "--worker-algo", "--worker-index")
RUN_FILE = re.compile(r"(trl|ppox)_(grpo|rloo)_seed(\d+)\.json")
SMOOTH = 5  # rounds in the moving average of the report
START = 3  # rounds averaged for "reward at start"
FRACTIONS = (0.25, 0.5, 1.0)  # of the smallest final token count among an algo's runs


def scrub(obj: Any, subs: list[tuple[str, str]]) -> Any:
    """``obj`` with every ``old`` replaced by ``new`` in its strings (nested dicts and lists)."""
    if isinstance(obj, str):
        for old, new in subs:
            obj = obj.replace(old, new)
        return obj
    if isinstance(obj, dict):
        return {k: scrub(v, subs) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(v, subs) for v in obj]
    return obj


def path_subs() -> list[tuple[str, str]]:
    """The interpreter becomes ``python``; paths under the working directory become relative."""
    cwd = os.getcwd()
    return [(sys.executable, "python"), (cwd + os.sep, ""), (cwd, ".")]


def leaked_paths(text: str) -> list[str]:
    roots = {os.getcwd(), tempfile.gettempdir(), sys.prefix, str(Path.home())}
    return sorted(r for r in roots if len(r) > 1 and r in text)


# --- shared -------------------------------------------------------------------------------------
def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def load_reward(spec: str) -> Callable[..., list[float | None]]:
    """``MODULE:FUNCTION``; MODULE is an importable module name or a path to a ``.py`` file."""
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name:
        raise SystemExit(f"--reward must be MODULE:FUNCTION, got {spec!r}")
    if module_name.endswith(".py"):
        path = Path(module_name)
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:
            raise SystemExit(f"cannot load reward module from {path}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
    return getattr(module, func_name)


def load_prompts(path: str) -> list[dict[str, Any]]:
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row.get("prompt"), str):
                    raise SystemExit(f"{path}:{n}: each line needs a string 'prompt'")
                rows.append(row)
    return rows


def hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    keys = (
        "algo",
        "steps",
        "prompts_per_step",
        "generations",
        "max_new_tokens",
        "temperature",
        "lr",
        "lr_schedule",
        "beta",
        "epsilon",
        "epochs",
        "minibatches",
        "max_grad_norm",
        "adam_eps",
        "loss_type",
        "scale_rewards",
        "normalize_advantages",
        "ppox_loss_aggregation",
        "threads",
    )
    return {k: getattr(args, k) for k in keys}


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row.get(k) is None else row[k]) for k in CSV_COLUMNS})


def curve_summary(rows: list[dict[str, Any]], last: int = 5) -> dict[str, Any]:
    rewards = [r["reward_mean"] for r in rows if r.get("reward_mean") is not None]
    return dict(
        steps_done=len(rows),
        generated_tokens=rows[-1]["generated_tokens"] if rows else 0,
        final_reward=rewards[-1] if rewards else None,
        final_reward_last5_mean=statistics.fmean(rewards[-last:]) if rewards else None,
        first_reward=rewards[0] if rewards else None,
    )


# --- TRL ----------------------------------------------------------------------------------------
class TokenCounter:
    """Wraps the reward function: counts the completion tokens TRL hands it (once per round)."""

    def __init__(self, fn: Callable[..., list[float | None]]):
        self.fn = fn
        self.total = 0
        functools.update_wrapper(self, fn)  # TRL names the reward metric after __name__

    def __call__(
        self, *args: Any, completion_ids: list[list[int]], **kwargs: Any
    ) -> list[float | None]:
        self.total += sum(len(ids) for ids in completion_ids)
        return self.fn(*args, completion_ids=completion_ids, **kwargs)


def trl_config(args: argparse.Namespace, seed: int, output_dir: str) -> Any:
    from trl import GRPOConfig, RLOOConfig

    completions = args.prompts_per_step * args.generations
    if completions % args.minibatches:
        raise SystemExit("prompts-per-step x generations must be divisible by --minibatches")
    cls = GRPOConfig if args.algo == "grpo" else RLOOConfig
    updates_per_round = args.epochs * args.minibatches
    kw: dict[str, Any] = dict(
        output_dir=output_dir,
        seed=seed,
        use_cpu=True,
        bf16=False,
        fp16=False,
        use_vllm=False,
        report_to="none",
        push_to_hub=False,
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        disable_dropout=True,
        model_init_kwargs={"dtype": "float32"},
        num_generations=args.generations,
        per_device_train_batch_size=completions // args.minibatches,
        gradient_accumulation_steps=1,
        steps_per_generation=args.minibatches,
        num_iterations=args.epochs,
        max_steps=args.steps * updates_per_round,
        logging_steps=updates_per_round,
        max_completion_length=args.max_new_tokens,
        temperature=args.temperature,
        learning_rate=args.lr,
        lr_scheduler_type=args.lr_schedule,
        beta=args.beta,
        epsilon=args.epsilon,
        max_grad_norm=args.max_grad_norm,
        adam_epsilon=args.adam_eps,
    )
    names = {f.name for f in fields(cls)}
    # transformers >= 5.x renamed gradient_checkpointing; TRL defaults it to True
    ckpt = (
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing"
    )
    kw[ckpt] = False
    if args.algo == "grpo":
        kw.update(loss_type=args.loss_type, scale_rewards=args.scale_rewards)
    else:
        kw.update(normalize_advantages=args.normalize_advantages)
    return cls(**kw)


def make_recorder(counter: TokenCounter, n_completions: int) -> Any:
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        """One row per TRL log = one generation round (logging_steps = updates per round)."""

        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []
            self.t0 = time.perf_counter()
            self.trl_tokens = 0.0
            self.train_log: dict[str, Any] = {}

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "reward" not in logs:
                self.train_log.update(logs)  # the final train_runtime / train_loss entry
                return
            mean_len = logs.get("completions/mean_length")
            if mean_len is not None:
                self.trl_tokens += mean_len * n_completions
            kl = logs.get("kl")
            row = dict(
                step=len(self.rows) + 1,
                generated_tokens=counter.total,
                reward_mean=logs["reward"],
                kl=kl,
                wall_time_s=round(time.perf_counter() - self.t0, 4),
                reward_std=logs.get("reward_std"),
                mean_completion_length=mean_len,
                kl_per_completion=None if kl is None or mean_len is None else kl * mean_len,
                entropy=logs.get("entropy"),
                clip_fraction=logs.get("clip_ratio/region_mean"),
                grad_norm=logs.get("grad_norm"),  # the round's last step, before clipping
                trl_global_step=state.global_step,
            )
            self.rows.append(row)
            if row["step"] % 10:
                return
            kl = "" if row["kl"] is None else f" kl {row['kl']:.4f}"
            print(
                f"  step {row['step']:4d}  tokens {row['generated_tokens']:8d}  "
                f"reward {row['reward_mean']:+.4f}{kl}  {row['wall_time_s']:.1f}s",
                flush=True,
            )

    return Recorder()


def run_trl(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One TRL training run; returns ``{"rows": [...], "summary": {...}}``."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer, RLOOTrainer

    torch.set_num_threads(args.threads)
    counter = TokenCounter(load_reward(args.reward))
    dataset = Dataset.from_list(load_prompts(args.prompts))
    n_completions = args.prompts_per_step * args.generations
    with tempfile.TemporaryDirectory() as tmp:
        config = trl_config(args, seed, tmp)
        t0 = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        recorder = make_recorder(counter, n_completions)
        trainer_cls = GRPOTrainer if args.algo == "grpo" else RLOOTrainer
        trainer = trainer_cls(
            model=args.model,
            reward_funcs=counter,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[recorder],
        )
        trainer.remove_callback(PrinterCallback)
        setup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t0
        trl_config_dict = json.loads(json.dumps(config.to_dict(), default=str))
        trl_config_dict = scrub(trl_config_dict, [(tmp, TEMP), *path_subs()])
    rows = recorder.rows
    summary = dict(
        curve_summary(rows),
        setup_s=setup_s,
        train_s=train_s,
        seconds_per_step=train_s / max(len(rows), 1),
        tokens_per_second=counter.total / train_s,
        generated_tokens_from_trl_logs=recorder.trl_tokens,
        token_count_method="reward-function wrapper: sum of len(completion_ids) (EOS included)",
        kl_definition=(
            "GRPO: token mean of k3 = exp(r)-r-1, r = logp_ref - logp, in the loss, averaged over "
            "the round's optimizer steps"
            if args.algo == "grpo"
            else "RLOO: token mean of k1 = logp_old - logp_ref at generation time"
        ),
        trl_train_log=recorder.train_log,
        torch_threads=torch.get_num_threads(),
        trl_config=trl_config_dict,
        trl_trainer=trainer_cls.__name__,
    )
    return {"rows": rows, "summary": summary}


# --- ppox ---------------------------------------------------------------------------------------
def ppox_aggregation(args: argparse.Namespace) -> str:
    if args.ppox_loss_aggregation is not None:
        return args.ppox_loss_aggregation
    if args.algo == "rloo":
        # TRL's RLOO loss is the mean over completions of a sequence-level term: on-policy its
        # gradient is ppox's "constant" aggregation times max_new_tokens (a factor Adam absorbs)
        return "constant"
    if args.loss_type not in LOSS_AGGREGATION:
        raise SystemExit(f"TRL loss_type {args.loss_type!r} has no ppox counterpart")
    return LOSS_AGGREGATION[args.loss_type]


def ppox_command(args: argparse.Namespace, seed: int, run_dir: Path) -> tuple[list[str], str]:
    """The ``ppox llm train`` command line with the benchmark's settings, and its PYTHONPATH
    addition (a ``file.py:fn`` reward becomes ``file:fn`` with the file's folder on the path)."""
    module, _, func = args.reward.rpartition(":")
    extra_path = ""
    if module.endswith(".py"):
        extra_path = str(Path(module).resolve().parent)
        module = Path(module).stem
    grpo = args.algo == "grpo"
    flags: dict[str, Any] = {
        "--model": args.model,
        "--prompts": args.prompts,
        "--reward-fn": f"{module}:{func}",
        "--advantage": args.algo,
        "--run-dir": run_dir,
        "--seed": seed,
        "--iterations": args.steps,
        "--prompts-per-iteration": args.prompts_per_step,
        "--samples-per-prompt": args.generations,
        "--max-new-tokens": args.max_new_tokens,
        "--temperature": args.temperature,
        "--top-k": 0,
        "--top-p": 1.0,
        "--learning-rate": args.lr,
        "--adam-eps": args.adam_eps,
        "--max-grad-norm": args.max_grad_norm,
        "--clip-coef": args.epsilon,
        "--epochs": args.epochs,
        "--minibatches": args.minibatches,
        "--ent-coef": 0.0,
        "--kl-coef": args.beta,
        "--kl-estimator": "k3" if grpo else "k1",  # GRPOTrainer: k3 in the loss
        "--kl-penalty": "loss" if grpo else "reward",  # RLOOTrainer: k1 summed, off the reward
        "--loss-aggregation": ppox_aggregation(args),
        "--device": "cpu",
        "--dtype": "float32",
        "--threads": args.threads,
        "--checkpoint-every": args.steps,  # only the final one (TRL writes none)
        "--log-samples": 0,
    }
    if grpo:
        flags["--grpo-scale"] = args.scale_rewards
    cmd = [sys.executable, "-m", "ppox", "llm", "train"]
    for flag, value in flags.items():
        cmd += [flag, str(value)]
    whiten = (not grpo) and args.normalize_advantages  # TRL: GRPO never, RLOO when asked
    cmd += [
        "--stop-at-eos",
        "--whiten-advantages" if whiten else "--no-whiten-advantages",
        "--no-whiten-rewards",
        "--anneal-lr" if args.lr_schedule == "linear" else "--no-anneal-lr",
        "--no-tensorboard",
        "--no-progress",
    ]
    return cmd, extra_path


def read_ppox_metrics(path: Path) -> list[dict[str, Any]]:
    def num(x: str | None) -> float | None:
        return None if x in (None, "") else float(x)

    rows = []
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            rows.append(
                dict(
                    step=int(float(rec["iteration"])),
                    generated_tokens=int(float(rec["generated_tokens"])),
                    reward_mean=num(rec.get("reward_mean")),
                    kl=num(rec.get("kl")),
                    wall_time_s=num(rec.get("wall_time_s")),
                    reward_std=num(rec.get("reward_std")),
                    mean_completion_length=num(rec.get("response_length")),
                    kl_per_completion=num(rec.get("kl")),
                    entropy=num(rec.get("entropy")),
                    clip_fraction=num(rec.get("clip_fraction")),
                    grad_norm=num(rec.get("grad_norm")),  # mean over the round, before clipping
                )
            )
    return rows


def run_ppox(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One ppox run through its CLI (a fresh process); returns ``{"rows", "summary"}``."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd, extra_path = ppox_command(args, seed, run_dir)
        if extra_path:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra_path, env.get("PYTHONPATH")]))
        print("  $", shlex.join(scrub([str(c) for c in cmd], path_subs())), flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env)
        whole_s = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"ppox exited with {proc.returncode}: {' '.join(cmd)}")
        rows = read_ppox_metrics(run_dir / "metrics.csv")
        subs = [(str(run_dir), f"{TEMP}/run"), (tmp, TEMP), *path_subs()]
        ppox_config = scrub(json.loads((run_dir / "config.json").read_text()), subs)
        shown = scrub([str(c) for c in cmd], subs)
    train_s = rows[-1]["wall_time_s"] if rows else None
    summary = dict(
        curve_summary(rows),
        whole_process_s=whole_s,
        train_s=train_s,
        seconds_per_step=train_s / len(rows) if rows and train_s else None,
        tokens_per_second=rows[-1]["generated_tokens"] / train_s if rows and train_s else None,
        token_count_method="ppox metrics.csv generated_tokens (response tokens, EOS included)",
        kl_definition="ppox: k1 = logp_old - logp_ref summed over a completion's tokens, averaged",
        ppox_command=shown,
        ppox_config=ppox_config,
    )
    return {"rows": rows, "summary": summary}


# --- driver -------------------------------------------------------------------------------------
def processor_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def benchmark_command(argv: list[str]) -> str:
    """The driver's command line (worker flags dropped, the script's path relative)."""
    keep: list[str] = []
    skip = False
    for arg in argv:
        if skip or arg in WORKER_FLAGS:
            skip = not skip
            continue
        keep.append(arg)
    script = Path(__file__).resolve()
    try:
        prog = str(script.relative_to(Path.cwd().resolve()))
    except ValueError:
        prog = script.name
    return scrub(shlex.join(["python", prog, *keep]), path_subs())


def with_algo(args: argparse.Namespace, algo: str) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "algo": algo})


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(scrub(data, path_subs()), indent=2, default=str) + "\n"
    leaks = leaked_paths(text)
    if leaks:
        print(f"warning: {path.name} names machine paths {leaks}", file=sys.stderr)
    path.write_text(text)


def run_one(
    args: argparse.Namespace, impl: str, seed: int, argv: list[str], index: int
) -> dict[str, Any]:
    print(f"[{index}: {impl} {args.algo} seed {seed}]", flush=True)
    started = now()
    result = run_trl(args, seed) if impl == "trl" else run_ppox(args, seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{impl}_{args.algo}_seed{seed}"
    write_csv(out / f"{stem}.csv", result["rows"])
    summary = dict(
        impl=impl,
        algo=args.algo,
        seed=seed,
        run_index=index,
        started=started,
        command=benchmark_command(argv),
        model=args.model,
        prompts=args.prompts,
        reward=args.reward,
        hyperparameters=hyperparameters(args),
        versions=versions(),
        machine=dict(
            platform=platform.platform(), processor=processor_name(), cpu_count=os.cpu_count()
        ),
        **result["summary"],
    )
    write_json(out / f"{stem}.json", summary)
    return summary


def spawn(args: argparse.Namespace, argv: list[str], impl: str, seed: int, index: int) -> None:
    """Run one (impl, seed) in a fresh interpreter, timed from start to exit."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv]
    cmd += ["--worker-impl", impl, "--worker-seed", str(seed), "--worker-algo", args.algo]
    cmd += ["--worker-index", str(index)]
    started = now()
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    whole_s = time.perf_counter() - t0
    path = Path(args.out) / f"{impl}_{args.algo}_seed{seed}.json"
    summary = json.loads(path.read_text())
    summary.update(started=started, whole_process_s=whole_s)
    write_json(path, summary)


# --- report -------------------------------------------------------------------------------------
def read_curve(path: Path) -> list[dict[str, Any]]:
    def num(x: str | None) -> float | None:
        return None if x in (None, "") else float(x)

    with open(path, newline="") as f:
        return [{k: num(v) for k, v in rec.items()} for rec in csv.DictReader(f)]


def load_runs(out: Path) -> list[dict[str, Any]]:
    runs = []
    for path in sorted(out.glob("*.json")):
        if RUN_FILE.fullmatch(path.name) and path.with_suffix(".csv").exists():
            meta = json.loads(path.read_text())
            runs.append({"meta": meta, "rows": read_curve(path.with_suffix(".csv"))})
    return sorted(runs, key=lambda r: (r["meta"]["algo"], r["meta"]["seed"], r["meta"]["impl"]))


def moving_average(xs: list[float], window: int = SMOOTH) -> list[float]:
    """Trailing mean: round i and the window - 1 rounds before it (fewer at the start)."""
    return [statistics.fmean(xs[max(0, i - window + 1) : i + 1]) for i in range(len(xs))]


def interpolate(x: float, xs: list[float], ys: list[float]) -> float:
    """Linear interpolation of ``ys`` over increasing ``xs`` (clamped at the ends)."""
    i = bisect.bisect_left(xs, x)
    if i == 0:
        return ys[0]
    if i == len(xs):
        return ys[-1]
    w = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
    return ys[i - 1] + w * (ys[i] - ys[i - 1])


def run_metrics(run: dict[str, Any], budget: float) -> dict[str, Any]:
    meta, rows = run["meta"], run["rows"]
    rows = [r for r in rows if r["reward_mean"] is not None]
    tokens = [r["generated_tokens"] for r in rows]
    reward = [r["reward_mean"] for r in rows]
    smooth = moving_average(reward)
    kl = [r["kl_per_completion"] for r in rows if r["kl_per_completion"] is not None]
    out: dict[str, Any] = {"seed": meta["seed"], "reward_start": statistics.fmean(reward[:START])}
    for f in FRACTIONS:
        out[f"reward_at_{f:.0%}"] = interpolate(f * budget, tokens, smooth)
    out.update(
        kl_end=statistics.fmean(kl[-SMOOTH:]) if kl else None,
        generated_tokens=tokens[-1],
        train_s=meta.get("train_s"),
        tokens_per_second=meta.get("tokens_per_second"),
        whole_process_s=meta.get("whole_process_s"),
        rounds=len(rows),
    )
    return out


METRICS = (
    ("reward_start", f"reward at start (mean of rounds 1-{START})", "{:.3f}"),
    *(
        (f"reward_at_{f:.0%}", f"reward at {f:.0%} of the token budget", "{:.3f}")
        for f in FRACTIONS
    ),
    ("kl_end", f"KL at end (nats/completion, last {SMOOTH} rounds)", "{:.2f}"),
    ("generated_tokens", "generated tokens", "{:,.0f}"),
    ("train_s", "training time (s)", "{:.1f}"),
    ("tokens_per_second", "generated tokens / s of training", "{:,.0f}"),
    ("whole_process_s", "whole process, start to exit (s)", "{:.1f}"),
)


def median_of(per_seed: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in per_seed if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def algo_results(runs: list[dict[str, Any]]) -> dict[str, Any]:
    budget = min(r["rows"][-1]["generated_tokens"] for r in runs)
    impls: dict[str, Any] = {}
    for impl in ("trl", "ppox"):
        per_seed = [run_metrics(r, budget) for r in runs if r["meta"]["impl"] == impl]
        if per_seed:
            keys = [k for k, _, _ in METRICS]
            impls[impl] = {
                "median": {k: median_of(per_seed, k) for k in keys},
                "per_seed": per_seed,
            }
    return {
        "token_budget": budget,
        "reward_points_tokens": {f"{f:.0%}": f * budget for f in FRACTIONS},
        "hyperparameters": runs[0]["meta"]["hyperparameters"],
        "impls": impls,
    }


def cell(fmt: str, value: Any) -> str:
    return "n/a" if value is None else fmt.format(value)


def results_table(res: dict[str, Any]) -> list[str]:
    impls = list(res["impls"])
    seeds = {i: [r["seed"] for r in res["impls"][i]["per_seed"]] for i in impls}
    head = [f"{i.upper() if i == 'trl' else i}: median (seeds {seeds[i]})" for i in impls]
    lines = ["| metric | " + " | ".join(head) + " |", "|---" * (len(impls) + 1) + "|"]
    for key, label, fmt in METRICS:
        cells = []
        for i in impls:
            med = cell(fmt, res["impls"][i]["median"][key])
            each = ", ".join(cell(fmt, r[key]) for r in res["impls"][i]["per_seed"])
            cells.append(f"**{med}** ({each})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def plot(algo: str, runs: list[dict[str, Any]], res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"trl": "tab:orange", "ppox": "tab:blue"}
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        meta, rows = run["meta"], [r for r in run["rows"] if r["reward_mean"] is not None]
        tokens = [r["generated_tokens"] for r in rows]
        label = f"{meta['impl']} seed {meta['seed']}"
        style = dict(color=colors.get(meta["impl"], "k"), ls=styles[meta["seed"] % len(styles)])
        axes[0].plot(tokens, moving_average([r["reward_mean"] for r in rows]), label=label, **style)
        kl = [(t, r["kl_per_completion"]) for t, r in zip(tokens, rows)]
        kl = [(t, k) for t, k in kl if k is not None]
        if kl:
            axes[1].plot([t for t, _ in kl], moving_average([k for _, k in kl]), **style)
    for x in res["reward_points_tokens"].values():
        axes[0].axvline(x, color="grey", lw=0.6, ls=":")
    axes[0].set(xlabel="generated tokens", ylabel=f"reward ({SMOOTH}-round moving average)")
    axes[1].set(xlabel="generated tokens", ylabel="KL to reference (nats / completion)")
    axes[0].set_title(f"{algo.upper()}: TRL vs ppox, reward")
    axes[1].set_title(f"{algo.upper()}: KL ({SMOOTH}-round moving average)")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def settings_lines(hp: dict[str, Any]) -> list[str]:
    e, m, p, g = hp["epochs"], hp["minibatches"], hp["prompts_per_step"], hp["generations"]
    sched = "linear to 0 per optimizer step" if hp["lr_schedule"] == "linear" else "constant"
    anneal = "--anneal-lr (lr x (1 - i/rounds), per round)" if hp["lr_schedule"] == "linear" else ""
    return [
        "| setting | TRL (GRPOConfig / RLOOConfig) | ppox llm train |",
        "|---|---|---|",
        f"| rounds | max_steps {hp['steps']}x{e}x{m} optimizer steps, logging_steps {e * m} "
        f"| --iterations {hp['steps']} |",
        f"| batch | num_generations {g}, per_device_train_batch_size {p * g // m} (completions), "
        f"steps_per_generation {m}, num_iterations {e} | --prompts-per-iteration {p} "
        f"--samples-per-prompt {g} --minibatches {m} --epochs {e} |",
        f"| sampling | max_completion_length {hp['max_new_tokens']}, temperature "
        f"{hp['temperature']}, top_k 0, top_p 1 | --max-new-tokens {hp['max_new_tokens']} "
        f"--temperature {hp['temperature']} --top-k 0 --top-p 1 --stop-at-eos |",
        f"| optimizer | AdamW lr {hp['lr']} ({sched}), adam_epsilon {hp['adam_eps']}, "
        f"max_grad_norm {hp['max_grad_norm']}, weight decay 0 | --learning-rate {hp['lr']} "
        f"{anneal} --adam-eps {hp['adam_eps']} --max-grad-norm {hp['max_grad_norm']} |",
        f"| clip | epsilon {hp['epsilon']} | --clip-coef {hp['epsilon']} |",
        f"| GRPO | scale_rewards {hp['scale_rewards']}, loss_type {hp['loss_type']}, beta "
        f"{hp['beta']} (k3 in the loss) | --advantage grpo --grpo-scale {hp['scale_rewards']} "
        f"--loss-aggregation token --kl-coef {hp['beta']} --kl-estimator k3 --kl-penalty loss "
        "--no-whiten-advantages |",
        f"| RLOO | leave-one-out, normalize_advantages {hp['normalize_advantages']}, beta "
        f"{hp['beta']} (k1 summed over tokens, off the reward) | --advantage rloo --kl-coef "
        f"{hp['beta']} --kl-estimator k1 --kl-penalty reward --loss-aggregation constant "
        "--no-whiten-advantages |",
        "| model | float32, CPU, dropout off, no gradient checkpointing, no vLLM | --dtype float32 "
        "--device cpu (eval mode), --ent-coef 0 |",
    ]


DIFFERENCES = [
    "RLOO: TRL clips one sequence-level ratio exp(sum_t logp - sum_t logp_old) per completion "
    "(mean over completions); ppox clips per-token ratios and sums them / (minibatch x "
    "max_new_tokens) (`loss_aggregation=constant`). On-policy the gradients agree up to the factor "
    "max_new_tokens, which Adam absorbs but gradient-norm clipping (1.0) does not: TRL's "
    "pre-clip gradient is max_new_tokens times larger.",
    "KL: GRPO puts beta x k3 (at the current policy) in the loss in both. RLOO subtracts beta x "
    "sum_t k1 (at sampling) from the reward in both. Reported KL: ppox's is k1 summed over a "
    "completion at sampling; TRL's `kl` is a token mean (GRPO: k3 at the policy being updated, "
    "averaged over the round's updates; RLOO: k1 at sampling), multiplied by the mean completion "
    "length (`kl_per_completion`).",
    "ppox advantage whitening is off (TRL has none for GRPO and `normalize_advantages=False` for "
    "RLOO). GRPO's group std is the Bessel-corrected (n - 1) one + 1e-4 in both.",
    "GRPO `dapo` divides the summed token losses by (generation batch tokens / "
    "steps_per_generation); ppox's `token` by the minibatch's own tokens.",
    "Learning rate: TRL's linear schedule decays every optimizer step to 0; ppox's per round "
    "(last round at lr/rounds).",
    "Sampling: same seeds, different random streams, so the samples differ. ppox writes a final "
    "checkpoint (inside its process time, outside its training time); TRL writes none.",
]


def total_span(runs: list[dict[str, Any]]) -> float | None:
    starts = [datetime.fromisoformat(r["meta"]["started"]) for r in runs]
    ends = [
        datetime.fromisoformat(r["meta"]["started"]).timestamp() + r["meta"]["whole_process_s"]
        for r in runs
        if r["meta"].get("whole_process_s") is not None
    ]
    return max(ends) - min(starts).timestamp() if ends else None


def report_header(runs: list[dict[str, Any]]) -> list[str]:
    metas = [r["meta"] for r in runs]
    commands = sorted({m["command"] for m in metas})
    vers = metas[0]["versions"]
    machine = metas[0]["machine"]
    order = ", ".join(
        f"{m['impl']} {m['algo']} s{m['seed']}" for m in sorted(metas, key=lambda m: m["run_index"])
    )
    span = total_span(runs)
    return [
        "# ppox vs TRL: GRPO and RLOO on the same model, prompts and reward",
        "",
        "Command" + ("s" if len(commands) > 1 else "") + ":",
        "",
        "```",
        *(f"OMP_NUM_THREADS={metas[0]['hyperparameters']['threads']} {c}" for c in commands),
        "```",
        "",
        f"Model `{metas[0]['model']}`, prompts `{metas[0]['prompts']}`, reward "
        f"`{metas[0]['reward']}`.",
        f"Versions: torch {vers.get('torch')}, transformers {vers.get('transformers')}, trl "
        f"{vers.get('trl')}, ppox {vers.get('ppox')}, python {vers.get('python')}.",
        f"Machine: {machine.get('processor')}, {machine.get('cpu_count')} CPUs. Runs were "
        f"sequential, one at a time, each a fresh interpreter with "
        f"{metas[0]['hyperparameters']['threads']} thread (OMP_NUM_THREADS and torch threads), "
        f"interleaved per seed: {order}."
        + ("" if span is None else f" Wall time of all runs: {span / 60:.1f} min."),
        "",
        f"Reward is the raw reward (before RLOO's KL penalty), as a {SMOOTH}-round trailing moving "
        "average interpolated at equal numbers of generated tokens (25/50/100% of the smallest "
        "final token count among the algorithm's runs). Tokens/s = generated tokens / training "
        "time (the training loop; model loading excluded); whole process = interpreter start to "
        "exit. Cells: **median** (per seed).",
        "",
    ]


def report(out: Path) -> dict[str, Any]:
    """``results.md``, ``results.json`` and ``curves_{algo}.png`` from the per-run files."""
    runs = load_runs(out)
    if not runs:
        raise SystemExit(f"no per-run results (impl_algo_seedS.json + .csv) in {out}")
    lines = report_header(runs)
    results: dict[str, Any] = {
        "commands": sorted({r["meta"]["command"] for r in runs}),
        "versions": runs[0]["meta"]["versions"],
        "machine": runs[0]["meta"]["machine"],
        "threads": runs[0]["meta"]["hyperparameters"]["threads"],
        "run_order": [
            f"{m['impl']}_{m['algo']}_seed{m['seed']}"
            for m in sorted((r["meta"] for r in runs), key=lambda m: m["run_index"])
        ],
        "wall_time_s": total_span(runs),
        "smoothing_rounds": SMOOTH,
        "algos": {},
    }
    for algo in ALGOS:
        algo_runs = [r for r in runs if r["meta"]["algo"] == algo]
        if not algo_runs:
            continue
        res = algo_results(algo_runs)
        results["algos"][algo] = res
        png = f"curves_{algo}.png"
        plot(algo, algo_runs, res, out / png)
        points = ", ".join(f"{k} = {v:,.0f}" for k, v in res["reward_points_tokens"].items())
        lines += [f"## {algo.upper()}", "", f"Token budget points: {points}.", ""]
        lines += [*results_table(res), "", f"![{algo} curves]({png})", ""]
    lines += ["## Settings", "", *settings_lines(runs[0]["meta"]["hyperparameters"]), ""]
    lines += ["Known differences:", "", *(f"- {d}" for d in DIFFERENCES), ""]
    (out / "results.md").write_text("\n".join(lines))
    write_json(out / "results.json", results)
    print(f"report: {out / 'results.md'}")
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="local model directory (save_pretrained)")
    p.add_argument("--prompts", help="JSONL with a 'prompt' per line")
    p.add_argument("--reward", help="MODULE:FUNCTION or path/file.py:FUNCTION")
    p.add_argument("--algo", dest="algos", nargs="+", choices=ALGOS, default=["grpo"])
    p.add_argument("--impl", choices=IMPLS, default="both")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=50, help="generation rounds per run")
    p.add_argument("--out", default="benchmarks/results/llm_trl")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from --out")
    h = p.add_argument_group("shared hyper-parameters")
    h.add_argument("--prompts-per-step", type=int, default=8)
    h.add_argument("--generations", type=int, default=4, help="completions per prompt")
    h.add_argument("--max-new-tokens", type=int, default=8)
    h.add_argument("--temperature", type=float, default=1.0)
    h.add_argument("--lr", type=float, default=1e-4)
    h.add_argument("--lr-schedule", choices=("constant", "linear"), default="constant")
    h.add_argument("--beta", type=float, default=0.0, help="KL coefficient (0: no reference)")
    h.add_argument("--epsilon", type=float, default=0.2, help="ratio clip")
    h.add_argument("--epochs", type=int, default=1, help="passes per round (TRL num_iterations)")
    h.add_argument("--minibatches", type=int, default=1, help="optimizer steps per pass")
    h.add_argument("--max-grad-norm", type=float, default=1.0)
    h.add_argument("--adam-eps", type=float, default=1e-8, help="TRL's default (ppox's is 1e-5)")
    h.add_argument("--threads", type=int, default=1, help="torch / OMP threads per run")
    t = p.add_argument_group("TRL-only (defaults are TRL's)")
    t.add_argument("--loss-type", default="dapo", help="GRPO loss aggregation (TRL loss_type)")
    t.add_argument("--scale-rewards", choices=("group", "batch", "none"), default="group")
    t.add_argument("--normalize-advantages", action="store_true", help="RLOO: whiten advantages")
    p.add_argument(
        "--ppox-loss-aggregation",
        choices=("token", "sequence", "constant"),
        help="override the ppox loss aggregation derived from the TRL settings",
    )
    p.add_argument("--in-process", action="store_true", help="TRL runs in this interpreter")
    p.add_argument("--worker-impl", choices=("trl", "ppox"), help=argparse.SUPPRESS)
    p.add_argument("--worker-seed", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-algo", choices=ALGOS, help=argparse.SUPPRESS)
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.report_only and not (args.model and args.prompts and args.reward):
        p.error("--model, --prompts and --reward are required (unless --report-only)")
    return args


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # before torch is imported
    out = Path(args.out)
    if args.report_only:
        report(out)
        return
    if args.worker_impl is not None:
        algo_args = with_algo(args, args.worker_algo)
        run_one(algo_args, args.worker_impl, args.worker_seed, argv, args.worker_index)
        return
    impls = ["trl", "ppox"] if args.impl == "both" else [args.impl]
    t0, index = time.perf_counter(), 0
    for algo in args.algos:
        algo_args = with_algo(args, algo)
        for seed in args.seeds:  # interleaved: TRL then ppox for each seed
            for impl in impls:
                if args.in_process or impl == "ppox":  # ppox runs its own CLI process
                    run_one(algo_args, impl, seed, argv, index)
                else:
                    spawn(algo_args, argv, impl, seed, index)
                index += 1
    print(f"all runs: {time.perf_counter() - t0:.0f} s")
    report(out)


if __name__ == "__main__":
    main()
