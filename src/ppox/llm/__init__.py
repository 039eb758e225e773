"""PPO, RLOO and GRPO for causal language models (docs/llm.md).

Python API::

    from ppox.llm import LLMConfig, LLMTrainer
    cfg = LLMConfig(model="path/to/model", prompts="prompts.jsonl",
                    reward_fn="mypackage.rewards:score", advantage="grpo", samples_per_prompt=4)
    summary = LLMTrainer(cfg).train()

Names are imported on first use, so ``import ppox.llm`` (and the ``ppox`` command) stay cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_NAMES = {
    "LLMConfig": "ppox.llm.config",
    "LLMTrainer": "ppox.llm.trainer",
    "LLM_PRESETS": "ppox.llm.presets",
    "get_llm_preset": "ppox.llm.presets",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'ppox.llm' has no attribute {name!r}")
