"""ppox: Proximal Policy Optimization and its family, in PyTorch.

Public API::

    import ppox
    cfg = ppox.Config().replace(env_id="CartPole-v1", total_steps=50_000)
    summary = ppox.train(cfg, run_dir="runs/cartpole")
    policy = ppox.load_policy("runs/cartpole")
    action = policy.predict(obs)
"""

from ppox.config import Config, EnvConfig, PolicyConfig, PPOConfig, RunConfig
from ppox.errors import CheckpointError, ConfigError, EnvError, PpoxError
from ppox.io.evaluate import evaluate
from ppox.io.policy import Policy, load_policy
from ppox.nn.encoders import register_encoder
from ppox.presets import PRESETS, get_preset
from ppox.training.trainer import Trainer, train

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
    "evaluate",
    "get_preset",
    "load_policy",
    "register_encoder",
    "train",
]
