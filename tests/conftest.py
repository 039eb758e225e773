"""Shared fixtures: the toy envs (registered on import) and a Collector factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import toy_envs  # noqa: F401  (registers the PpoxToy* ids)

from ppox.config import Config, EnvConfig, PolicyConfig
from ppox.envs.make import make_vec_env, probe_spaces
from ppox.io.logging import RunLogger
from ppox.nn.actor_critic import ActorCritic
from ppox.training.normalizers import ObsNormalizer, RewardScaler
from ppox.training.rollout import Collector
from ppox.training.trainer import Trainer


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny MLPs on a shared 2-core machine: one intra-op thread is fastest and least noisy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_collector() -> Iterator[Callable[..., Collector]]:
    """``make_collector(env_id, num_envs=2, num_steps=8, policy=PolicyConfig(), seed=0,
    env_seeds=None, act_backend="auto", device_storage=None, **env_cfg)`` → a reset Collector with
    identity normalizers on CPU. The vector envs are closed after the test."""
    made: list[Collector] = []

    def factory(
        env_id: str,
        *,
        num_envs: int = 2,
        num_steps: int = 8,
        policy: PolicyConfig | None = None,
        seed: int = 0,
        env_seeds: list[int] | None = None,
        model: ActorCritic | None = None,
        act_backend: str = "auto",
        device_storage: bool | None = None,
        **env_kw,
    ) -> Collector:
        env_cfg = EnvConfig(env_id=env_id, num_envs=num_envs, **env_kw)
        if model is None:
            obs_space, act_space = probe_spaces(env_cfg)
            torch.manual_seed(seed)
            model = ActorCritic(obs_space, act_space, policy or PolicyConfig())
        obs_norm = ObsNormalizer(model.obs_layout.norm_shape, enabled=False, clip=10.0)
        scaler = RewardScaler(num_envs, enabled=False, gamma=0.99, clip=10.0)
        envs = make_vec_env(env_cfg)
        c = Collector(envs, model, obs_norm, scaler, num_steps, torch.device("cpu"), torch.Generator().manual_seed(seed),
                      act_backend, device_storage)  # fmt: skip
        made.append(c)
        c.reset(env_seeds if env_seeds is not None else [1000 + i for i in range(num_envs)])
        return c

    yield factory
    for c in made:
        c.envs.close()


@pytest.fixture
def interrupted_run() -> Callable[..., None]:
    """``interrupted_run(cfg, run_dir, iterations, lost=0)``: start ``cfg`` in ``run_dir``, train
    ``iterations`` iterations and checkpoint, then ``lost`` more iterations the checkpoint does
    not hold, and stop as a killed process would; ``Trainer.resume(run_dir)`` continues it."""

    def run(cfg: Config, run_dir: Path, iterations: int, lost: int = 0) -> None:
        trainer = Trainer.create(cfg, run_dir)
        logger = RunLogger(
            run_dir,
            tensorboard=False,
            progress=False,
            total_steps=cfg.run.total_steps,
            start_step=0,
        )
        for _ in range(iterations):
            trainer.iterate(logger)
        trainer.save()
        for _ in range(lost):
            trainer.iterate(logger)
        logger.close()
        trainer.close_collection()

    return run
