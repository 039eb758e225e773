"""Checks that a Chinese page (``docs/<page>.zh.md``) is a faithful translation of its English page.

A translated page keeps the English page's skeleton: the same headings (one translated heading for
each English heading, same levels, same order — the site's build gives each translated heading the
English heading's anchor, so ``page.md#anchor`` links work in both languages), the same fenced code
blocks byte for byte (the tests run them), and the same link targets. Prose, headings, link texts
and table text are translated.

    python tools/docs_i18n.py docs/guide.zh.md [more.zh.md ...]   # one line per problem; exit 1 if any
    python tools/docs_i18n.py --all                               # every docs/**/*.zh.md
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
_ATTR = re.compile(r"\s*\{\s*#[^}]*\}\s*$")
_GENERATED = re.compile(r"^<!-- ppox:generated (\S+) -->$")


def chunks(markdown: str) -> list[tuple[bool, str]]:
    """The page cut into ``(is_code, text)`` runs of whole lines (fenced blocks are code)."""
    runs: list[tuple[bool, list[str]]] = []
    fence = None
    for line in markdown.split("\n"):
        opened = _FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(2)
            code = True
        elif fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            code = True
        else:
            code = False
        if runs and runs[-1][0] == code:
            runs[-1][1].append(line)
        else:
            runs.append((code, [line]))
    return [(code, "\n".join(lines)) for code, lines in runs]


def outside_code(markdown: str, change: Callable[[str], str]) -> str:
    """Apply ``change(line)`` to the lines outside fenced code blocks."""
    return "\n".join(
        text if code else "\n".join(change(line) for line in text.split("\n"))
        for code, text in chunks(markdown)
    )


def expand_generated(markdown: str, docs_dir: Path) -> str:
    """Replace each ``<!-- ppox:generated PAGE -->`` line by the body of the generated English
    page ``PAGE`` (from its first ``##`` section or table on): a translated reference page holds
    no copy of the generated text, so it cannot go stale."""

    def include(line: str) -> str:
        generated = _GENERATED.match(line.strip())
        if not generated:
            return line
        lines = (docs_dir / generated.group(1)).read_text(encoding="utf-8").split("\n")
        body = [i for i, text in enumerate(lines) if text.startswith(("## ", "| "))]
        if not body:
            raise ValueError(f"{generated.group(1)}: no section or table to include")
        return "\n".join(lines[body[0] :])

    return outside_code(markdown, include)


def split(text: str) -> tuple[list[tuple[int, str]], list[str], list[str]]:
    """``(headings, code_blocks, prose_lines)``: headings as ``(level, text)``, fenced blocks with
    their fences, and every line outside a fence."""
    headings: list[tuple[int, str]] = []
    blocks: list[str] = []
    prose: list[str] = []
    for code, chunk in chunks(text):
        if code:
            blocks.extend(_blocks(chunk))
            continue
        for line in chunk.split("\n"):
            prose.append(line)
            heading = _HEADING.match(line)
            if heading:
                headings.append((len(heading.group(1)), _ATTR.sub("", heading.group(2))))
    return headings, blocks, prose


def _blocks(chunk: str) -> list[str]:
    """Consecutive fenced blocks of one code run, one string each."""
    out: list[list[str]] = []
    fence = None
    for line in chunk.split("\n"):
        if fence is None:
            opened = _FENCE.match(line)
            fence = opened.group(2) if opened else None
            out.append([line])
        else:
            out[-1].append(line)
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
    return ["\n".join(block) for block in out]


def links(prose: list[str]) -> Counter[str]:
    return Counter(target for line in prose for target in _LINK.findall(line))


def problems(english: str, chinese: str) -> list[str]:
    """What keeps ``chinese`` from being a faithful translation of ``english`` (empty: none)."""
    found: list[str] = []
    en_heads, en_blocks, en_prose = split(english)
    zh_heads, zh_blocks, zh_prose = split(chinese)
    directives = [line for line in en_prose if line.startswith(":::")]
    if directives != [line for line in zh_prose if line.startswith(":::")]:
        found.append(f"API directives differ: the English page has {directives}")
    en_levels = [level for level, _ in en_heads]
    zh_levels = [level for level, _ in zh_heads]
    if en_levels != zh_levels:
        found.append(
            f"headings differ: English has {len(en_heads)} (levels {en_levels}), "
            f"the translation {len(zh_heads)} (levels {zh_levels}); keep one translated heading "
            "per English heading, same level, same order"
        )
    if len(en_blocks) != len(zh_blocks):
        found.append(f"code blocks: English has {len(en_blocks)}, the translation {len(zh_blocks)}")
    else:
        for i, (a, b) in enumerate(zip(en_blocks, zh_blocks, strict=True), start=1):
            if a.strip() != b.strip():
                found.append(
                    f"code block {i} differs from the English one (keep code blocks unchanged)"
                )
    missing = links(en_prose) - links(zh_prose)
    extra = links(zh_prose) - links(en_prose)
    if missing:
        found.append(f"link targets missing: {sorted(missing)}")
    if extra:
        found.append(f"link targets not in the English page: {sorted(extra)}")
    if not re.search(r"[\u4e00-\u9fff]", "\n".join(zh_prose)):
        found.append("no Chinese text outside code blocks")
    return found


def english_of(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".zh.md") + ".md")


def main(argv: list[str]) -> int:
    pages = sorted(DOCS.rglob("*.zh.md")) if argv == ["--all"] else [Path(p) for p in argv]
    if not pages:
        print("usage: python tools/docs_i18n.py PAGE.zh.md [...] | --all", file=sys.stderr)
        return 2
    failed = False
    for page in pages:
        if not page.name.endswith(".zh.md"):
            print(f"{page}: not a .zh.md page")
            failed = True
            continue
        source = english_of(page)
        if not source.exists():
            print(f"{page}: no English page {source.name} beside it")
            failed = True
            continue
        chinese = expand_generated(page.read_text(encoding="utf-8"), page.parent)
        for problem in problems(source.read_text(encoding="utf-8"), chinese):
            print(f"{page}: {problem}")
            failed = True
    if not failed:
        print(f"{len(pages)} page(s) ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
