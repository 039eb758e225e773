"""Structured observations (docs/observations.md): Dict / Tuple spaces nested to any depth, images, one-hot
leaves, per-leaf normalization, masks from an observation key, custom encoders, clear errors.

The toy envs are in tests/toy_envs.py (``NestedObsEnv``, ``TwoKeyBanditEnv``, ``ImageBanditEnv``,
``SetBanditEnv``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import toy_envs
from gymnasium import spaces
from torch import nn

import ppox
from ppox.config import Config, EnvConfig, PolicyConfig
from ppox.envs.make import make_vec_env, probe_spaces
from ppox.errors import ConfigError, EnvError
from ppox.io.checkpoint import load_checkpoint
from ppox.io.policy import Policy, build_model
from ppox.nn import ActorCritic, ImageEncoder, ObsEncoder, OneHot, register_encoder
from ppox.nn.encoders import NATURE_LAYERS, SMALL_LAYERS, Flatten
from ppox.training.learner import flatten_rollout
from ppox.training.normalizers import ObsNormalizer, RewardScaler
from ppox.training.rollout import Collector
from ppox.training.trainer import Trainer
from ppox.types import ObsLayout, channels_first

NESTED = toy_envs.NestedObsEnv(image=True, mask_in_obs=True).observation_space
VECTOR_LEAVES = {"pos": (2,), "sensors/lidar": (3,), "grid/1": (2, 2)}

FAST = dict(
    num_envs=8, num_steps=16, num_epochs=4, num_minibatches=2, learning_rate=3e-3, anneal_lr=False,
    hidden_sizes=(64,), gamma=0.9, eval_every=0, eval_episodes=40, tensorboard=False, progress=False,
)  # fmt: skip


def make_collector(
    env_id: str,
    *,
    num_envs: int = 3,
    num_steps: int = 13,
    normalize: bool = False,
    policy: PolicyConfig | None = None,
    seed: int = 0,
    **env_kw: Any,
) -> Collector:
    """A reset Collector built like ``Trainer.__init__`` does (identity reward scaler)."""
    env_cfg = EnvConfig(env_id=env_id, num_envs=num_envs, **env_kw)
    obs_space, act_space = probe_spaces(env_cfg)
    torch.manual_seed(seed)
    model = ActorCritic(obs_space, act_space, policy or PolicyConfig(hidden_sizes=(16,)))
    obs_norm = ObsNormalizer(model.obs_layout.norm_shape, enabled=normalize, clip=10.0)
    scaler = RewardScaler(num_envs, enabled=False, gamma=0.99, clip=10.0)
    c = Collector(make_vec_env(env_cfg), model, obs_norm, scaler, num_steps, torch.device("cpu"),
                  torch.Generator().manual_seed(seed))  # fmt: skip
    c.reset([100 + i for i in range(num_envs)])
    return c


def leaf_of(obs: Any, path: str) -> Any:
    for key in path.split("/"):
        obs = obs[int(key)] if isinstance(obs, tuple) else obs[key]
    return obs


# --------------------------------------------------------------------------------------------
# Layout and encoders, leaf by leaf
# --------------------------------------------------------------------------------------------


def test_layout_lists_every_leaf_with_its_storage_dtype_and_skips_the_mask_key():
    layout = ObsLayout(NESTED)
    want = {
        "camera": ("image", (6, 6, 3), np.uint8),
        "grid/0": ("multi_discrete", (2,), np.int64),
        "grid/1": ("vector", (2, 2), np.float32),
        "mode": ("discrete", (), np.int64),
        "pos": ("vector", (2,), np.float32),
        "sensors/bump": ("binary", (2,), np.int8),
        "sensors/lidar": ("vector", (3,), np.float32),
    }
    assert {p: (leaf.kind, leaf.shape, leaf.dtype) for p, leaf in layout.leaves.items()} == want
    assert layout.structured and layout.mask_in_obs and not layout.fast
    assert layout.norm_shape == VECTOR_LEAVES
    assert {"", "sensors", "grid"} <= set(layout.nodes) and "action_mask" not in layout.nodes
    box = ObsLayout(spaces.Box(-1, 1, (4,)))
    assert box.fast and box.norm_shape == (4,)
    image = ObsLayout(spaces.Box(0, 255, (3, 12, 12), np.uint8))
    assert not image.fast and image.norm_shape is None and image.leaves[""].kind == "image"
    # a uint8 Box without the [0, 255] bounds is a vector, not an image
    assert ObsLayout(spaces.Box(0, 9, (3, 3), np.uint8)).leaves[""].kind == "vector"


def test_channel_axis_rule():
    assert channels_first((3, 84, 84)) and channels_first((4, 12, 12))
    assert not channels_first((84, 84, 3)) and not channels_first((12, 12, 1))
    assert not channels_first((4, 4, 4))  # a tie counts as HWC
    assert not channels_first((84, 84))


def test_one_hot_encoder_hand_numbers():
    enc = OneHot(np.array([3]), np.array([1]))  # Discrete(3, start=1): values 1, 2, 3
    torch.testing.assert_close(
        enc(torch.tensor([1, 3, 2])), torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, 1, 0]])
    )
    enc = OneHot(np.array([2, 3]), np.array([0, -1]))  # MultiDiscrete([2, 3], start=[0, -1])
    assert enc.out_features == 5
    torch.testing.assert_close(
        enc(torch.tensor([[1, 1], [0, -1]])), torch.tensor([[0.0, 1, 0, 0, 1], [1.0, 0, 1, 0, 0]])
    )


def test_flatten_encoder_keeps_values():
    enc = Flatten((2, 2))
    x = torch.arange(8, dtype=torch.int8).reshape(2, 2, 2)  # MultiBinary-like ints become floats
    out = enc(x)
    assert enc.out_features == 4 and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.arange(8.0).reshape(2, 4))


@pytest.mark.parametrize(
    ("shape", "layers", "hw"),
    [((84, 84, 3), NATURE_LAYERS, 7 * 7), ((4, 84, 84), NATURE_LAYERS, 7 * 7), ((3, 12, 12), SMALL_LAYERS, 6 * 6),
     ((12, 12, 3), SMALL_LAYERS, 6 * 6), ((10, 10), SMALL_LAYERS, 5 * 5), ((36, 44, 1), NATURE_LAYERS, 1 * 2),
     ((35, 84, 3), SMALL_LAYERS, 18 * 42), ((1, 1), SMALL_LAYERS, 1)],
)  # fmt: skip
def test_image_encoder_shapes(shape, layers, hw):
    """Nature CNN from 36 pixels a side (84 → 20 → 9 → 7), the 3×3 variant below (s → ⌈s/2⌉)."""
    enc = ImageEncoder(shape, 32)
    convs = [m for m in enc.convs if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == list(
        layers
    )
    assert enc.linear.in_features == 64 * hw
    x = torch.randint(0, 256, (5, *shape), dtype=torch.uint8)
    assert enc(x).shape == (5, 32)


def test_image_encoder_scales_by_1_over_255_and_permutes_hwc():
    torch.manual_seed(0)
    hwc, chw = ImageEncoder((12, 12, 3), 8), ImageEncoder((3, 12, 12), 8)
    chw.load_state_dict(hwc.state_dict())
    x = torch.randint(0, 256, (4, 12, 12, 3), dtype=torch.uint8)
    x_chw = x.permute(0, 3, 1, 2).contiguous()
    torch.testing.assert_close(hwc(x), chw(x_chw))
    manual = torch.relu(chw.linear(chw.convs(x_chw.float() / 255.0).flatten(1)))
    torch.testing.assert_close(chw(x_chw), manual)


def test_obs_encoder_concatenates_every_leaf_in_layout_order():
    enc = ObsEncoder(ObsLayout(NESTED), PolicyConfig(cnn_features=16))
    assert enc.paths == [
        "camera",
        "grid/0",
        "grid/1",
        "mode",
        "pos",
        "sensors/bump",
        "sensors/lidar",
    ]
    widths = [int(p.out_features) for p in enc.parts]
    assert widths == [16, 5, 4, 3, 2, 2, 3] and enc.out_features == 35
    batch = ObsLayout(NESTED).stack([NESTED.sample() for _ in range(6)])
    out = enc({k: torch.from_numpy(v) for k, v in batch.items()})
    assert out.shape == (6, 35)
    # the one-hot block of `mode` (columns 16 + 5 + 4 …) is exactly the value − start
    mode = out[:, 25:28]
    torch.testing.assert_close(mode, torch.eye(3)[torch.from_numpy(batch["mode"]) - 1])


def test_box_observations_keep_the_fast_path():
    model = ActorCritic(spaces.Box(-1, 1, (4,)), spaces.Discrete(2), PolicyConfig())
    assert model.encoder is None and model.obs_shape == (4,)
    assert not any(k.startswith("encoder") for k in model.state_dict())


# --------------------------------------------------------------------------------------------
# Collector, buffer and minibatches
# --------------------------------------------------------------------------------------------


def test_nested_observations_round_trip_through_buffer_and_minibatches():
    c = make_collector("PpoxToyNestedObsImage-v0", num_envs=3, num_steps=9)
    layout = c.model.obs_layout
    r = c.collect()
    assert isinstance(r.obs, dict) and set(r.obs) == set(layout.leaves)
    for path, leaf in layout.leaves.items():
        assert r.obs[path].shape == (9, 3, *leaf.shape), path
        assert r.obs[path].dtype == torch.from_numpy(np.zeros(0, leaf.dtype)).dtype, path
    assert r.obs["camera"].dtype == torch.uint8  # images stay uint8 in the buffer
    # every leaf holds what each env produced (the observation the next rollout starts from)
    for i, env in enumerate(c.envs.envs):
        for path in layout.leaves:
            want = np.asarray(
                leaf_of(env.unwrapped.obs, path), dtype=layout.leaves[path].dtype
            )  # lidar: float64
            np.testing.assert_array_equal(c.obs[path][i].numpy(), want, err_msg=path)
    # value[t] is V(obs[t]): the stored observations are the ones the policy saw
    flat = {k: v.reshape(27, *v.shape[2:]) for k, v in r.obs.items()}
    with torch.no_grad():
        torch.testing.assert_close(r.value.reshape(27), c.model.value(flat))
    # minibatches take every leaf at the same indices
    tr_batch = flatten_rollout(r, torch.zeros_like(r.reward), torch.zeros_like(r.reward))
    idx = torch.tensor([26, 0, 13, 5])
    mb = tr_batch.take(idx)
    for path in layout.leaves:
        assert torch.equal(mb.obs[path], flat[path][idx]), path
    assert torch.equal(mb.value, r.value.reshape(27)[idx])
    # rollouts are copies of the reused buffer
    saved = {k: v.clone() for k, v in r.obs.items()}
    c.collect()
    assert all(torch.equal(saved[k], r.obs[k]) for k in saved)
    c.envs.close()


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_truncated_structured_episodes_bootstrap_from_final_obs(vectorization):
    c = make_collector("PpoxToyNestedObs-v0", num_envs=3, num_steps=14, vectorization=vectorization,
                       policy=PolicyConfig(hidden_sizes=(16,), activation="relu"))  # fmt: skip
    finals: list[tuple[int, int, dict[str, Any]]] = []  # (step, env, final obs)
    step = c.envs.step
    t_box = [0]

    def recording_step(action):
        out = step(action)
        info = out[4]
        for i in np.flatnonzero(out[3] & ~out[2]):
            finals.append((t_box[0], i, info["final_obs"][i]))
        t_box[0] += 1
        return out

    c.envs.step = recording_step
    r = c.collect()
    assert finals, "test precondition: some episodes were truncated"
    layout = c.model.obs_layout
    for t, i, final in finals:
        assert r.done[t, i] == 1 and r.terminated[t, i] == 0
        assert final["pos"][0] - final["pos"][1] == 6  # the real final observation, step 6
        x = {k: torch.from_numpy(v) for k, v in layout.stack([final]).items()}
        with torch.no_grad():
            torch.testing.assert_close(r.next_value[t, i], c.model.value(x)[0])
        if t + 1 < 14:
            assert abs(r.next_value[t, i] - r.value[t + 1, i]) > 1e-4  # not the reset obs's value
    c.envs.close()


def test_action_mask_from_an_observation_key_is_respected():
    c = make_collector("PpoxToyNestedObsMask-v0", num_envs=3, num_steps=60,
                       policy=PolicyConfig(hidden_sizes=(16,), policy_init_gain=1.0))  # fmt: skip
    assert "action_mask" not in c.model.obs_layout.leaves
    r = c.collect()
    assert r.mask is not None and r.mask.shape == (60, 3, 3) and "action_mask" not in r.obs
    assert r.mask.gather(-1, r.action.unsqueeze(-1)).all()
    assert sum(c.envs.call("illegal")) == 0
    assert r.mask.float().mean() < 0.8  # the masks really forbid actions
    c.envs.close()


def test_normalization_is_per_vector_leaf_and_leaves_images_and_integers_alone():
    c = make_collector("PpoxToyNestedObsImage-v0", num_envs=2, num_steps=5, normalize=True)
    seen: dict[str, list[np.ndarray]] = {k: [c.raw_obs[k].copy()] for k in c.raw_obs}
    step = c.envs.step

    def recording_step(action):
        out = step(action)
        flat = c.model.obs_layout.flatten(out[0])
        for k in seen:
            seen[k].append(flat[k].copy())
        return out

    c.envs.step = recording_step
    r = c.collect()
    assert set(c.obs_norm.leaves) == set(VECTOR_LEAVES)
    for t in range(5):
        for k in VECTOR_LEAVES:
            hist = np.concatenate(seen[k][: t + 1]).astype(np.float64)
            want = (seen[k][t] - hist.mean(0)) / np.sqrt(hist.var(0) + 1e-8)
            np.testing.assert_allclose(
                r.obs[k][t].numpy(), np.clip(want, -10, 10), rtol=1e-5, atol=1e-5
            )
        for k in ("camera", "mode", "grid/0", "sensors/bump"):
            np.testing.assert_array_equal(r.obs[k][t].numpy(), seen[k][t])
    state = c.obs_norm.state_dict()
    assert set(state["leaves"]) == set(VECTOR_LEAVES)
    restored = ObsNormalizer(VECTOR_LEAVES, enabled=True, clip=10.0)
    restored.load_state_dict(state)
    x = c.model.obs_layout.stack([NESTED.sample() for _ in range(4)])
    a, b = restored(x), c.obs_norm(x)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c.envs.close()


# --------------------------------------------------------------------------------------------
# Learning, through the whole pipeline
# --------------------------------------------------------------------------------------------


def test_learns_a_task_that_needs_two_keys(tmp_path):
    """The right action is 2·cue + (level > 0): one key alone gives at most 0.5."""
    cfg = Config().replace(
        env_id="PpoxToyTwoKeyBandit-v0", total_steps=4096, seed=1, normalize_obs=True, **FAST
    )
    summary = ppox.train(cfg, run_dir=tmp_path / "r")
    assert summary["eval_return_mean"] > 0.9, summary["eval_return_mean"]
    policy = ppox.load_policy(tmp_path / "r")
    for cue in (0, 1):
        for level in (-0.6, 0.6):
            assert int(
                policy.predict({"cue": cue, "level": np.array([level], np.float32)})
            ) == 2 * cue + (level > 0)


def test_learns_from_a_small_top_level_image(tmp_path):
    cfg = Config().replace(env_id="PpoxToyImageBandit-v0", total_steps=2048, seed=1, cnn_features=64,
                           normalize_obs=True, **FAST)  # fmt: skip
    summary = ppox.train(cfg, run_dir=tmp_path / "r")
    assert summary["eval_return_mean"] > 0.9, summary["eval_return_mean"]
    assert load_checkpoint(tmp_path / "r")["obs_norm"] == {}  # images are never normalized


@pytest.mark.parametrize("layout", ["hwc", "dict"])
def test_image_layouts_collect_and_update(layout, tmp_path):
    cfg = Config().replace(env_id="PpoxToyImageBandit-v0", env_kwargs={"layout": layout}, total_steps=256,
                           seed=1, cnn_features=32, normalize_obs=True, **FAST)  # fmt: skip
    tr = Trainer.create(cfg, tmp_path / "r")
    try:
        before = [p.detach().clone() for p in tr.model.encoder.parameters()]
        r = tr.collector.collect()
        image = r.obs if layout == "hwc" else r.obs["image"]
        assert image.dtype == torch.uint8 and image.shape == (16, 8, 12, 12, 3)
        metrics = tr.learner.update(tr.advantages(r), progress=0.0)
        assert math.isfinite(metrics["policy_loss"]) and metrics["updates"] == 8
        assert any(not torch.equal(a, b) for a, b in zip(before, tr.model.encoder.parameters()))
        if layout == "dict":
            assert set(tr.obs_norm.leaves) == {"noise"}
    finally:
        tr.envs.close()


def always_stick_return(seeds: list[int]) -> float:
    """Blackjack's mean return when the player always sticks (wins only when the dealer busts,
    about −0.2), on the given deals: the bar a policy that learned nothing from its cards meets."""
    env = gym.make("Blackjack-v1")
    total = 0.0
    for seed in seeds:
        env.reset(seed=seed)
        total += float(env.step(0)[1])
    env.close()
    return total / len(seeds)


def test_gymnasium_blackjack_tuple_of_discretes_trains(tmp_path):
    """Blackjack's observation is a Tuple of Discretes (one-hot encoded). After 8192 steps the
    greedy policy must have learned from it what every card counter knows: stick on 20 and 21
    (hitting busts two times in three), hit on 9–11 (no card can bust it), whatever the dealer
    shows; and it must beat always-sticking on the same evaluation deals by 0.05 (always
    sticking: −0.20 on these 400 deals; the trained policy: −0.055)."""
    cfg = Config().replace(env_id="Blackjack-v1", total_steps=8192, seed=1,
                           **{**FAST, "gamma": 1.0, "eval_episodes": 400})  # fmt: skip
    summary = ppox.train(cfg, run_dir=tmp_path / "r")
    assert summary["total_steps"] == 8192
    policy = ppox.load_policy(tmp_path / "r")
    dealer = range(1, 11)
    stick = [(p, d) for p in (20, 21) for d in dealer if int(policy.predict((p, d, 0))) == 0]
    hit = [(p, d) for p in (9, 10, 11) for d in dealer if int(policy.predict((p, d, 0))) == 1]
    assert len(stick) == 20, stick
    assert len(hit) >= 27, hit
    baseline = always_stick_return(summary["eval_seeds"])
    assert summary["eval_return_mean"] > baseline + 0.05, (summary["eval_return_mean"], baseline)


# --------------------------------------------------------------------------------------------
# Exact resume
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "sparse"),
    [("PpoxToyNestedObsImage-v0", 0.0), ("PpoxToyNestedObsMask-v0", 0.0), ("PpoxToyNestedObsMask-v0", 0.5)],
)  # fmt: skip
def test_in_process_resume_with_dict_observations_is_exact(
    env_id, sparse, tmp_path, interrupted_run
):
    cfg = Config().replace(
        env_id=env_id, total_steps=4 * 16 * 6, num_envs=4, num_steps=16, num_minibatches=4, num_epochs=2,
        hidden_sizes=(16,), cnn_features=16, normalize_obs=True, obs_sparse=sparse, scale_reward=True,
        eval_every=128, eval_episodes=2, tensorboard=False, progress=False, checkpoint_every=100, seed=3,
    )  # fmt: skip
    full, cut = tmp_path / "full", tmp_path / "cut"
    ppox.train(cfg, full)
    interrupted_run(cfg, cut, 3, lost=1)  # one iteration after the checkpoint is lost

    resumed = Trainer.resume(cut)
    assert resumed.resumed_envs
    resumed.train()
    a, b = load_checkpoint(full), load_checkpoint(cut)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["obs_norm"] == b["obs_norm"] and set(a["obs_norm"]["leaves"]) == set(VECTOR_LEAVES)
    assert all(("nonzero" in leaf) == (sparse > 0) for leaf in a["obs_norm"]["leaves"].values())
    assert a["progress"]["evals"] == b["progress"]["evals"]


# --------------------------------------------------------------------------------------------
# Policy.predict
# --------------------------------------------------------------------------------------------


def test_predict_takes_one_nested_observation_or_a_batch():
    cfg = Config().replace(
        env_id="PpoxToyNestedObsMask-v0",
        normalize_obs=True,
        policy_init_gain=1.0,
        hidden_sizes=(16,),
    )
    torch.manual_seed(0)
    model, obs_norm = build_model(cfg)
    obs_norm.update(model.obs_layout.stack([NESTED.sample() for _ in range(20)]))
    policy = Policy(model, obs_norm, cfg)
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("PpoxToyNestedObsMask-v0")] * 16)
    batch, _ = envs.reset(seed=list(range(16)))
    actions = policy.predict(batch)
    assert actions.shape == (16,)
    singles = [policy.predict(leaf_obs) for leaf_obs in _unbatch(envs, batch)]
    assert [int(a) for a in singles] == actions.tolist()
    # the mask comes from the observation's action_mask key
    assert all(batch["action_mask"][i, a] for i, a in enumerate(actions))
    sampled = policy.predict(batch, deterministic=False, generator=torch.Generator().manual_seed(0))
    assert all(batch["action_mask"][i, a] for i, a in enumerate(sampled))
    envs.close()


def _unbatch(envs: gym.vector.VectorEnv, batch: Any) -> list[Any]:
    return list(gym.vector.utils.iterate(envs.observation_space, batch))


# --------------------------------------------------------------------------------------------
# Custom encoders: a DeepSets encoder over a padded set with a validity mask
# --------------------------------------------------------------------------------------------


class DeepSets(nn.Module):
    """``{"items": [B, K, F], "valid": [B, K]}`` → ``ρ(Σ_valid φ(item))`` ``[B, out_features]``
    (Zaheer et al. 2017): permutation invariant, blind to the padding rows."""

    def __init__(self, space: spaces.Dict, width: int = 32) -> None:
        super().__init__()
        features = space["items"].shape[-1]
        self.phi = nn.Sequential(nn.Linear(features, width), nn.ReLU(), nn.Linear(width, width))
        self.rho = nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.out_features = width

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        valid = obs["valid"].float().unsqueeze(-1)  # [B, K, 1]
        return self.rho((self.phi(obs["items"]) * valid).sum(1))


def deep_sets(space: spaces.Space, cfg: PolicyConfig) -> nn.Module:
    """An encoder builder: ``(space, policy_config) → nn.Module`` with ``out_features``."""
    assert isinstance(space, spaces.Dict) and set(space.spaces) == {"items", "valid"}
    return DeepSets(space)


register_encoder("test_deep_sets", deep_sets)
register_encoder("test_no_width", lambda space, cfg: nn.Identity())  # no out_features: refused


def test_custom_encoder_reads_the_whole_subtree_and_ignores_padding():
    space = toy_envs.SetBanditEnv().observation_space
    torch.manual_seed(0)
    model = ActorCritic(
        space, spaces.Discrete(2), PolicyConfig(obs_encoders={"set": "test_deep_sets"})
    )
    assert (
        model.encoder is not None
        and model.encoder.paths == ["set"]
        and model.encoder.out_features == 32
    )
    items = torch.randn(4, 5, 2)
    valid = torch.tensor([[1, 1, 0, 0, 0]] * 4, dtype=torch.int8)
    obs = {"set/items": items, "set/valid": valid}
    junk = items.clone()
    junk[:, 2:] = 99.0
    perm = torch.tensor([1, 0, 4, 2, 3])
    with torch.no_grad():
        v = model.value(obs)
        torch.testing.assert_close(model.value({"set/items": junk, "set/valid": valid}), v)
        torch.testing.assert_close(
            model.value({"set/items": items[:, perm], "set/valid": valid[:, perm]}), v
        )


@pytest.mark.parametrize("name", ["test_deep_sets", "test_observations:deep_sets"])
def test_learns_with_a_custom_set_encoder(name, tmp_path):
    cfg = Config().replace(
        env_id="PpoxToySetBandit-v0", total_steps=6144, seed=1, obs_encoders={"set": name}, **FAST
    )
    summary = ppox.train(cfg, run_dir=tmp_path / "r")
    assert summary["eval_return_mean"] > 0.85, summary["eval_return_mean"]
    # the checkpoint names this test module to import (for the 'module:callable' case): trusted
    policy = ppox.load_policy(tmp_path / "r", trust_imports=True)
    assert policy.model.encoder.paths == ["set"]


@pytest.mark.parametrize(
    ("encoders", "needles"),
    [
        ({"set": "nope"}, ["'nope'", "not registered", "test_deep_sets", "one_hot"]),
        ({"sett": "test_deep_sets"}, ["'sett'", "set/items"]),
        ({"set": "test_deep_sets", "set/items": "flatten"}, ["set/items", "inside"]),
        ({"set": "test_no_width"}, ["'test_no_width'", "'set'", "out_features"]),
        ({"set": "no_such_module_xyz:f"}, ["no_such_module_xyz"]),
    ],
)
def test_bad_custom_encoders_are_named(encoders, needles):
    space = toy_envs.SetBanditEnv().observation_space
    with pytest.raises(ConfigError) as err:
        ActorCritic(space, spaces.Discrete(2), PolicyConfig(obs_encoders=encoders))
    for needle in needles:
        assert needle in str(err.value)


def test_obs_encoders_config_is_validated():
    with pytest.raises(ConfigError, match="obs_encoders"):
        Config().replace(obs_encoders={"set": ""}).validate()


# --------------------------------------------------------------------------------------------
# Spaces ppox cannot encode
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "name"),
    [(spaces.Text(5), "Text"), (spaces.Sequence(spaces.Discrete(3)), "Sequence"),
     (spaces.Graph(spaces.Box(0, 1, (2,)), spaces.Discrete(2)), "Graph")],
)  # fmt: skip
def test_unsupported_leaves_are_named_by_key_path(bad, name):
    space = spaces.Dict(
        {"pos": spaces.Box(-1, 1, (2,)), "extra": spaces.Tuple((spaces.Discrete(2), bad))}
    )
    with pytest.raises(EnvError) as err:
        ActorCritic(space, spaces.Discrete(2), PolicyConfig())
    msg = str(err.value)
    assert "'extra/1'" in msg and name in msg and "supported: Box" in msg and "MultiBinary" in msg


class TextObsEnv(gym.Env):
    observation_space = spaces.Dict({"note": spaces.Text(4), "x": spaces.Box(-1, 1, (1,))})
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


def test_training_on_an_unsupported_observation_fails_before_creating_the_run(tmp_path: Path):
    if "ppox-test/TextObs-v0" not in gym.registry:
        gym.register("ppox-test/TextObs-v0", entry_point=TextObsEnv)
    cfg = Config().replace(
        env_id="ppox-test/TextObs-v0", total_steps=64, tensorboard=False, progress=False
    )
    with pytest.raises(EnvError, match="'note'.*Text.*not supported"):
        ppox.train(cfg, tmp_path / "r")
    assert not (tmp_path / "r").exists()
