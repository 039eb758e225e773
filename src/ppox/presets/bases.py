"""Defaults by the task's kind: the base config of ``ppox train --env ID`` when no preset is given.

ppox's library defaults (the ``Config()`` dataclass) are the CartPole preset's. A task without a
preset starts instead from the base of its kind, decided from its spaces (:func:`task_kind`):

- ``base-pixels``: an image observation, as ppox's encoders read one (:func:`ppox.types.is_image`:
  uint8, 2 or 3 dimensions, bounds [0, 255] or [0, 1]), alone or inside a Dict/Tuple;
- ``base-continuous``: an action space whose head draws from a Gaussian (Box, hybrid, or a
  Dict/Tuple holding a Box; the head registry decides);
- ``base-discrete``: everything else (Discrete, MultiDiscrete, MultiBinary and their Dict/Tuple).

A run with a memory (``--memory lstm|gru``) adds :data:`MEMORY_OVERLAY` to its base. Every flag the
user gives still wins over the base. The table, and the runs each choice rests on, are in
docs/presets.md ("Defaults by kind of task"); the base a run started from is printed at start and
recorded in its ``config.json`` (``"origin"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gymnasium import spaces

from ppox.config import Config, flat_values
from ppox.distributions.heads import draws_from_a_gaussian
from ppox.presets.pixels import ATARI
from ppox.types import ObsLayout

# Vector observations, discrete actions: the common PPO setup (PPO paper's MuJoCo values, as
# Stable-Baselines3's defaults) collected from 8 envs, with an entropy bonus (CleanRL's and the
# RL Zoo's discrete entries use 0.01) for the exploration a discrete task needs.
_DISCRETE: dict[str, Any] = {
    "num_envs": 8, "num_steps": 256, "num_epochs": 10, "num_minibatches": 32, "learning_rate": 3e-4,
    "anneal_lr": True, "gamma": 0.99, "lam": 0.95, "clip_coef": 0.2, "ent_coef": 0.01, "vf_coef": 0.5,
    "max_grad_norm": 0.5, "total_steps": 1_000_000, "eval_every": 50_000,
}  # fmt: skip

# Vector observations, continuous actions: the same setup without the entropy bonus, with
# observation and reward normalization (Huang et al. 2022, "The 37 implementation details of
# PPO") and σ starting at e^-0.5 ≈ 0.6, collected from 4 envs × 1024 steps (minibatches of 64
# still). Entries that are almost always zero (contact forces: Ant, Humanoid) are scaled, not
# standardized (obs_sparse), and the observation statistics stop updating after 100k
# observations (obs_norm_until; on InvertedDoublePendulum standardized inputs that kept moving
# made balanced runs fall). Each choice measured in docs/presets.md.
_CONTINUOUS: dict[str, Any] = {
    **_DISCRETE, "num_envs": 4, "num_steps": 1024, "num_minibatches": 64, "ent_coef": 0.0,
    "normalize_obs": True, "obs_sparse": 0.1, "obs_norm_until": 100_000, "scale_reward": True,
    "init_log_std": -0.5,
}  # fmt: skip

# Images: the Atari preset's settings (CleanRL's PPO Atari setup) without its game.
_PIXELS: dict[str, Any] = {k: v for k, v in ATARI.items() if k != "env_id"}

MEMORY_OVERLAY: dict[str, Any] = {
    "bptt": 32, "num_minibatches": 8, "hidden_sizes": (64,), "memory_size": 64, "normalize_obs": True,
}  # fmt: skip
"""Added to the base of a run with ``memory`` on and no preset: training sequences of 32 steps
(8 per env and rollout from ``base-discrete``'s 256-step rollouts, 32 from ``base-continuous``'s
1024), 8 minibatches of whole sequences, one hidden layer after the memory (the memory presets'
network), normalized observations."""

SHORTFALLS: dict[str, str] = {}
"""Tasks on which a base ends below Stable-Baselines3's default PPO at 1M steps by both the median
and the interquartile mean of the seeds run on both sides (benchmarks/results/defaults_sb3; env id
→ where the runs and what was tried are written up). ``ppox train`` says so at start, so
that a user without a preset learns it before the run rather than from its result. None today:
Swimmer-v5 and InvertedDoublePendulum-v5 were, before ``base-continuous`` took 4 envs × 1024 steps
and ``obs_norm_until`` (docs/presets.md)."""

BASES: dict[str, tuple[str, dict[str, Any]]] = {
    "base-discrete": ("the base for discrete actions on vector observations (no preset given)", _DISCRETE),
    "base-continuous": ("the base for continuous actions on vector observations (no preset given)", _CONTINUOUS),
    "base-pixels": ("the base for image observations (no preset given)", _PIXELS),
}  # fmt: skip
"""Name → (description, overrides), listed with the presets."""


def task_kind(obs_space: spaces.Space, action_space: spaces.Space) -> tuple[str, str]:
    """``(base name, why)`` for a task's spaces."""
    if any(leaf.kind == "image" for leaf in ObsLayout(obs_space).leaves.values()):
        return "base-pixels", "image observations"
    observations = "vector observations"
    if draws_from_a_gaussian(action_space):  # the head registry decides, not the space's type
        return (
            "base-continuous",
            f"continuous actions ({type(action_space).__name__}), {observations}",
        )
    return "base-discrete", f"discrete actions ({type(action_space).__name__}), {observations}"


def kind_base(overrides: Mapping[str, Any]) -> tuple[Config, dict[str, Any]]:
    """The base config for the task that ``overrides`` (flat config fields, ``env_id`` among
    them) name, its kind read from the spaces of one env made for the purpose, and the origin a
    run records: ``{"base": name, "kind": why, "memory_overlay": bool}``. The overrides are not
    applied."""
    from ppox.envs.make import probe_spaces

    probe = Config().replace(**overrides)
    obs_space, action_space = probe_spaces(probe.env)
    base, why = task_kind(obs_space, action_space)
    memory = probe.policy.memory != "none" and base != "base-pixels"
    cfg = Config().replace(**kind_overrides(base, memory))
    return cfg, {"base": base, "kind": why, "memory_overlay": memory}


def config_for(env_id: str, **overrides: Any) -> Config:
    """The config ``ppox train --env-id ENV_ID`` with these fields as flags runs: the base of the
    task's kind (:func:`task_kind`), changed by ``overrides``, validated::

        cfg = ppox.config_for("Hopper-v5", seed=3)   # base-continuous, seed 3
    """
    cfg, _ = kind_base({"env_id": env_id, **overrides})
    return cfg.replace(env_id=env_id, **overrides).validate()


def kind_overrides(base: str, memory_overlay: bool) -> dict[str, Any]:
    """The overrides of ``base``, with :data:`MEMORY_OVERLAY` when ``memory_overlay`` (a run with
    a memory on a base other than ``base-pixels``: the origin's ``memory_overlay``)."""
    overrides = dict(BASES[base][1])
    if memory_overlay:
        overrides.update(MEMORY_OVERLAY)
    return overrides


def bases_markdown() -> str:
    """The table of bases for docs/presets.md: every field a base sets, per base, beside the
    library default (the CartPole preset's) and the memory overlay (a test keeps the page in
    sync)."""
    defaults = flat_values(Config())
    names = list(BASES)
    fields = sorted({k for _, ov in BASES.values() for k in ov} | set(MEMORY_OVERLAY))

    def show(v: Any) -> str:
        if isinstance(v, tuple):  # as on the command line
            return ",".join(map(str, v)) if v else "''"
        return f"{v:g}" if isinstance(v, float) else str(v)

    lines = [
        "| field | library default | "
        + " | ".join(f"`{n}`" for n in names)
        + " | memory overlay |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    for f in fields:
        cells = [show(BASES[n][1][f]) if f in BASES[n][1] else "·" for n in names]
        overlay = show(MEMORY_OVERLAY[f]) if f in MEMORY_OVERLAY else "·"
        lines.append(f"| `{f}` | {show(defaults[f])} | " + " | ".join(cells) + f" | {overlay} |")
    return "\n".join(lines) + "\n"
