"""Config: validation names the field, round trips, presets, docs in sync with docstrings."""

from __future__ import annotations

from pathlib import Path

import pytest

from ppox import Config, ConfigError
from ppox.config import config_markdown, field_docs, field_sections
from ppox.presets import PRESETS, get_preset


def test_defaults_are_valid_and_derived_sizes_follow() -> None:
    cfg = Config().validate()
    assert cfg.batch_size == cfg.ppo.num_steps * cfg.env.num_envs
    assert cfg.minibatch_size == cfg.batch_size // cfg.ppo.num_minibatches
    assert cfg.replace(total_steps=cfg.batch_size * 3 + 1).num_iterations == 4


@pytest.mark.parametrize(
    ("field", "value"),
    [("learning_rate", -1e-3), ("num_envs", 0), ("gamma", 1.5), ("dual_clip", 1.0), ("norm_adv", "x"),
     ("sigma_mode", "learned"), ("max_grad_norm", 0.0), ("device", "tpu"), ("eval_episodes", 0)],
)  # fmt: skip
def test_impossible_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"^{field}="):
        Config().replace(**{field: value}).validate()


def test_minibatch_larger_than_batch_is_refused() -> None:
    with pytest.raises(ConfigError, match="num_minibatches=512 must divide the batch"):
        Config().replace(num_envs=2, num_steps=16, num_minibatches=512).validate()
    with pytest.raises(ConfigError, match="num_minibatches=3"):
        Config().replace(num_envs=2, num_steps=16, num_minibatches=3).validate()


def test_replace_and_dict_round_trip() -> None:
    cfg = Config().replace(learning_rate=3e-4, hidden_sizes=(32, 16), env_kwargs={"a": 1})
    assert Config.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown config field 'lr'"):
        Config().replace(lr=1.0)
    with pytest.raises(
        ConfigError, match=r"unknown field\(s\) \['bogus'\] in config section 'ppo'"
    ):
        Config.from_dict({"ppo": {"bogus": 1}})


def test_field_names_are_unique_and_all_documented() -> None:
    assert set(field_docs()) == set(field_sections())
    assert all(len(doc) > 10 for doc in field_docs().values())


def test_docs_config_page_is_in_sync_with_the_docstrings() -> None:
    page = Path(__file__).parents[1] / "docs" / "config.md"
    assert page.read_text() == config_markdown(), "run `make docs` to regenerate docs/config.md"


def test_every_preset_is_valid() -> None:
    for name in PRESETS:
        get_preset(name).config().validate()
    with pytest.raises(ConfigError, match="preset='x' is unknown; available presets: .*cartpole"):
        get_preset("x")
