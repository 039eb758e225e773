"""Prompts and rewards of a language-model run.

Prompts come from a local file: JSON lines, CSV (Python's ``csv``) or Parquet (``pyarrow``, which
``datasets`` installs). Every row needs the prompt column as text; the other columns are handed
to the reward function. A problem is an error naming the file and the row.

A reward is a function ``module:function`` or a sequence-classification model. A function named
in a file is imported only with the user's consent (the rule of :mod:`ppox.io.trust`), except
ppox's own (``ppox.…``).
"""

from __future__ import annotations

import csv
import importlib
import json
import math
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ppox.errors import ConfigError, NumericalError, PpoxError

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def read_prompts(path: str | Path, field: str) -> list[dict[str, Any]]:
    """The rows of a prompt file (each a dict with ``field`` a non-empty string)."""
    p = Path(path)
    if p.suffix not in SUFFIXES:
        raise ConfigError(f"prompts={str(p)!r}: the file must end in {', '.join(SUFFIXES)}")
    if not p.is_file():
        raise ConfigError(f"prompts={str(p)!r}: no such file")
    try:
        rows = _read(p)
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise ConfigError(
            f"prompts={str(p)!r}: cannot be read ({' '.join(str(exc).split())})"
        ) from None
    if not rows:
        raise ConfigError(f"prompts={str(p)!r}: holds no rows")
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise ConfigError(f"prompts={str(p)!r}: row {i} is not an object of columns")
        text = row.get(field)
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(
                f"prompts={str(p)!r}: row {i} has no text in column {field!r} (prompt_field)"
            )
    return rows


def _read(p: Path) -> list[Any]:
    if p.suffix in (".jsonl", ".json"):
        text = p.read_text(encoding="utf-8")
        if p.suffix == ".json":
            data = json.loads(text)
            if not isinstance(data, list):
                raise ValueError("a .json prompt file is a list of objects")
            return data
        rows = []
        for i, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise ValueError(f"line {i}: {exc}") from None
        return rows
    if p.suffix == ".csv":
        with p.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    import pyarrow.parquet as pq

    return pq.read_table(p).to_pylist()


class PromptSampler:
    """Prompts in a shuffled order, epoch after epoch, drawn with the run's own generator; its
    state (order and position) is saved in checkpoints."""

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.g = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(n, generator=self.g)
        self.pos = 0

    def take(self, k: int) -> list[int]:
        out: list[int] = []
        while len(out) < k:
            if self.pos == self.n:
                self.order = torch.randperm(self.n, generator=self.g)
                self.pos = 0
            step = min(k - len(out), self.n - self.pos)
            out += self.order[self.pos : self.pos + step].tolist()
            self.pos += step
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order.clone(), "pos": self.pos, "rng": self.g.get_state()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        if s["order"].numel() != self.n:
            raise ConfigError(
                f"the prompt file has {self.n} rows but the checkpoint's run had {s['order'].numel()}"
            )
        self.order, self.pos = s["order"].clone(), int(s["pos"])
        self.g.set_state(s["rng"])


# --- rewards ---------------------------------------------------------------------------------
def trusted_module(name: str) -> bool:
    """ppox's own modules are imported without asking."""
    return name == "ppox" or name.startswith("ppox.")


def import_reward_fn(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ConfigError(f"reward_fn={spec!r}: cannot import {module!r} ({exc})") from None
    except AttributeError:
        raise ConfigError(f"reward_fn={spec!r}: module {module!r} has no {name!r}") from None
    if not callable(fn):
        raise ConfigError(f"reward_fn={spec!r} is not callable")
    return fn


class Scorer:
    """Scores completions: ``score(prompts, completions, columns) -> [B]`` float32 tensor, checked
    to hold one finite number per completion."""

    def __init__(self, reward_fn: str | None, reward_model: str | None, device: torch.device):
        self.fn = import_reward_fn(reward_fn) if reward_fn else None
        self.name = reward_fn or f"reward_model={reward_model}"
        self.model: Any = None
        if reward_model is not None:
            from ppox.llm.models import _load

            self.model = _load(
                "AutoModelForSequenceClassification", "reward_model", reward_model,
                use_safetensors=True,
            ).eval().to(device)  # fmt: skip
            self.tok = _load("AutoTokenizer", "reward_model", reward_model)
            if self.tok.pad_token_id is None:
                self.tok.pad_token = self.tok.eos_token
            # right padding: the positions of the real tokens do not move, and the classifier reads
            # the last one (left padding shifted the positions and changed the scores; a test)
            self.tok.padding_side = "right"
            self.device = device

    def __call__(
        self, prompts: list[str], completions: list[str], columns: dict[str, list[Any]]
    ) -> torch.Tensor:
        if self.fn is not None:
            try:
                out = self.fn(prompts=prompts, completions=completions, **columns)
            except Exception as exc:  # the user's code: say where, in one line
                tb = traceback.extract_tb(exc.__traceback__)[-1]
                raise PpoxError(
                    f"reward_fn={self.name} raised {type(exc).__name__}: {exc} "
                    f"(at {tb.filename}:{tb.lineno})"
                ) from None
            try:
                values = [float(x) for x in out]
            except (TypeError, ValueError):
                raise NumericalError(
                    f"{self.name} must return numbers (got {type(out).__name__})"
                ) from None
        else:
            values = self._model_scores(prompts, completions)
        if len(values) != len(completions):
            raise NumericalError(
                f"{self.name} returned {len(values)} scores for {len(completions)} completions"
            )
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            raise NumericalError(
                f"{self.name} returned a non-finite score ({values[bad[0]]}) for completion "
                f"{bad[0]}: {completions[bad[0]]!r}"
            )
        return torch.tensor(values, dtype=torch.float32)

    @torch.no_grad()
    def _model_scores(self, prompts: list[str], completions: list[str]) -> list[float]:
        enc = self.tok(
            [p + c for p, c in zip(prompts, completions)], return_tensors="pt", padding=True
        ).to(self.device)
        return self.model(**enc).logits[:, 0].float().tolist()  # type: ignore[no-any-return]
