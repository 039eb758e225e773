"""Behaviour cloning (``ppox record``, ``ppox bc``, ``--init-from``): heads read env actions back,
recordings load without running anything, clones fit and play, masks are respected, and a PPO run
starts from a clone's weights."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import ppox
from ppox.analysis.bc import CloneOptions, Demonstrations, clone, compare, record
from ppox.cli import main
from ppox.config import PolicyConfig
from ppox.distributions.heads import make_head
from ppox.errors import ConfigError

QUIET = dict(progress=False, tensorboard=False, eval_every=0, eval_episodes=2)


@pytest.mark.parametrize(
    ("space", "policy"),
    [
        (gym.spaces.Discrete(5, start=2), PolicyConfig()),
        (
            gym.spaces.MultiDiscrete([3, 4, 5], start=[1, 0, 2]),
            PolicyConfig(multi_discrete="factored"),
        ),
        (gym.spaces.MultiDiscrete([3, 4, 5], start=[1, 0, 2]), PolicyConfig(multi_discrete="flat")),
        (gym.spaces.MultiBinary(4), PolicyConfig()),
        (gym.spaces.Box(-2.0, 3.0, (3,)), PolicyConfig(action_bound="clip")),
        (gym.spaces.Box(-2.0, 3.0, (3,)), PolicyConfig(action_bound="rescale")),
        (
            gym.spaces.Dict({"k": gym.spaces.Discrete(3), "m": gym.spaces.MultiBinary(2)}),
            PolicyConfig(),
        ),
        (
            gym.spaces.Tuple((gym.spaces.Discrete(3, start=1), gym.spaces.Box(-1.0, 1.0, (2,)))),
            PolicyConfig(action_bound="clip"),
        ),
    ],
)
def test_heads_read_env_actions_back(space, policy):
    """from_env inverts to_env on what the env sees: env → stored → env is the identity, and for
    integer actions stored → env → stored is too."""
    head = make_head(space, 8, policy)
    torch.manual_seed(0)
    stored = head(torch.randn(16, 8)).sample(None).detach().numpy()
    env = head.to_env(stored)
    again = head.to_env(head.from_env(env))
    for got, want in zip(_leaves(again), _leaves(env)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    if stored.dtype.kind == "i":
        assert np.array_equal(head.from_env(env), stored)


def _leaves(tree):
    if isinstance(tree, dict):
        return [x for k in sorted(tree) for x in _leaves(tree[k])]
    if isinstance(tree, tuple):
        return [x for v in tree for x in _leaves(v)]
    return [np.asarray(tree)]


@pytest.fixture(scope="module")
def expert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("expert") / "run"
    ppox.train(ppox.get_preset("cartpole").config().replace(total_steps=30_000, **QUIET), run)
    return run


def test_record_and_clone_a_cartpole_expert(expert, tmp_path):
    data = record(expert, 1500, seed=3)
    assert data.obs.shape == (1500, 4) and data.actions.shape == (1500,) and data.masks is None
    path = tmp_path / "demo.npz"
    data.save(path)
    back = Demonstrations.load(path)
    assert np.array_equal(back.obs, data.obs)
    assert ppox.Config.from_dict(back.config) == ppox.Config.from_dict(data.config)
    base = ppox.Config.from_dict(back.config)
    report = compare(back, base, [("small", {"hidden_sizes": (4,)}), ("big", {"hidden_sizes": (64, 64)})],
                     [1], tmp_path / "bc", CloneOptions(epochs=15, eval_episodes=3))  # fmt: skip
    runs = {r["variant"]: r for r in report["runs"]}
    assert runs["big"]["heldout_loglik"] > runs["small"]["heldout_loglik"]
    assert runs["big"]["heldout_accuracy"] > 0.8 > runs["small"]["heldout_accuracy"] - 0.1
    assert (tmp_path / "bc" / "bc.md").read_text().count("| big |") == 1
    # the clone is a ppox run directory: `ppox eval` reads it
    assert main(["eval", str(tmp_path / "bc" / "big-s1"), "--episodes", "2"]) == 0


def test_init_from_starts_ppo_from_the_clone(expert, tmp_path):
    data = record(expert, 800, seed=1)
    cfg = ppox.Config.from_dict(data.config)
    clone(data, cfg, tmp_path / "clone", seed=1, opts=CloneOptions(epochs=3, eval_episodes=1))
    trainer = ppox.Trainer.create(cfg.replace(init_from=str(tmp_path / "clone"), total_steps=512, **QUIET),
                                  tmp_path / "ppo")  # fmt: skip
    from ppox.io.policy import load_policy

    cloned = load_policy(tmp_path / "clone").model.state_dict()
    assert all(torch.equal(v, cloned[k]) for k, v in trainer.model.state_dict().items())
    trainer.release_run_dir()
    trainer.envs.close()
    with pytest.raises(ConfigError, match="init_from=.*this run's network must match"):
        ppox.Trainer.create(
            cfg.replace(init_from=str(tmp_path / "clone"), hidden_sizes=(8,), **QUIET),
            tmp_path / "bad",
        )
    assert not (tmp_path / "bad").exists()


def test_masks_are_respected_by_the_clone(tmp_path):
    """A masked task: the expert's masks are recorded and the clone trains and plays with them
    (never an illegal action in its held-out predictions)."""
    run = tmp_path / "masked"
    ppox.train(ppox.Config().replace(env_id="PpoxToyMasked-v0", total_steps=8_000, **QUIET), run)
    data = record(run, 600, seed=0)
    assert data.masks is not None and data.masks.shape[0] == 600
    legal = data.masks[np.arange(600), data.actions]
    assert legal.all()  # the expert never took an illegal action
    m = clone(data, ppox.Config.from_dict(data.config), tmp_path / "c", seed=1,
              opts=CloneOptions(epochs=5, eval_episodes=2))  # fmt: skip
    assert np.isfinite(m["heldout_loglik"])


@pytest.mark.parametrize("mode", ["independent", "autoregressive"])
def test_a_hybrid_expert_is_recorded_and_cloned(tmp_path, mode):
    """ppox/Moving-v0 (type + parameters, a Tuple of Discrete and Box): the recording keeps the
    structure, the clone (either hybrid mode) reads it back, fits and plays."""
    run = tmp_path / "moving"
    ppox.train(ppox.Config().replace(env_id="ppox/Moving-v0", total_steps=4_096, **QUIET), run)
    data = record(run, 300, seed=0)
    assert isinstance(data.actions, (tuple, dict))
    data.save(tmp_path / "d.npz")
    back = Demonstrations.load(tmp_path / "d.npz")
    cfg = ppox.Config.from_dict(back.config).replace(hybrid_mode=mode)
    m = clone(back, cfg, tmp_path / "c", seed=1, opts=CloneOptions(epochs=3, eval_episodes=2))
    assert np.isfinite(m["heldout_loglik"]) and "heldout_accuracy" not in m
    assert m["heldout_abs_error"] >= 0


def test_recordings_never_unpickle(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, obs=np.array([object()], dtype=object), meta=np.array("{}"))
    with pytest.raises(ConfigError, match="not a readable ppox demonstrations file"):
        Demonstrations.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.array(json.dumps({"format": "something else"})))
    with pytest.raises(ConfigError, match="not a readable ppox demonstrations file"):
        Demonstrations.load(other)


def test_the_commands(expert, tmp_path, capsys):
    out = tmp_path / "d.npz"
    assert main(["record", str(expert), "--steps", "300", "--out", str(out)]) == 0
    assert "recorded 300 steps" in capsys.readouterr().out
    assert main(["bc", str(out), "--variant", "tiny: hidden_sizes=8", "--out", str(tmp_path / "bc"),
                 "--epochs", "2", "--eval-episodes", "1"]) == 0  # fmt: skip
    assert "| tiny | hidden_sizes=(8,) |" in capsys.readouterr().out
    code = main(["bc", str(out), "--variant", "x: multi_discrete=flat, hidden_sizes=0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0",
                 "--out", str(tmp_path / "bc2")])  # fmt: skip
    assert code == 2 and capsys.readouterr().err.startswith("ppox: error: ")
    assert not (tmp_path / "bc2").exists()
    assert main(["record", str(expert), "--steps", "10", "--out", str(tmp_path / "d.txt")]) == 2
