"""ppox: Proximal Policy Optimization and its family, in PyTorch.

Public API::

    import ppox
    cfg = ppox.Config().replace(env_id="CartPole-v1", total_steps=50_000)
    summary = ppox.train(cfg, run_dir="runs/cartpole")
    policy = ppox.load_policy("runs/cartpole")
    action = policy.predict(obs)
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names are, for type checkers; at run time they load on first use
    from ppox.config import Config, EnvConfig, PolicyConfig, PPOConfig, RunConfig
    from ppox.errors import CheckpointError, ConfigError, EnvError, PpoxError
    from ppox.io.evaluate import evaluate
    from ppox.io.policy import Policy, load_policy
    from ppox.nn.encoders import register_encoder
    from ppox.presets import PRESETS, get_preset
    from ppox.presets.bases import config_for
    from ppox.training.trainer import Trainer, train

_LAZY = {
    "Config": "ppox.config", "EnvConfig": "ppox.config", "PolicyConfig": "ppox.config",
    "PPOConfig": "ppox.config", "RunConfig": "ppox.config",
    "CheckpointError": "ppox.errors", "ConfigError": "ppox.errors", "EnvError": "ppox.errors",
    "PpoxError": "ppox.errors",
    "evaluate": "ppox.io.evaluate", "Policy": "ppox.io.policy", "load_policy": "ppox.io.policy",
    "register_encoder": "ppox.nn.encoders", "PRESETS": "ppox.presets",
    "get_preset": "ppox.presets", "config_for": "ppox.presets.bases", "Trainer": "ppox.training.trainer",
    "train": "ppox.training.trainer",
}  # fmt: skip
"""Public name → its module. ``import ppox`` imports none of them (torch, Gymnasium and the rest
load when a name is first used), so ``ppox --help`` answers without them."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ppox' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "CheckpointError",
    "Config",
    "ConfigError",
    "EnvConfig",
    "EnvError",
    "PPOConfig",
    "Policy",
    "PolicyConfig",
    "PpoxError",
    "RunConfig",
    "Trainer",
    "config_for",
    "evaluate",
    "get_preset",
    "load_policy",
    "register_encoder",
    "train",
]
