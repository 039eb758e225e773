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
    assert rows["summary"]["cartpole"]["env_sps"] > 0  # the env-only ceiling ran too
    assert {r["impl"] for r in rows["runs"]} == {"ppox", "sb3", "env"}


def test_time_to_solve_runs_both_libraries(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    out = tmp_path / "tts.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "time_to_solve.py"), "--steps", "2048",
                        "--eval-every", "1024", "--seeds", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    result = json.loads(out.read_text())
    for run in result["runs"]:  # not solved in 2048 steps: evaluated at 1024 and 2048, then stopped
        assert [e[0] for e in run["evals"]] == [1024, 2048], run["evals"]
        assert run["solved_s"] is None
    assert out.with_suffix(".md").exists()
