"""The language-model demo (``ppox llm demo``; docs/llm.md): everything made here, nothing
downloaded.

The task, "digit sum": a prompt ``sum 23 =`` asks for a string of digits whose sum is 23. A tiny
GPT-2 (built from a config, two layers, 64 wide) is first pre-trained on synthetic text of the
prompt's form followed by 1 to 8 *random* digits, so it speaks the format but ignores the target;
it is saved with ``save_pretrained`` with its own word-level tokenizer and loaded back with
``from_pretrained`` by the RL run, which must teach it to read the target.
:func:`digit_sum_reward` scores a completion ``max(0, 1 − |sum − target| / 10)``: 1 for an exact
sum, 0 ten or more away.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

TARGETS = range(10, 31)
"""Targets of the prompts: 10 to 30 (the pre-trained model's sums spread over 1 to 72, mean 20)."""
DIGITS = [str(d) for d in range(10)]
SPECIAL = ["<pad>", "<eos>", "<unk>"]
WORDS = ["sum", "="]
MAX_DIGITS = 8


def vocabulary() -> list[str]:
    """The demo tokenizer's tokens, id = position (targets are words of their own, distinct from
    the digits a completion is made of)."""
    return SPECIAL + WORDS + DIGITS + [f"t{t}" for t in TARGETS]


def prompt_text(target: int) -> str:
    return f"sum t{target} ="


def build_tokenizer() -> Any:
    """A word-level tokenizer over :func:`vocabulary` (split on whitespace), as a
    ``PreTrainedTokenizerFast`` that ``save_pretrained`` writes and ``AutoTokenizer`` reads."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(vocabulary())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
        padding_side="left",
    )


def build_model(vocab_size: int, seed: int) -> Any:
    """The tiny GPT-2 (untrained), dropout off."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=vocab_size,
        n_positions=32,
        n_embd=64,
        n_layer=2,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )
    cfg.loss_type = "ForCausalLM"  # named, so transformers does not guess aloud
    return GPT2LMHeadModel(cfg)


def synthetic_batch(tok: Any, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pre-training sequences ``sum tT = d … d <eos>``, right-padded: ``(ids, mask)``."""
    rows = []
    for _ in range(n):
        t = TARGETS[int(torch.randint(len(TARGETS), (1,), generator=g))]
        k = int(torch.randint(1, MAX_DIGITS + 1, (1,), generator=g))
        digits = torch.randint(10, (k,), generator=g).tolist()
        rows.append(tok(prompt_text(t) + " " + " ".join(map(str, digits)))["input_ids"])
    width = max(map(len, rows)) + 1
    ids = torch.full((n, width), tok.pad_token_id)
    mask = torch.zeros((n, width), dtype=torch.bool)
    for i, r in enumerate(rows):
        r = r + [tok.eos_token_id]
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = True
    return ids, mask


def pretrain(model: Any, tok: Any, *, steps: int, batch: int, seed: int, lr: float = 3e-3) -> float:
    """Next-token training on :func:`synthetic_batch` text; returns the last loss."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(float("nan"))
    for i in range(steps):
        ids, mask = synthetic_batch(tok, batch, g)
        labels = ids.masked_fill(~mask, -100)
        for group in opt.param_groups:
            group["lr"] = lr * (1 - i / steps)
        loss = model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def write_prompts(path: Path, repeats: int = 8) -> int:
    """The prompt file: every target ``repeats`` times, with a ``target`` column for the reward."""
    rows = [{"prompt": prompt_text(t), "target": t} for _ in range(repeats) for t in TARGETS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def build(out: Path, *, seed: int = 0, steps: int = 600, batch: int = 64) -> dict[str, Any]:
    """Make the demo in ``out``: ``out/model`` (model + tokenizer, ``save_pretrained``) and
    ``out/prompts.jsonl``; returns a summary (the pre-training loss, the model's size)."""
    from ppox.llm.models import quiet_transformers

    quiet_transformers()
    tok = build_tokenizer()
    model = build_model(len(tok), seed)
    loss = pretrain(model, tok, steps=steps, batch=batch, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    n = write_prompts(out / "prompts.jsonl")
    params = sum(p.numel() for p in model.parameters())
    return {"model": str(out / "model"), "prompts": str(out / "prompts.jsonl"), "prompt_rows": n,
            "parameters": params, "pretrain_loss": loss}  # fmt: skip


_DIGIT = re.compile(r"\b[0-9]\b")


def digit_sum(text: str) -> int:
    return sum(int(d) for d in _DIGIT.findall(text))


def digit_sum_reward(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
    """The demo's reward: ``max(0, 1 − |digit sum − target| / 10)`` per completion. The target
    comes from the ``target`` column when the prompt file has one, else from the prompt."""
    targets = columns.get("target")
    if targets is None:
        targets = [int(re.search(r"t(\d+)", p)[1]) for p in prompts]  # type: ignore[index]
    return [max(0.0, 1.0 - abs(digit_sum(c) - int(t)) / 10.0) for c, t in zip(completions, targets)]
