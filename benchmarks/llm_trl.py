"""ppox.llm vs TRL (GRPOTrainer / RLOOTrainer): same model, prompts, reward and hyper-parameters.

Runs TRL's trainer (and, with ``--impl ppox|both``, ``ppox llm train``) on a local Hugging Face
causal LM (a ``save_pretrained`` directory, tokenizer included) and writes, per seed, a learning
curve and a summary::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/llm_trl.py --model MODEL_DIR \\
        --prompts prompts.jsonl --reward my_rewards:digit_sum --algo grpo --seeds 0 1 2 \\
        --steps 100 --prompts-per-step 8 --generations 4 --max-new-tokens 8 --impl both

Every run is a fresh interpreter with ``OMP_NUM_THREADS`` and torch threads = ``--threads``.

Inputs
    ``--prompts``: JSON lines, each with a string ``"prompt"``; the other keys (e.g.
    ``"target"``) reach the reward function as lists, one entry per completion.
    ``--reward MODULE:FUNCTION`` (an importable module, or ``path/file.py:FUNCTION``): TRL's
    convention, ``fn(prompts=[str], completions=[str], **columns, **extras) -> [float]``; it must
    take ``**kwargs`` (TRL adds ``completion_ids``, ``trainer_state``, ...). Plain-text prompts,
    no chat template; completions decoded with ``skip_special_tokens=True``.

What one "step" is
    One generation round: ``--prompts-per-step`` P prompts x ``--generations`` G completions,
    then ``--epochs`` E passes over them in ``--minibatches`` M optimizer steps each. TRL:
    ``num_generations=G``, ``per_device_train_batch_size=P*G/M``, ``steps_per_generation=M``,
    ``num_iterations=E``, ``gradient_accumulation_steps=1``, ``max_steps=steps*E*M``,
    ``logging_steps=E*M`` (one TRL log per round, its metrics averaged over the round). Fixed:
    CPU, float32, no vLLM, no gradient checkpointing, dropout off (TRL samples and recomputes
    old log-probs in train mode, so dropout makes the ratio differ from 1 even on the first
    pass; ppox keeps its models in eval mode), ``report_to="none"``, no checkpoints, no Hub,
    ``HF_HUB_OFFLINE=1``.

Outputs (``--out``), per implementation, algorithm and seed
    ``{impl}_{algo}_seed{S}.csv``: ``step, generated_tokens`` (cumulative), ``reward_mean, kl,
    wall_time_s, reward_std, mean_completion_length, kl_per_completion``.
    ``{impl}_{algo}_seed{S}.json``: tokens per second of the whole training, seconds per step,
    final reward, versions, the hyper-parameters and the full TRL (or ppox) config used.
    ``{impl}_{algo}_summary.json``: the seeds side by side and their medians.

How TRL's numbers are taken
    * generated_tokens: counted by wrapping the reward function, which TRL calls once per round
      with ``completion_ids`` (each completion's ids, EOS included when sampled, no padding).
      TRL's ``completions/mean_length`` x completions is kept as a cross-check
      (``generated_tokens_from_trl_logs`` in the JSON); the two agree.
    * reward_mean / reward_std: TRL's ``reward`` / ``reward_std`` (raw reward, before RLOO's KL
      penalty; TRL's std is Bessel-corrected, ppox's is not).
    * kl: TRL's ``kl`` (absent when beta = 0), a token mean: GRPO's k3 = exp(r) - r - 1,
      r = logp_ref - logp, at the policy being optimized, averaged over the round's optimizer
      steps; RLOO's k1 = logp_old - logp_ref at generation. ``kl_per_completion`` = kl x mean
      completion length, the scale of ppox's ``kl`` (k1 summed over a completion, averaged).
    * wall_time_s: seconds since TRL's ``on_train_begin`` when the round's log is emitted.
      tokens_per_second = generated tokens / duration of ``trainer.train()`` (model loading and
      trainer construction excluded, reported as setup_s). ppox: its last ``generated_tokens`` /
      its last ``wall_time_s`` (its training loop; loading excluded as well).

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
    Then ``RUN/metrics.csv`` is read: ``iteration`` becomes ``step``, ``response_length``
    ``mean_completion_length``, ``kl`` is both ``kl`` and ``kl_per_completion``.
    Not aligned: TRL's RLOO clips a sequence-level ratio, ppox a per-token one (identical at
    E = M = 1); TRL's advantage std is Bessel-corrected with +1e-4, ppox's need not be.
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib
import importlib.util
import json
import os
import platform
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
)
# TRL GRPO loss_type -> ppox --loss-aggregation (dapo/bnpo: per token; grpo: per sequence;
# dr_grpo: batch x max_new_tokens). Others (cispo, sapo, ...) have no ppox counterpart.
LOSS_AGGREGATION = {"dapo": "token", "bnpo": "token", "grpo": "sequence", "dr_grpo": "constant"}
VERSIONED = ("torch", "transformers", "trl", "accelerate", "datasets", "tokenizers", "ppox")


# --- shared -------------------------------------------------------------------------------------
def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def load_reward(spec: str) -> Callable[..., list[float]]:
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

    def __init__(self, fn: Callable[..., list[float]]):
        self.fn = fn
        self.total = 0
        functools.update_wrapper(self, fn)  # TRL names the reward metric after __name__

    def __call__(self, *args: Any, completion_ids: list[list[int]], **kwargs: Any) -> list[float]:
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
                trl_global_step=state.global_step,
            )
            self.rows.append(row)
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
        trl_config_dict["output_dir"] = "<temporary directory>"
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
        print("  $", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env)
        whole_s = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"ppox exited with {proc.returncode}: {' '.join(cmd)}")
        rows = read_ppox_metrics(run_dir / "metrics.csv")
        ppox_config = json.loads((run_dir / "config.json").read_text())
    train_s = rows[-1]["wall_time_s"] if rows else None
    summary = dict(
        curve_summary(rows),
        whole_process_s=whole_s,
        train_s=train_s,
        seconds_per_step=train_s / len(rows) if rows and train_s else None,
        tokens_per_second=rows[-1]["generated_tokens"] / train_s if rows and train_s else None,
        token_count_method="ppox metrics.csv generated_tokens (response tokens, EOS included)",
        kl_definition="ppox: k1 = logp_old - logp_ref summed over a completion's tokens, averaged",
        ppox_command=[str(c) for c in cmd],
        ppox_config=ppox_config,
    )
    return {"rows": rows, "summary": summary}


# --- driver -------------------------------------------------------------------------------------
def run_one(args: argparse.Namespace, impl: str, seed: int) -> dict[str, Any]:
    print(f"[{impl} {args.algo} seed {seed}]", flush=True)
    result = run_trl(args, seed) if impl == "trl" else run_ppox(args, seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{impl}_{args.algo}_seed{seed}"
    write_csv(out / f"{stem}.csv", result["rows"])
    summary = dict(
        impl=impl,
        algo=args.algo,
        seed=seed,
        model=args.model,
        prompts=args.prompts,
        reward=args.reward,
        hyperparameters=hyperparameters(args),
        versions=versions(),
        machine=dict(platform=platform.platform(), processor=platform.processor()),
        cpu_count=os.cpu_count(),
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **result["summary"],
    )
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def spawn(args: argparse.Namespace, argv: list[str], impl: str, seed: int) -> dict[str, Any]:
    """Run one (impl, seed) in a fresh interpreter, so no state or warm cache crosses runs."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv]
    cmd += ["--worker-impl", impl, "--worker-seed", str(seed)]
    subprocess.run(cmd, env=env, check=True)
    stem = f"{impl}_{args.algo}_seed{seed}"
    return json.loads((Path(args.out) / f"{stem}.json").read_text())


def aggregate(args: argparse.Namespace, impl: str, runs: list[dict[str, Any]]) -> None:
    def median(key: str) -> float | None:
        vals = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    keys = ("tokens_per_second", "seconds_per_step", "final_reward", "final_reward_last5_mean")
    table = {
        "impl": impl,
        "algo": args.algo,
        "seeds": [r["seed"] for r in runs],
        "per_seed": [
            {k: r.get(k) for k in ("seed", "train_s", "generated_tokens", *keys)} for r in runs
        ],
        "median": {k: median(k) for k in keys},
        "hyperparameters": hyperparameters(args),
        "versions": runs[0]["versions"] if runs else versions(),
    }
    path = Path(args.out) / f"{impl}_{args.algo}_summary.json"
    path.write_text(json.dumps(table, indent=2) + "\n")
    med = table["median"]
    print(
        f"{impl} {args.algo}: median over seeds {table['seeds']}: "
        f"{med['tokens_per_second']:.1f} tok/s, {med['seconds_per_step']:.3f} s/step, "
        f"final reward {med['final_reward']:+.4f} -> {path}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="local model directory (save_pretrained)")
    p.add_argument("--prompts", required=True, help="JSONL with a 'prompt' per line")
    p.add_argument("--reward", required=True, help="MODULE:FUNCTION or path/file.py:FUNCTION")
    p.add_argument("--algo", choices=ALGOS, default="grpo")
    p.add_argument("--impl", choices=IMPLS, default="trl")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=50, help="generation rounds per run")
    p.add_argument("--out", default="benchmarks/results/llm_trl")
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
    p.add_argument("--in-process", action="store_true", help="no fresh interpreter per run")
    p.add_argument("--worker-impl", choices=("trl", "ppox"), help=argparse.SUPPRESS)
    p.add_argument("--worker-seed", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # before torch is imported
    if args.worker_impl is not None:
        run_one(args, args.worker_impl, args.worker_seed)
        return
    impls = ["trl", "ppox"] if args.impl == "both" else [args.impl]
    for impl in impls:
        runs = []
        for seed in args.seeds:
            if args.in_process or impl == "ppox":  # ppox already runs in its own process
                runs.append(run_one(args, impl, seed))
            else:
                runs.append(spawn(args, argv, impl, seed))
        aggregate(args, impl, runs)


if __name__ == "__main__":
    main()
