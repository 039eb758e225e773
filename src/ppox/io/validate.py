"""Checking a loaded checkpoint against the network and run it is about to feed, before anything
uses it.

``torch.load(weights_only=True)`` guarantees that a checkpoint holds tensors and plain data; it
does not guarantee that they fit. A state that does not fit fails late and badly: an Adam
state shorter than the parameters makes the fused Adam kernel write out of bounds (a segfault),
NaN weights train on silently, a negative ``global_step`` shifts every schedule. So every part
is checked against what the freshly built trainer (or policy) expects: every model tensor's
name, shape and dtype; finite values in the model, the optimizer, the normalizers and the
learner's state; the optimizer's moments against the flat parameter buffer; the counters
(``iteration``, ``global_step`` non-negative integers consistent with the batch size); the
collector's observations against the observation space; every RNG state's type and shape. A
mismatch raises :class:`~ppox.errors.CheckpointError` naming the checkpoint, the entry, what it
holds and what is allowed. docs/trust.md lists the checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ppox.config import Config
from ppox.errors import CheckpointError
from ppox.types import ObsLayout

TRAINING_PARTS = ("config", "progress", "model", "optimizer", "obs_norm", "reward_scaler",
                  "collector", "rng")  # fmt: skip
"""Entries a training checkpoint must hold (``learner`` and ``workers`` are optional)."""


class _Bad(Exception):
    """One problem, named relative to the checkpoint; turned into a CheckpointError."""


def _number(x: Any, name: str, *, low: float | None = None) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise _Bad(f"{name} is {x!r}; a number is needed")
    if not math.isfinite(x):
        raise _Bad(f"{name} is {x!r}; a finite number is needed")
    if low is not None and x < low:
        raise _Bad(f"{name} is {x!r}; it must be ≥ {low:g}")
    return float(x)


def _count(x: Any, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < 0:
        raise _Bad(f"{name} is {x!r}; a non-negative integer is needed")
    return x


def _tensor(
    t: Any,
    name: str,
    shape: tuple[int, ...] | None = None,
    dtype: torch.dtype | None = None,
    needs: str = "the model needs",
) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise _Bad(f"{name} is a {type(t).__name__}; a tensor is needed")
    if shape is not None and tuple(t.shape) != shape:
        raise _Bad(f"{name} has shape {tuple(t.shape)}; {needs} {shape}")
    if dtype is not None and t.dtype != dtype:
        raise _Bad(f"{name} has dtype {t.dtype}; {needs} {dtype}")
    if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
        raise _Bad(f"{name} holds NaN or infinite values; finite values are needed")
    return t


def _dict(x: Any, name: str, keys: set[Any] | None = None) -> dict[Any, Any]:
    if not isinstance(x, dict):
        raise _Bad(f"{name} is a {type(x).__name__}; a mapping is needed")
    if keys is not None and set(x) != keys:
        raise _Bad(f"{name} has entries {sorted(map(str, x))}; expected {sorted(keys)}")
    return x


def _like(x: Any, template: Any, name: str) -> None:
    """``x`` has ``template``'s structure (dict keys, list lengths) with finite numbers."""
    if isinstance(template, Mapping):
        d = _dict(x, name, set(template))
        for k, v in template.items():
            _like(d[k], v, f"{name}.{k}")
    elif isinstance(template, (list, tuple)):
        if not isinstance(x, (list, tuple)) or len(x) != len(template):
            raise _Bad(f"{name} is {_show(x)}; a list of {len(template)} is needed")
        for i, (a, b) in enumerate(zip(x, template)):
            _like(a, b, f"{name}[{i}]")
    elif isinstance(template, torch.Tensor):
        _tensor(x, name, tuple(template.shape), template.dtype)
    else:
        counted = name.endswith(("count", "m2")) or ".nonzero[" in name  # never negative
        _number(x, name, low=0.0 if counted else None)


def _show(x: Any) -> str:
    return f"a list of {len(x)}" if isinstance(x, (list, tuple)) else repr(x)[:60]


def _plain(x: Any, name: str) -> None:
    """A learner's own state: None, bools, strings, finite numbers and tensors, nested."""
    if x is None or isinstance(x, (bool, str)):
        return
    if isinstance(x, (int, float)):
        _number(x, name)
    elif isinstance(x, torch.Tensor):
        _tensor(x, name)
    elif isinstance(x, dict):
        for k, v in x.items():
            _plain(v, f"{name}.{k}")
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            _plain(v, f"{name}[{i}]")
    else:
        raise _Bad(f"{name} is a {type(x).__name__}; plain data is needed")


# --- the parts --------------------------------------------------------------------------------
def _model(sd: Any, model: nn.Module) -> None:
    want = model.state_dict()
    have = _dict(sd, "model")
    if set(have) != set(want):
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        raise _Bad(
            f"model entries do not fit the network its config describes (missing {missing[:4]}, unexpected {extra[:4]})"
        )
    for k, t in want.items():
        _tensor(have[k], f"model.{k}", tuple(t.shape), t.dtype)


def _optimizer(sd: Any, flat: torch.Tensor) -> None:
    """torch's Adam ``state_dict`` over the one flat parameter buffer (FlatAdam)."""
    d = _dict(sd, "optimizer", {"state", "param_groups"})
    groups = d["param_groups"]
    if not isinstance(groups, list) or len(groups) != 1:
        raise _Bad(f"optimizer.param_groups is {_show(groups)}; one parameter group is needed")
    _param_group(_dict(groups[0], "optimizer.param_groups[0]"))
    state = _dict(d["state"], "optimizer.state")
    if not state:
        return  # no step taken yet
    _dict(state, "optimizer.state", {0})
    s = _dict(state[0], "optimizer state", {"step", "exp_avg", "exp_avg_sq"})
    step = s["step"]
    if isinstance(step, torch.Tensor):
        step = float(_tensor(step, "optimizer step", ()))
    _number(step, "optimizer step", low=0.0)
    n = (flat.numel(),)
    needs = f"the model's {n[0]} trainable parameters (one flat buffer) need"
    _tensor(s["exp_avg"], "optimizer state exp_avg", n, flat.dtype, needs)
    second = _tensor(s["exp_avg_sq"], "optimizer state exp_avg_sq", n, flat.dtype, needs)
    if bool((second < 0).any()):
        raise _Bad(
            "optimizer state exp_avg_sq holds negative values; it is a running mean of squares"
        )


def _param_group(g: dict[str, Any]) -> None:
    if g.get("params") != [0]:
        raise _Bad(
            f"optimizer.param_groups[0].params is {g.get('params')!r}; [0] (the flat parameters) is needed"
        )
    _number(g.get("lr"), "optimizer lr", low=0.0)
    _number(g.get("eps"), "optimizer eps", low=0.0)
    betas = g.get("betas")
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
        raise _Bad(f"optimizer betas are {betas!r}; two numbers in [0, 1) are needed")
    for b in betas:
        if not 0 <= _number(b, "optimizer beta") < 1:
            raise _Bad(f"optimizer betas are {betas!r}; two numbers in [0, 1) are needed")
    for k, v in g.items():
        if k not in ("params", "betas"):
            _plain(v, f"optimizer.{k}")


def _progress(p: Any, cfg: Config) -> int:
    d = _dict(p, "progress", {"iteration", "global_step", "wall_time_s", "next_eval_step", "evals"})
    it, step = (
        _count(d["iteration"], "progress.iteration"),
        _count(d["global_step"], "progress.global_step"),
    )
    _count(d["next_eval_step"], "progress.next_eval_step")
    _number(d["wall_time_s"], "progress.wall_time_s", low=0.0)
    batch = cfg.batch_size
    exact = cfg.run.batch_scope == "global"  # then every iteration adds num_steps × num_envs
    if (exact and step != it * batch) or (not exact and (step < it * batch or step % batch)):
        rule = "=" if exact else "≥ (a multiple of the batch)"
        raise _Bad(
            f"progress.global_step={step} does not fit iteration={it}: it must be {rule} iteration × batch ({batch})"
        )
    if not isinstance(d["evals"], list):
        raise _Bad(f"progress.evals is {_show(d['evals'])}; a list is needed")
    for i, e in enumerate(d["evals"]):
        _count(
            _dict(e, f"progress.evals[{i}]").get("global_step"), f"progress.evals[{i}].global_step"
        )
        for k in ("eval_return_mean", "eval_return_std"):
            _number(e.get(k), f"progress.evals[{i}].{k}")
    return it


def _python_rng(s: Any) -> None:
    if not isinstance(s, (list, tuple)) or len(s) != 3 or s[0] != 3:
        raise _Bad(
            f"rng.python is {_show(s)}; Python's random state (3, 625 words, gauss) is needed"
        )
    words = s[1]
    if not isinstance(words, (list, tuple)) or len(words) != 625:
        raise _Bad(f"rng.python words are {_show(words)}; 625 are needed")
    if not all(type(w) is int and 0 <= w < 2**32 for w in words) or words[-1] > 624:
        raise _Bad("rng.python words must be integers in [0, 2**32) ending with a position ≤ 624")
    if s[2] is not None:
        _number(s[2], "rng.python gauss")


def _numpy_rng(s: Any) -> None:
    if not isinstance(s, (list, tuple)) or len(s) != 5 or s[0] != "MT19937":
        raise _Bad(f"rng.numpy is {_show(s)}; NumPy's MT19937 state (5 entries) is needed")
    keys = _tensor(s[1], "rng.numpy key", (624,), torch.int64)
    if bool(((keys < 0) | (keys >= 2**32)).any()):
        raise _Bad("rng.numpy key words must lie in [0, 2**32)")
    if _count(s[2], "rng.numpy position") > 624 or s[3] not in (0, 1) or isinstance(s[3], bool):
        raise _Bad("rng.numpy position must be ≤ 624 and has_gauss 0 or 1")
    _number(s[4], "rng.numpy cached gaussian")


def _rng(r: Any, generators: Mapping[str, torch.Generator]) -> None:
    d = _dict(r, "rng", {"python", "numpy", "torch", "cuda", "generators"})
    _python_rng(d["python"])
    _numpy_rng(d["numpy"])
    _tensor(d["torch"], "rng.torch", tuple(torch.get_rng_state().shape), torch.uint8)
    if not isinstance(d["cuda"], list):
        raise _Bad(f"rng.cuda is {_show(d['cuda'])}; a list of CUDA generator states is needed")
    for i, t in enumerate(d["cuda"]):
        _tensor(t, f"rng.cuda[{i}]", None, torch.uint8)
    gens = _dict(d["generators"], "rng.generators", set(generators))
    for k, g in generators.items():
        _tensor(gens[k], f"rng.generators.{k}", tuple(g.get_state().shape), torch.uint8)


def _collector(c: Any, layout: ObsLayout, state_size: int = 0) -> int:
    """The collector's state; returns the number of envs it holds. A policy with memory
    (``state_size`` > 0) also carries each env's recurrent state and episode-start flag."""
    keys = {"raw_obs", "mask", "env_states", "stats"} | ({"memory"} if state_size else set())
    d = _dict(c, "collector", keys)
    states = d["env_states"]
    if not isinstance(states, list) or not states:
        raise _Bad(f"collector.env_states is {_show(states)}; one entry per env is needed")
    for i, s in enumerate(states):
        if not (s is None or isinstance(s, (bytes, dict))):
            raise _Bad(
                f"collector.env_states[{i}] is a {type(s).__name__}; an env snapshot or None is needed"
            )
    n = len(states)
    if layout.structured:
        obs = _dict(d["raw_obs"], "collector.raw_obs", set(layout.leaves))
        for p, leaf in layout.leaves.items():
            _tensor(obs[p], f"collector.raw_obs[{p!r}]", (n, *leaf.shape))
    else:
        _tensor(d["raw_obs"], "collector.raw_obs", (n, *layout.leaves[""].shape))
    mask = d["mask"]
    if mask is not None and (
        _tensor(mask, "collector.mask").dtype != torch.bool or mask.shape[:1] != (n,)
    ):
        raise _Bad(f"collector.mask must be None or a bool tensor with {n} rows")
    _collector_stats(d["stats"], n)
    if state_size:
        _collector_memory(d["memory"], n, state_size)
    return n


def _collector_stats(st: Any, n: int) -> None:
    """The episode statistics of ``n`` envs."""
    stats = _dict(st, "collector.stats", {"ret", "len", "returns", "lengths", "episodes"})
    _like(stats["ret"], [0.0] * n, "collector.stats.ret")
    for name in ("len", "lengths"):
        if not isinstance(stats[name], list) or (name == "len" and len(stats[name]) != n):
            raise _Bad(
                f"collector.stats.{name} is {_show(stats[name])}; a list of episode lengths is needed"
            )
        for i, x in enumerate(stats[name]):
            _count(x, f"collector.stats.{name}[{i}]")
    if not isinstance(stats["returns"], list):
        raise _Bad(f"collector.stats.returns is {_show(stats['returns'])}; a list is needed")
    for i, x in enumerate(stats["returns"]):
        _number(x, f"collector.stats.returns[{i}]")
    _count(stats["episodes"], "collector.stats.episodes")


def _collector_memory(m: Any, n: int, state_size: int) -> None:
    """Each env's recurrent state and episode-start flag (a policy with memory)."""
    memory = _dict(m, "collector.memory", {"state", "start"})
    _tensor(memory["state"], "collector.memory.state", (n, state_size), torch.float32)
    _tensor(memory["start"], "collector.memory.start", (n,), torch.bool)


def check_training_state(state: dict[str, Any], where: str, *, cfg: Config, model: nn.Module,
                         flat: torch.Tensor, obs_norm: dict[str, Any],
                         generators: Mapping[str, torch.Generator]) -> None:  # fmt: skip
    """Raise :class:`CheckpointError` unless ``state`` fits the trainer built from its config:
    ``model``, the flat parameter buffer ``flat``, a fresh ``obs_norm.state_dict()`` and the
    torch generators whose states it restores."""
    try:
        missing = [k for k in TRAINING_PARTS if k not in state]
        if missing:
            raise _Bad(
                f"holds no {', '.join(map(repr, missing))} entry; a training checkpoint needs {list(TRAINING_PARTS)}"
            )
        _model(state["model"], model)
        _optimizer(state["optimizer"], flat)
        _progress(state["progress"], cfg)
        _like(state["obs_norm"], obs_norm, "obs_norm")
        layout, state_size = getattr(model, "obs_layout"), getattr(model, "state_size", 0)  # noqa: B009
        n = _collector(state["collector"], layout, state_size)
        _like(
            state["reward_scaler"],
            {"count": 0.0, "mean": 0.0, "m2": 0.0, "ret": [0.0] * n},
            "reward_scaler",
        )
        _plain(_dict(state.get("learner", {}), "learner"), "learner")
        _rng(state["rng"], generators)
    except _Bad as exc:
        raise CheckpointError(f"checkpoint {where}: {exc}") from None


def check_policy_state(
    state: dict[str, Any], where: str, *, model: nn.Module, obs_norm: dict[str, Any]
) -> None:
    """Raise :class:`CheckpointError` unless the policy part of ``state`` (model weights and
    observation statistics) fits ``model`` and a fresh ``obs_norm.state_dict()``."""
    try:
        for k in ("model", "obs_norm"):
            if k not in state:
                raise _Bad(f"holds no {k!r} entry; a policy needs 'model' and 'obs_norm'")
        _model(state["model"], model)
        _like(state["obs_norm"], obs_norm, "obs_norm")
    except _Bad as exc:
        raise CheckpointError(f"checkpoint {where}: {exc}") from None
