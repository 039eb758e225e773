"""No silent NaN: non-finite rewards and observations from an env, non-finite losses and gradients,
non-finite parameters (docs/numerics.md)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from ppox.cli import main
from ppox.config import Config, PolicyConfig
from ppox.errors import NumericalError
from ppox.io.checkpoint import load_checkpoint
from ppox.nn.actor_critic import ActorCritic
from ppox.training.learner import Learner
from ppox.training.nan_guard import finite_tensor
from ppox.training.trainer import Trainer
from ppox.types import Batch


class NonFiniteAt(gym.Wrapper):
    """CartPole whose step number ``at`` of every episode returns ``value`` as the reward
    (``what="reward"``) or in the observation (``"obs"``), ``budget`` times in this process
    (None: always)."""

    budget: int | None = None

    def __init__(self, what: str = "reward", at: int = 5, value: float = math.nan) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.what, self.at, self.value, self.t = what, at, value, 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t == self.at and NonFiniteAt.budget != 0:
            if NonFiniteAt.budget is not None:
                NonFiniteAt.budget -= 1
            if self.what == "reward":
                reward = self.value
            else:
                obs = obs.copy()
                obs[1] = self.value
        return obs, reward, terminated, truncated, info


gym.register("PpoxTestNaNReward-v0", entry_point=lambda **kw: NonFiniteAt("reward", **kw))
gym.register("PpoxTestNaNObs-v0", entry_point=lambda **kw: NonFiniteAt("obs", **kw))
gym.register(
    "PpoxTestInfReward-v0", entry_point=lambda **kw: NonFiniteAt("reward", value=math.inf, **kw)
)
gym.register(
    "PpoxTestHugeReward-v0",
    entry_point=lambda: gym.wrappers.TransformReward(gym.make("CartPole-v1"), lambda r: 1e30 * r),
)


def small(**kw) -> Config:
    base = dict(num_envs=2, num_steps=16, num_epochs=2, total_steps=128, eval_every=0, eval_episodes=2,
                checkpoint_every=1, tensorboard=False, progress=False)  # fmt: skip
    return Config().replace(**{**base, **kw}).validate()


def finite_checkpoint(run: Path) -> None:
    """Every tensor of the run's checkpoint is finite (and it loads)."""
    state = load_checkpoint(run)
    for k, t in state["model"].items():
        assert torch.isfinite(t).all(), k
    assert torch.isfinite(state["optimizer"]["state"][0]["exp_avg"]).all()


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(["train", *argv])
    return code, capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# environments
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id, what", [("PpoxTestNaNReward-v0", "reward nan"), ("PpoxTestNaNObs-v0", "observation (1 of 4"),
                                          ("PpoxTestInfReward-v0", "reward inf")])  # fmt: skip
def test_a_non_finite_env_value_stops_the_run_with_one_line(tmp_path, capsys, env_id, what):
    code, err = cli(capsys, "--env", env_id, "--num-envs", "2", "--num-steps", "16", "--total-steps", "128",
                    "--eval-every", "0", "--no-tensorboard", "--run-dir", str(tmp_path / "r"))  # fmt: skip
    lines = [x for x in err.splitlines() if x.startswith("ppox: error:")]
    assert code == 2 and len(lines) == 1, err
    assert f"env_id='{env_id}': env 0 returned a non-finite {what}" in lines[0]
    assert (
        "iteration 1 (after global step 0)" in lines[0] and "at step 5 of the rollout" in lines[0]
    )
    assert "Traceback" not in err
    assert not (tmp_path / "r" / "summary.json").exists()  # no evaluation, no "finished" run


def test_skip_drops_the_transitions_and_the_run_trains_on_finite_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(
        NonFiniteAt, "budget", 6
    )  # six NaN rewards in training, none left for the evaluation
    cfg = small(
        env_id="PpoxTestNaNReward-v0", nonfinite_env="skip", total_steps=256, eval_episodes=2
    )
    summary = Trainer.create(cfg, tmp_path / "r").train()
    assert NonFiniteAt.budget == 0
    assert math.isfinite(summary["eval_return_mean"])
    rows = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    head = rows[0].split(",")
    skipped = [float(r.split(",")[head.index("skipped_transitions")]) for r in rows[1:]]
    assert sum(skipped) == 6
    finite_checkpoint(tmp_path / "r")


def test_skip_cuts_the_previous_step_as_a_truncation_and_leaves_the_bad_step_out(make_collector):
    c = make_collector("PpoxTestNaNReward-v0", num_envs=2, num_steps=12, nonfinite_env="skip")
    c.nonfinite = "skip"
    r = c.collect()
    assert r.valid is not None
    bad = ~r.valid  # the 5th step of each env's episodes: t = 4, and after the reset there t = 9
    assert bad[4].all() and bad[9].all() and int(bad.sum()) == 4
    assert torch.isfinite(r.reward).all() and (r.reward[4] == 0).all()
    assert (r.done[3] == 1).all() and (
        r.terminated[3] == 0
    ).all()  # the step before: a truncation...
    torch.testing.assert_close(
        r.next_value[3], r.value[4]
    )  # ...bootstrapped from the last finite obs
    assert (r.done[4] == 1).all() and (
        r.terminated[4] == 1
    ).all()  # the bad step itself: no bootstrap
    assert torch.isfinite(r.obs).all() and torch.isfinite(r.value).all()
    assert {3 * 2, 3 * 2 + 1, 8 * 2, 8 * 2 + 1} <= set(r.final_index.tolist())
    learner = Learner(
        c.model, Config().replace(num_steps=12, num_envs=2).validate(), torch.Generator()
    )
    assert int(learner.prepare(r).valid.sum()) == 20


def test_evaluation_never_reports_non_finite_returns(tmp_path):
    trainer = Trainer.create(
        small(env_id="PpoxTestNaNReward-v0", nonfinite_env="skip", eval_every=64), tmp_path / "r"
    )
    with pytest.raises(NumericalError, match="non-finite evaluation returns"):
        trainer.train()
    assert not (tmp_path / "r" / "summary.json").exists()


# --------------------------------------------------------------------------------------------
# the update: non-finite losses and gradients
# --------------------------------------------------------------------------------------------

B = 64


def learner_and_batch(backend: str, **cfg) -> tuple[Learner, Batch]:
    torch.manual_seed(0)
    model = ActorCritic(spaces.Box(-5.0, 5.0, (4,), np.float32), spaces.Discrete(2), PolicyConfig())
    config = Config().replace(
        num_steps=B, num_envs=1, num_epochs=4, num_minibatches=4, update_backend=backend, **cfg
    )
    learner = Learner(model, config.validate(), torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(B, 4, generator=g)
    with torch.no_grad():
        dist, value = model(obs)
        action, logp = dist.sample_log_prob(g)
    return learner, Batch(
        obs, action, logp, value, torch.randn(B, generator=g), torch.randn(B, generator=g), None
    )


def poison(learner: Learner, calls: set[int]) -> list[int]:
    """Make the gradient of the listed minibatch steps (0-based, over the learner's life) NaN."""
    seen = [0]
    original = learner.step.gradient

    def gradient(*args, **kw):
        terms = original(*args, **kw)
        if seen[0] in calls:
            learner.flat.grad[3] = math.nan
        seen[0] += 1
        return terms

    learner.step.gradient = gradient  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("backend", ["numpy", "autograd"])
def test_a_non_finite_gradient_skips_that_step_only(backend):
    learner, batch = learner_and_batch(backend, nan_patience=3)
    clean, _ = learner_and_batch(backend, nan_patience=3)
    poison(learner, {5})
    m = learner.update(batch, progress=0.0)
    assert m["nonfinite_updates"] == 1 and m["rollbacks"] == 0.0 and m["updates"] == 16
    assert torch.isfinite(learner.flat.flat).all()
    assert math.isfinite(m["policy_loss"]) and math.isfinite(m["approx_kl"])
    clean.update(batch, progress=0.0)
    assert not torch.equal(learner.flat.flat, clean.flat.flat)  # one step fewer


@pytest.mark.parametrize("backend", ["numpy", "autograd"])
def test_a_run_of_non_finite_steps_rolls_back_and_lowers_the_learning_rate(backend, capsys):
    learner, batch = learner_and_batch(backend, nan_patience=2, nan_lr_factor=0.25, anneal_lr=False)
    before = learner.flat.flat.detach().clone()
    poison(learner, {2, 3})
    m = learner.update(batch, progress=0.0)
    assert m["rollbacks"] == 1.0 and m["updates"] == 4
    torch.testing.assert_close(
        learner.flat.flat.detach(), before, rtol=0, atol=0
    )  # the start of the update
    assert (
        learner.optimizer.state[learner.flat.flat] == {}
    )  # Adam began in this update: back to none
    assert "rolled back" in capsys.readouterr().out
    m2 = learner.update(batch, progress=0.0)
    assert m2["learning_rate"] == pytest.approx(0.25 * 1e-3) and m2["rollbacks"] == 0.0
    assert learner.state_dict()["nan_guard"] == {"lr_scale": 0.25, "rollbacks_in_a_row": 0}


def test_error_mode_stops_at_the_first_non_finite_step():
    learner, batch = learner_and_batch("numpy", nan_guard="error")
    poison(learner, {1})
    with pytest.raises(
        NumericalError, match=r"non-finite gradient \(epoch 1, minibatch 2 of an update"
    ):
        learner.update(batch, progress=0.0)


def test_rollbacks_that_do_not_help_stop_the_run():
    learner, batch = learner_and_batch("numpy", nan_patience=1, nan_max_rollbacks=2)
    poison(learner, set(range(1000)))
    learner.update(batch, progress=0.0)
    learner.update(batch, progress=0.0)
    with pytest.raises(
        NumericalError, match="2 rollbacks in a row did not get rid of non-finite gradients"
    ):
        learner.update(batch, progress=0.0)


def test_non_finite_parameters_are_never_trained_on():
    learner, batch = learner_and_batch("numpy")
    with torch.no_grad():
        learner.flat.flat[0] = math.inf
    with pytest.raises(NumericalError, match="parameters are not finite at the start of an update"):
        learner.update(batch, progress=0.0)


def test_rewards_of_1e30_no_longer_train_on_silently(tmp_path, capsys):
    """Rewards of 1e30 gave an infinite gradient norm; the step was scaled to 0 and nothing was
    learned, without a word. Now every such step is skipped, rolled back, and the run stops."""
    code, err = cli(capsys, "--env", "PpoxTestHugeReward-v0", "--num-envs", "2", "--num-steps", "16", "--total-steps",
                    "4096", "--eval-every", "0", "--no-tensorboard", "--nan-max-rollbacks", "2", "--run-dir",
                    str(tmp_path / "r"))  # fmt: skip
    lines = [x for x in err.splitlines() if x.startswith("ppox: error:")]
    assert code == 2 and len(lines) == 1, err
    assert "rollbacks in a row did not get rid of non-finite gradients" in lines[0]
    assert "scale_reward" in lines[0]


def test_the_guard_state_is_checkpointed_and_resumed(tmp_path):
    cfg = small(total_steps=96)
    trainer = Trainer.create(cfg, tmp_path / "r")
    trainer.learner.guard.lr_scale = 0.5
    trainer.train()
    resumed = Trainer.resume(tmp_path / "r", total_steps=128)
    assert resumed.learner.guard.lr_scale == 0.5
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["backends"]["update"] == "numpy" and config["backends"]["act"] == "numpy"
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["backends"] == config["backends"]
    assert copy.deepcopy(summary["backends"]["fallback_reasons"]) == {}


@pytest.mark.parametrize(
    "values, expected",
    [
        ([1.0, -2.0], True),
        (
            [3e38, 3e38],
            True,
        ),  # finite, but the float32 sum overflows: the element-wise check decides
        ([1.0, math.nan], False),
        ([math.inf, 1.0], False),
        ([math.inf, -math.inf], False),  # the sum is NaN
    ],
)
def test_finite_tensor_sum_first_is_exact(values: list[float], expected: bool) -> None:
    assert finite_tensor(torch.tensor(values, dtype=torch.float32)) is expected
