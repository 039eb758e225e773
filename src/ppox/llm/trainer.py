"""The language-model trainer (``ppox llm train``; docs/llm.md): generate, score, learn.

One iteration:

1. take ``prompts_per_iteration`` prompts (a shuffled order the run owns) and sample
   ``samples_per_prompt`` completions of each (:func:`ppox.llm.models.sample`);
2. score them (a reward function or model), subtract ``missing_eos_penalty`` where no EOS came;
3. with the policy as it is, recompute the sampled tokens' log-probabilities (the recorded
   ``logprob_gap`` is their largest difference from sampling's), the reference model's and the
   critic's values;
4. advantages: ``gae`` over per-token rewards (:func:`ppox.llm.tokens.token_rewards`), or
   ``rloo`` / ``grpo`` over the completions' scores, broadcast to their tokens; whitened over
   the batch's response tokens;
5. ``epochs`` × ``minibatches`` optimizer steps on the clipped surrogate (+ the clipped value loss,
   + β·KL with ``kl_penalty=loss``, − the entropy bonus), each minibatch in micro-batches whose
   gradients add up to the minibatch's;
6. adapt β (``kl_target``), log a row, write a checkpoint every ``checkpoint_every`` iterations.

Under ``torchrun`` every worker samples its own share of each iteration's prompts; the gradients
are averaged (one all-reduce per optimizer step) and whitening, KL and statistics read the whole
batch, so the replicas stay identical.

A run directory: ``config.json``, ``metrics.csv`` (+ TensorBoard under ``tb/``),
``samples.jsonl``, ``checkpoint.json`` (which checkpoint is the latest) and ``checkpoint-NNNNNN/``:
``policy/`` (``save_pretrained`` model and tokenizer, ready for ``from_pretrained`` or
``ppox llm generate``), ``weights.safetensors`` (every trained tensor, policy and critic) and
``state.pt`` (optimizer, generators, prompt order, counters, β; checksummed, loaded with
``weights_only``, and carrying the SHA-256 of ``weights.safetensors``). A checkpoint directory is
complete before ``checkpoint.json`` names it, so a kill at any moment leaves the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ppox.core.losses import (
    adaptive_kl_coef,
    clipped_surrogate,
    explained_variance,
    kl_estimate,
    value_loss,
)
from ppox.errors import CheckpointError, ConfigError, NumericalError
from ppox.io import checkpoint as ckpt
from ppox.io.logging import RunLogger, truncate_csv
from ppox.io.rundir import lock_run_dir
from ppox.llm import tokens as T
from ppox.llm.config import LLMConfig
from ppox.llm.data import PromptSampler, Scorer, read_prompts, trusted_module
from ppox.llm.models import (
    Critic,
    Samples,
    ValueHead,
    hidden_size,
    load_causal_lm,
    load_critic,
    load_tokenizer,
    quiet_transformers,
    response_logprobs,
    sample,
)
from ppox.training import distributed as dist

COLUMNS = (
    "iteration", "generated_tokens", "wall_time_s", "tokens_per_second",
    "reward_mean", "reward_std", "kl", "kl_coef", "entropy", "response_length", "eos_fraction",
    "policy_loss", "value_loss", "value_error", "explained_variance", "clip_fraction",
    "approx_kl", "grad_norm", "logprob_gap", "learning_rate",
)  # fmt: skip
"""``metrics.csv`` of a language-model run, one row per iteration. ``reward_mean``: the score
(before the KL penalty and the EOS penalty); ``kl``: the completions' KL to the reference,
summed over tokens (the k1 estimate, unbiased), averaged; ``entropy`` and ``response_length``
per token and completion; ``value_error``: the critic's mean squared error against its returns
before the update; ``logprob_gap``: the largest difference between the log-probabilities kept
at sampling and their recomputation."""
RESUME_MAY_CHANGE = ("iterations", "progress")
"""The fields a resumed run may set anew (a longer budget; the terminal's progress line)."""
CHECKPOINT_FILE = "checkpoint.json"
WEIGHTS = "weights.safetensors"


@dataclass
class Batch:
    """One iteration's learning data (``B`` completions, ``R`` response positions)."""

    samples: Samples
    mask: Tensor
    old_logp: Tensor
    ref_logp: Tensor
    adv: Tensor
    values: Tensor | None
    returns: Tensor | None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and dist.world_size() > 1:
        name = f"cuda:{dist.local_rank() % torch.cuda.device_count()}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r}: this machine has no CUDA device")
    return torch.device(name)


def check_reward_import(cfg: LLMConfig, source: str, trust_imports: bool) -> None:
    """A ``reward_fn`` read from a file imports code: only ppox's own, or with consent."""
    if cfg.reward_fn is None or trust_imports:
        return
    module = cfg.reward_fn.partition(":")[0]
    if not trusted_module(module):
        raise ConfigError(
            f"reward_fn={cfg.reward_fn!r} in {source} would import the module {module!r}, and code "
            "named in a file is never run without your consent; if you trust this file, pass "
            "--trust-imports (Python: trust_imports=True)"
        )


class LLMTrainer:
    """Fine-tunes ``cfg.model`` (see the module docstring). ``resume``: a run directory to
    continue (its config is used; ``cfg`` must be that config)."""

    def __init__(self, cfg: LLMConfig, *, resume: Path | None = None) -> None:
        self.cfg = cfg = cfg.validate()
        dist.init()
        self.rank, self.world = dist.rank(), dist.world_size()
        self.device = resolve_device(cfg.device)
        if cfg.threads and self.device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        quiet_transformers()
        self.rows = read_prompts(cfg.prompts or "", cfg.prompt_field)
        self.tok = load_tokenizer(cfg.model or "")
        self.prompt_ids = self._tokenize_prompts()
        torch.manual_seed(cfg.seed)  # the value head's initial weights
        self.policy = load_causal_lm(cfg.model or "", "model", cfg.dtype)
        if cfg.lora_r:
            self.policy = _with_lora(self.policy, cfg)
        self.policy.to(self.device)
        self.ref = self._reference()
        self.critic: nn.Module | None = None
        if cfg.advantage == "gae":
            self.critic = (
                load_critic(cfg.critic_model or cfg.model or "", "critic_model", cfg.dtype)
                if cfg.critic == "separate"
                else ValueHead(hidden_size(self.policy))
            ).to(self.device)
        self.scorer = Scorer(cfg.reward_fn, cfg.reward_model, self.device)
        self.params = [p for p in self._trained().values()]
        self.opt = torch.optim.AdamW(
            self.params, lr=cfg.learning_rate, eps=cfg.adam_eps, weight_decay=0.0
        )
        self.sampler = PromptSampler(len(self.rows), cfg.seed)
        self.gen = torch.Generator(self.device).manual_seed(cfg.seed + 7919 * (self.rank + 1))
        self.shuffle = torch.Generator().manual_seed(cfg.seed + 1)
        self.iteration, self.generated_tokens, self.kl_coef = 0, 0, cfg.kl_coef
        self.elapsed = 0.0
        for p in self.params:
            dist.broadcast_(p.data)
        self.resuming = resume is not None
        self.run_dir = Path(
            resume
            or cfg.run_dir
            or f"runs/llm-{cfg.advantage}-s{cfg.seed}-{datetime.now():%Y%m%d-%H%M%S}"
        )
        if resume is not None:
            self._load(Path(resume))

    # --- setup ------------------------------------------------------------------------------
    def _tokenize_prompts(self) -> list[list[int]]:
        field, out = self.cfg.prompt_field, []
        for i, row in enumerate(self.rows, start=1):
            ids = self.tok(row[field], add_special_tokens=False)["input_ids"]
            if not ids or len(ids) > self.cfg.max_prompt_tokens:
                raise ConfigError(
                    f"prompts={self.cfg.prompts!r}: row {i} is {len(ids)} tokens long; "
                    f"max_prompt_tokens={self.cfg.max_prompt_tokens} (and at least 1)"
                )
            out.append(ids)
        return out

    def _reference(self) -> nn.Module | None:
        cfg = self.cfg
        if cfg.lora_r and cfg.ref_model is None:
            return None  # the policy with its adapters off
        ref = load_causal_lm(cfg.ref_model or cfg.model or "", "ref_model", cfg.dtype)
        for p in ref.parameters():
            p.requires_grad_(False)
        return ref.to(self.device)

    def _trained(self) -> dict[str, nn.Parameter]:
        """Every trained tensor, by a stable name (``policy.…``, ``critic.…``)."""
        out = {f"policy.{n}": p for n, p in self.policy.named_parameters() if p.requires_grad}
        if self.critic is not None:
            out.update({f"critic.{n}": p for n, p in self.critic.named_parameters()})
        return out

    # --- one iteration ----------------------------------------------------------------------
    def _prompt_batch(self) -> tuple[list[int], Tensor, Tensor]:
        P, k = self.cfg.prompts_per_iteration, self.cfg.samples_per_prompt
        mine = self.sampler.take(P * self.world)[self.rank * P : (self.rank + 1) * P]
        idx = [i for i in mine for _ in range(k)]
        width = max(len(self.prompt_ids[i]) for i in idx)
        ids = torch.full((len(idx), width), self.tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.bool)
        for r, i in enumerate(idx):
            n = len(self.prompt_ids[i])
            ids[r, width - n :] = torch.tensor(self.prompt_ids[i])
            mask[r, width - n :] = True
        return idx, ids.to(self.device), mask.to(self.device)

    def _ref_logprobs(self, s: Samples) -> Tensor:
        if self.ref is not None:
            return response_logprobs(self.ref, s, self.cfg.temperature)[0]
        with self.policy.disable_adapter():  # type: ignore[operator]
            return response_logprobs(self.policy, s, self.cfg.temperature)[0]

    def _values(self, s: Samples, hidden: Tensor | None) -> Tensor:
        if isinstance(self.critic, Critic):
            return self.critic(s)
        assert self.critic is not None and hidden is not None
        return self.critic(hidden)

    def _forward(self, s: Samples) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(logprobs, entropy, values or None)`` of the policy (and critic) over ``s``."""
        shared = self.critic is not None and not isinstance(self.critic, Critic)
        logp, ent, h = response_logprobs(self.policy, s, self.cfg.temperature, hidden=shared)
        values = self._values(s, h) if self.critic is not None else None
        return logp, ent, values

    def _micro(self, rows: Tensor) -> Iterator[Tensor]:
        size = self.cfg.micro_batch_size or rows.numel()
        yield from rows.split(size)

    def _rollout(self) -> tuple[Batch, dict[str, Any], list[dict[str, Any]]]:
        cfg = self.cfg
        idx, ids, pmask = self._prompt_batch()
        s = sample(
            self.policy, ids, pmask,
            max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k,
            top_p=cfg.top_p, eos_id=self.tok.eos_token_id, pad_id=self.tok.pad_token_id,
            stop_at_eos=cfg.stop_at_eos, generator=self.gen,
        )  # fmt: skip
        mask = s.response_mask
        prompts = [self.rows[i][cfg.prompt_field] for i in idx]
        completions = self.tok.batch_decode(s.response_ids, skip_special_tokens=True)
        columns = {
            key: [self.rows[i].get(key) for i in idx]
            for key in self.rows[0]
            if key != cfg.prompt_field
        }
        score = self.scorer(prompts, completions, columns).to(self.device)
        penalized = score
        if cfg.missing_eos_penalty is not None:
            penalized = score - cfg.missing_eos_penalty * (~s.ended).float()
        with torch.no_grad():
            every = list(self._micro(torch.arange(len(idx))))
            parts = [self._forward(_rows(s, r, trim=False)) for r in every]
            old_logp = torch.cat([p[0] for p in parts])
            values = torch.cat([p[2] for p in parts]) if self.critic is not None else None  # type: ignore[misc]
            ref_logp = torch.cat([self._ref_logprobs(_rows(s, r, trim=False)) for r in every])
        gap = float((old_logp - s.logprobs).abs().masked_fill(~mask, 0).max())
        kl = T.token_kl(old_logp, ref_logp, mask, cfg.kl_estimator)
        beta_reward = self.kl_coef if cfg.kl_penalty == "reward" else 0.0
        adv, returns = self._advantages(penalized, kl, values, mask, beta_reward)
        k1 = kl if cfg.kl_estimator == "k1" else T.token_kl(old_logp, ref_logp, mask, "k1")
        seq_kl = k1.sum(dim=1)
        n, kl_sum, score_sum, score_sq, length, ended = dist.all_reduce_sums(
            len(idx), float(seq_kl.sum()), float(score.sum()), float(score.square().sum()),
            float(mask.sum()), float(s.ended.sum()),
        )  # fmt: skip
        stats = {
            "reward_mean": score_sum / n,
            "reward_std": max(score_sq / n - (score_sum / n) ** 2, 0.0) ** 0.5,
            "kl": kl_sum / n,
            "response_length": length / n,
            "eos_fraction": ended / n,
            "logprob_gap": gap,
            "new_tokens": int(length),
        }
        if values is not None and returns is not None:
            stats["value_error"] = float(T.masked_mean((values - returns).square(), mask))
            stats["explained_variance"] = float(explained_variance(values[mask], returns[mask]))
        shown = [
            {"iteration": self.iteration + 1, "prompt": prompts[i], "completion": completions[i],
             "score": float(score[i])}
            for i in range(min(cfg.log_samples, len(idx)))
        ]  # fmt: skip
        batch = Batch(s, mask, old_logp, ref_logp, adv, values, returns)
        return batch, stats, shown

    def _advantages(
        self, score: Tensor, kl: Tensor, values: Tensor | None, mask: Tensor, beta: float
    ) -> tuple[Tensor, Tensor | None]:
        cfg = self.cfg
        returns = None
        if cfg.advantage == "gae":
            assert values is not None
            rewards = T.token_rewards(score, kl, mask, kl_coef=beta)
            if cfg.whiten_rewards:
                rewards = self._whiten(rewards, mask, shift_mean=False)
            adv, returns = T.token_gae(rewards, values, mask, gamma=cfg.gamma, lam=cfg.lam)
        else:
            seq = score - beta * kl.sum(dim=1)
            k = cfg.samples_per_prompt
            seq_adv = (
                T.rloo_advantages(seq, k)
                if cfg.advantage == "rloo"
                else T.grpo_advantages(seq, k, scale=cfg.grpo_scale)
            )
            adv = torch.where(mask, seq_adv[:, None].expand_as(kl), torch.zeros_like(kl))
        if cfg.whiten_advantages:
            adv = self._whiten(adv, mask, shift_mean=True)
        return adv, returns

    def _whiten(self, x: Tensor, mask: Tensor, *, shift_mean: bool) -> Tensor:
        """:func:`ppox.llm.tokens.masked_whiten` over every worker's tokens."""
        merge = dist.merge_across_ranks if self.world > 1 else None
        return T.masked_whiten(x, mask, shift_mean=shift_mean, merge=merge)

    def _learn(self, b: Batch) -> dict[str, float]:
        cfg = self.cfg
        B = b.mask.shape[0]
        # kept on the device and read once at the end: no host sync per micro-batch
        zero = torch.zeros((), device=self.device)
        keys = ("policy_loss", "value_loss", "entropy", "clip_fraction", "approx_kl", "tokens")
        sums = {k: zero.clone() for k in keys}
        grad_norms: list[Tensor] = []
        for _ in range(cfg.epochs):
            order = torch.randperm(B, generator=self.shuffle)
            for mb in order.chunk(cfg.minibatches):
                w = T.loss_weights(b.mask[mb], cfg.loss_aggregation, cfg.max_new_tokens)
                w = w.to(self.device) / self.world
                start = 0
                for rows in self._micro(mb):
                    wm = w[start : start + len(rows)]
                    start += len(rows)
                    self._micro_step(b, rows, wm, sums)
                grad_norms.append(self._step())
        tokens = sums.pop("tokens").clamp(min=1.0)
        stats = {k: float(v / tokens) for k, v in sums.items()}
        stats["grad_norm"] = float(torch.stack(grad_norms).mean())
        if b.values is None:
            stats["value_loss"] = float("nan")
        return stats

    def _micro_step(self, b: Batch, rows: Tensor, w: Tensor, sums: dict[str, Tensor]) -> None:
        cfg = self.cfg
        s = _rows(b.samples, rows)
        width = s.response_ids.shape[1]
        mask, w = s.response_mask, w[:, :width]
        r = rows.to(mask.device)

        def part(t: Tensor) -> Tensor:
            return t[r, :width]

        logp, ent, values = self._forward(s)
        log_ratio = logp - part(b.old_logp)
        loss = clipped_surrogate(part(b.adv), log_ratio, clip_coef=cfg.clip_coef)
        pg = loss.detach()
        policy_learns = self.iteration >= cfg.critic_warmup  # else the critic learns alone
        if not policy_learns:
            loss = torch.zeros_like(loss)
        if cfg.ent_coef and policy_learns:
            loss = loss - cfg.ent_coef * ent
        if cfg.kl_penalty == "loss" and self.kl_coef and policy_learns:
            loss = loss + self.kl_coef * T.token_kl(logp, part(b.ref_logp), mask, cfg.kl_estimator)
        vl = None
        if values is not None:
            assert b.values is not None and b.returns is not None
            vl = value_loss(values, part(b.values), part(b.returns), clip=cfg.value_clip)
            loss = loss + cfg.vf_coef * vl
        (loss * w).sum().backward()
        with torch.no_grad():
            sums["policy_loss"] += T.masked_sum(pg, mask)
            sums["entropy"] += T.masked_sum(ent, mask)
            sums["clip_fraction"] += T.masked_sum(
                ((log_ratio.exp() - 1).abs() > cfg.clip_coef).float(), mask
            )
            sums["approx_kl"] += T.masked_sum(kl_estimate(log_ratio, "k3"), mask)
            if vl is not None:
                sums["value_loss"] += T.masked_sum(vl, mask)
            sums["tokens"] += mask.sum()

    def _step(self) -> Tensor:
        if self.world > 1:
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
            flat = dist.all_reduce_sum_(torch.cat([g.reshape(-1) for g in grads]))
            for p, g in zip(self.params, flat.split([p.numel() for p in self.params])):
                p.grad = g.view_as(p)  # views of this step's fresh buffer
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm or float("inf"))
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return norm.detach()

    # --- the loop ---------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Train to ``cfg.iterations``; returns the summary written to summary.json."""
        cfg = self.cfg
        run_dir = self._open_run_dir()
        logger = None
        lock = lock_run_dir(run_dir) if self.rank == 0 else None
        try:
            if self.rank == 0:
                logger = RunLogger(
                    run_dir, tensorboard=cfg.tensorboard, progress=cfg.progress,
                    total_steps=cfg.iterations, start_step=self.iteration, columns=COLUMNS,
                    step_key="iteration", unit="iterations", headline=("reward_mean", "reward", "8.3f"),
                )  # fmt: skip
            t_start = time.perf_counter() - self.elapsed
            row: dict[str, Any] = {}
            while self.iteration < cfg.iterations:
                t0 = time.perf_counter()
                lr = cfg.learning_rate * (
                    1 - self.iteration / cfg.iterations if cfg.anneal_lr else 1.0
                )
                for group in self.opt.param_groups:
                    group["lr"] = lr
                batch, stats, shown = self._rollout()
                learn = self._learn(batch)
                kl_coef = self.kl_coef
                if cfg.kl_target is not None:
                    self.kl_coef = adaptive_kl_coef(self.kl_coef, stats["kl"], target=cfg.kl_target)
                self.iteration += 1
                self.generated_tokens += stats.pop("new_tokens")
                self.elapsed = time.perf_counter() - t_start
                dt = time.perf_counter() - t0
                row = {
                    "iteration": self.iteration, "generated_tokens": self.generated_tokens,
                    "wall_time_s": self.elapsed,
                    "tokens_per_second": float(batch.mask.sum()) * self.world / dt,
                    "kl_coef": kl_coef, "learning_rate": lr, **stats, **learn,
                }  # fmt: skip
                if logger is not None:
                    logger.log(row)
                    _append_jsonl(run_dir / "samples.jsonl", shown)
                if self.iteration % cfg.checkpoint_every == 0 or self.iteration == cfg.iterations:
                    self.save(run_dir)
            summary = {
                "iterations": self.iteration, "generated_tokens": self.generated_tokens,
                "wall_time_s": self.elapsed, "final": row,
                "world_size": self.world, "device": str(self.device),
            }  # fmt: skip
            if self.rank == 0:
                ckpt.save_atomic(json.dumps(summary, indent=2).encode(), run_dir / "summary.json")
            return summary
        finally:
            if logger is not None:
                logger.close()
            if lock is not None:
                lock.release()

    def _open_run_dir(self) -> Path:
        def decide() -> str:
            path = self.run_dir
            if self.resuming:
                truncate_csv(path / "metrics.csv", self.iteration, COLUMNS, "iteration")
                _truncate_jsonl(path / "samples.jsonl", self.iteration)
                return str(path)
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise ConfigError(
                    f"run_dir={str(path)!r} already holds a run or files; choose another or "
                    "continue it with --resume"
                )
            path.mkdir(parents=True, exist_ok=True)
            record = {**self.cfg.to_dict(), "kind": "llm", "versions": _versions()}
            ckpt.save_atomic(json.dumps(record, indent=2).encode(), path / "config.json")
            return str(path)

        self.run_dir = Path(dist.main_decides(decide))
        return self.run_dir

    # --- checkpoints ------------------------------------------------------------------------
    def check_replicas(self) -> None:
        """Under torchrun, every worker must hold the same weights (one all-reduced gradient, the
        same optimizer step): a fingerprint of them is compared with rank 0's, and a difference
        is an error on every worker rather than a checkpoint of one replica among several."""
        if self.world == 1:
            return
        mine = torch.zeros(1, dtype=torch.float64)
        with torch.no_grad():
            for i, p in enumerate(self.params):
                mine += (p.double() * (i + 1)).sum().cpu()
        theirs = dist.broadcast_(mine.clone())
        (bad,) = dist.all_reduce_sums(float(not torch.equal(mine, theirs)))
        if bad:
            raise NumericalError(
                f"the {self.world} workers' weights differ at iteration {self.iteration} "
                "(non-deterministic kernels across devices?); the last checkpoint is kept"
            )

    def save(self, run_dir: Path) -> None:
        """Write ``checkpoint-NNNNNN/`` then point ``checkpoint.json`` at it (rank 0 only)."""
        self.check_replicas()
        if self.rank != 0:
            return
        from safetensors.torch import save_file

        name = f"checkpoint-{self.iteration:06d}"
        final = run_dir / name
        tmp = run_dir / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        weights = {k: p.detach().cpu().contiguous() for k, p in self._trained().items()}
        save_file(weights, str(tmp / WEIGHTS))
        state = {
            "format": "ppox-llm-checkpoint", "version": 1, "config": self.cfg.to_dict(),
            "iteration": self.iteration, "generated_tokens": self.generated_tokens,
            "elapsed": self.elapsed, "kl_coef": self.kl_coef,
            "optimizer": self.opt.state_dict(), "sampler": self.sampler.state_dict(),
            "gen": self.gen.get_state(), "shuffle": self.shuffle.get_state(),
            "weights_sha256": _sha256(tmp / WEIGHTS),
        }  # fmt: skip
        ckpt.save_atomic(ckpt.encode(state), tmp / "state.pt")
        self.policy.save_pretrained(tmp / "policy")  # type: ignore[operator]
        self.tok.save_pretrained(tmp / "policy")
        _fsync_tree(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        pointer = {"iteration": self.iteration, "dir": name}
        ckpt.save_atomic(json.dumps(pointer).encode(), run_dir / CHECKPOINT_FILE)
        for old in run_dir.glob("checkpoint-*"):
            if old.name != name and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)

    def _load(self, run_dir: Path) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        where = latest_checkpoint(run_dir)
        state = ckpt.decode(where / "state.pt")
        if not isinstance(state, dict) or state.get("format") != "ppox-llm-checkpoint":
            raise CheckpointError(f"{where / 'state.pt'} is not a ppox language-model checkpoint")
        same = {k: getattr(self.cfg, k) for k in RESUME_MAY_CHANGE}
        if LLMConfig.from_dict(state["config"]).replace(**same).validate() != self.cfg:
            raise CheckpointError(f"{where} was written by a run with another config")
        if _sha256(where / WEIGHTS) != state["weights_sha256"]:
            raise CheckpointError(f"{where / WEIGHTS} is corrupted: checksum mismatch (SHA-256)")
        try:
            weights = load_file(str(where / WEIGHTS))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{where / WEIGHTS} cannot be read: {exc}") from None
        trained = self._trained()
        if set(weights) != set(trained):
            raise CheckpointError(f"{where / WEIGHTS} does not hold this run's tensors")
        with torch.no_grad():
            for k, p in trained.items():
                if weights[k].shape != p.shape or not torch.isfinite(weights[k]).all():
                    raise CheckpointError(f"{where / WEIGHTS}: tensor {k} is wrong or non-finite")
                p.copy_(weights[k])
        self.opt.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        self.gen.set_state(state["gen"])
        self.shuffle.set_state(state["shuffle"])
        self.iteration, self.generated_tokens = (
            int(state["iteration"]),
            int(state["generated_tokens"]),
        )
        self.elapsed, self.kl_coef = float(state["elapsed"]), float(state["kl_coef"])


def _rows(s: Samples, rows: Tensor, trim: bool = True) -> Samples:
    """The completions ``rows`` of ``s``, with ``trim`` their padding cut to the longest
    response among them."""
    r = rows.to(s.response_ids.device)
    mask = s.response_mask[r]
    width = int(mask.sum(dim=1).max()) if trim else mask.shape[1]
    return Samples(
        s.prompt_ids[r], s.prompt_mask[r], s.response_ids[r, :width], mask[:, :width],
        s.logprobs[r, :width], s.ended[r],
    )  # fmt: skip


def latest_checkpoint(run_dir: Path) -> Path:
    pointer = run_dir / CHECKPOINT_FILE
    if not pointer.is_file():
        raise CheckpointError(f"{run_dir} holds no checkpoint ({CHECKPOINT_FILE} is missing)")
    try:
        data = json.loads(pointer.read_text())
        where = run_dir / str(data["dir"])
    except (ValueError, KeyError, TypeError, OSError):
        raise CheckpointError(f"{pointer} is corrupted") from None
    if not where.is_dir() or where.parent != run_dir:
        raise CheckpointError(f"{pointer} names {where}, which is missing")
    return where


def read_run_config(run_dir: Path) -> LLMConfig:
    path = run_dir / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.pop("kind", None) != "llm":
        raise CheckpointError(f"{path} is not the config of a ppox llm run")
    data.pop("versions", None)
    try:
        return LLMConfig.from_dict(data).validate()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _with_lora(model: nn.Module, cfg: LLMConfig) -> nn.Module:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ConfigError("lora_r > 0 needs peft: pip install 'ppox[llm]'") from None
    targets = cfg.lora_targets.split(",") if cfg.lora_targets else None
    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=targets, task_type="CAUSAL_LM",
    )  # fmt: skip
    try:
        return get_peft_model(model, lora)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"lora_targets={cfg.lora_targets!r}: {exc}") from None


def _versions() -> dict[str, str]:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_tree(path: Path) -> None:
    for f in path.rglob("*"):
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())


def _append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    if rows:
        with path.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)


def _truncate_jsonl(path: Path, iteration: int) -> None:
    if not path.exists():
        return
    keep = [
        line for line in path.read_text().splitlines(keepends=True)
        if json.loads(line).get("iteration", 0) <= iteration
    ]  # fmt: skip
    ckpt.save_atomic("".join(keep).encode(), path)
