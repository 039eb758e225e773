"""Fuzzing ``ppox`` end to end: drawn inputs, each a real ``python -m ppox …`` subprocess.

Draws ``--n`` inputs (``--seed``), good and bad: config flags of ``ppox train`` with values from
every field's range, its edges and beyond (wrong types, NaN/inf, negative, huge, unknown
words, ``none``), ``--config`` JSON files with such values (and broken JSON), command-line
misuse (typos, missing values, repeated flags), environments and ``env_kwargs`` that do not fit,
environments without a time limit, and the options of ``ppox eval``, ``plot``, ``report`` and
``ablate`` on a small run trained first. Each input runs as its own process in its own
directory with a tiny budget and a ``--timeout``, and its outcome is classified:

- ``finished``: exit 0, every parameter in the checkpoint and every number in metrics.csv and
  summary.json finite, and config.json holding what was asked;
- ``clear error``: exit 2 and exactly one line ``ppox: error: …`` on stderr that names one of
  the input's fields or flags, with nothing written in the case's directory;
- the failures: ``traceback``, ``hang`` (killed at the timeout), ``non-finite`` (finished with
  a NaN/inf parameter or number), ``changed silently`` (finished, but config.json differs from
  what was asked, or a value that does not read as its type was taken), ``usage block``
  (argparse's usage text), ``unclear error`` (one line that names none of the input's
  fields), ``error after writing`` (a clear error, but files were written first), ``other``
  (any other exit).

What counts as "what was asked" is read here independently of ppox's parser (plain ``int``,
``float``, ``json.loads``), so the check is not ppox checking itself.

    PYTHONPATH=src .venv/bin/python benchmarks/fuzz_inputs.py --n 400 --jobs 2 --seed 1

Writes ``--out`` (JSON: every case, its command and outcome) and the Markdown summary beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import typing
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parent.parent
OUTCOMES = ("finished", "clear error", "traceback", "hang", "non-finite", "changed silently",
            "usage block", "unclear error", "error after writing", "other")  # fmt: skip
BASE = {"total_steps": "256", "num_envs": "2", "eval_every": "0", "eval_episodes": "2",
        "eval_max_steps": "2000", "tensorboard": False, "progress": False}  # fmt: skip
"""The tiny run every ``train`` case starts from (a drawn field replaces its entry here)."""
CHEAP = {"total_steps": 4096, "num_envs": 16, "num_steps": 512, "num_epochs": 30, "eval_episodes": 5,
         "eval_max_steps": 5000, "hidden_sizes": 128, "cnn_features": 64, "threads": 2,
         "max_episode_steps": 1000, "n_step": 64, "num_minibatches": 64, "eval_every": 4096,
         "checkpoint_every": 1000, "nan_patience": 100, "nan_max_rollbacks": 100}  # fmt: skip
"""Upper ends of the valid values drawn for fields whose large values only cost time."""
BAD_TEXT = ["nan", "inf", "-inf", "1e30", "-1e30", "1e400", "-1", "0", "abc", "", "none",
            "True", "1.5", "4294967296", "100000000000", "9" * 5000, "٣", " 8", "0x10", "1/2",
            "-0", "1e-320", "NaN", "Infinity", "[64]", '{"a": 1}']  # fmt: skip
BAD_VALUES: list[Any] = [None, True, False, "8", "no", "yes", "", [], [64, "64"], {}, {"a": None},
                         math.nan, math.inf, -math.inf, 1e30, -1e30, -1, 0, 2**40, 1.5, -0.5,
                         "unknown", "NaN", [1.5], 10**30]  # fmt: skip
ENVS = ["CartPole-v1", "Pendulum-v1", "MountainCarContinuous-v0", "Acrobot-v1", "CliffWalking-v1",
        "FrozenLake-v1", "Taxi-v3", "Blackjack-v1", "LunarLander-v3", "ppox/Moving-v0",
        "CartPol-v1", "", "gymnasium.envs:Nope-v0", "no_module:X-v0", "ALE/Pong-v5"]  # fmt: skip
ENV_KWARGS = ['{"max_episode_steps": -5}', '{"max_episode_steps": 3}', '{"bogus": 1}',
              '{"render_mode": "ansi"}', '{"render_mode": "human"}', '{"continuous": true}',
              '{"gravity": 5.0}', '{"g": 1e30}', '{"is_slippery": "no"}', '{"sutton_barto_reward": 1}',
              "[1, 2]", '{"a": NaN}', "{", '{"a": 1, "a": 2}', '{"max_episode_steps": 10}']  # fmt: skip


@dataclass
class Case:
    """One input: the command after ``python -m ppox`` ({dir} is the case's directory)."""

    kind: str
    argv: list[str]
    names: list[str]
    """Fields or flags the input is about: an error must name one of them."""
    expect: dict[str, Any] = field(default_factory=dict)
    """Field → the value config.json must hold if the run finishes (None: no check)."""
    unreadable: list[str] = field(default_factory=list)
    """Fields whose text does not read as the field's type: a finished run took it silently."""
    files: dict[str, str] = field(default_factory=dict)
    outcome: str = ""
    detail: str = ""
    seconds: float = 0.0


# --- reading the fields (from ppox's annotations: which fields exist and of what kind) ----------
def field_kinds() -> dict[str, tuple[str, Any, bool]]:
    """Field → (kind, span or choices, optional) from ppox.config's annotations."""
    from ppox.config import _strip, _strip_optional, field_types

    out = {}
    for name, tp in field_types().items():
        base, meta = _strip(tp)
        base, optional = _strip_optional(base)
        span = next((m for m in meta if type(m).__name__ in ("Span", "Seq")), None)
        if typing.get_origin(base) is Literal:
            out[name] = ("choice", typing.get_args(base), optional)
        elif base in (bool, int, float, str):
            out[name] = (base.__name__, span, optional)
        elif typing.get_origin(base) is tuple:
            out[name] = ("list", span, optional)
        else:
            out[name] = ("dict", None, optional)
    return out


def valid_text(rng: random.Random, name: str, kind: tuple[str, Any, bool]) -> str | bool:
    what, span, optional = kind
    if optional and rng.random() < 0.2:
        return "none"
    if what == "bool":
        return rng.random() < 0.5
    if what == "choice":
        return str(rng.choice(span))
    if what == "int":
        lo, hi = int(span.lo), int(span.hi)
        return str(
            rng.choice(
                [
                    lo,
                    min(hi, CHEAP.get(name, hi)),
                    rng.randint(lo, min(hi, CHEAP.get(name, lo + 50))),
                ]
            )
        )
    if what == "float":
        lo = span.lo + (1e-9 if span.lo_open else 0.0)
        hi = span.hi - (1e-9 if span.hi_open else 0.0)
        return repr(rng.choice([lo, hi, rng.uniform(lo, hi), math.inf if span.inf else lo]))
    if what == "list":
        return ",".join(
            str(rng.randint(1, CHEAP["hidden_sizes"])) for _ in range(rng.randint(1, 3))
        )
    if what == "dict":
        return "{}" if name == "env_kwargs" else '{"x": "mlp"}'
    return {
        "env_id": "CartPole-v1",
        "device": rng.choice(["cpu", "auto"]),
        "run_dir": "{dir}/run",
    }.get(name, "x")


def read_as(kind: tuple[str, Any, bool], text: str | bool) -> tuple[bool, Any]:
    """(readable, value): the text read as its field's type, the plain Python way."""
    what, _, optional = kind
    if isinstance(text, bool) or what == "bool":  # a bool flag takes no text (--flag=x is misuse)
        return isinstance(text, bool), text
    if optional and text.strip().lower() in ("none", "null"):
        return True, None
    if what == "list" and not text.strip().startswith("["):  # `64,64` (ppox's list syntax)
        try:
            return True, [int(x) for x in text.replace(",", " ").split()]
        except ValueError:
            return False, None
    reader = {"int": int, "float": float, "str": str, "choice": str}.get(what, json.loads)
    try:
        value: Any = reader(text)
    except (ValueError, TypeError):
        return False, None
    if what == "float" and not math.isfinite(value) and not (value == math.inf and kind[1].inf):
        return False, None  # readable, but no float field may hold it
    return True, value


# --- drawing cases --------------------------------------------------------------------------------
def train_argv(flags: dict[str, str | bool]) -> list[str]:
    out = ["train"]
    for name, text in {**BASE, **flags}.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(text, bool):
            out.append(flag if text else "--no-" + flag[2:])
        else:
            out.append(f"{flag}={text}")
    if "run_dir" not in flags:
        out.append("--run-dir={dir}/run")
    return out


def flag_case(rng: random.Random, kinds: dict[str, Any]) -> Case:
    names = rng.sample(sorted(kinds), rng.choice([1, 1, 2, 3]))
    flags: dict[str, str | bool] = {}
    expect, unreadable = {}, []
    for name in names:
        good = rng.random() < 0.55
        text = valid_text(rng, name, kinds[name]) if good else rng.choice(BAD_TEXT)
        if kinds[name][0] == "bool" and not isinstance(text, bool):
            text = rng.choice([text, True, False])
        flags[name] = text
        ok, value = read_as(kinds[name], text)
        if ok:
            expect[name] = value
        else:
            unreadable.append(name)
    return Case("flag", train_argv(flags), [*names, *(f"--{n.replace('_', '-')}" for n in names)],
                expect, unreadable)  # fmt: skip


def config_case(rng: random.Random, kinds: dict[str, Any]) -> Case:
    from ppox.config import field_sections

    names = rng.sample(sorted(kinds), rng.choice([1, 1, 2, 3]))
    data: dict[str, dict[str, Any]] = {}
    for name in names:
        if rng.random() < 0.4:
            _, value = read_as(kinds[name], valid_text(rng, name, kinds[name]))
        else:
            value = rng.choice(BAD_VALUES)
        data.setdefault(field_sections()[name], {})[name] = value
    for name, text in BASE.items():  # the tiny run, where the draw does not set the field
        if name not in names:
            data.setdefault(field_sections()[name], {})[name] = read_as(kinds[name], text)[1]
    text = json.dumps(data).replace("{dir}", "run")
    if rng.random() < 0.1:
        text = rng.choice(
            [
                "{",
                "[]",
                '{"env": 5}',
                '{"enviroment": {}}',
                text + text,
                '{"env": {"num_envs": 2, "num_envs": 4}}',
            ]
        )
    flat = {n: v for sec in data.values() if isinstance(sec, dict) for n, v in sec.items()}
    expect = {n: v for n, v in flat.items() if not (isinstance(v, float) and not math.isfinite(v))}
    argv = ["train", "--run-dir={dir}/run", "--config={dir}/config.json"]  # all else from the file
    return Case("config", argv, [*names, "--config", "config"], expect, files={"config.json": text})


def misuse_case(rng: random.Random, kinds: dict[str, Any]) -> Case:
    name = rng.choice(sorted(kinds))
    flag = "--" + name.replace("_", "-")
    short = flag[: max(4, len(flag) // 2)]
    forms = [
        [flag[:-2]],  # a typo / a prefix
        [short, "1"],
        [flag],  # no value
        [flag, "1", flag, "2"],
        [f"{flag}=no"],
        ["--lr", "3e-4"],
        ["--preset", "nope"],
        ["--preset", "pendulum", "--config", "{dir}/none.json"],
        ["--resume", "{dir}/missing"],
        ["stray"],
    ]
    extra = rng.choice(forms)
    argv = [a for a in train_argv({}) if not a.startswith(flag + "=")] + extra
    if extra[0] == "--resume":
        argv = ["train", *extra]
    tokens = [t for t in extra if not t.isdigit()]  # a bare number would match any line
    return Case("misuse", argv, [name, *tokens, "preset", "--resume"])


def env_case(rng: random.Random, kinds: dict[str, Any]) -> Case:
    flags: dict[str, str | bool] = {"env_id": rng.choice(ENVS)}
    if rng.random() < 0.6:
        flags["env_kwargs"] = rng.choice(ENV_KWARGS)
    if rng.random() < 0.3:
        flags["max_episode_steps"] = rng.choice(["5", "none", "0", "100000"])
    names = ["env_id", "env_kwargs", "max_episode_steps", str(flags["env_id"])]
    expect = {}
    for name, text in flags.items():
        ok, value = read_as(kinds[name], text)
        if ok:
            expect[name] = value
    return Case("env", train_argv(flags), names, expect)


def eval_case(rng: random.Random, trained: str) -> Case:
    argv = ["eval", trained]
    for flag, values in (("--episodes", ["1", "3", "0", "-3", "x", "nan", "20000"]),
                         ("--max-steps", ["1", "50", "0", "-1", "1e9", "abc"]),
                         ("--gif", ["{dir}/e.gif", "{dir}/e.png", "{dir}/no/such/dir/e.gif", "{dir}"])):  # fmt: skip
        if rng.random() < 0.5:
            argv.append(f"{flag}={rng.choice(values)}")
    if rng.random() < 0.3:
        argv.append("--stochastic")
    if rng.random() < 0.15:
        argv[1] = rng.choice(["{dir}/nothing", "{dir}", "/"])
    return Case(
        "eval", argv, [a.split("=")[0] for a in argv[2:]] + ["run_dir", argv[1], "checkpoint"]
    )


def report_case(rng: random.Random, trained: str) -> Case:
    if rng.random() < 0.3:
        out = rng.choice(["{dir}/c.png", "{dir}/c.xyz", "{dir}/c", "{dir}/x/y.pdf", "/proc/c.png"])
        return Case("plot", ["plot", trained, f"--out={out}"], ["--out", "metrics.csv"])
    argv = ["report", trained, "--out={dir}/rep"]
    for flag, values in (("--rollout-episodes", ["0", "2", "-1", "x"]), ("--metric-window", ["1", "2", "5", "1e3"]),
                         ("--cvar-alpha", ["0", "0.05", "1", "nan", "2"]), ("--smooth-width", ["1", "4", "5", "-1"]),
                         ("--bootstrap-reps", ["0", "10", "1e9", "100"]), ("--metric-curve", ["eval", "best"])):  # fmt: skip
        if rng.random() < 0.4:
            argv.append(f"{flag}={rng.choice(values)}")
    return Case("report", argv, [a.split("=")[0] for a in argv[2:]] + ["run", "summary"])


def ablate_case(rng: random.Random, kinds: dict[str, Any]) -> Case:
    argv = ["ablate", "--out={dir}/abl", "--seeds", rng.choice(["1", "-1", "1 1", "x"]), "--jobs",
            rng.choice(["1", "0", "2000"]), "--rollout-episodes=0", "--total-steps=256",
            "--eval-every=0", "--eval-episodes=1", "--no-tensorboard", "--num-envs=2"]  # fmt: skip
    argv = [*argv[:3], *argv[3].split(), *argv[4:]]
    variant = rng.choice(["lr: learning_rate=1e-2", "bad", "x: learning_rate=nan", "y: seed=2",
                          "z: nope=1", "n: max_grad_norm=none", "b: normalize_obs=maybe"])  # fmt: skip
    if rng.random() < 0.7:
        argv += ["--variant", variant]
    return Case("ablate", argv, ["--seeds", "--jobs", "--variant", "variant", "seeds", "jobs"])


def draw_cases(n: int, seed: int, trained: str) -> list[Case]:
    rng = random.Random(seed)
    kinds = field_kinds()
    makers = [(flag_case, 0.40), (config_case, 0.20), (misuse_case, 0.10), (env_case, 0.14)]
    cases = []
    for _ in range(n):
        r = rng.random()
        if r < 0.84:
            pick = next((m for m, w in _cumulative(makers) if r < w), flag_case)
            cases.append(pick(rng, kinds))
        elif r < 0.92:
            cases.append(eval_case(rng, trained))
        elif r < 0.97:
            cases.append(report_case(rng, trained))
        else:
            cases.append(ablate_case(rng, kinds))
    return cases


def _cumulative(makers: list[tuple[Any, float]]) -> list[tuple[Any, float]]:
    total, out = 0.0, []
    for m, w in makers:
        total += w
        out.append((m, total))
    return out


# --- running and classifying ------------------------------------------------------------------
def run_case(case: Case, folder: Path, timeout: float) -> Case:
    """Run one case in ``folder`` (inside the work folder that holds the reference run); the
    results name both folders as {dir} and {work}, never as paths of this machine."""
    folder.mkdir(parents=True)
    for name, text in case.files.items():
        (folder / name).write_text(text)
    before = set(folder.rglob("*"))
    argv = [
        a.replace("{dir}", str(folder)).replace("{work}", str(folder.parent)) for a in case.argv
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore::DeprecationWarning"}  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ppox", *argv], cwd=folder, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        case.outcome, case.detail = "hang", f"killed after {timeout:.0f} s"
        return case
    finally:
        case.seconds = time.perf_counter() - t0
    case.outcome, detail = classify(case, proc.returncode, out, err, folder, before)
    case.detail = detail.replace(str(folder), "{dir}").replace(str(folder.parent), "{work}")
    return case


def classify(
    case: Case, rc: int, out: str, err: str, folder: Path, before: set[Path]
) -> tuple[str, str]:
    last = (err.strip().splitlines() or [""])[-1][:300]
    if "Traceback" in err:
        return "traceback", last
    if "usage:" in err:
        return "usage block", last
    if rc == 2:
        return classify_error(case, err, folder, before)
    if rc != 0:
        return "other", f"exit {rc}: {last}"
    return classify_finished(case, folder)


def classify_error(case: Case, err: str, folder: Path, before: set[Path]) -> tuple[str, str]:
    lines = [ln for ln in err.splitlines() if ln.startswith("ppox: error:")]
    if len(lines) != 1:
        return "unclear error", err.strip()[-300:]
    line = lines[0]
    if not any(n and n.replace("{dir}", "") in line for n in case.names):
        return "unclear error", line[:300]
    written = sorted(str(p.relative_to(folder)) for p in set(folder.rglob("*")) - before)
    if written:
        return "error after writing", f"{line[:200]} (wrote {', '.join(written[:5])})"
    return "clear error", line[:300]


def classify_finished(case: Case, folder: Path) -> tuple[str, str]:
    if case.unreadable:
        return "changed silently", f"took unreadable value(s) for {case.unreadable}"
    runs = [p.parent for p in folder.rglob("config.json") if p.parent != folder]
    bad = [problem for run in runs for problem in nonfinite(run)]
    if bad:
        return "non-finite", "; ".join(bad[:3])
    if case.kind in ("flag", "config", "env") and runs:
        diff = config_diff(runs[0], case.expect)
        if diff:
            return "changed silently", diff
    return "finished", ""


def config_diff(run: Path, expect: dict[str, Any]) -> str:
    saved = json.loads((run / "config.json").read_text())
    flat = {
        k: v for section in saved.values() if isinstance(section, dict) for k, v in section.items()
    }
    for name, want in expect.items():
        if name == "run_dir" or name not in flat:
            continue
        have = flat[name]
        if name == "env_backend" and want == "auto" and have in ("gymnasium", "envpool"):
            continue  # documented: a run records the backend `auto` resolved to
        if isinstance(want, tuple):
            want = list(want)
        if have != want and not (isinstance(have, (int, float)) and isinstance(want, (int, float))
                                 and not isinstance(want, bool) and float(have) == float(want)):  # fmt: skip
            return f"{name}: asked {want!r}, config.json holds {have!r}"
    return ""


def nonfinite(run: Path) -> list[str]:
    """Non-finite numbers in a finished run: checkpoint tensors, metrics.csv, summary.json."""
    bad = []
    ckpt = run / "checkpoint.pt"
    if ckpt.is_file():
        import torch

        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as exc:  # a format this script cannot read: say so, do not guess
            return [f"checkpoint unreadable here ({type(exc).__name__})"]
        bad += [
            f"checkpoint {k}"
            for k, t in _tensors(state.get("model", {}))
            if not torch.isfinite(t).all()
        ]
    if (run / "metrics.csv").is_file():
        with open(run / "metrics.csv") as f:
            for row in csv.DictReader(f):
                bad += [f"metrics {k}={v} (iteration {row.get('iteration')})" for k, v in row.items()
                        if v and v.lower() in ("nan", "inf", "-inf")]  # fmt: skip
    if (run / "summary.json").is_file():
        text = (run / "summary.json").read_text()
        bad += [f"summary.json holds {w}" for w in ("NaN", "Infinity") if w in text]
    return bad


def _tensors(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    import torch

    if isinstance(tree, torch.Tensor):
        return [(prefix, tree)] if tree.is_floating_point() else []
    if isinstance(tree, dict):
        return [
            x for k, v in tree.items() for x in _tensors(v, f"{prefix}.{k}" if prefix else str(k))
        ]
    return []


def train_reference(folder: Path) -> str:
    """A small finished CartPole run for the eval / plot / report cases ({work}/trained-s1)."""
    run = folder / "trained-s1"
    cmd = [sys.executable, "-m", "ppox", *train_argv({})[:-1], f"--run-dir={run}"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=600)
    return "{work}/trained-s1"


# --- results ------------------------------------------------------------------------------------
def summarize(cases: list[Case], command: str, wall_s: float) -> tuple[dict[str, Any], str]:
    counts = Counter(c.outcome for c in cases)
    by_kind: dict[str, Counter[str]] = {}
    for c in cases:
        by_kind.setdefault(c.kind, Counter())[c.outcome] += 1
    result = {"command": command, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "python": platform.python_version(), "wall_s": wall_s, "counts": dict(counts),
              "by_kind": {k: dict(v) for k, v in by_kind.items()}, "cases": [asdict(c) for c in cases]}  # fmt: skip
    return result, markdown(result, cases)


def markdown(result: dict[str, Any], cases: list[Case]) -> str:
    kinds = sorted(result["by_kind"])
    lines = ["# Fuzzing ppox's inputs end to end", "", f"`{result['command']}`", "",
             f"{result['date']} · {result['machine']} · Python {result['python']} · "
             f"{len(cases)} inputs in {result['wall_s'] / 60:.0f} min", "",
             "| outcome | all | " + " | ".join(kinds) + " |", "|---|---:|" + "---:|" * len(kinds)]  # fmt: skip
    for o in OUTCOMES:
        row = [str(result["by_kind"][k].get(o, 0)) for k in kinds]
        lines.append(f"| {o} | {result['counts'].get(o, 0)} | " + " | ".join(row) + " |")
    failures = [c for c in cases if c.outcome not in ("finished", "clear error")]
    lines += ["", f"## Inputs not ending in `finished` or `clear error` ({len(failures)})", ""]
    for c in failures[:100]:
        lines.append(
            f"- **{c.outcome}** (`{c.kind}`): `ppox {shlex.join(c.argv)[:300]}` — {c.detail[:300]}"
        )
        if c.files:
            lines.append(f"  - config.json: `{next(iter(c.files.values()))[:200]}`")
    lines += ["", "## A sample of clear errors", ""]
    for c in [c for c in cases if c.outcome == "clear error"][:25]:
        lines.append(f"- `ppox {shlex.join(c.argv)[:160]}` → `{c.detail[:200]}`")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=400, help="inputs to draw and run")
    p.add_argument("--seed", type=int, default=1, help="seed of the draws")
    p.add_argument("--jobs", type=int, default=2, help="processes at a time")
    p.add_argument(
        "--timeout", type=float, default=180.0, help="seconds before a case counts as a hang"
    )
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fuzz_inputs.json")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ppox-fuzz-inputs-"))
    t0 = time.time()
    try:
        cases = draw_cases(args.n, args.seed, train_reference(work))
        with ThreadPoolExecutor(args.jobs) as pool:
            done = list(
                pool.map(
                    lambda ic: run_case(ic[1], work / f"case-{ic[0]:04d}", args.timeout),
                    enumerate(cases),
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "PYTHONPATH=src python benchmarks/fuzz_inputs.py " + shlex.join(sys.argv[1:])
    result, md = summarize(done, command, time.time() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
