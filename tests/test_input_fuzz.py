"""Property-based fuzzing of the config parser through its three entry points.

Hypothesis draws values for config fields, valid (from each field's annotation) and invalid
(wrong types, NaN/inf, negative, huge, unknown strings, None), and feeds each draw through the
Python API (``Config().replace(...).validate()``), a ``--config`` JSON file and the command-line
flags (``ppox.cli.main`` in-process, the trainer replaced by a stub that stops at the validated
config). Every draw must end either in a valid config, the same one from all three, or in
exactly one line ``ppox: error: …`` naming a drawn field: never a traceback, never a non-finite
number accepted, never an entry point that accepts what another refuses. The default suite runs
a few hundred draws; ``-m slow`` runs many more.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import tempfile
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ppox.cli
import ppox.training.trainer
from ppox import Config, ConfigError
from ppox.config import (
    NONE_WORDS,
    Seq,
    Span,
    _strip,
    _strip_optional,
    field_sections,
    field_types,
    flat_values,
)

FIELDS = list(field_sections())
FAST = settings(max_examples=200, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
THOROUGH = settings(FAST, max_examples=3000, derandomize=False)
TEXT_VALUES = {
    "env_id": ["CartPole-v1", "Pendulum-v1", "x", "CartPol-v1", " CartPole-v1"],
    "device": ["cpu", "auto", "cuda", "cuda:1", "cuda:", "tpu", "CPU"],
    "run_dir": ["runs/x", "a b", "./none", "\x00", "x\ny"],
    "init_from": ["runs/none", "a b", "\x00"],
    "wandb_project": ["ppox", "my-project.v2", "a b", "", "x" * 129],
    "wandb_group": ["seeds", "a b", "", "x\x00"],
    "wandb_tags": ["a", "a,b", "a,,b", ",", "x" * 65],
}


def base_and_meta(name: str) -> tuple[Any, list[Any], bool]:
    base, meta = _strip(field_types()[name])
    base, optional = _strip_optional(base)
    return base, meta, optional


def span_of(meta: list[Any]) -> Span | None:
    return next((m for m in meta if isinstance(m, Span)), None)


def valid_values(name: str) -> st.SearchStrategy[Any]:
    """Values the annotation allows (and its edges)."""
    base, meta, optional = base_and_meta(name)
    span = span_of(meta)
    if typing.get_origin(base) is Literal:
        s: st.SearchStrategy[Any] = st.sampled_from(typing.get_args(base))
    elif base is bool:
        s = st.booleans()
    elif base is int:
        assert span is not None
        lo, hi = int(span.lo or 0), int(span.hi or 10**12)
        s = st.one_of(st.integers(lo, min(hi, lo + 64)), st.sampled_from([lo, hi]))
    elif base is float:
        assert span is not None
        s = st.floats(span.lo, span.hi, exclude_min=span.lo_open, exclude_max=span.hi_open)
        s = st.one_of(s, st.just(math.inf)) if span.inf else s
    elif base is str:
        s = st.sampled_from(TEXT_VALUES[name])
    elif typing.get_origin(base) is tuple:
        seq = next(m for m in meta if isinstance(m, Seq))
        s = st.lists(st.integers(1, 4096), min_size=1, max_size=seq.max_len).map(tuple)
    elif typing.get_args(base)[1:] == (str,):
        s = st.dictionaries(
            st.text(min_size=1, max_size=4), st.text(min_size=1, max_size=4), max_size=2
        )
    else:
        s = st.dictionaries(st.text(max_size=4), JSON_LEAF, max_size=2)
    return st.one_of(s, st.none()) if optional else s


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3),
                      st.floats(allow_nan=False, allow_infinity=False))  # fmt: skip
BAD = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=6),
    st.sampled_from(["none", "null", "nan", "inf", "-inf", "8", "1e3", "true", "no", "unknown"]),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**31, 2**32, 2**63, 10**12 + 1, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e30, -1e30, 1e-320, -0.0, 0.5, 1.5]),
    st.lists(st.one_of(st.integers(-3, 5000), st.floats(), st.text(max_size=2), st.booleans()), max_size=3),
    st.dictionaries(st.text(max_size=3), st.one_of(JSON_LEAF, st.floats()), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1).map(lambda d: {1: 2, **d}),
)  # fmt: skip
"""Values of every kind: the wrong type for most fields, NaN/inf, negative, huge, unknown."""


NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf, 1e30, -1e30, 1e308, -(10**30)])


def out_of_range(name: str) -> st.SearchStrategy[Any]:
    """Numbers just outside a number field's range (or just inside an open end)."""
    span = span_of(base_and_meta(name)[1])
    if span is None:
        return st.nothing()
    edges: list[float] = []
    for bound, open_, step in ((span.lo, span.lo_open, -1), (span.hi, span.hi_open, 1)):
        if bound is not None:
            edges += [bound] if open_ else []
            edges += [bound + step, bound + step * 1e-9 * max(1.0, abs(bound))]
    if base_and_meta(name)[0] is int:
        edges = [int(e) for e in edges if float(e).is_integer()]
    return st.sampled_from(edges) if edges else st.nothing()


@st.composite
def draws(draw: st.DrawFn, max_fields: int = 1) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=max_fields, unique=True))
    return {n: draw(st.one_of(valid_values(n), BAD, NON_FINITE, out_of_range(n))) for n in names}


# --- the three entry points --------------------------------------------------------------------
class Started(Exception):
    """Raised by the stub trainer: the CLI got as far as starting a run with this config."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg


class StubTrainer:
    @classmethod
    def create(cls, cfg: Config, run_dir: Any = None, *, origin: Any = None) -> Any:
        raise Started(cfg)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """``cli(argv)`` → ``("ok", config)`` or ``("error", the one error line)``."""
    monkeypatch.setattr(ppox.training.trainer, "Trainer", StubTrainer)
    monkeypatch.setattr(ppox.cli, "build_parser", functools.cache(ppox.cli.build_parser))

    def run(argv: list[str]) -> tuple[str, Any]:
        capsys.readouterr()
        try:
            rc = ppox.cli.main(argv)
        except Started as s:
            return "ok", s.cfg
        out, err = capsys.readouterr()
        lines = err.splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("ppox: error: "), (argv, err)
        assert "Traceback" not in err and "usage:" not in err
        return "error", lines[0]

    return run


def via_api(values: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", Config().replace(**values).validate()
    except ConfigError as exc:
        return "error", str(exc)


def via_json(values: dict[str, Any], cli: Any, folder: Path) -> tuple[str, Any]:
    data: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        data.setdefault(field_sections()[name], {})[name] = value
    try:
        text = json.dumps(data)
    except (TypeError, ValueError):  # not expressible in JSON: no JSON entry point
        return "skip", None
    if _has_non_str_key(data):  # json.dumps would write the int key 1 as "1": another value
        return "skip", None
    path = folder / "config.json"
    path.write_text(text)
    return cli(["train", "--config", str(path)])


def _has_non_str_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(not isinstance(k, str) or _has_non_str_key(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_non_str_key(v) for v in value)
    return False


def as_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    return str(value)


def cli_args(name: str, value: Any, spaced: bool) -> list[str] | None:
    """The flags that spell ``value`` for field ``name``, or None where command-line text cannot
    carry the value's type (a string for a number field reads as the number it spells)."""
    base, _, optional = base_and_meta(name)
    flag = f"--{name.replace('_', '-')}"
    str_like = base is str or typing.get_origin(base) is Literal
    if str_like != isinstance(value, str) and not (value is None and optional):
        return None
    if str_like and isinstance(value, str) and optional and value.strip().lower() in NONE_WORDS:
        return None  # `--run-dir none` means None, not a directory named none
    if base is bool and isinstance(value, bool):
        return [flag if value else f"--no-{flag[2:]}"]
    if isinstance(value, dict) and any(not isinstance(k, str) for k in value):
        return None
    text = as_text(value)
    if spaced and not text.startswith("-") and base is not bool:
        return [flag, text]
    return [f"{flag}={text}"]


def via_cli(values: dict[str, Any], cli: Any, spaced: bool) -> tuple[str, Any]:
    # the cartpole preset is Config()'s values; without a preset an --env-id would start from the
    # base of the task's kind (tests/test_bases.py), which the API's Config() does not
    argv = ["train", "--preset", "cartpole"]
    for name, value in values.items():
        args = cli_args(name, value, spaced)
        if args is None:
            return "skip", None
        argv += args
    return cli(argv)


# --- the properties ----------------------------------------------------------------------------
def check_agreement(values: dict[str, Any], cli: Any, spaced: bool) -> None:
    outcomes = {"api": via_api(values)}
    with tempfile.TemporaryDirectory(prefix="ppox-fuzz-") as folder:
        outcomes["json"] = via_json(values, cli, Path(folder))
    outcomes["cli"] = via_cli(values, cli, spaced)
    outcomes = {k: v for k, v in outcomes.items() if v[0] != "skip"}
    kinds = {k: v[0] for k, v in outcomes.items()}
    assert len(set(kinds.values())) == 1, (values, outcomes)
    if kinds["api"] == "ok":
        configs = [v[1] for v in outcomes.values()]
        assert all(c == configs[0] for c in configs), (values, outcomes)
        assert_finite(configs[0])
    else:
        for where, (_, line) in outcomes.items():
            flags = [f"--{n.replace('_', '-')}" for n in values]
            assert any(n in line for n in [*values, *flags]), (where, values, line)


def assert_finite(cfg: Config) -> None:
    for name, value in flat_values(cfg).items():
        if isinstance(value, float) and name != "grad_norm_type":
            assert math.isfinite(value), (name, value)
    assert cfg.validate() == cfg


@FAST
@given(values=draws(max_fields=1), spaced=st.booleans())
def test_one_field_agrees_across_cli_json_and_api(
    values: dict[str, Any], spaced: bool, cli: Any
) -> None:
    check_agreement(values, cli, spaced)


@FAST
@given(values=draws(max_fields=4), spaced=st.booleans())
def test_several_fields_agree_across_cli_json_and_api(
    values: dict[str, Any], spaced: bool, cli: Any
) -> None:
    check_agreement(values, cli, spaced)


@pytest.mark.slow
@THOROUGH
@given(values=draws(max_fields=4), spaced=st.booleans())
def test_many_draws_agree_across_cli_json_and_api(
    values: dict[str, Any], spaced: bool, cli: Any
) -> None:
    check_agreement(values, cli, spaced)


# --- the options that are not config fields ------------------------------------------------------
OPTIONS: dict[str, tuple[list[str], str, Any]] = {
    # option: (command prefix, namespace attribute, what a parsed value must satisfy)
    "--episodes": (["eval", "run"], "episodes", lambda v: 1 <= v <= 10_000),
    "--max-steps": (["eval", "run"], "max_steps", lambda v: 1 <= v <= 10**9),
    "--jobs": (["ablate", "--out", "x"], "jobs", lambda v: 1 <= v <= 1024),
    "--seeds": (["ablate", "--out", "x"], "seeds", lambda v: all(0 <= s < 2**32 for s in v)),
    "--rollout-episodes": (["report", "x"], "rollout_episodes", lambda v: 0 <= v <= 10_000),
    "--metric-window": (["report", "x"], "metric_window", lambda v: v >= 2),
    "--cvar-alpha": (["report", "x"], "cvar_alpha", lambda v: 0 < v <= 1),
    "--smooth-width": (["report", "x"], "smooth_width", lambda v: v % 2 == 1),
    "--bootstrap-reps": (["report", "x"], "bootstrap_reps", lambda v: 1 <= v <= 10**6),
    "--metric-curve": (["report", "x"], "metric_curve", lambda v: v in ("auto", "eval", "train")),
    "--dist-backend": (["train"], "dist_backend", lambda v: isinstance(v, str)),
}
OPTION_TEXT = st.one_of(
    st.integers(-5, 20_000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
    st.sampled_from(["1", "0", "-1", "2", "3", "0.5", "1e400", "nan", "auto", "gloo", "eval", "x"]),
)


@FAST
@given(option=st.sampled_from(sorted(OPTIONS)), text=OPTION_TEXT)
def test_command_line_options_are_parsed_in_range_or_refused_in_one_line(
    option: str, text: str
) -> None:
    prefix, attr, ok = OPTIONS[option]
    try:
        args = ppox.cli.build_parser().parse_args([*prefix, f"{option}={text}"])
    except ppox.cli.UsageError as exc:
        assert option in str(exc) and "\n" not in str(exc), str(exc)
        return
    assert ok(getattr(args, attr)), (option, text, getattr(args, attr))


# --- the end-to-end fuzzing script's own judgement ---------------------------------------------
def fuzz_script() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_inputs.py"
    spec = importlib.util.spec_from_file_location("fuzz_inputs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_fuzz_script_classifies_outcomes(tmp_path: Path) -> None:
    fz = fuzz_script()
    case = fz.Case("flag", ["train"], ["num_envs", "--num-envs"], {"num_envs": 4})
    before: set[Path] = set()
    one = "ppox: error: argument --num-envs: num_envs=0 is not allowed\n"
    assert fz.classify(case, 2, "", one, tmp_path, before)[0] == "clear error"
    assert (
        fz.classify(case, 2, "", "ppox: error: something else\n", tmp_path, before)[0]
        == "unclear error"
    )
    assert (
        fz.classify(
            case, 1, "", "Traceback (most recent call last):\n  x\nValueError\n", tmp_path, before
        )[0]
        == "traceback"
    )
    assert (
        fz.classify(case, 2, "", "usage: ppox\nppox: error: --num-envs\n", tmp_path, before)[0]
        == "usage block"
    )
    (tmp_path / "run").mkdir()
    assert fz.classify(case, 2, "", one, tmp_path, before)[0] == "error after writing"
    (tmp_path / "run" / "config.json").write_text(
        json.dumps(Config().replace(num_envs=8).to_dict())
    )
    assert fz.classify(case, 0, "", "", tmp_path, set())[0:2] == (
        "changed silently",
        "num_envs: asked 4, config.json holds 8",
    )
    (tmp_path / "run" / "metrics.csv").write_text("iteration,value_loss\n1,nan\n")
    case.expect = {"num_envs": 8}
    assert fz.classify(case, 0, "", "", tmp_path, set())[0] == "non-finite"
    case.unreadable = ["seed"]
    assert fz.classify(case, 0, "", "", tmp_path, set())[0] == "changed silently"


def test_the_fuzz_script_reads_values_independently_of_ppox() -> None:
    fz = fuzz_script()
    kinds = fz.field_kinds()
    assert fz.read_as(kinds["num_envs"], "8") == (True, 8)
    assert fz.read_as(kinds["num_envs"], "1e3")[0] is False
    assert fz.read_as(kinds["learning_rate"], "inf")[0] is False
    assert fz.read_as(kinds["grad_norm_type"], "inf") == (True, math.inf)
    assert fz.read_as(kinds["max_grad_norm"], "none") == (True, None)
    assert fz.read_as(kinds["hidden_sizes"], "64,32") == (True, [64, 32])
    assert fz.read_as(kinds["hidden_sizes"], "53") == (True, [53])
    assert fz.read_as(kinds["hidden_sizes"], "[8, 8]") == (True, [8, 8])
    assert fz.read_as(kinds["hidden_sizes"], "1e30") == (False, None)
    assert fz.read_as(kinds["normalize_obs"], "no")[0] is False
    cases = fz.draw_cases(60, 3, "trained-s1")
    assert len(cases) == 60 and {c.kind for c in cases} >= {"flag", "config", "env"}
    assert fz.draw_cases(60, 3, "trained-s1")[5].argv == cases[5].argv  # the seed fixes the draw
