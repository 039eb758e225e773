"""Evaluation on a fixed, reported set of seeds, with a step cap per episode.

Each evaluation episode ``i`` starts from ``reset(seed=seeds[i])`` in a fresh environment, so
evaluations are comparable across checkpoints and runs, and they never touch the training
envs or the training RNGs (stochastic evaluation draws from its own generator).

An episode stops when the environment ends it or after ``max_steps`` steps (the run's
``eval_max_steps``): an environment without a time limit would otherwise keep an evaluation
going forever. An episode cut at the cap keeps the return it collected and is counted in
``EvalResult.truncated_at_cap``, so a report can say that its returns are partial.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from ppox.config import EnvConfig
from ppox.distributions.base import noisy_heads
from ppox.envs.make import make_env, sync_vector_env
from ppox.errors import EnvError
from ppox.io.policy import Policy
from ppox.nn.numpy_policy import NumpyActorCritic, numpy_support
from ppox.training.rollout import MASK_KEY


@dataclass(frozen=True)
class EvalResult:
    """The episodes of one evaluation, one entry per seed."""

    returns: np.ndarray
    """Undiscounted raw return of each episode (up to the cap for a cut one)."""
    lengths: np.ndarray
    """Steps each episode took."""
    cut: np.ndarray
    """Whether each episode was stopped at the step cap rather than by the environment."""
    max_steps: int
    """The cap."""
    backend: str = "torch"
    """What computed the actions: ``"numpy"`` (the NumPy actor, :func:`numpy_actor`) or ``"torch"``."""

    @property
    def truncated_at_cap(self) -> int:
        return int(self.cut.sum())

    def summary(self) -> dict[str, Any]:
        """The numbers ``ppox eval`` prints (and a summary.json can record)."""
        r = self.returns
        return {
            "return_mean": float(r.mean()),
            "return_std": float(r.std()),
            "return_min": float(r.min()),
            "return_max": float(r.max()),
            "length_mean": float(self.lengths.mean()),
            "max_steps": self.max_steps,
            "truncated_at_cap": self.truncated_at_cap,
        }


def fresh_noise(
    policy: Policy, batch: int, generator: torch.Generator, deterministic: bool
) -> None:
    """Draw the exploration noise a stochastic gSDE policy holds (nothing for other policies),
    so that an evaluation depends on its own seeds only, not on what the policy did before."""
    if not deterministic:
        for head in noisy_heads(policy.model.head):
            head.draw_noise(0, batch, generator)


def numpy_actor(
    policy: Policy, deterministic: bool, backend: str = "auto"
) -> NumpyActorCritic | None:
    """The NumPy actor that computes a deterministic evaluation's actions, or None where torch
    does: ``backend="torch"`` (the reference path asked for), a stochastic evaluation, a
    structured observation, or a model or action head the NumPy paths do not serve exactly
    (:func:`ppox.nn.numpy_policy.numpy_support`, and a kernel without ``mode``). It gives the
    torch model's actions to float32 rounding (the training run's fast acting path, for the mode
    instead of a sample); a test checks both give the same returns."""
    if backend not in ("auto", "torch"):
        raise ValueError(f"backend={backend!r}: expected 'auto' or 'torch'")
    model = policy.model
    if (
        backend == "torch"
        or not deterministic
        or not model.obs_layout.fast
        or numpy_support(model) is not None
    ):
        return None
    lean = NumpyActorCritic(model)
    if not lean.serves_mode():
        return None
    lean.refresh()
    return lean


def evaluate_episodes(
    policy: Policy,
    env_cfg: EnvConfig,
    seeds: list[int],
    *,
    deterministic: bool = True,
    max_steps: int | None = None,
    backend: str = "auto",
) -> EvalResult:
    """One episode per seed, run side by side, each stopped by the env or after ``max_steps``
    steps (default: the policy's config's ``eval_max_steps``). ``backend="auto"`` computes the
    actions with the NumPy actor where it serves the policy (:func:`numpy_actor`), ``"torch"``
    always with the torch model; the result records which ran."""
    lean = numpy_actor(policy, deterministic, backend)
    cap = policy.config.run.eval_max_steps if max_steps is None else max_steps
    fns = [lambda: make_env(env_cfg, evaluation=True)] * len(seeds)
    envs = sync_vector_env(fns, isinstance(policy.model.obs_layout.space, spaces.Box))
    generator = torch.Generator().manual_seed(seeds[0])
    fresh_noise(policy, len(seeds), generator, deterministic)
    returns = np.zeros(len(seeds))
    lengths = np.zeros(len(seeds), dtype=np.int64)
    running = np.ones(len(seeds), dtype=bool)
    state, start = None, np.ones(len(seeds), dtype=bool)  # a recurrent policy carries its state
    head = policy.model.head
    try:
        obs, info = envs.reset(seed=list(seeds))  # type: ignore[arg-type]  # one seed per env
        for _ in range(cap):
            if lean is not None:
                x = policy.obs_norm(np.asarray(obs, dtype=np.float32))
                mask = policy.flat_mask(info.get(MASK_KEY), len(seeds))
                action = head.to_env(lean.mode(x, mask))  # type: ignore[arg-type]
            else:
                action, state = policy.predict(
                    obs, deterministic=deterministic, mask=info.get(MASK_KEY), generator=generator,
                    state=state, episode_start=start,
                )  # fmt: skip
            obs, reward, terminated, truncated, info = envs.step(action)
            start = terminated | truncated
            returns += np.where(running, reward, 0.0)
            lengths += running
            running &= ~start
            if not running.any():
                break
    finally:
        envs.close()
    return EvalResult(returns, lengths, running.copy(), cap, "torch" if lean is None else "numpy")


def evaluate(
    policy: Policy,
    env_cfg: EnvConfig,
    seeds: list[int],
    *,
    deterministic: bool = True,
    max_steps: int | None = None,
) -> np.ndarray:
    """Undiscounted raw returns ``[len(seeds)]`` of :func:`evaluate_episodes`; warns when some
    episode was cut at the step cap (its return is then partial)."""
    result = evaluate_episodes(
        policy, env_cfg, seeds, deterministic=deterministic, max_steps=max_steps
    )
    warn_if_cut(result, env_cfg)
    return result.returns


def warn_if_cut(result: EvalResult, env_cfg: EnvConfig) -> None:
    """Warn when some evaluation episode was cut at the step cap (its return is then partial)."""
    if result.truncated_at_cap:
        warnings.warn(
            f"ppox: {result.truncated_at_cap} of {len(result.returns)} evaluation episodes of "
            f"{env_cfg.env_id} were cut at eval_max_steps={result.max_steps} steps; their "
            "returns are partial",
            stacklevel=3,
        )


def _render(env: Any, env_id: str) -> Any:
    try:
        return env.render()
    except Exception as exc:  # missing display / OpenGL platform: say what to install or set
        raise EnvError(
            f"env_id={env_id!r} cannot render frames here ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
            "MuJoCo needs an OpenGL platform, e.g. MUJOCO_GL=egl (a GPU driver) or MUJOCO_GL=osmesa "
            "(Debian package libosmesa6)"
        ) from None


@dataclass(frozen=True)
class GifResult:
    """The episode a GIF shows."""

    ret: float
    length: int
    cut: bool
    """Stopped at the step cap rather than by the environment."""


def record_gif(
    policy: Policy,
    env_cfg: EnvConfig,
    seed: int,
    path: Path,
    *,
    deterministic: bool = True,
    fps: int = 30,
    max_steps: int | None = None,
) -> GifResult:
    """Render one episode from ``seed`` to an animated GIF, at most ``max_steps`` steps
    (default: the policy's config's ``eval_max_steps``)."""
    import imageio.v2 as imageio

    cap = policy.config.run.eval_max_steps if max_steps is None else max_steps
    env = make_env(env_cfg, render_mode="rgb_array", evaluation=True)
    frames: list = []
    total, steps, done = 0.0, 0, False
    state = None  # a policy with memory carries its state from step to step
    fresh_noise(policy, 1, torch.Generator().manual_seed(seed), deterministic)
    try:
        obs, info = env.reset(seed=seed)
        frames.append(_render(env, env_cfg.env_id))
        while not done and steps < cap:
            action, state = policy.predict(
                obs, deterministic=deterministic, mask=info.get(MASK_KEY), state=state,
                episode_start=np.array([steps == 0]),
            )  # fmt: skip
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            steps += 1
            frames.append(_render(env, env_cfg.env_id))
            done = terminated or truncated
    finally:
        env.close()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    return GifResult(total, steps, not done)
