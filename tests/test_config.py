"""Config: validation names the field, round trips, presets, docs in sync with docstrings."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from ppox import Config, ConfigError
from ppox.config import (
    EnvConfig,
    PolicyConfig,
    allowed,
    config_markdown,
    field_docs,
    field_sections,
    field_types,
    parse_field_value,
    read_config_file,
)
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


# --- the typed parser: one set of rules, read from the annotations ---------------------------
def test_choices_come_from_the_literal_annotations_and_match_the_code_that_uses_them() -> None:
    from ppox.config import choices
    from ppox.core.schedules import SCHEDULES
    from ppox.nn.actor_critic import _ACTIVATIONS
    from ppox.nn.init import SCHEMES

    assert choices("activation") == tuple(_ACTIVATIONS)
    assert choices("init") == SCHEMES
    assert choices("ent_schedule") == SCHEDULES
    assert choices("norm_adv") == ("minibatch", "batch", "off")
    with pytest.raises(ValueError, match="not a choice"):
        choices("num_envs")


def test_the_initial_log_std_range_is_the_sigma_clamp() -> None:
    from ppox.config import LOG_STD_BOUNDS, allowed
    from ppox.distributions.normal import LOG_STD_MAX, LOG_STD_MIN

    assert LOG_STD_BOUNDS == (LOG_STD_MIN, LOG_STD_MAX)
    assert allowed("init_log_std") == "a finite number from -20 to 2"
    Config().replace(init_log_std=-20.0, sigma_mode="fixed").validate()
    for bad in (-20.5, 2.01):
        with pytest.raises(ConfigError, match=r"^init_log_std="):
            Config().replace(init_log_std=bad)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("num_envs", "8", "num_envs='8' is not allowed: an integer from 1 to 4096 (got a string)"),
        ("num_envs", True, "num_envs=True is not allowed: an integer from 1 to 4096 (got a bool)"),
        ("num_envs", 8.0, "num_envs=8.0 is not allowed: an integer from 1 to 4096 (got a number)"),
        ("num_envs", None, "num_envs=None is not allowed: an integer from 1 to 4096 (got none)"),
        ("normalize_obs", "no", "normalize_obs='no' is not allowed: true or false (got a string)"),
        ("normalize_obs", 1, "normalize_obs=1 is not allowed: true or false (got an integer)"),
        ("learning_rate", math.inf, "learning_rate=inf is not allowed: a finite number > 0 and ≤ 1"),
        ("activation", "gelu", "activation='gelu' is not allowed: one of 'tanh', 'relu', 'elu'"),
        ("hidden_sizes", (64, True), "hidden_sizes=(64, True) is not allowed: a list of 0 to 16 integers, each from 1 to 4096"),
        ("hidden_sizes", "64", "hidden_sizes='64' is not allowed: a list of 0 to 16 integers, each from 1 to 4096 (got a string)"),
        ("env_kwargs", [1], "env_kwargs=[1] is not allowed: a JSON object (standard JSON: no NaN or Infinity) (got a list)"),
        ("obs_encoders", {"a": 1}, "obs_encoders={'a': 1} is not allowed: a JSON object of key paths ('' is the whole observation) to non-empty names"),
        ("seed", 10**400, "seed=<an integer of about 401 digits> is not allowed: an integer from 0 to 4294967295"),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_type_or_range_names_field_value_and_expected_type(
    field: str, value: object, expected: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        Config().replace(**{field: value})
    assert str(exc.value) == expected
    with pytest.raises(ConfigError) as exc:  # the same words through from_dict (a config file)
        Config.from_dict({field_sections()[field]: {field: value}})
    assert str(exc.value) == expected


def test_ints_are_floats_and_lists_are_tuples_in_canonical_form() -> None:
    cfg = Config().replace(learning_rate=1, hidden_sizes=[32, 16], vf_coef=np.float64(0.25))
    assert type(cfg.ppo.learning_rate) is float and cfg.ppo.learning_rate == 1.0
    assert cfg.policy.hidden_sizes == (32, 16) and type(cfg.ppo.vf_coef) is float
    assert Config.from_dict({"env": {"num_envs": np.int64(4)}}).env.num_envs == 4
    # a config built directly is checked and made canonical by validate()
    direct = Config(policy=PolicyConfig(hidden_sizes=[8, 8]))  # type: ignore[arg-type]
    assert direct.validate().policy.hidden_sizes == (8, 8)
    assert Config().validate() == Config()
    with pytest.raises(ConfigError, match=r"^num_envs='8' is not allowed"):
        Config(env=EnvConfig(num_envs="8")).validate()  # type: ignore[arg-type]


def test_every_number_field_refuses_nan_huge_and_negative_huge_values() -> None:
    """A property of all fields at once: no number field lacks a range (a new field without
    one fails here), and only grad_norm_type takes inf."""
    numbers_ = [n for n, tp in field_types().items() if _base(tp) in (int, float)]
    assert len(numbers_) > 40
    for name in numbers_:
        for bad in (math.nan, -math.inf, 1e300, -1e300, 10**30, -(10**30)):
            if _base(field_types()[name]) is int and isinstance(bad, float):
                continue
            with pytest.raises(ConfigError, match=f"^{name}="):
                Config().replace(**{name: bad})
        if _base(field_types()[name]) is float:
            if name == "grad_norm_type":
                assert Config().replace(grad_norm_type=math.inf).ppo.grad_norm_type == math.inf
            else:
                with pytest.raises(ConfigError, match=f"^{name}=inf is not allowed"):
                    Config().replace(**{name: math.inf})


def _base(tp: object) -> object:
    from ppox.config import _strip, _strip_optional

    return _strip_optional(_strip(tp)[0])[0]


def test_null_is_only_for_optional_fields() -> None:
    optional = {n for n in field_sections() if "or none" in allowed(n)}
    assert optional == {"max_episode_steps", "dual_clip", "value_clip", "ent_coef_end",
                        "max_grad_norm", "target_kl", "kl_margin", "run_dir", "bptt", "wandb_project",
                        "wandb_group", "wandb_tags", "init_from"}  # fmt: skip
    for name in field_sections():
        section = field_sections()[name]
        if name in optional:
            assert (
                getattr(getattr(Config.from_dict({section: {name: None}}), section), name) is None
            )
        else:
            with pytest.raises(ConfigError, match=f"^{name}=None is not allowed"):
                Config.from_dict({section: {name: None}})


def test_parse_text_reads_command_line_words() -> None:
    assert parse_field_value("max_grad_norm", "none") is None
    assert parse_field_value("max_grad_norm", "NULL") is None
    assert parse_field_value("hidden_sizes", "32, 16") == (32, 16)
    assert parse_field_value("hidden_sizes", "[8]") == (8,)
    assert parse_field_value("total_steps", "1_000") == 1000
    assert parse_field_value("normalize_obs", "yes") is True
    assert parse_field_value("grad_norm_type", "inf") == math.inf
    assert parse_field_value("env_kwargs", '{"a": [1, 2]}') == {"a": [1, 2]}
    for name, text, needle in [
        ("max_grad_norm", "off", "max_grad_norm='off' is not allowed: a finite number > 0 and ≤ 1000000, or none"),
        ("total_steps", "1e5", "total_steps='1e5' is not allowed: an integer"),
        ("learning_rate", "nan", "learning_rate=nan is not allowed"),
        ("learning_rate", "1e400", "learning_rate=inf is not allowed"),
        ("env_kwargs", '{"a": 1, "a": 2}', "env_kwargs='{\"a\": 1, \"a\": 2}' is not allowed: a JSON object"),
        ("env_kwargs", '{"a": NaN}', "env_kwargs={'a': nan} is not allowed"),
        ("normalize_obs", "maybe", "normalize_obs='maybe' is not allowed: true or false"),
        ("num_envs", "", "num_envs='' is not allowed"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError) as exc:
            parse_field_value(name, text)
        assert str(exc.value).startswith(needle), str(exc.value)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"ent_schedule": "exponential"}, "ent_schedule='exponential' needs ent_coef > 0 and ent_coef_end > 0"),
        ({"ent_schedule": "exponential", "ent_coef": 0.01, "ent_coef_end": 0.0}, "ent_coef_end=0.0"),
        ({"eval_seed": 2**32 - 5, "eval_episodes": 10}, "eval_seed + eval_episodes = 4294967291 + 10"),
        ({"num_envs": 4096, "num_steps": 8192}, "a batch holds at most 16777216 transitions"),
        ({"vectorization": "async", "num_envs": 300}, "num_envs=300 with vectorization='async'"),
        ({"max_episode_steps": 10, "env_kwargs": {"max_episode_steps": 20}}, "max_episode_steps is given twice"),
        ({"grad_clip": "ignore", "max_grad_norm": None}, "grad_clip='ignore' needs a max_grad_norm"),
        ({"env_kwargs": {"render_mode": "human"}}, "env_kwargs sets render_mode='human'"),
    ],
)  # fmt: skip
def test_rules_between_fields(changes: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        Config().replace(**changes).validate()


def test_edges_of_the_ranges_are_allowed() -> None:
    Config().replace(
        ent_schedule="exponential", ent_coef=0.01, ent_coef_end=1e-4,
        eval_seed=2**32 - 10, eval_episodes=10, seed=2**32 - 1, threads=1024,
        num_envs=4096, num_steps=4096, num_minibatches=4096, init_log_std=2.0,
        max_episode_steps=2**31 - 1, learning_rate=1, adam_eps=1e-12, vf_coef=1000,
    ).validate()  # fmt: skip


def test_from_dict_names_what_is_wrong_with_the_shape_of_a_config() -> None:
    for data, needle in [
        ([1], "a config is a JSON object of sections"),
        ({"env": 5}, "config section 'env' must be a JSON object of fields (got an integer)"),
        ({"ppo": {"learning_rat": 1e-3}}, "(did you mean 'learning_rate'?)"),
        ({"enviroment": {}}, "unknown config section 'enviroment'; allowed: env, policy, ppo, run"),
        ({"polcy": {}}, "unknown config section 'polcy' (did you mean 'policy'?)"),
        ({"policy": {"ortho_init": "yes"}}, "ortho_init='yes' is not allowed"),
    ]:
        with pytest.raises(ConfigError) as exc:
            Config.from_dict(data)
        assert needle in str(exc.value)
    assert Config.from_dict({"policy": {"ortho_init": False}}).policy.init == "torch"
    assert Config.from_dict({"backends": {"act": "numpy"}}) == Config()


def test_read_config_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    for text, needle in [
        ('{"env": {"num_envs": "8"}}', "num_envs='8' is not allowed"),
        ('{"env": {"num_envs": 8, "num_envs": 4}}', "key 'num_envs' appears twice"),
        ("{", "not valid JSON"),
        ('{"run": {"seed": NaN}}', "seed=nan is not allowed"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError) as exc:
            read_config_file(path)
        assert str(exc.value).startswith(f"--config {path}: ") and needle in str(exc.value)
    with pytest.raises(ConfigError, match="cannot read the file"):
        read_config_file(tmp_path / "missing.json")
    path.write_text(json.dumps(Config().replace(num_envs=4).to_dict()))
    assert read_config_file(path) == Config().replace(num_envs=4)


def test_the_docs_list_what_every_field_allows() -> None:
    page = config_markdown()
    for name in field_sections():
        assert f"| `{name}` |" in page and allowed(name) in page
    assert "| `num_envs` | `8` | an integer from 1 to 4096 |" in page
