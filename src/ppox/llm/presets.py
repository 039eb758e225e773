"""Presets of ``ppox llm train`` (``ppox llm presets`` lists them; docs/llm.md).

``demo-*`` are the CPU demo's settings (``ppox llm demo``): the tiny GPT-2 of
:mod:`ppox.llm.demo` against its digit-sum reward, PPO (``demo-ppo``), RLOO and GRPO on one budget
(16 prompts × 4 completions × at most 10 tokens per iteration, 60 iterations). ``rlhf-ppo``,
``rloo`` and ``grpo`` are starting points for a real model, after the defaults of the papers and
of TRL (model and prompts are yours to give).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ppox.errors import ConfigError
from ppox.llm.config import LLMConfig

_DEMO: dict[str, Any] = {
    "reward_fn": "ppox.llm.demo:digit_sum_reward",
    "prompts_per_iteration": 16,
    "samples_per_prompt": 4,
    "iterations": 60,
    "epochs": 4,
    "minibatches": 4,
    "max_new_tokens": 10,
    "temperature": 1.0,
    "learning_rate": 2e-4,
    "kl_coef": 0.05,
    "checkpoint_every": 20,
    "device": "cpu",
}


@dataclass(frozen=True)
class LLMPreset:
    description: str
    values: dict[str, Any]

    def config(self) -> LLMConfig:
        return LLMConfig().replace(**self.values)


LLM_PRESETS = {
    "demo-ppo": LLMPreset(
        "CPU demo, PPO: GAE over tokens with a separate critic (2 warm-up iterations), per-token KL "
        "in the reward",
        {**_DEMO, "advantage": "gae", "critic_warmup": 2},
    ),
    "demo-rloo": LLMPreset(
        "CPU demo, RLOO: leave-one-out baseline over 4 samples, KL in the score",
        {**_DEMO, "advantage": "rloo"},
    ),
    "demo-grpo": LLMPreset(
        "CPU demo, GRPO: group-normalized advantages, k3 KL in the loss",
        {
            **_DEMO,
            "advantage": "grpo",
            "whiten_advantages": False,
            "kl_penalty": "loss",
            "kl_estimator": "k3",
        },
    ),  # fmt: skip
    "rlhf-ppo": LLMPreset(
        "PPO for RLHF after 'The N Implementation Details of RLHF with PPO' (γ=1, λ=0.95, "
        "β=0.05 per token, value head on its own model, vf_coef 0.1, temperature 0.7)",
        {
            "advantage": "gae",
            "critic": "separate",
            "kl_coef": 0.05,
            "temperature": 0.7,
            "max_new_tokens": 53,
            "missing_eos_penalty": 1.0,
            "learning_rate": 3e-6,
            "epochs": 4,
            "minibatches": 4,
            "prompts_per_iteration": 64,
            "micro_batch_size": 4,
        },
    ),  # fmt: skip
    "rloo": LLMPreset(
        "RLOO (Ahmadian et al. 2024): k=4, KL summed into the score, no critic",
        {
            "advantage": "rloo",
            "samples_per_prompt": 4,
            "kl_coef": 0.05,
            "epochs": 1,
            "learning_rate": 1e-6,
            "prompts_per_iteration": 16,
            "micro_batch_size": 4,
        },
    ),  # fmt: skip
    "grpo": LLMPreset(
        "GRPO (Shao et al. 2024): k=8, group-normalized advantages, k3 KL in the loss (β=0.04)",
        {
            "advantage": "grpo",
            "samples_per_prompt": 8,
            "kl_penalty": "loss",
            "kl_estimator": "k3",
            "kl_coef": 0.04,
            "whiten_advantages": False,
            "loss_aggregation": "sequence",
            "epochs": 1,
            "learning_rate": 1e-6,
            "prompts_per_iteration": 8,
            "micro_batch_size": 4,
        },
    ),  # fmt: skip
}


def get_llm_preset(name: str) -> LLMPreset:
    if name not in LLM_PRESETS:
        raise ConfigError(f"unknown llm preset {name!r}; choose from {', '.join(LLM_PRESETS)}")
    return LLM_PRESETS[name]
