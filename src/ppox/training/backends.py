"""Which backend acts and which computes the gradient, decided once per run and recorded.

A fast path may serve a run only when it computes exactly what the reference path computes:

- the **model** qualifies by exact classes (:func:`ppox.nn.numpy_policy.numpy_support`: ppox's
  ``ActorCritic``, plain MLP trunks, a head whose own class declares a NumPy kernel);
- every **config field** is classified in :data:`FIELDS` by how the NumPy paths treat it. A
  field the NumPy update does not implement for every value lists the values it serves, and any
  other value falls back to autograd. A test fails when a field is added to the config without
  being classified here, so a new loss term or option can never be silently dropped by the fast
  path.

``auto`` takes the NumPy path where it serves the run and the reference path otherwise; an
explicit ``numpy`` that cannot serve the run is an error naming why. The trainer prints the
backends it got and records them, with the reason for each fallback, in ``config.json`` and
``summary.json`` (``"backends"``), with the BLAS kernel NumPy's products ran on
(:func:`blas_kernel`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from ppox.config import Config, flat_values
from ppox.errors import ConfigError
from ppox.nn.numpy_policy import numpy_support

__all__ = ["FIELDS", "Field", "act_backend", "blas_kernel", "update_backend"]

_KERNEL_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@functools.cache
def blas_kernel() -> str:
    """The BLAS library NumPy's matrix products run on and the kernel it picked for this CPU, as
    threadpoolctl reports them (``"openblas SkylakeX"``), with the environment variables that
    chose the kernel when they are set (``"openblas Haswell (OPENBLAS_CORETYPE=Haswell)"``).
    Kernels differ in speed and in rounding: the same run on two kernels need not agree digit for
    digit (docs/performance.md, "The BLAS kernel"). Read once per process."""
    from threadpoolctl import threadpool_info  # NumPy, whose BLAS it inspects, is loaded already

    found = [
        f"{i.get('internal_api', '?')} {i.get('architecture') or '?'}"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    chosen = [f"{k}={os.environ[k]}" for k in _KERNEL_VARIABLES if os.environ.get(k)]
    return (", ".join(found) or "none found") + (f" ({', '.join(chosen)})" if chosen else "")


Kind = Literal["shared", "model", "honoured", "requires", "unused"]


@dataclass(frozen=True)
class Field:
    """How the NumPy paths treat one config field.

    ``kind``:
        ``shared``: read only outside the acting kernel and the update step, by code every
        backend shares (collection, advantages, minibatching, clipping, schedules, logging…);
        ``model``: it shapes the network or its head, and :func:`numpy_support` checks the
        resulting model by exact class (what is not served falls back);
        ``honoured``: the NumPy update step reads it, for every valid value (a differential
        test against autograd covers it);
        ``requires``: the NumPy update serves only the values in ``allowed``; any other falls
        back to autograd;
        ``unused``: read only by algorithms the NumPy update does not serve (``algo`` falls
        back first).
    """

    kind: Kind
    allowed: tuple[Any, ...] = ()


_SHARED = Field("shared")
_MODEL = Field("model")
_HONOURED = Field("honoured")
_UNUSED = Field("unused")

FIELDS: dict[str, Field] = {
    # env: collection, normalizers and the env mapping are shared by every backend
    **dict.fromkeys(
        ["env_id", "env_kwargs", "num_envs", "vectorization", "env_backend", "max_episode_steps", "normalize_obs",
         "obs_clip", "obs_sparse", "obs_norm_until", "scale_reward", "reward_clip", "nonfinite_env", "sign_reward", "atari_preprocessing",
         "atari_noop_max", "atari_frame_skip", "atari_screen_size", "atari_grayscale", "atari_frame_stack",
         "atari_fire_reset", "atari_episodic_life"], _SHARED),
    # policy: the network's shape and head are checked on the built model
    **dict.fromkeys(
        ["hidden_sizes", "activation", "shared_trunk", "init_log_std", "sde_sample_freq", "sde_learn_features", "temperature", "multi_discrete",
         "hybrid_mode", "hybrid_detach", "obs_encoders", "cnn", "cnn_features", "memory", "memory_size", "memory_shared"],
        _MODEL),
    **dict.fromkeys(["init", "policy_init_gain", "value_init_gain", "action_bound"], _SHARED),
    # ppo: the loss terms the NumPy step writes out, and what the learner does around the step
    "algo": Field("requires", ("ppo-clip",)),
    # gSDE acts through the NumPy kernel; its gradient (σ(s) from a matrix of scales) is autograd's
    "sigma_mode": Field("requires", ("independent", "fixed", "state")),
    **dict.fromkeys(["clip_coef", "dual_clip", "value_clip", "vf_coef", "ent_coef"], _HONOURED),
    **dict.fromkeys(
        ["num_steps", "num_epochs", "num_minibatches", "learning_rate", "anneal_lr", "adam_eps", "gamma", "lam",
         "advantage", "n_step", "recompute_adv", "minibatch_order", "ent_coef_end", "ent_schedule", "max_grad_norm",
         "grad_clip", "grad_norm_type", "grad_clip_value", "norm_adv", "norm_adv_scope", "target_kl", "nan_guard",
         "nan_patience", "nan_lr_factor", "nan_max_rollbacks", "bptt", "memory_states"], _SHARED),
    **dict.fromkeys(
        ["kl_coef", "kl_target", "kl_tolerance", "kl_raise", "kl_lower", "kl_coef_scope", "kl_margin", "kl_margin_coef",
         "baseline", "max_kl", "cg_iters", "cg_damping", "line_search_steps", "line_search_shrink"], _UNUSED),
    # run: budgets, seeds, evaluation, I/O; the device is the model's (checked on the model)
    **dict.fromkeys(
        ["total_steps", "seed", "eval_every", "eval_episodes", "eval_seed", "eval_deterministic", "eval_max_steps", "checkpoint_every",
         "run_dir", "act_backend", "update_backend", "overlap_collection", "threads", "batch_scope", "deterministic", "tensorboard",
         "progress", "progress_interval", "wandb", "wandb_project", "wandb_group", "wandb_tags",
         "init_from"], _SHARED),
    "device": _MODEL,
}  # fmt: skip
"""Every config field, classified (see :class:`Field`)."""


def _config_reason(cfg: Config) -> str | None:
    """Why a ``requires`` field rules the NumPy update out (None: none does)."""
    values = flat_values(cfg)
    for name, f in FIELDS.items():
        if f.kind == "requires" and values[name] not in f.allowed:
            return f"{name}={values[name]!r} (the NumPy update serves {', '.join(map(repr, f.allowed))})"
    return None


def _choose(
    asked: str, fast: str, slow: str, reason: str | None, field: str
) -> tuple[str, str | None]:
    if asked == slow:
        return slow, f"{field}={slow!r}"
    if reason is None:
        return fast, None
    if asked == fast:
        raise ConfigError(
            f"{field}={fast!r} cannot serve this run: {reason}; use 'auto' or {slow!r}"
        )
    return slow, reason


def act_backend(
    asked: str, model: nn.Module, *, storage_on_device: bool = False
) -> tuple[str, str | None]:
    """``("numpy" | "torch", why not NumPy or None)`` for ``run.act_backend = asked``."""
    reason = "the rollout is stored on the device" if storage_on_device else numpy_support(model)
    return _choose(asked, "numpy", "torch", reason, "act_backend")


def update_backend(cfg: Config, model: nn.Module) -> tuple[str, str | None]:
    """``("numpy" | "autograd", why not NumPy or None)`` for ``cfg.run.update_backend``."""
    reason = _config_reason(cfg) or numpy_support(model)
    return _choose(cfg.run.update_backend, "numpy", "autograd", reason, "update_backend")
