"""The repository stands on its own: nothing in it cites a document a reader cannot follow.

ppox's design is explained in its own pages (docs/design/, docs/*.md) and cites papers by title
and the PPO × Family course by its public name and lecture. References to private working notes
(a requirements list cited as "SPEC §…", course notes cited by file number as "seed 001",
"shared research", "research notes §…", an "ARCHITECTURE" file) and paths of a particular machine
have no place in code, help text, docs, tests, benchmarks or examples. A relative Markdown link
must lead to a file of the repository, and its ``#anchor`` to a heading there.

Every offending file and line is listed in the failure message, so one run shows all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = [
    "src",
    "docs",
    "tests",
    "benchmarks",
    "examples",
    "README.md",
    "Makefile",
    "pyproject.toml",
]
TEXT_SUFFIXES = {
    ".py",
    ".md",
    ".txt",
    ".toml",
    ".cfg",
    ".ini",
    ".yaml",
    ".yml",
    ".json",
    ".sh",
    ".rst",
}
SKIP_DIRS = {"__pycache__", ".venv", ".git", "runs", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
MAX_BYTES = 2_000_000
THIS_FILE = Path(__file__).resolve()  # defines the patterns below, so it would match itself

FORBIDDEN: list[tuple[str, re.Pattern[str]]] = [
    ("a requirements list cited as SPEC", re.compile(r"\bSPEC\b")),
    ("course notes cited by file number", re.compile(r"\bseeds? 0\d\d\b|\[0\d\d\b", re.I)),
    ("the course notes' Q&A cited as a seed", re.compile(r"\bseed Q&A\b", re.I)),
    ("private research notes", re.compile(r"shared research|research notes|\bresearch §", re.I)),
    ("private performance notes", re.compile(r"\bperformance §", re.I)),
    ("a private ARCHITECTURE or STYLE file", re.compile(r"\bARCHITECTURE\b|\bSTYLE\.md\b")),
    # "/w[o]rk/": the pattern matches the path without this file spelling it out
    ("a path of the development machine", re.compile(r"/w[o]rk/|(?<![\w-])shared/")),
]
"""(what it is, pattern). Cite the course by name ("the PPO × Family course's Q&A, Q14") and
papers by title instead; for performance numbers point to docs/performance.md or benchmarks/."""


def scanned_files(root: Path = ROOT) -> Iterator[Path]:
    for name in SCANNED:
        top = root / name
        if top.is_file():
            yield top
            continue
        for path in sorted(top.rglob("*")):
            if SKIP_DIRS.intersection(path.relative_to(root).parts) or not path.is_file():
                continue
            if path.suffix in TEXT_SUFFIXES and path.stat().st_size <= MAX_BYTES:
                yield path


def citations(text: str) -> Iterator[tuple[int, str, str]]:
    """``(line number, what, matched text)`` for every forbidden reference in ``text``."""
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in FORBIDDEN:
            for m in pattern.finditer(line):
                yield number, what, m.group(0)


def test_no_file_cites_a_document_outside_the_repository() -> None:
    found = []
    for path in scanned_files():
        if path.resolve() == THIS_FILE:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = path.relative_to(ROOT)
        found += [f"{rel}:{n}: {what}: {hit!r}" for n, what, hit in citations(text)]
    assert not found, (
        f"{len(found)} reference(s) to documents outside the repository; cite the PPO × Family "
        "course by name and papers by title, or the ppox page that explains it:\n"
        + "\n".join(found)
    )


@pytest.mark.parametrize(
    "line",
    [
        "Advantage and return estimators (SPEC §2.1; seeds 001, 003, 004).",
        'Initialization (seed 001 "笨鸟先飞").',
        "## Networks (SPEC 4) [001]",
        'Recompute advantage [001 "稳扎稳打"]',
        "(seed 000 Q14)",
        "as the seed Q&A suggests",
        "the hook machinery costs more (shared research, performance §4.2)",
        "(research notes §2.5, recipe 3)",
        "Research §3.6: nvec [3, 2]",
        'Rollout storage (ARCHITECTURE "data flow")',
        "see /" + "work/shared/SPEC.md",  # joined here: this file names no path of the machine
        "--run-dir /shared/runs/hopper-42",
        "read shared/research/performance.md",
    ],
)
def test_the_patterns_catch_outside_citations(line: str) -> None:
    assert list(citations(line)), line


@pytest.mark.parametrize(
    "line",
    [
        "10 deterministic episodes on seeds 1000000..1000009",
        "episode i uses seed eval_seed + i; seed 1, seed 2",
        "spec = importlib.util.find_spec('envpool')",
        "github.com/google-research/rliable",
        "`PPOX_ALLREDUCE auto|shared|doubling|collective`",
        "one shared trunk for actor and critic; shared memory",
        "git worktree add /tmp/ppox-bench HEAD",
        "the PPO × Family course's Q&A (Q14); its seven realms; docs/performance.md",
        "Architecture: see docs/architecture.md",
        "np.percentile(a, [25, 75]); x[0.5]",
    ],
)
def test_the_patterns_leave_ordinary_text_alone(line: str) -> None:
    assert not list(citations(line)), line


# --- relative Markdown links ----------------------------------------------------------------------
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def markdown_files(root: Path = ROOT) -> list[Path]:
    return [p for p in scanned_files(root) if p.suffix == ".md"]


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines outside fenced code blocks, numbered from 1."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, link targets and punctuation dropped (letters
    of any script, digits, ``_`` and ``-`` kept), spaces to ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def english_twin(path: Path) -> Path:
    """A Chinese page (``X.zh.md``) carries its English page's anchors on the site (the build
    gives each translated heading the English heading's id; tools/docs_hooks.py)."""
    if path.name.endswith(".zh.md"):
        return path.with_name(path.name.removesuffix(".zh.md") + ".md")
    return path


def broken_links(path: Path, root: Path = ROOT) -> Iterator[str]:
    text = path.read_text(encoding="utf-8")
    for number, line in prose_lines(text):
        for m in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path.resolve()
            where = f"{path.relative_to(root)}:{number}: {target}"
            if not dest.is_relative_to(root.resolve()):
                yield f"{where} (outside the repository)"
            elif not dest.exists():
                yield f"{where} (no such file)"
            elif anchor and dest.suffix == ".md" and anchor not in anchors(english_twin(dest)):
                yield f"{where} (no heading with that anchor)"


def test_relative_markdown_links_lead_to_files_and_headings_of_the_repository() -> None:
    broken = [b for path in markdown_files() for b in broken_links(path)]
    assert not broken, f"{len(broken)} broken link(s):\n" + "\n".join(broken)


def test_the_link_check_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## The std ≈ 0 case (realm 3, 巧夺天工)\n")
    page = tmp_path / "docs" / "b.md"
    page.write_text(
        "[ok](a.md) [ok](a.md#the-std--0-case-realm-3-巧夺天工) [ok](#b) [web](https://x.org/y)\n"
        "# B\n"
        "[gone](missing.md) [bad anchor](a.md#nope) [out](../../x.md)\n"
        "```\n[in code](nowhere.md)\n```\n"
    )
    assert [b.split(": ", 1)[1] for b in broken_links(page, tmp_path)] == [
        "missing.md (no such file)",
        "a.md#nope (no heading with that anchor)",
        "../../x.md (outside the repository)",
    ]
