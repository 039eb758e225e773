"""Pixels: the Atari preprocessing on hand-made frames, the CNN encoders, uint8 storage, MinAtar
and exact resume with a CNN policy (docs/pixels.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import ppox
from ppox.config import Config, EnvConfig, PolicyConfig
from ppox.envs.atari import LIFE_LOST_KEY, AtariOptions, AtariPreprocessing
from ppox.envs.make import make_env, make_vec_env
from ppox.envs.snapshot import get_state, set_state
from ppox.envs.vector import LeanSyncVectorEnv
from ppox.errors import ConfigError, EnvError
from ppox.io.checkpoint import load_checkpoint
from ppox.nn.actor_critic import ActorCritic
from ppox.nn.encoders import ImageEncoder, ImpalaEncoder
from ppox.training.normalizers import ObsNormalizer, RewardScaler
from ppox.training.rollout import Collector
from ppox.training.trainer import Trainer

HAS_ALE = (
    importlib.util.find_spec("ale_py") is not None and importlib.util.find_spec("cv2") is not None
)
HAS_MINATAR = importlib.util.find_spec("minatar") is not None
needs_ale = pytest.mark.skipif(
    not HAS_ALE, reason="ale-py and opencv are not installed (ppox[atari])"
)
needs_minatar = pytest.mark.skipif(
    not HAS_MINATAR, reason="minatar is not installed (ppox[minatar])"
)


class FakeAle(gym.Env):
    """Frames made by hand: frame ``f`` (counted from the reset, which is frame 0) is ``[H, W]``
    filled with ``f % 200``, except that pixel (0, 0) is 250 on odd frames (a flickering sprite).
    Each frame's reward is ``reward_of(f)``; lives drop by one at the frames in ``lose_at``; the
    game ends at frame ``end``. Records every action it receives."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, h: int = 6, w: int = 5, lives: int = 3, lose_at: tuple[int, ...] = (),
                 end: int = 10_000, reward_of: Any = None, meanings: tuple[str, ...] = ("NOOP", "FIRE", "RIGHT", "LEFT")) -> None:  # fmt: skip
        self.observation_space = spaces.Box(0, 255, (h, w), np.uint8)
        self.action_space = spaces.Discrete(len(meanings))
        self.h, self.w, self.start_lives, self.lose_at, self.end = h, w, lives, lose_at, end
        self.reward_of = reward_of or (lambda f: 0.0)
        self.meanings = list(meanings)
        self.actions: list[int] = []
        self.resets = 0
        self.f = 0
        self.lives = lives

    def get_action_meanings(self) -> list[str]:
        return self.meanings

    def _obs(self) -> np.ndarray:
        frame = np.full((self.h, self.w), self.f % 200, np.uint8)
        if self.f % 2:
            frame[0, 0] = 250
        return frame

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.f, self.lives, self.resets = 0, self.start_lives, self.resets + 1
        return self._obs(), {"lives": self.lives}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.actions.append(int(action))
        self.f += 1
        if self.f in self.lose_at:
            self.lives -= 1
        return (
            self._obs(),
            float(self.reward_of(self.f)),
            self.f >= self.end,
            False,
            {"lives": self.lives},
        )


def wrap(env: FakeAle, **kw: Any) -> AtariPreprocessing:
    opts = AtariOptions(**{"noop_max": 0, "frame_stack": 3, "fire_reset": False, **kw})
    return AtariPreprocessing(env, opts, resize=False)


# --------------------------------------------------------------------------------------------
# the preprocessing, one effect at a time
# --------------------------------------------------------------------------------------------


def test_frame_skip_sums_rewards_and_max_pools_the_last_two_frames() -> None:
    env = FakeAle(reward_of=lambda f: float(f))
    w = wrap(env, frame_stack=1)
    obs, _ = w.reset(seed=0)
    assert obs.shape == (1, 6, 5) and obs.dtype == np.uint8 and (obs == 0).all()
    obs, reward, terminated, truncated, _ = w.step(2)
    assert env.actions == [2, 2, 2, 2] and reward == 1 + 2 + 3 + 4
    # the last two frames are 3 (sprite on) and 4 (sprite off): their maximum shows both
    assert obs[0, 0, 0] == 250 and (obs[0].ravel()[1:] == 4).all()
    obs, reward, *_ = w.step(1)
    assert reward == 5 + 6 + 7 + 8 and obs[0, 0, 0] == 250 and obs[0, 1, 1] == 8


def test_frame_skip_stops_when_the_game_ends() -> None:
    env = FakeAle(end=6, reward_of=lambda f: 1.0)
    w = wrap(env, frame_stack=1)
    w.reset(seed=0)
    w.step(0)
    obs, reward, terminated, truncated, _ = w.step(0)
    assert terminated and not truncated and reward == 2.0 and len(env.actions) == 6
    assert obs[0, 1, 1] == 6 and obs[0, 0, 0] == 250  # frames 5 and 6, pooled


def test_frame_stack_order_is_oldest_first_and_a_reset_fills_it() -> None:
    w = wrap(FakeAle(), frame_skip=1)
    obs, _ = w.reset(seed=0)
    assert obs.shape == (3, 6, 5) and [int(obs[i, 1, 1]) for i in range(3)] == [0, 0, 0]
    for expect in ([0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]):
        obs, *_ = w.step(0)
        assert [int(obs[i, 1, 1]) for i in range(3)] == expect
    obs, _ = w.reset(seed=1)
    assert [int(obs[i, 1, 1]) for i in range(3)] == [0, 0, 0]


def test_noop_reset_plays_between_one_and_noop_max_noops_drawn_from_the_seed() -> None:
    counts = []
    for seed in range(20):
        env = FakeAle()
        w = wrap(env, noop_max=5, frame_skip=1, frame_stack=1)
        obs, _ = w.reset(seed=seed)
        assert set(env.actions) <= {0} and 1 <= len(env.actions) <= 5
        assert obs[0, 1, 1] == len(env.actions)  # the observation is the frame after the no-ops
        counts.append(len(env.actions))
        again = FakeAle()
        wrap(again, noop_max=5, frame_skip=1, frame_stack=1).reset(seed=seed)
        assert len(again.actions) == counts[-1]
    assert len(set(counts)) > 2


def test_fire_reset_presses_fire_then_action_2_in_games_that_have_fire() -> None:
    env = FakeAle()
    w = wrap(env, fire_reset=True, frame_skip=2)
    w.reset(seed=0)
    assert env.actions == [1, 1, 2, 2]
    quiet = FakeAle(meanings=("NOOP", "UP", "DOWN"))
    wrap(quiet, fire_reset=True).reset(seed=0)
    assert quiet.actions == []


def test_a_lost_life_ends_the_training_episode_and_the_game_goes_on() -> None:
    env = FakeAle(lives=3, lose_at=(6,), end=40, reward_of=lambda f: 1.0)
    w = wrap(env, frame_skip=2, fire_reset=True)
    w.reset(seed=0)  # FIRE, 2: frames 1-4
    assert env.actions == [1, 1, 2, 2] and env.resets == 1
    _, _, terminated, _, info = w.step(3)  # frames 5, 6: the life is lost at 6
    assert terminated and info[LIFE_LOST_KEY] and info["lives"] == 2
    obs, info = w.reset()  # the vector env's autoreset: no real reset, NOOP then FIRE, 2
    assert env.resets == 1 and env.actions[-6:] == [0, 0, 1, 1, 2, 2]
    assert all(int(obs[i, 1, 1]) == 12 for i in range(3))  # the stack refilled with frame 12
    _, _, terminated, _, info = w.step(3)
    assert not terminated and LIFE_LOST_KEY not in info


def test_game_over_is_a_real_reset_and_not_a_lost_life() -> None:
    env = FakeAle(lives=1, lose_at=(4,), end=4)
    w = wrap(env, frame_skip=2)
    w.reset(seed=0)
    w.step(0)
    _, _, terminated, _, info = w.step(0)
    assert terminated and LIFE_LOST_KEY not in info  # the last life: the game is over
    w.reset()
    assert env.resets == 2


def test_evaluation_plays_whole_games_with_the_same_steps_after_a_lost_life() -> None:
    env = FakeAle(lives=3, lose_at=(6,), end=40, reward_of=lambda f: 1.0)
    w = wrap(env, frame_skip=2, fire_reset=True, episodic_life=False)
    w.reset(seed=0)
    obs, reward, terminated, truncated, info = w.step(3)
    assert not terminated and not truncated and LIFE_LOST_KEY not in info
    assert env.actions[-8:] == [3, 3, 0, 0, 1, 1, 2, 2] and reward == 8.0  # all rewards kept
    assert all(int(obs[i, 1, 1]) == 12 for i in range(3)) and env.resets == 1


# --------------------------------------------------------------------------------------------
# reward signs and whole-game statistics in the collector
# --------------------------------------------------------------------------------------------


class Lives(gym.Env):
    """A 2-frame game: reward 5 then -3 per life, three lives; flags a lost life as Atari does."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1, 1, (2,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.t, self.lives = 0, 3

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if self.lives == 0:
            self.lives = 3
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        if self.t < 2:
            return np.zeros(2, np.float32), 5.0, False, False, {}
        self.lives -= 1
        info = {LIFE_LOST_KEY: True} if self.lives > 0 else {}
        return np.zeros(2, np.float32), -3.0, True, False, info


def plain_collector(
    envs: Any, model: ActorCritic, steps: int, sign_reward: bool = False
) -> Collector:
    """A CPU collector of ``steps`` steps without observation or reward normalization."""
    return Collector(envs, model, ObsNormalizer(model.obs_layout.norm_shape, enabled=False, clip=10.0),
                     RewardScaler(envs.num_envs, enabled=False, gamma=0.99, clip=10.0), steps,
                     torch.device("cpu"), torch.Generator().manual_seed(0), sign_reward=sign_reward)  # fmt: skip


def test_sign_reward_feeds_the_signs_to_the_learner_and_whole_games_to_the_statistics() -> None:
    envs = LeanSyncVectorEnv([Lives, Lives])
    model = ActorCritic(envs.single_observation_space, envs.single_action_space, PolicyConfig())
    c = plain_collector(envs, model, 12, sign_reward=True)
    c.reset([0, 1])
    r = c.collect()
    assert sorted(set(r.reward.flatten().tolist())) == [-1.0, 1.0]
    assert r.terminated.sum() == 12  # every life ends a training episode...
    assert c.stats.episodes == 4 and list(c.stats.returns) == [6.0] * 4  # ...a game is 3 lives
    assert set(c.stats.lengths) == {6}


def test_whole_game_statistics_through_gymnasiums_vector_env() -> None:
    """Gymnasium's vector envs (``vectorization=async`` uses them) keep the ended step's info
    under ``final_info``; the collector reads the lost lives from there."""
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    envs = SyncVectorEnv([Lives, Lives], autoreset_mode=AutoresetMode.SAME_STEP)
    model = ActorCritic(envs.single_observation_space, envs.single_action_space, PolicyConfig())
    c = plain_collector(envs, model, 12)
    c.reset([0, 1])
    r = c.collect()
    assert sorted(set(r.reward.flatten().tolist())) == [-3.0, 5.0]  # no sign_reward
    assert c.stats.episodes == 4 and list(c.stats.returns) == [6.0] * 4


# --------------------------------------------------------------------------------------------
# CNN encoders
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cnn,shape,high,features",
    [
        ("nature", (4, 84, 84), 255, 512),
        ("impala", (4, 84, 84), 255, 256),
        ("impala", (64, 64, 3), 255, 256),
        ("small", (10, 10, 4), 1, 64),
        ("minatar", (10, 10, 10), 1, 128),
        ("auto", (84, 84), 255, 32),
    ],
)
def test_cnn_output_shapes_and_uint8_input(
    cnn: str, shape: tuple, high: int, features: int
) -> None:
    space = spaces.Box(0, high, shape, np.uint8)
    cfg = PolicyConfig(cnn=cnn, cnn_features=features, hidden_sizes=())  # type: ignore[arg-type]
    model = ActorCritic(space, spaces.Discrete(6), cfg)
    enc = model.encoder.parts[0]  # type: ignore[union-attr]
    assert isinstance(enc, ImpalaEncoder if cnn == "impala" else ImageEncoder)
    assert enc.scale == 1.0 / high
    x = torch.from_numpy(
        np.random.default_rng(0).integers(0, high + 1, (5, *shape), dtype=np.uint8)
    )
    assert enc(x).shape == (5, features)
    dist, value = model(x, None)
    assert dist.logp_all.shape == (5, 6) and value.shape == (5,)  # the heads read the features
    # the same image as HWC or CHW gives the same features
    if len(shape) == 3 and cnn == "impala" and shape[-1] == 3:
        chw = ImpalaEncoder((3, 64, 64), features)
        chw.load_state_dict(enc.state_dict())
        assert torch.allclose(chw(x.permute(0, 3, 1, 2)), enc(x), atol=1e-5)


def test_nature_cnn_refuses_small_images_and_inits_as_the_literature() -> None:
    with pytest.raises(ConfigError, match="cnn='nature' needs images of at least 36"):
        ActorCritic(
            spaces.Box(0, 255, (4, 10, 10), np.uint8),
            spaces.Discrete(2),
            PolicyConfig(cnn="nature"),
        )
    model = ActorCritic(spaces.Box(0, 255, (4, 84, 84), np.uint8), spaces.Discrete(4),
                        PolicyConfig(cnn="nature", hidden_sizes=(), shared_trunk=True))  # fmt: skip
    conv = model.encoder.parts[0].convs[0]  # type: ignore[union-attr,index]
    w = conv.weight.reshape(32, -1)
    assert torch.allclose(w @ w.T, 2.0 * torch.eye(32), atol=1e-4)  # orthogonal rows, gain √2
    assert (conv.bias == 0).all()
    assert torch.allclose(
        model.head.output_layers()[0].weight.norm(dim=1), torch.full((4,), 0.01), atol=1e-5
    )


def test_cnn_composes_with_memory() -> None:
    model = ActorCritic(spaces.Box(0, 1, (10, 10, 4), np.uint8), spaces.Discrete(3),
                        PolicyConfig(cnn="minatar", cnn_features=32, memory="gru", memory_size=16))  # fmt: skip
    obs = torch.zeros(3, 10, 10, 4, dtype=torch.uint8)
    dist, value, state = model.step(
        obs, None, model.initial_state(3), torch.ones(3, dtype=torch.bool)
    )
    assert dist.logp_all.shape == (3, 3) and state.shape == (3, model.state_size) == (
        3,
        32,
    )  # two cores


# --------------------------------------------------------------------------------------------
# uint8 storage
# --------------------------------------------------------------------------------------------


class Frames(gym.Env):
    """Random 4×84×84 uint8 frames, 2 actions; episodes of 7 steps."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0, 255, (4, 84, 84), np.uint8)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return self.np_random.integers(0, 256, (4, 84, 84), dtype=np.uint8)

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return self._obs(), float(action), self.t >= 7, False, {}


def test_image_observations_stay_uint8_from_rollout_to_minibatch() -> None:
    from ppox.training.learner import flatten_rollout

    envs = LeanSyncVectorEnv([Frames] * 8)
    model = ActorCritic(envs.single_observation_space, envs.single_action_space,
                        PolicyConfig(cnn="nature", cnn_features=16, hidden_sizes=()))  # fmt: skip
    c = plain_collector(envs, model, 128)
    assert c.buffer.obs.dtype == torch.uint8  # type: ignore[union-attr]
    # the setting: 8 envs × 128 steps × 4×84×84 is 28.9 MB as uint8 (115.6 MB as float32)
    assert c.buffer.obs.numel() * c.buffer.obs.element_size() == 8 * 128 * 4 * 84 * 84  # type: ignore[union-attr]
    c.reset(list(range(8)))
    r = c.collect()
    batch = flatten_rollout(r, torch.ones(128, 8), torch.ones(128, 8))
    assert r.obs.dtype == torch.uint8 and batch.obs.dtype == torch.uint8  # type: ignore[union-attr]
    mb = batch.take(torch.arange(256))
    assert mb.obs.dtype == torch.uint8  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------
# config and errors
# --------------------------------------------------------------------------------------------


def test_atari_fields_on_a_task_that_is_not_atari_are_an_error() -> None:
    with pytest.raises(EnvError, match=r"atari_frame_stack=2 set for env_id='CartPole-v1'"):
        make_env(EnvConfig(env_id="CartPole-v1", atari_frame_stack=2))
    make_env(EnvConfig(env_id="CartPole-v1")).close()  # the defaults are fine


def test_empty_hidden_sizes_parse_from_the_command_line() -> None:
    from ppox.config import parse_field_value

    assert parse_field_value("hidden_sizes", "") == ()
    assert Config().replace(hidden_sizes=()).validate().policy.hidden_sizes == ()


# --------------------------------------------------------------------------------------------
# real Atari (ale-py) and MinAtar
# --------------------------------------------------------------------------------------------


@needs_ale
def test_breakout_makes_84x84x4_uint8_and_flags_lost_lives_in_training_only() -> None:
    cfg = EnvConfig(env_id="BreakoutNoFrameskip-v4")
    for evaluation in (False, True):
        env = make_env(cfg, evaluation=evaluation)
        obs, info = env.reset(seed=3)
        assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and info["lives"] == 5
        rng = np.random.default_rng(0)
        lost = ended = 0
        for _ in range(3000):
            obs, reward, terminated, truncated, info = env.step(int(rng.integers(4)))
            assert reward >= 0
            lost += bool(info.get(LIFE_LOST_KEY))
            if terminated or truncated:
                ended += 1
                if not info.get(LIFE_LOST_KEY):
                    break
                env.reset()
        env.close()
        assert (lost, ended) == ((4, 5) if not evaluation else (0, 1)), evaluation


@needs_ale
def test_atari_refuses_conflicting_env_kwargs() -> None:
    with pytest.raises(EnvError, match="frameskip=4 conflicts with ppox's Atari preprocessing"):
        make_env(EnvConfig(env_id="ALE/Pong-v5", env_kwargs={"frameskip": 4}))
    env = make_env(
        EnvConfig(env_id="ALE/Pong-v5", atari_preprocessing=False, env_kwargs={"frameskip": 4})
    )
    assert env.observation_space.shape == (210, 160, 3)
    env.close()


@needs_minatar
@pytest.mark.parametrize("game", ["Breakout", "SpaceInvaders", "Asterix", "Freeway", "Seaquest"])
def test_minatar_games_snapshot_exactly(game: str) -> None:
    env = gym.make(f"ppox/MinAtar-{game}-v1")
    obs, _ = env.reset(seed=3)
    assert obs.dtype == np.uint8 and obs.shape[:2] == (10, 10) and set(np.unique(obs)) <= {0, 1}
    for a in np.random.default_rng(0).integers(0, env.action_space.n, 60):
        env.step(a)
    state = get_state(env)
    assert state is not None
    other = gym.make(f"ppox/MinAtar-{game}-v1")
    other.reset(seed=99)
    assert set_state(other, state)
    for a in np.random.default_rng(1).integers(0, env.action_space.n, 300):
        x, y = env.step(a), other.step(a)
        assert np.array_equal(x[0], y[0]) and x[1:4] == y[1:4]
        if x[2]:
            env.reset(), other.reset()


@needs_minatar
def test_exact_resume_with_a_cnn_policy(tmp_path: Path, interrupted_run: Any) -> None:
    """A MinAtar run with a CNN policy, stopped one iteration after its checkpoint and resumed,
    ends as the run never stopped (tests/conftest.py's ``interrupted_run``)."""
    cfg = ppox.Config().replace(env_id="ppox/MinAtar-Breakout-v1", cnn="minatar", cnn_features=32,
                                hidden_sizes=(), shared_trunk=True, activation="relu", num_envs=4,
                                num_steps=32, num_minibatches=2, num_epochs=2, total_steps=4 * 32 * 6,
                                checkpoint_every=100, eval_every=0, eval_episodes=1, seed=5,
                                tensorboard=False, progress=False)  # fmt: skip
    full, cut = tmp_path / "full", tmp_path / "cut"
    ppox.train(cfg, full)
    interrupted_run(cfg, cut, 3, lost=1)
    Trainer.resume(cut).train()
    a, b = load_checkpoint(full), load_checkpoint(cut)
    assert any("convs" in k for k in a["model"])
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["collector"]["stats"] == b["collector"]["stats"]
    summary = (cut / "summary.json").read_text()
    assert '"resumed_env_state_exactly": true' in summary


@needs_minatar
def test_minatar_vector_env_and_presets() -> None:
    from ppox.presets import PRESETS

    for game in ("breakout", "spaceinvaders", "asterix", "freeway", "seaquest"):
        preset = PRESETS[f"minatar-{game}"]
        cfg = preset.config().validate()
        assert cfg.policy.cnn == "minatar"
    envs = make_vec_env(EnvConfig(env_id="ppox/MinAtar-Seaquest-v1", num_envs=2))
    obs, _ = envs.reset(seed=[1, 2])
    assert obs.shape == (2, 10, 10, 10) and obs.dtype == np.uint8
    envs.close()


def test_an_mlp_policy_without_hidden_layers_falls_back_from_the_numpy_paths() -> None:
    from ppox.nn.numpy_policy import numpy_support

    model = ActorCritic(
        spaces.Box(-1, 1, (4,), np.float32), spaces.Discrete(2), PolicyConfig(hidden_sizes=())
    )
    assert "no hidden layers" in (numpy_support(model) or "")


@needs_ale
def test_an_atari_run_trains_evaluates_and_resumes(tmp_path: Path) -> None:
    """The atari preset's network and switches, shrunk: training, whole-game evaluation, resume
    (not exact: the emulator cannot be snapshotted, which summary.json says)."""
    from ppox.presets import get_preset

    cfg = get_preset("atari").config().replace(num_envs=2, num_steps=32, num_minibatches=2, num_epochs=1,
                                               total_steps=128, eval_every=128, eval_episodes=1,
                                               eval_max_steps=200, cnn_features=32, checkpoint_every=1,
                                               tensorboard=False, progress=False)  # fmt: skip
    ppox.train(cfg, tmp_path / "run")
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert '"resumed_env_state_exactly"' in summary
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["config"]["env"]["sign_reward"] is True
    t = Trainer.resume(tmp_path / "run", total_steps=256)
    t.train()
    assert '"resumed_env_state_exactly": false' in (tmp_path / "run" / "summary.json").read_text()


@needs_minatar
def test_a_minatar_snapshot_that_does_not_fit_changes_nothing() -> None:
    """A tampered RandomState entry, or an object entry where the fresh env holds none, is
    refused as a whole (set_state answers False and writes nothing)."""
    env = gym.make("ppox/MinAtar-Breakout-v1")
    env.reset(seed=3)
    state = get_state(env)
    assert state is not None
    other = gym.make("ppox/MinAtar-Breakout-v1")
    other.reset(seed=4)
    before = other.unwrapped.game.random.get_state(legacy=False)  # type: ignore[attr-defined]
    base = state["layers"][-1]["attrs"]
    bad_rng = {**base, "game": {**base["game"], "attrs": {**base["game"]["attrs"]}}}
    bad_rng["game"]["attrs"]["random"] = {
        "__ppox__": "random_state",
        "state": {"bit_generator": "Evil"},
    }
    bad_obj = {**base, "last_action": base["game"]}  # an object entry for an int attribute
    for attrs in (bad_rng, bad_obj):
        tampered = {
            **state,
            "layers": [*state["layers"][:-1], {**state["layers"][-1], "attrs": attrs}],
        }
        assert not set_state(other, tampered)
        after = other.unwrapped.game.random.get_state(legacy=False)  # type: ignore[attr-defined]
        assert np.array_equal(after["state"]["key"], before["state"]["key"])


def test_the_presets_name_minatars_games_as_the_env_module_does():
    from ppox.envs.minatar import GAMES
    from ppox.presets.pixels import MINATAR_GAMES

    assert MINATAR_GAMES == tuple(GAMES)
