"""Models of a language-model run: loading, sampling, log-probabilities, the value head.

Loading is ``from_pretrained`` with safetensors weights only and never remote code, so nothing a
model directory holds can run (a pickled ``pytorch_model.bin`` is refused, not unpickled).

Sampling (:func:`sample`) is ppox's own loop over the model's KV cache rather than
``generate()``: it draws with a :class:`torch.Generator` the run owns (so a resumed run draws the
same tokens), and it keeps the log-probability of every sampled token under the distribution the
learner trains, the temperature-scaled softmax over the whole vocabulary. ``top_k``/``top_p`` only
restrict which tokens may be drawn. Prompts are left-padded and positions are counted from each
prompt's first real token, so padding changes no number; :func:`response_logprobs` recomputes the
same log-probabilities in one forward pass (the trainer records the largest difference).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ppox.errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def quiet_transformers() -> None:
    """transformers' own notices and progress bars off: ppox reports what matters itself."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _load(kind: str, field: str, path: str, **kwargs: Any) -> Any:
    import transformers

    cls = getattr(transformers, kind)
    try:
        return cls.from_pretrained(path, trust_remote_code=False, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        text = " ".join(str(exc).split())
        if len(text) > 240:
            text = text[:237] + "..."
        raise ConfigError(f"{field}={path!r} cannot be loaded: {text}") from None


def load_causal_lm(path: str, field: str, dtype: str = "float32") -> nn.Module:
    """A causal LM from ``path`` (safetensors only, no remote code), in eval mode: dropout stays
    off for the whole run, in sampling and in learning alike."""
    model = _load("AutoModelForCausalLM", field, path, dtype=DTYPES[dtype], use_safetensors=True)
    return model.eval()


def load_tokenizer(path: str, field: str = "model") -> Any:
    """The policy's tokenizer, padding on the left (for batched sampling). A tokenizer without a
    pad token pads with its EOS token; one without an EOS token is an error."""
    tok = _load("AutoTokenizer", field, path)
    if tok.eos_token_id is None:
        raise ConfigError(f"{field}={path!r}: its tokenizer has no EOS token (eos_token)")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def positions(mask: Tensor) -> Tensor:
    """Position ids counted from each row's first real token (left padding gets position 0)."""
    return (mask.long().cumsum(dim=1) - 1).clamp(min=0)


def filter_logits(logits: Tensor, top_k: int, top_p: float) -> Tensor:
    """``logits`` with the tokens outside top-k / the top-p nucleus set to −inf."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cum - sorted_logits.softmax(dim=-1) >= top_p  # the mass before a token reached p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), -math.inf)
    return logits


@dataclass
class Samples:
    """A batch of completions. ``B`` rows, prompts ``[B, P]`` left-padded, responses ``[B, R]``
    right-padded (``R ≤ max_new_tokens``)."""

    prompt_ids: Tensor
    prompt_mask: Tensor
    response_ids: Tensor
    response_mask: Tensor
    """True on generated tokens, up to and including EOS."""
    logprobs: Tensor
    """``[B, R]`` log-probability of each sampled token at sampling time (0 on padding)."""
    ended: Tensor
    """``[B]`` the completion ended with EOS."""


@torch.no_grad()
def sample(
    model: nn.Module,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    *,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    eos_id: int,
    pad_id: int,
    stop_at_eos: bool,
    generator: torch.Generator,
) -> Samples:
    """Sample one completion per row (see the module docstring)."""
    B = prompt_ids.shape[0]
    dev = prompt_ids.device
    attn = prompt_mask.long()
    pos = positions(attn)
    out = model(input_ids=prompt_ids, attention_mask=attn, position_ids=pos, use_cache=True)
    cache, logits = _cache_of(out), out.logits[:, -1]
    cache_kw = _cache_keyword(model)
    next_pos = pos[:, -1:] + 1
    tokens, logps, masks = [], [], []
    alive = torch.ones(B, dtype=torch.bool, device=dev)
    for step in range(max_new_tokens):
        scaled = logits.float() / temperature
        logp_all = scaled.log_softmax(dim=-1)
        probs = filter_logits(scaled, top_k, top_p).softmax(dim=-1)
        tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        logps.append(torch.where(alive, logp_all.gather(1, tok[:, None]).squeeze(1), 0.0))
        tokens.append(torch.where(alive, tok, pad_id))
        masks.append(alive.clone())
        if stop_at_eos:
            alive = alive & (tok != eos_id)
        if not alive.any() or step == max_new_tokens - 1:
            break
        attn = torch.cat([attn, torch.ones(B, 1, dtype=attn.dtype, device=dev)], dim=1)
        out = model(
            input_ids=tokens[-1][:, None],
            attention_mask=attn,
            position_ids=next_pos,
            use_cache=True,
            **{cache_kw: cache},
        )
        cache, logits, next_pos = _cache_of(out), out.logits[:, -1], next_pos + 1
    response = torch.stack(tokens, dim=1)
    mask = torch.stack(masks, dim=1)
    ended = ((response == eos_id) & mask).any(dim=1) if stop_at_eos else torch.zeros_like(alive)
    return Samples(prompt_ids, prompt_mask, response, mask, torch.stack(logps, dim=1), ended)


def _cache_keyword(model: nn.Module) -> str:
    """The keyword of the KV cache in the model's ``forward``: ``cache`` in recent releases of
    transformers, ``past_key_values`` before."""
    base: Any = model.get_base_model() if hasattr(model, "get_base_model") else model  # type: ignore[operator]
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _joined(s: Samples) -> tuple[Tensor, Tensor, Tensor]:
    ids = torch.cat([s.prompt_ids, s.response_ids], dim=1)
    attn = torch.cat([s.prompt_mask, s.response_mask], dim=1).long()
    return ids, attn, positions(attn)


def response_logprobs(
    model: nn.Module, s: Samples, temperature: float, *, hidden: bool = False
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One forward pass over prompt + response: ``(logprobs [B, R], entropy [B, R], hidden)`` of
    the response tokens under ``softmax(logits / temperature)``; ``hidden`` (``[B, R, H]``, the
    last layer's states at the positions that predict each response token) when asked, for a
    value head on the policy's trunk."""
    ids, attn, pos = _joined(s)
    R = s.response_ids.shape[1]
    out = model(
        input_ids=ids,
        attention_mask=attn,
        position_ids=pos,
        logits_to_keep=R + 1,
        output_hidden_states=hidden,
    )
    logits = out.logits[:, :-1].float() / temperature
    logp_all = logits.log_softmax(dim=-1)
    logp = logp_all.gather(2, s.response_ids.unsqueeze(2)).squeeze(2)
    entropy = -(logp_all.exp() * logp_all).sum(dim=-1)
    h = out.hidden_states[-1][:, -R - 1 : -1] if hidden else None
    return logp, entropy, h


class ValueHead(nn.Module):
    """A linear value head, initialized with weights N(0, 1/(d + 1)) and bias 0 ("The N
    Implementation Details of RLHF with PPO", Huang et al. 2024)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.linear.weight, std=1.0 / math.sqrt(hidden_size + 1))
        nn.init.zeros_(self.linear.bias)

    def forward(self, h: Tensor) -> Tensor:
        return self.linear(h.float()).squeeze(-1)


class Critic(nn.Module):
    """The value model of ``critic=separate``: a copy of the model's trunk and a value head."""

    def __init__(self, trunk: nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = ValueHead(hidden_size)

    def forward(self, s: Samples) -> Tensor:
        ids, attn, pos = _joined(s)
        R = s.response_ids.shape[1]
        h = self.trunk(input_ids=ids, attention_mask=attn, position_ids=pos).last_hidden_state
        return self.head(h[:, -R - 1 : -1])


def hidden_size(model: nn.Module) -> int:
    cfg = model.config
    for name in ("hidden_size", "n_embd", "d_model"):
        if isinstance(getattr(cfg, name, None), int):
            return int(getattr(cfg, name))
    raise ConfigError(f"cannot tell the hidden size of a {type(model).__name__}")


def load_critic(path: str, field: str, dtype: str) -> Critic:
    trunk = _load("AutoModel", field, path, dtype=DTYPES[dtype], use_safetensors=True).eval()
    return Critic(trunk, hidden_size(trunk))
