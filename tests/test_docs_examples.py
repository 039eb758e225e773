"""The examples in docs/ run (docs/*.md, docs/**/*.md; the Chinese pages hold the same blocks,
which tools/docs_i18n.py checks byte for byte).

- Every ```python block runs, the blocks of a page in order in one namespace, in a fresh
  directory, after the page's setup below (the runs and objects its text assumes exist). A block
  that is a fragment of a larger program (a line of an env's ``step``, an ONNX session of a hybrid
  policy) is listed in FRAGMENTS with the reason: it is compiled and its imports are executed, so
  a renamed or removed name still fails.
- Every ``ppox`` command in a ```bash block (also after ``torchrun ... -m``) is parsed by ppox's
  own parser, and a ``ppox train`` / ``ppox ablate`` that starts a run resolves its config
  (preset, base, every flag's value), so a page never shows a flag, preset or value that ppox
  would refuse. Nothing is trained by these commands.
"""

from __future__ import annotations

import ast
import hashlib
import re
import shlex
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.S | re.M)

# page → Python run before its blocks (in the example's working directory).
SETUP: dict[str, str] = {
    "export.md": """
        import gymnasium as gym, ppox
        ppox.train(ppox.get_preset("pendulum").config().replace(total_steps=512, eval_every=0),
                   run_dir="runs/pendulum")
        env = gym.make("Pendulum-v1")
    """,
    "memory.md": """
        import ppox
        ppox.train(ppox.get_preset("cartpole-novel").config().replace(total_steps=256, eval_every=0),
                   run_dir="runs/cartpole-novel")
    """,
    "observations.md": """
        import numpy as np
        from gymnasium import spaces
    """,
}

# (page, sha256 of the block's text, first 12 hex digits) → why it is compiled, not run.
FRAGMENTS: dict[tuple[str, str], str] = {
    ("envs.md", "2ec64bc51744"): "a line of an env's step(): K and param_mask are the env's",
    ("export.md", "1d8181bf3d2b"): "feeds an action mask: needs the ONNX file of a masked policy",
    ("export.md", "77403c88c976"): "needs the ONNX file of a hybrid policy and its env",
    ("export.md", "8646dad5667a"): "needs the ONNX file of a recurrent policy",
    ("export.md", "aafd175360e5"): "needs runs/moving and the ONNX file exported from it",
    ("llm.md", "1c1ffcfee9c3"): "needs a language model and a prompts file of the user's",
    ("observations.md", "908df8d67545"): "trains on MySetEnv-v0, a user's own environment",
}


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if not p.name.endswith(".zh.md"))


def _blocks(page: Path, language: str) -> list[str]:
    return [
        body for lang, body in _BLOCK.findall(page.read_text(encoding="utf-8")) if lang == language
    ]


def _digest(block: str) -> str:
    return hashlib.sha256(block.strip().encode()).hexdigest()[:12]


def _python_pages() -> list[str]:
    return [p.relative_to(DOCS).as_posix() for p in _pages() if _blocks(p, "python")]


def _run_imports(code: str, namespace: dict[str, Any]) -> None:
    tree = ast.parse(code)
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    exec(compile(ast.Module(body=imports, type_ignores=[]), "<imports>", "exec"), namespace)


@pytest.mark.parametrize("page", _python_pages())
def test_python_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "__docs_example__"}
    if page in SETUP:
        exec(textwrap.dedent(SETUP[page]), namespace)
    for i, block in enumerate(_blocks(DOCS / page, "python"), start=1):
        where = f"docs/{page}, python block {i} ({_digest(block)})"
        code = compile(block, where, "exec")
        if (page, _digest(block)) in FRAGMENTS:
            _run_imports(block, namespace)
            continue
        try:
            exec(code, namespace)
        except Exception as exc:  # the page shows code that no longer runs
            pytest.fail(f"{where} fails: {type(exc).__name__}: {exc}\n{block}")


def test_every_listed_fragment_is_still_on_its_page() -> None:
    present = {
        (p.relative_to(DOCS).as_posix(), _digest(b)) for p in _pages() for b in _blocks(p, "python")
    }
    stale = sorted(set(FRAGMENTS) - present)
    assert not stale, f"FRAGMENTS lists blocks no page has any more (update the digests): {stale}"


def _commands(block: str) -> list[list[str]]:
    """The ppox command lines of a shell block, as argument lists (after ``ppox``)."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if not words or "…" in line or "..." in words:
            continue
        if words[0].endswith("ppox"):
            out.append(words[1:])
        elif "-m" in words and words[words.index("-m") + 1 : words.index("-m") + 2] == ["ppox"]:
            out.append(words[words.index("-m") + 2 :])
    return out


def _shell_commands() -> list[tuple[str, list[str]]]:
    return [
        (f"{p.relative_to(DOCS).as_posix()}: ppox {shlex.join(argv)}", argv)
        for p in _pages()
        for block in _blocks(p, "bash")
        for argv in _commands(block)
    ]


def test_the_pages_show_ppox_commands() -> None:
    assert len(_shell_commands()) >= 30  # the scan finds them (a parser change cannot empty it)


@pytest.mark.parametrize(
    ("where", "argv"), _shell_commands(), ids=[w for w, _ in _shell_commands()]
)
def test_shell_commands_parse(
    where: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from ppox.cli import build_parser, start_config
    from ppox.errors import PpoxError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(
            f"{where}: ppox refuses it: {capsys.readouterr().err.strip()} (exit {exc.code})"
        )
    starts_a_run = args.command in ("train", "ablate") and not getattr(args, "resume", None)
    if starts_a_run and not getattr(args, "config", None):
        try:
            start_config(args)
        except PpoxError as exc:
            pytest.fail(f"{where}: {exc}")
