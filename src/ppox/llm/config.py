"""The configuration of a language-model run (``ppox llm train``; docs/llm.md).

One frozen dataclass, one docstring per field, the same contract as :mod:`ppox.config`: the
annotation is the field's type and range, one parser (:func:`ppox.config.check_value`,
:func:`ppox.config.parse_text`) reads Python values, command-line text and config files, and a
value that does not fit is one :class:`~ppox.errors.ConfigError` naming the field.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from ppox.config import SEED_LIMIT, Span, Text, attribute_docs, check_value, describe_type
from ppox.errors import ConfigError

Advantage = Literal["gae", "rloo", "grpo"]
Critic = Literal["separate", "shared"]
KLPlacement = Literal["reward", "loss"]
KLEstimator = Literal["k1", "k2", "k3"]
GroupScale = Literal["group", "batch", "none"]
Aggregation = Literal["token", "sequence", "constant"]
DType = Literal["float32", "bfloat16"]

_PATH = Text(r"[^\x00]+", "a path or hub id")
_FN = Text(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", "module:function")


@dataclass(frozen=True)
class LLMConfig:
    """Fine-tuning a causal language model against a reward with PPO, RLOO or GRPO."""

    # --- models and data -----------------------------------------------------------------------
    model: Annotated[str | None, _PATH] = None
    """The policy: a directory written by `save_pretrained` (or a Hugging Face hub id where the
    hub is reachable). Loaded with `AutoModelForCausalLM.from_pretrained`, safetensors weights
    only and never with remote code. Required."""
    ref_model: Annotated[str | None, _PATH] = None
    """The frozen reference model of the KL penalty (default: `model` again; with LoRA the
    policy with its adapters switched off, which costs no memory)."""
    critic_model: Annotated[str | None, _PATH] = None
    """Where the critic's trunk is loaded from with `critic=separate` (default: `model`)."""
    reward_fn: Annotated[str | None, _FN] = None
    """The reward as a Python function `module:function`, called as `fn(prompts=[...],
    completions=[...], **columns)` with the prompt file's other columns, returning one number
    per completion (TRL's convention, so one function serves both). Read from a file (a run
    directory on resume, `--config`), a module outside ppox is imported only with
    `--trust-imports`. Exactly one of `reward_fn` and `reward_model`."""
    reward_model: Annotated[str | None, _PATH] = None
    """The reward as a sequence-classification model (one output), loaded like `model`; it scores
    the decoded prompt and completion with its own tokenizer."""
    prompts: Annotated[str | None, _PATH] = None
    """The prompts: a local `.jsonl`, `.csv` or `.parquet` file with a `prompt_field` column;
    other columns go to `reward_fn`. Required."""
    prompt_field: Annotated[str, Text(r"\w+", "a column name")] = "prompt"
    """The column holding the prompt text."""
    max_prompt_tokens: Annotated[int, Span(1, 1 << 20)] = 512
    """The longest prompt allowed, in tokens; a longer one is an error naming its row (never cut
    silently)."""

    # --- the learner ---------------------------------------------------------------------------
    advantage: Advantage = "gae"
    """`gae`: PPO with a critic, rewards per token and GAE over tokens; `rloo`: REINFORCE
    leave-one-out baseline over the `samples_per_prompt` samples of a prompt; `grpo`:
    group-normalized advantages (GRPO). `rloo`/`grpo` need no critic and at least 2 samples per
    prompt; all three use the clipped surrogate."""
    critic: Critic = "separate"
    """With `advantage=gae`: `separate` puts the value head on its own copy of the model (the
    setup of "The N Implementation Details of RLHF with PPO"); `shared` puts it on the policy's
    last hidden state (half the memory; policy and value gradients then share the trunk)."""
    critic_warmup: Annotated[int, Span(0, 10**9)] = 0
    """With `advantage=gae`: iterations at the start in which only the critic learns (the policy
    stays as it is), so that the first policy updates read a critic that has seen the reward
    (OpenRLHF's `freezing_actor_steps`). An untrained critic gives every token its own random
    baseline, which can push one token (often EOS) hard in the first update."""
    samples_per_prompt: Annotated[int, Span(1, 1024)] = 1
    """Completions sampled per prompt each iteration (k; the group of RLOO and GRPO)."""
    prompts_per_iteration: Annotated[int, Span(1, 1 << 20)] = 16
    """Prompts per iteration (per worker under torchrun); the batch is this × samples_per_prompt."""
    iterations: Annotated[int, Span(1, 10**9)] = 100
    """Iterations (generate, score, learn) to train for."""
    epochs: Annotated[int, Span(1, 1000)] = 4
    """Passes of the learner over each batch."""
    minibatches: Annotated[int, Span(1, 1 << 20)] = 1
    """Optimizer steps per epoch; must divide the batch."""
    micro_batch_size: Annotated[int | None, Span(1, 1 << 20)] = None
    """Sequences per forward/backward pass (gradient accumulation); must divide the minibatch
    (default: the whole minibatch at once). The loss is the same either way."""
    clip_coef: Annotated[float, Span(0, 10, lo_open=True)] = 0.2
    """ε of the clipped surrogate."""
    value_clip: Annotated[float | None, Span(0, 1e6, lo_open=True)] = 0.2
    """ε_v of the clipped value loss (none: unclipped)."""
    vf_coef: Annotated[float, Span(0, 1000)] = 0.1
    """Weight of the value loss."""
    ent_coef: Annotated[float, Span(0, 1000)] = 0.0
    """Weight of the entropy bonus (RLHF setups use none)."""
    gamma: Annotated[float, Span(0, 1)] = 1.0
    """Discount over tokens."""
    lam: Annotated[float, Span(0, 1)] = 0.95
    """GAE λ over tokens."""
    whiten_advantages: bool = True
    """Standardize the advantages over the batch's response tokens (masked)."""
    whiten_rewards: bool = False
    """Scale the token rewards by their standard deviation over the batch's response tokens
    (masked; the mean is kept), before GAE."""
    grpo_scale: GroupScale = "group"
    """With `advantage=grpo`: divide by the group's standard deviation (`group`), the batch's
    (`batch`) or nothing (`none`, Dr. GRPO)."""
    loss_aggregation: Aggregation = "token"
    """How per-token losses become one number: `token` (every token of the minibatch weighs the
    same), `sequence` (every response weighs the same), `constant` (divide by batch × max_new_tokens,
    Dr. GRPO)."""
    kl_coef: Annotated[float, Span(0, 1e6)] = 0.05
    """β of the KL penalty to the reference model (the start value when `kl_target` is set)."""
    kl_estimator: KLEstimator = "k1"
    """Per-token KL estimator: `k1` = log π − log π_ref, `k2` = ½(log r)², `k3` = (r − 1) − log r
    with r = π_ref/π."""
    kl_penalty: KLPlacement = "reward"
    """Where the KL goes: `reward` subtracts β·KL from each token's reward (PPO-RLHF; with
    rloo/grpo from the completion's score, summed over tokens); `loss` adds β·KL to the loss,
    as GRPO does (use `k3` there)."""
    kl_target: Annotated[float | None, Span(0, 1e6, lo_open=True)] = None
    """Adapt β to keep the completions' KL (summed over tokens) near this value, with PPO-Penalty's
    rule (×2 above 1.5 × target, ÷2 below target / 1.5); none: β stays fixed."""
    missing_eos_penalty: Annotated[float | None, Span(0, 1e6)] = None
    """Subtract this from the score of a completion that ended without the EOS token."""
    learning_rate: Annotated[float, Span(0, 1, lo_open=True)] = 1e-5
    """Adam's step size (policy and critic)."""
    adam_eps: Annotated[float, Span(0, 1, lo_open=True)] = 1e-5
    """Adam's ε."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over the run."""
    max_grad_norm: Annotated[float | None, Span(0, 1e6, lo_open=True)] = 1.0
    """Clip the gradient's global norm (none: no clipping)."""

    # --- generation ----------------------------------------------------------------------------
    max_new_tokens: Annotated[int, Span(1, 1 << 16)] = 32
    """The longest completion, in tokens."""
    temperature: Annotated[float, Span(0, 100, lo_open=True)] = 1.0
    """Sampling temperature; the learner divides the logits by it too, so the probabilities it
    trains are those it sampled from."""
    top_k: Annotated[int, Span(0, 1 << 20)] = 0
    """Sample among the k most likely tokens only (0: all)."""
    top_p: Annotated[float, Span(0, 1, lo_open=True)] = 1.0
    """Nucleus sampling: the smallest set of tokens whose probability reaches top_p (1: all)."""
    stop_at_eos: bool = True
    """End a completion at the tokenizer's EOS token (else always max_new_tokens)."""

    # --- LoRA ----------------------------------------------------------------------------------
    lora_r: Annotated[int, Span(0, 4096)] = 0
    """LoRA rank through `peft` (0: train every weight)."""
    lora_alpha: Annotated[int, Span(1, 10**6)] = 16
    """LoRA's α (the update is scaled by α / r)."""
    lora_dropout: Annotated[float, Span(0, 1, hi_open=True)] = 0.0
    """Dropout on LoRA's input."""
    lora_targets: Annotated[
        str | None, Text(r"[\w.]+(,[\w.]+)*", "module names, comma-separated")
    ] = None
    """The modules LoRA adapts (default: peft's choice for the architecture)."""

    # --- the run -------------------------------------------------------------------------------
    seed: Annotated[int, Span(0, SEED_LIMIT - 1)] = 1
    """Seed of the prompt order and of sampling (worker w uses seed + w)."""
    run_dir: Annotated[str | None, Text(r"[^\x00]+", "a directory path")] = None
    """Where the run is written (default: runs/llm-<advantage>-s<seed>-<time>)."""
    device: Annotated[str, Text(r"cpu|auto|cuda(:\d{1,3})?", "cpu, cuda, cuda:N or auto")] = "auto"
    """`cpu`, `cuda`, `cuda:N` or `auto` (a GPU when one is present; under torchrun the
    worker's local GPU)."""
    dtype: DType = "float32"
    """The models' parameter dtype."""
    checkpoint_every: Annotated[int, Span(1, 10**9)] = 10
    """Write a checkpoint every this many iterations (and at the end)."""
    log_samples: Annotated[int, Span(0, 1 << 20)] = 4
    """Completions written to samples.jsonl each iteration (with prompt and score)."""
    tensorboard: bool = True
    """Write TensorBoard scalars to the run directory."""
    progress: bool = True
    """Show a progress line on the terminal."""
    threads: Annotated[int, Span(0, 1024)] = 1
    """torch's intra-op threads on CPU (0: torch's default)."""

    # --- methods -------------------------------------------------------------------------------
    def replace(self, **values: Any) -> LLMConfig:
        unknown = [k for k in values if k not in llm_field_types()]
        if unknown:
            raise ConfigError(f"unknown llm config field {unknown[0]!r}")
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> LLMConfig:
        if not isinstance(data, Mapping):
            raise ConfigError("an llm config is a JSON object of fields")
        unknown = [k for k in data if k not in llm_field_types()]
        if unknown:
            raise ConfigError(f"unknown llm config field {unknown[0]!r}")
        return cls(**{k: check_value(k, v, llm_field_types()[k]) for k, v in data.items()})

    @property
    def batch_size(self) -> int:
        """Completions per iteration (per worker)."""
        return self.prompts_per_iteration * self.samples_per_prompt

    def validate(self) -> LLMConfig:
        """Every field against its annotation, then the rules between fields; the config in
        canonical form, or a :class:`ConfigError` naming the first problem."""
        values = {k: check_value(k, getattr(self, k), t) for k, t in llm_field_types().items()}
        cfg = LLMConfig(**values)
        _check_rules(cfg)
        return cfg


def _check_rules(c: LLMConfig) -> None:
    if c.model is None:
        raise ConfigError("model is required: a directory written by save_pretrained or a hub id")
    if c.prompts is None:
        raise ConfigError("prompts is required: a .jsonl, .csv or .parquet file of prompts")
    if (c.reward_fn is None) == (c.reward_model is None):
        raise ConfigError("give exactly one of reward_fn (module:function) and reward_model")
    if c.advantage != "gae" and c.samples_per_prompt < 2:
        raise ConfigError(
            f"advantage={c.advantage!r} needs samples_per_prompt ≥ 2 (got {c.samples_per_prompt}): "
            "its baseline is the other samples of the same prompt"
        )
    if c.batch_size % c.minibatches:
        raise ConfigError(
            f"minibatches={c.minibatches} must divide the batch, prompts_per_iteration × "
            f"samples_per_prompt = {c.batch_size}"
        )
    mb = c.batch_size // c.minibatches
    if c.micro_batch_size is not None and mb % c.micro_batch_size:
        raise ConfigError(
            f"micro_batch_size={c.micro_batch_size} must divide the minibatch ({mb} completions)"
        )
    if c.missing_eos_penalty is not None and not c.stop_at_eos:
        raise ConfigError(
            "missing_eos_penalty needs stop_at_eos: without it no completion ends at EOS, and every "
            "one would be penalized"
        )
    if c.critic_warmup and (c.advantage != "gae" or c.critic != "separate"):
        raise ConfigError(
            f"critic_warmup={c.critic_warmup} needs advantage=gae and critic=separate (a critic of "
            "its own to warm up: a shared trunk would move the policy too)"
        )
    if c.critic_model is not None and (c.advantage != "gae" or c.critic != "separate"):
        raise ConfigError("critic_model is used only with advantage=gae and critic=separate")


@cache
def llm_field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(LLMConfig, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(LLMConfig)}


@cache
def llm_field_docs() -> dict[str, str]:
    return attribute_docs(LLMConfig)


def llm_config_markdown() -> str:
    """The reference table of ``ppox llm train``'s fields (docs/llm_config.md)."""
    defaults = LLMConfig().to_dict()
    docs = llm_field_docs()
    lines = [
        "# `ppox llm` configuration reference",
        "",
        "Generated from `src/ppox/llm/config.py` by `ppox.llm.config.llm_config_markdown()`",
        "(`make docs` rewrites this file; a test keeps the two in sync). Every field is a flag of",
        "`ppox llm train` (`--field-name VALUE`, booleans as `--flag` / `--no-flag`, `none` for",
        "optional fields) and a key of a `--config` JSON file.",
        "",
        "| field | default | allowed | meaning |",
        "|---|---|---|---|",
    ]
    for name, tp in llm_field_types().items():
        lines.append(
            f"| `{name}` | `{defaults[name]!r}` | {describe_type(tp)} | {docs.get(name, '')} |"
        )
    return "\n".join(lines) + "\n"
