"""``ppox.llm`` on a GPU: the demo on CUDA, and the throughput of a GPT-2-small-shaped model.

1. The CPU demo's presets (PPO and GRPO, 60 iterations) with ``device=cuda``: the reward reached,
   generated tokens per second, the largest ``logprob_gap`` (sampling vs recomputation).
2. A model of GPT-2 small's shape (12 layers, 768 wide, 12 heads; random weights from a config,
   the demo's 36-token vocabulary, so nothing is downloaded) trained with GRPO on 64 prompts × 8
   completions of up to 128 tokens, in float32 and bfloat16: generated tokens per second, seconds
   per iteration split into sampling and learning, peak GPU memory, ``logprob_gap``.

    python benchmarks/llm_gpu.py --out benchmarks/results/llm_gpu   # a few minutes on one H200
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import time
from pathlib import Path

import torch


def demo_runs(work: Path) -> list[dict]:
    from ppox.llm import demo
    from ppox.llm.presets import get_llm_preset
    from ppox.llm.trainer import LLMTrainer

    demo.build(work / "demo")
    out = []
    for name in ("demo-ppo", "demo-grpo"):
        run = work / name
        shutil.rmtree(run, ignore_errors=True)
        cfg = get_llm_preset(name).config().replace(
            model=str(work / "demo" / "model"), prompts=str(work / "demo" / "prompts.jsonl"),
            device="cuda", run_dir=str(run), progress=False, tensorboard=False, seed=0,
        )  # fmt: skip
        t0 = time.perf_counter()
        s = LLMTrainer(cfg).train()
        rows = list(csv.DictReader((run / "metrics.csv").open()))
        out.append({
            "preset": name, "process_s": time.perf_counter() - t0,
            "reward_start": sum(float(r["reward_mean"]) for r in rows[:3]) / 3,
            "reward_end": sum(float(r["reward_mean"]) for r in rows[-5:]) / 5,
            "kl_end": float(rows[-1]["kl"]),
            "tokens_per_second": s["generated_tokens"] / s["wall_time_s"],
            "logprob_gap_max": max(float(r["logprob_gap"]) for r in rows),
        })  # fmt: skip
        print(out[-1], flush=True)
    return out


def scale_runs(work: Path, iterations: int) -> list[dict]:
    from transformers import GPT2Config, GPT2LMHeadModel

    from ppox.llm import demo
    from ppox.llm.config import LLMConfig
    from ppox.llm.trainer import LLMTrainer

    tok = demo.build_tokenizer()
    model_dir = work / "gpt2-small-shape"
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, eos_token_id=1,
                     pad_token_id=0, bos_token_id=1)  # fmt: skip
    GPT2LMHeadModel(cfg).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    out = []
    for dtype in ("float32", "bfloat16"):
        run = work / f"scale-{dtype}"
        shutil.rmtree(run, ignore_errors=True)
        c = LLMConfig(
            model=str(model_dir), prompts=str(work / "demo" / "prompts.jsonl"),
            reward_fn="ppox.llm.demo:digit_sum_reward", advantage="grpo", samples_per_prompt=8,
            prompts_per_iteration=64, max_new_tokens=128, epochs=1, minibatches=4,
            micro_batch_size=64, learning_rate=1e-6, kl_penalty="loss", kl_estimator="k3",
            kl_coef=0.04, whiten_advantages=False, iterations=iterations, device="cuda",
            dtype=dtype, run_dir=str(run), progress=False, tensorboard=False,
            checkpoint_every=10**6,
        )  # fmt: skip
        torch.cuda.reset_peak_memory_stats()
        tr = LLMTrainer(c)
        timings = {"sample": 0.0, "learn": 0.0}
        orig_rollout, orig_learn = tr._rollout, tr._learn

        def rollout(orig=orig_rollout, timings=timings):  # type: ignore[no-untyped-def]
            torch.cuda.synchronize()
            t = time.perf_counter()
            r = orig()
            torch.cuda.synchronize()
            timings["sample"] += time.perf_counter() - t
            return r

        def learn(b, orig=orig_learn, timings=timings):  # type: ignore[no-untyped-def]
            torch.cuda.synchronize()
            t = time.perf_counter()
            r = orig(b)
            torch.cuda.synchronize()
            timings["learn"] += time.perf_counter() - t
            return r

        tr._rollout, tr._learn = rollout, learn  # type: ignore[method-assign]
        s = tr.train()
        rows = list(csv.DictReader((run / "metrics.csv").open()))
        out.append({
            "dtype": dtype, "iterations": iterations, "parameters": sum(p.numel() for p in tr.policy.parameters()),
            "completions_per_iteration": 512, "max_new_tokens": 128,
            "tokens_per_second": s["generated_tokens"] / s["wall_time_s"],
            "seconds_per_iteration": s["wall_time_s"] / iterations,
            "rollout_s_per_iteration": timings["sample"] / iterations,
            "learn_s_per_iteration": timings["learn"] / iterations,
            "mean_response_length": sum(float(r["response_length"]) for r in rows) / len(rows),
            "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            "logprob_gap_max": max(float(r["logprob_gap"]) for r in rows),
        })  # fmt: skip
        print(out[-1], flush=True)
        del tr
        torch.cuda.empty_cache()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/llm_gpu"))
    p.add_argument("--work", type=Path, default=Path("runs/llm-gpu"))
    p.add_argument("--iterations", type=int, default=5)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("llm_gpu.py needs a CUDA device")
    args.out.mkdir(parents=True, exist_ok=True)
    import transformers

    meta = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "command": "python benchmarks/llm_gpu.py"}  # fmt: skip
    result = {
        "meta": meta,
        "demo": demo_runs(args.work),
        "scale": scale_runs(args.work, args.iterations),
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
