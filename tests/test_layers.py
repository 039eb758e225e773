"""The package's layers (docs/architecture.md): no module imports from a layer above its own.

Every module under ``src/ppox`` is parsed with :mod:`ast` (nothing is imported or run) and every
``ppox`` import in it is collected: at the top, inside functions, under ``TYPE_CHECKING``,
``import ppox.x``, ``from ppox.x import y``, ``from ppox import x`` and relative imports alike.
Each module and each imported module is mapped to a layer by the longest matching prefix in
:data:`LAYERS`; an import from a higher layer is a violation, reported with the module, the import
and both layers. A module that no prefix covers is reported too, so a new module has to be placed.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[tuple[str, list[str]]] = [
    ("core (pure math)", ["ppox.core", "ppox.llm.tokens"]),
    ("config, types, errors", ["ppox.config", "ppox.types", "ppox.errors"]),
    ("distributions, nn, envs", ["ppox.distributions", "ppox.nn", "ppox.envs"]),
    ("training components", ["ppox.training"]),  # rollout, learner, optim, normalizers, ...
    ("io", ["ppox.io"]),
    ("trainer", ["ppox.training.trainer"]),
    ("analysis, presets", ["ppox.analysis", "ppox.presets"]),
    ("language models", ["ppox.llm"]),  # its own loop: models, sampling, trainer
    ("cli, package", ["ppox.cli", "ppox.__main__", "ppox", "ppox.llm.cli"]),
]
"""Layers from the bottom up, each a list of module prefixes. A prefix covers the module of that
name and everything below it, except the bare ``ppox`` (the package's ``__init__``), which covers
only itself. The longest matching prefix wins: ``ppox.training.trainer`` is in "trainer", the rest
of ``ppox.training`` in "training components"."""

KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()
"""(module, imported module) pairs allowed to break the order, each with a comment saying why.
None today."""


class Violation(NamedTuple):
    module: str
    line: int
    imported: str
    module_layer: str
    imported_layer: str

    def __str__(self) -> str:
        return (
            f"{self.module} (layer {self.module_layer!r}) imports {self.imported} "
            f"(layer {self.imported_layer!r}) at line {self.line}"
        )


def layer_of(module: str) -> int | None:
    """Index into :data:`LAYERS` of ``module``, or None when no prefix covers it."""
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            covers = module == p or (p != "ppox" and module.startswith(p + "."))
            if covers and (best is None or len(p) > best[0]):
                best = (len(p), index)
    return None if best is None else best[1]


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str, src: Path) -> bool:
    base = src.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _resolve_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` statement reads from."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def ppox_imports(path: Path, src: Path) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every ``ppox`` import in the file at ``path``.

    ``from ppox.x import y`` imports ``ppox.x.y`` when that is a module (``from ppox.training
    import distributed``), else ``ppox.x`` (``y`` is a name defined there)."""
    module = module_name(path, src)
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(node, module, path.name == "__init__.py")
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.append((node.lineno, sub if _is_module(sub, src) else base))
    return [(line, m) for line, m in found if m == "ppox" or m.startswith("ppox.")]


def check_layers(src: Path) -> tuple[list[Violation], list[str]]:
    """Every upward import under ``src/ppox`` and every module no layer covers."""
    violations: list[Violation] = []
    unplaced: list[str] = []
    for path in sorted((src / "ppox").rglob("*.py")):
        module = module_name(path, src)
        own = layer_of(module)
        if own is None:
            unplaced.append(module)
            continue
        for line, imported in ppox_imports(path, src):
            theirs = layer_of(imported)
            if theirs is None:
                unplaced.append(f"{imported} (imported by {module})")
            elif theirs > own and (module, imported) not in KNOWN_EXCEPTIONS:
                violations.append(
                    Violation(module, line, imported, LAYERS[own][0], LAYERS[theirs][0])
                )
    return violations, unplaced


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    violations, unplaced = check_layers(SRC)
    assert not unplaced, "modules in no layer of LAYERS (place them there):\n" + "\n".join(unplaced)
    assert not violations, "imports against the layer order (docs/architecture.md):\n" + "\n".join(
        map(str, violations)
    )


def test_the_scan_sees_the_imports_that_matter() -> None:
    """The scan is not vacuous: it finds imports the package is known to have, in every form."""
    learner = SRC / "ppox" / "training" / "learner.py"
    found = {m for _, m in ppox_imports(learner, SRC)}
    assert {"ppox.core.advantages", "ppox.training.distributed", "ppox.config"} <= found
    assert {m for _, m in ppox_imports(SRC / "ppox" / "__init__.py", SRC)} >= {
        "ppox.training.trainer",
        "ppox.presets",
    }
    assert len(list((SRC / "ppox").rglob("*.py"))) > 40


@pytest.mark.parametrize(
    "module, layer",
    [
        ("ppox.core.losses", "core (pure math)"),
        ("ppox.types", "config, types, errors"),
        ("ppox.nn.fused", "distributions, nn, envs"),
        ("ppox.training.learner", "training components"),
        ("ppox.training", "training components"),
        ("ppox.io.policy", "io"),
        ("ppox.training.trainer", "trainer"),
        ("ppox.analysis.metrics", "analysis, presets"),
        ("ppox.cli", "cli, package"),
        ("ppox", "cli, package"),
    ],
)
def test_modules_map_to_the_documented_layers(module: str, layer: str) -> None:
    index = layer_of(module)
    assert index is not None and LAYERS[index][0] == layer
    assert layer_of("ppox.corex") is None and layer_of("ppoxy") is None


def _fake_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "ppox" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    "source, imported",
    [
        ("from ppox.training.trainer import Trainer\n", "ppox.training.trainer"),
        ("def f():\n    import ppox.io.policy\n", "ppox.io.policy"),  # inside a function
        ("from ppox import cli\n", "ppox.cli"),
        ("import ppox\n", "ppox"),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ppox.io import evaluate\n",
            "ppox.io.evaluate",
        ),  # fmt: skip
        ("from ..training import rollout\n", "ppox.training.rollout"),  # relative
    ],
)
def test_an_upward_import_fails_naming_module_import_and_layers(
    tmp_path: Path, source: str, imported: str
) -> None:
    src = _fake_package(
        tmp_path,
        {
            "__init__.py": "",
            "cli.py": "",
            "core/__init__.py": "",
            "core/losses.py": "import math\nfrom ppox.core import advantages\n",
            "core/advantages.py": "",
            "nn/__init__.py": "",
            "nn/bad.py": "from ppox.core.losses import x\n" + source,
            "io/__init__.py": "",
            "io/policy.py": "",
            "io/evaluate.py": "",
            "training/__init__.py": "",
            "training/trainer.py": "from ppox.io.policy import Policy\n",  # downward: fine
            "training/rollout.py": "",
        },
    )
    violations, unplaced = check_layers(src)
    assert unplaced == []
    assert [(v.module, v.imported) for v in violations] == [("ppox.nn.bad", imported)]
    text = str(violations[0])
    assert "ppox.nn.bad" in text and imported in text
    assert "'distributions, nn, envs'" in text and f"'{LAYERS[layer_of(imported)][0]}'" in text


def test_a_module_in_no_layer_is_reported(tmp_path: Path) -> None:
    src = _fake_package(tmp_path, {"__init__.py": "", "extras/thing.py": ""})
    assert check_layers(src)[1] == ["ppox.extras.thing"]
