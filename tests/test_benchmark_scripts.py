"""The benchmark scripts still run end to end (tiny budgets; the numbers mean nothing here).

They are not part of the library, so nothing else would notice when a rename in ppox (or in a
peer library's API) breaks them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_compare_sb3_runs_both_libraries(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    out = tmp_path / "cmp.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "compare_sb3.py"), "--suite", "cartpole",
                        "--steps", "1024", "--seeds", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = json.loads(out.read_text())
    text = json.dumps(rows)
    assert "ppox" in text and "sb3" in text
