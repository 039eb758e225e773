"""Behaviour cloning to compare architectures (``ppox record``, ``ppox bc``; docs/bc.md).

The PPO × Family course's Q&A (Q4) suggests a way to choose between action-space designs (a
discrete and a multi-discrete network, say) before any reinforcement learning: fit each to the
same expert data by supervised learning; the architecture that fits better is the better one.

- :func:`record` lets a trained policy act in its environment and saves what it saw and did:
  observations, the env's actions, the env's action masks, episode returns. A ``.npz`` file
  read with ``allow_pickle=False`` (nothing in it can run), its metadata as a JSON string.
- :func:`clone` trains any ppox policy architecture on it by maximum likelihood: the action head
  maps the env's actions to its own stored form (:meth:`ActionHead.from_env`), masks are read
  by the head as in training, and the loss is ``−log π(a|s)``. It reports the held-out
  log-likelihood and accuracy and the cloned policy's return, and writes a run directory whose
  checkpoint ``ppox eval`` reads and ``ppox train --init-from`` starts from.
- :func:`compare` clones several variants over seeds and writes one report.

Supported: flat Box observations; every built-in action head (Discrete, MultiDiscrete /
MultiBinary, Box, Dict / Tuple, hybrid), masks included; policies without memory.
"""

from __future__ import annotations

import io
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppox.config import Config
from ppox.errors import ConfigError, EnvError
from ppox.io import checkpoint as ckpt
from ppox.io.evaluate import evaluate_episodes
from ppox.io.policy import Policy, build_model, load_policy
from ppox.types import MASK_KEY, nest_join, nest_map

FORMAT = "ppox-demonstrations"


@dataclass
class Demonstrations:
    """What :func:`record` saves. ``N`` steps of one env, in order."""

    obs: np.ndarray
    """``[N, *obs_shape]`` float32, the raw observations (before any normalization)."""
    actions: Any
    """The actions as the env took them: ``[N, *action_shape]``, or for Dict / Tuple action
    spaces a dict / tuple of such arrays (saved as ``action/<path>`` arrays and a structure)."""
    masks: np.ndarray | None
    """``[N, M]`` bool, the env's ``info["action_mask"]`` at each step in the expert head's flat
    layout (which the clones' heads read: the same for every head of one action space), or None."""
    episode_returns: np.ndarray
    """Undiscounted returns of the episodes that ended during the recording."""
    config: dict[str, Any]
    """The expert run's config."""
    source: str

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        meta = {"format": FORMAT, "version": 1, "config": self.config, "source": self.source}
        leaves: dict[str, np.ndarray] = {}
        meta["actions"] = _structure(self.actions, "action", leaves)
        arrays = {"obs": self.obs, "episode_returns": self.episode_returns,
                  "meta": np.array(json.dumps(meta)), **leaves}  # fmt: skip
        if self.masks is not None:
            arrays["masks"] = self.masks
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        ckpt.save_atomic(buf.getvalue(), path)

    @classmethod
    def load(cls, path: str | Path) -> Demonstrations:
        p = Path(path)
        try:
            with np.load(p, allow_pickle=False) as f:
                meta = json.loads(str(f["meta"]))
                if meta.get("format") != FORMAT:
                    raise ValueError("not a ppox demonstrations file")
                masks = f["masks"] if "masks" in f.files else None
                actions = _rebuild(meta["actions"], f)
                return cls(f["obs"], actions, masks, f["episode_returns"], meta["config"],
                           str(meta.get("source", "")))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            raise ConfigError(f"{p}: not a readable ppox demonstrations file ({exc})") from None


def record(
    run_dir: str | Path, steps: int, *, seed: int = 0, deterministic: bool = True,
    trust_imports: bool = False,
) -> Demonstrations:  # fmt: skip
    """``steps`` steps of the policy of ``run_dir`` acting in one env of its config (evaluation
    mode: whole games for Atari), reset with ``seed`` and then as episodes end."""
    from ppox.envs.make import make_env

    policy = load_policy(run_dir, trust_imports=trust_imports)
    model, cfg = policy.model, policy.config
    if not model.obs_layout.fast or model.memory is not None:
        raise ConfigError(
            f"ppox record: {run_dir} has "
            + ("a policy with memory" if model.memory is not None else "structured observations")
            + "; recording supports flat Box observations and policies without memory"
        )
    env = make_env(cfg.env, evaluation=True)
    generator = torch.Generator().manual_seed(seed)
    obs_list, acts, masks, returns = [], [], [], []
    total = 0.0
    try:
        obs, info = env.reset(seed=seed)
        for _ in range(steps):
            raw = info.get(MASK_KEY)
            batch_mask = None if raw is None else nest_map(lambda a: np.asarray(a)[None], raw)
            action = policy.predict(np.asarray(obs, np.float32)[None], deterministic=deterministic,
                                    mask=batch_mask, generator=generator)  # fmt: skip
            obs_list.append(np.asarray(obs, np.float32))
            acts.append(action)
            if raw is not None:  # kept in the expert head's flat layout (structured masks too)
                masks.append(model.head.read_mask(batch_mask, 1)[0])
            obs, reward, terminated, truncated, info = env.step(
                nest_map(lambda a: np.asarray(a)[0], action)
            )
            total += float(reward)
            if terminated or truncated:
                returns.append(total)
                total = 0.0
                obs, info = env.reset()
    finally:
        env.close()
    actions = nest_join(lambda parts: np.concatenate([np.asarray(p) for p in parts]), acts)
    try:
        model.head.from_env(acts[0])  # refuses heads whose env actions do not map back
    except EnvError as exc:
        raise ConfigError(f"ppox record: {exc}") from None
    return Demonstrations(
        np.stack(obs_list), actions, np.stack(masks) if len(masks) == steps else None,
        np.asarray(returns, dtype=np.float64), cfg.to_dict(), str(run_dir),
    )  # fmt: skip


def _structure(tree: Any, path: str, leaves: dict[str, np.ndarray]) -> Any:
    """The nesting of ``tree`` as plain JSON (its arrays put in ``leaves`` by path)."""
    if isinstance(tree, dict):
        return {"dict": {k: _structure(v, f"{path}/{k}", leaves) for k, v in tree.items()}}
    if isinstance(tree, tuple):
        return {"tuple": [_structure(v, f"{path}/{i}", leaves) for i, v in enumerate(tree)]}
    leaves[path] = np.asarray(tree)
    return path


def _rebuild(spec: Any, arrays: Any) -> Any:
    if isinstance(spec, str):
        return arrays[spec]
    if "dict" in spec:
        return {k: _rebuild(v, arrays) for k, v in spec["dict"].items()}
    return tuple(_rebuild(v, arrays) for v in spec["tuple"])


@dataclass(frozen=True)
class CloneOptions:
    epochs: int = 30
    minibatch_size: int = 64
    learning_rate: float = 1e-3
    holdout: float = 0.2
    eval_episodes: int = 20


def clone(
    data: Demonstrations, cfg: Config, run_dir: Path, *, seed: int, opts: CloneOptions
) -> dict[str, Any]:
    """Fit ``cfg``'s policy to ``data`` (see the module docstring); writes ``run_dir`` and
    returns its metrics: ``heldout_loglik`` (mean log π(a|s) per step on the held-out share),
    ``heldout_accuracy`` (the mode equals the expert's action, every part of it; Box actions:
    ``heldout_abs_error`` instead), ``return_mean``/``return_std`` of the clone, ``train_loglik``."""
    cfg = cfg.replace(seed=seed).validate()
    torch.manual_seed(seed)
    model, obs_norm = build_model(cfg)
    head = model.head
    try:
        actions = torch.as_tensor(head.from_env(data.actions))
    except EnvError as exc:
        raise ConfigError(f"ppox bc: {exc}") from None
    n = len(data.obs)
    masks = None
    if head.mask_shape is not None and data.masks is not None:
        masks = torch.as_tensor(head.read_mask(data.masks, n))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_held = max(1, int(round(opts.holdout * n)))
    held, train = perm[:n_held], perm[n_held:]
    if cfg.env.normalize_obs:
        obs_norm.update(data.obs[train.numpy()])
    x = torch.as_tensor(obs_norm(data.obs))
    opt = torch.optim.Adam(model.parameters(), lr=opts.learning_rate)
    shuffle = torch.Generator().manual_seed(seed + 1)
    for _ in range(opts.epochs):
        order = train[torch.randperm(len(train), generator=shuffle)]
        for mb in order.split(opts.minibatch_size):
            dist = model.dist(x[mb], None if masks is None else masks[mb])
            loss = -dist.log_prob(actions[mb]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        train_dist = model.dist(x[train], None if masks is None else masks[train])
        held_dist = model.dist(x[held], None if masks is None else masks[held])
        metrics = {"train_loglik": float(train_dist.log_prob(actions[train]).mean()),
                   "heldout_loglik": float(held_dist.log_prob(actions[held]).mean())}  # fmt: skip
        mode = held_dist.mode()
    if actions.dtype.is_floating_point:
        metrics["heldout_abs_error"] = float((mode - actions[held]).abs().mean())
    else:
        same = (mode == actions[held]).reshape(len(held), -1).all(dim=1)
        metrics["heldout_accuracy"] = float(same.float().mean())
    model.eval()
    policy = Policy(model, obs_norm, cfg)
    seeds = [cfg.run.eval_seed + i for i in range(opts.eval_episodes)]
    result = evaluate_episodes(policy, cfg.env, seeds, deterministic=True)
    metrics |= {"return_mean": float(result.returns.mean()),
                "return_std": float(result.returns.std()), "samples": n, "heldout": n_held}  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt.save_checkpoint(
        {"config": cfg.to_dict(), "model": model.state_dict(), "obs_norm": obs_norm.state_dict()},
        run_dir / ckpt.CHECKPOINT_NAME,
    )
    ckpt.save_atomic(json.dumps(cfg.to_dict(), indent=2).encode(), run_dir / "config.json")
    ckpt.save_atomic(json.dumps(metrics, indent=2).encode(), run_dir / "bc.json")
    return metrics


def compare(
    data: Demonstrations, base: Config, variants: list[tuple[str, dict[str, Any]]],
    seeds: list[int], out: Path, opts: CloneOptions,
) -> dict[str, Any]:  # fmt: skip
    """Clone every variant on every seed into ``out/<variant>-s<seed>``; write ``out/bc.md`` and
    ``out/bc.json`` (the variants side by side)."""
    runs = []
    for name, overrides in variants:
        for seed in seeds:
            m = clone(
                data, base.replace(**overrides), out / f"{name}-s{seed}", seed=seed, opts=opts
            )
            runs.append({"variant": name, "seed": seed, **m})
    expert = data.episode_returns
    report = {"expert_return_mean": float(expert.mean()) if len(expert) else None,
              "expert_episodes": int(len(expert)), "samples": int(len(data.obs)),
              "options": opts.__dict__, "variants": dict(variants), "runs": runs}  # fmt: skip
    ckpt.save_atomic(json.dumps(report, indent=2, default=str).encode(), out / "bc.json")
    ckpt.save_atomic(markdown(report).encode(), out / "bc.md")
    return report


def _ms(values: list[float]) -> str:
    if not values:
        return "—"
    sd = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def markdown(report: dict[str, Any]) -> str:
    runs = report["runs"]
    lines = [
        "# Behaviour cloning: the variants side by side",
        "",
        f"{report['samples']:,} expert steps ({report['options']['holdout']:.0%} held out); "
        + (
            f"expert return {report['expert_return_mean']:.3f} over {report['expert_episodes']} "
            "episodes"
            if report["expert_return_mean"] is not None
            else "no whole expert episode in the recording"
        )
        + ". Mean ± standard deviation over seeds.",
        "",
        "| variant | changes | held-out log-likelihood | held-out accuracy | clone return | train log-likelihood |",
        "|---|---|---|---|---|---|",
    ]
    for name, overrides in report["variants"].items():
        rs = [r for r in runs if r["variant"] == name]
        changes = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "—"
        acc = [r["heldout_accuracy"] for r in rs if "heldout_accuracy" in r]
        lines.append(
            f"| {name} | {changes} | {_ms([r['heldout_loglik'] for r in rs])} | {_ms(acc)} | "
            f"{_ms([r['return_mean'] for r in rs])} | {_ms([r['train_loglik'] for r in rs])} |"
        )
    return "\n".join(lines) + "\n"
