"""The benchmark scripts still run end to end (tiny budgets; the numbers mean nothing here).

They are not part of the library, so nothing else would notice when a rename in ppox (or in a
peer library's API) breaks them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def run_script(name: str, out: Path, *args: str) -> dict:
    """Run ``benchmarks/<name>`` with ``--out out`` and the given flags; its JSON results."""
    pytest.importorskip("stable_baselines3")
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *args, "--out", str(out)],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def test_compare_sb3_runs_both_libraries(tmp_path: Path) -> None:
    rows = run_script(
        "compare_sb3.py",
        tmp_path / "cmp.json",
        "--suite",
        "cartpole",
        "--steps",
        "1024",
        "--seeds",
        "1",
    )
    text = json.dumps(rows)
    assert "ppox" in text and "sb3" in text
    assert rows["summary"]["cartpole"]["env_sps"] > 0  # the env-only ceiling ran too
    assert {r["impl"] for r in rows["runs"]} == {"ppox", "sb3", "env"}


def test_time_to_solve_runs_both_libraries(tmp_path: Path) -> None:
    out = tmp_path / "tts.json"
    result = run_script(
        "time_to_solve.py", out, "--steps", "2048", "--eval-every", "1024", "--seeds", "1"
    )
    for run in result["runs"]:  # not solved in 2048 steps: evaluated at 1024 and 2048, then stopped
        assert [e[0] for e in run["evals"]] == [1024, 2048], run["evals"]
        assert run["solved_s"] is None
    assert out.with_suffix(".md").exists()


def test_fixed_costs_times_both_backends(tmp_path: Path) -> None:
    out = tmp_path / "fixed.json"
    result = run_script("fixed_costs.py", out, "--repeats", "1", "--updates", "1")
    assert len(result["cases"]) == 4 and len(result["acting"]) == 3
    for case in result["acting"].values():
        assert case["torch"]["median"] > 0 and case["numpy"]["median"] > 0
    for case in result["cases"].values():
        assert case["autograd"]["median"] > 0 and case["numpy"]["median"] > 0
    assert "speed-up" in out.with_suffix(".md").read_text()


@pytest.mark.slow  # compiling takes about a minute on 2 cores
def test_torch_compile_check_runs(tmp_path: Path) -> None:
    result = run_script("torch_compile.py", tmp_path / "compile.json", "--steps", "3")
    for part in ("update", "acting"):
        assert result[part]["compile_s"] > 0 and result[part]["ppox_numpy_us"] > 0


def test_recurrent_sb3_runs_both_libraries(tmp_path: Path) -> None:
    pytest.importorskip("sb3_contrib")
    out = tmp_path / "rec.json"
    args = ("--tasks", "cartpole", "--steps", "512", "--eval-every", "256", "--seeds", "1")
    result = run_script("recurrent_sb3.py", out, *args)
    assert [r["lib"] for r in result["runs"]] == ["ppox", "sb3"]
    for run in result["runs"]:  # evaluated at 256 and at the end, on ppox's evaluation seeds
        assert [e[0] for e in run["evals"]] == [256, 512], run["evals"]
        assert run["eval_seeds"] == result["runs"][0]["eval_seeds"]
        assert run["sps"] > 0 and run["process_s"] > 0
    assert result["summary"]["cartpole"]["sps_ratio_ppox_over_sb3"] > 0
    assert "RecurrentPPO" in out.with_suffix(".md").read_text()


def test_atari_cleanrl_reads_cleanrl_logs_and_compares_at_a_common_step(tmp_path: Path) -> None:
    """CleanRL itself is not installed in CI; the parts of the script that turn its output into
    the compared numbers are checked on a log written by hand."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import atari_cleanrl

    log = tmp_path / "cleanrl.log"
    lines = [f"global_step={1000 * (i + 1)}, episodic_return=[{float(i)}]" for i in range(150)]
    log.write_text("\n".join(["SPS: 90", *lines[:75], "SPS: 101", *lines[75:], ""]))
    r = atari_cleanrl.cleanrl_result(log)
    assert r["games"] == 150 and r["steps"] == 150_000 and r["sps"] == 101
    assert r["curve"][9] == [10_000, 4.5]  # the mean of the first 10 games
    assert r["curve"][-1] == [150_000, sum(range(50, 150)) / 100]  # the last 100
    assert atari_cleanrl.at_step(r["curve"], 10_500) == 4.5
    assert atari_cleanrl.at_step(r["curve"], 999) is None
    assert not (tmp_path / "missing").exists()
    with pytest.raises(SystemExit, match="no cleanrl/ppo_atari.py"):
        atari_cleanrl.main(["--cleanrl-dir", str(tmp_path / "missing"), "--steps", "8"])


def test_llm_trl_report_is_rebuilt_from_the_committed_runs(tmp_path: Path) -> None:
    """The committed TRL comparison: its report is what the per-run files it was made from give
    (``--report-only``; TRL itself is not needed for that)."""
    pytest.importorskip("matplotlib")
    committed = REPO / "benchmarks" / "results" / "llm_trl"
    out = tmp_path / "llm_trl"
    shutil.copytree(committed, out)
    (out / "results.md").unlink()
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "llm_trl.py"), "--report-only",
                    "--out", str(out)], check=True, capture_output=True)  # fmt: skip
    rebuilt = (out / "results.md").read_text().replace(str(out), "benchmarks/results/llm_trl")
    assert rebuilt == (committed / "results.md").read_text()


def test_the_suite_runs_skips_finished_runs_and_reports(tmp_path: Path) -> None:
    """benchmarks/suite.py: a second call runs nothing finished again, and the table shows the
    seeds with their IQM and the published numbers."""
    runs, out = tmp_path / "runs", tmp_path / "out"
    cmd = [sys.executable, str(REPO / "benchmarks" / "suite.py"), "run", "--presets", "invertedpendulum",
           "--seeds", "1", "2", "--budget", "invertedpendulum=2048", "--runs-dir", str(runs), "--out-dir", str(out)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "invertedpendulum-s2: finished" in r.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert "invertedpendulum-s1: done before" in again.stdout
    table = (out / "results.md").read_text()
    assert "| invertedpendulum | 2 | 0.00M (`--budget`; the preset's own: 1M) |" in table
    assert "CleanRL 963 · Tianshou 1000 |" in table
    assert "| halfcheetah |" not in table  # only the presets asked for

    # check: the same runs made again match the table to the last digit; a changed one does not
    again_runs = tmp_path / "again"
    redo = [*cmd[:-4], "--runs-dir", str(again_runs), "--out-dir", str(tmp_path / "x")]
    assert subprocess.run(redo, capture_output=True, timeout=600).returncode == 0
    results = json.loads((out / "results.json").read_text())
    results["presets"]["invertedpendulum"]["runs"][1]["final"] += 1e-9
    (out / "results.json").write_text(json.dumps(results))
    check = [sys.executable, str(REPO / "benchmarks" / "suite.py"), "check", "--presets", "invertedpendulum",
             "--runs-dir", str(again_runs), "--out-dir", str(out), "--commit", "abc1234"]  # fmt: skip
    r = subprocess.run(check, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "1 of 2 the same, 0 more through torch" in r.stdout, (
        r.stdout + r.stderr
    )
    assert "commit `abc1234`" in (out / "reproduce.md").read_text()
    first, second = json.loads((out / "reproduce.json").read_text())["runs"]
    assert (first["seed"], first["same"], first["torch"]) == (1, True, None)
    # the changed entry: evaluated again through torch, the run gives its own number, not the table's
    assert (second["seed"], second["same"]) == (2, False)
    assert second["torch"] != second["table"] and second["torch"] == pytest.approx(
        second["now"], rel=0.05
    )


def test_defaults_against_sb3_runs_both(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    runs, out = tmp_path / "runs", tmp_path / "out"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "defaults_sb3.py"), "run", "--tasks",
                        "InvertedPendulum-v5", "--seeds", "1", "--steps", "1024", "--runs-dir", str(runs),
                        "--out-dir", str(out)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0 and "failed" not in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())["tasks"]["InvertedPendulum-v5"]
    assert res["ppox"]["seeds"] == [1] and res["sb3"]["seeds"] == [1]
    origin = json.loads((runs / "ppox-InvertedPendulum-v5-s1" / "config.json").read_text())[
        "origin"
    ]
    assert origin["base"] == "base-continuous"


def test_trpo_against_sb3_contrib_runs_both_with_the_zoo_settings(tmp_path: Path) -> None:
    pytest.importorskip("sb3_contrib")
    runs, out = tmp_path / "runs", tmp_path / "out"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "trpo_sb3.py"), "run", "--tasks", "CartPole-v1",
                        "--seeds", "1", "--steps", "1024", "--runs-dir", str(runs), "--out-dir", str(out)],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0 and "failed" not in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())["tasks"]["CartPole-v1"]
    assert res["ppox"]["seeds"] == [1] and res["sb3"]["seeds"] == [1]
    assert res["ppox"]["steps"] == res["sb3"]["steps"] == [1024]
    config = json.loads((runs / "ppox-CartPole-v1-s1" / "config.json").read_text())
    assert config["origin"] == {"preset": "cartpole-trpo"} and config["ppo"]["algo"] == "trpo"
    assert "steps/s ppox / SB3" in (out / "results.md").read_text()


def test_whole_process_times_ppox_and_sb3_as_processes(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    out = tmp_path / "whole"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/whole_process.py"), "--seeds", "1", "--steps", "2048",
                        "--out", str(out)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert {row["side"] for row in res["runs"]} == {"ppox", "sb3", "sb3-no-eval"}
    for row in res["runs"]:
        assert row["process_s"] > row["loop_s"] > 0 and row["steps"] >= 2048
    assert "SB3 without evaluations / this process" in (out / "results.md").read_text()


def test_ceiling_measures_env_collection_and_loop(tmp_path: Path) -> None:
    out = tmp_path / "ceiling"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/ceiling.py"), "--presets", "cartpole", "--rounds", "1",
                        "--min-steps", "512", "--out", str(out)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (row,) = json.loads((out / "results.json").read_text())["presets"]
    sps = row["sps"]
    assert (
        sps["env"] > sps["collect"] > sps["loop"] > 0
    )  # the loop does more than collect, which does more
    assert row["backends"]["act"] == "numpy"
    # the matrix products are a part of the update: a floor under it, never above
    assert row["update_us_per_step"] > row["products_us_per_step"] > 0
    assert 0 < row["best_fraction_one_core"] <= row["best_fraction_overlapped"] <= 1
    assert "matrix products alone" in (out / "results.md").read_text()
    # the same products at the core's best rate: a bound no faster than what they took
    assert 0 < row["peak_us_per_step"] <= row["products_us_per_step"]
    assert row["best_fraction_one_core_at_peak"] >= row["best_fraction_one_core"]
    info = json.loads((out / "results.json").read_text())
    assert info["core_peak_gflops"] > 0 and info["blas"]  # which BLAS kernel ran is on record


def test_ceiling_counts_the_products_flops_by_hand() -> None:
    """The `cartpole` preset's networks (4 → 64 → 64 → 2 actor, 4 → 64 → 64 → 1 critic), one
    minibatch of 256: a first layer makes two products (forward, weight gradient), every other
    layer three (and its input's gradient), 2·m·k·n operations each."""
    from types import SimpleNamespace as NS

    sys.path.insert(0, str(REPO / "benchmarks"))
    import ceiling as bench

    def lin(out: int, inp: int) -> NS:
        return NS(w=np.zeros((out, inp), np.float32))

    trunk = NS(layers=[lin(64, 4), lin(64, 64)])
    net = NS(shared=False, actor=trunk, critic=trunk, out=[lin(2, 64)], value_out=lin(1, 64))
    m = 256
    first, hidden = 2 * (2 * m * 64 * 4), 3 * (2 * m * 64 * 64)
    heads = 3 * (2 * m * 2 * 64) + 3 * (2 * m * 1 * 64)
    assert bench.products_flops(net, m, 1) == 2 * (first + hidden) + heads == 13_402_112
    # 20 epochs on a batch of 256: about 1.05 MFLOP per env step
    assert bench.products_flops(net, m, 20) == 20 * 13_402_112
    row = {"products_flops_per_step": 1e6, "sps": {"env": 200_000.0}}  # 5 µs of env a step
    got = bench.at_peak(row, peak_gflops=100.0)  # 1 MFLOP at 100 GFLOP/s: 10 µs
    assert got["peak_us_per_step"] == pytest.approx(10.0)
    assert got["best_fraction_one_core_at_peak"] == pytest.approx(5 / 15)
    assert got["best_fraction_overlapped_at_peak"] == pytest.approx(0.5)
    assert bench.at_peak({"sps": {"env": 1.0}}, 100.0) == {}  # no NumPy update: nothing to bound


def test_purejaxrl_comparison_gives_ppox_the_same_settings(tmp_path: Path) -> None:
    """PureJaxRL itself needs JAX (not installed here); ppox's side with its settings must run,
    and the two configs must say the same things."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import purejaxrl as bench

    flags = list(bench.PPOX_PJX)
    flags[flags.index("--total-steps") + 1] = "1024"
    r = subprocess.run([sys.executable, "-m", "ppox", "train", "--run-dir", str(tmp_path / "r"), "--no-progress",
                        "--no-tensorboard", *flags], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    flat = {
        k: v for section in cfg.values() if isinstance(section, dict) for k, v in section.items()
    }
    c = bench.PJX_CONFIG
    assert (flat["num_envs"], flat["num_steps"], flat["num_epochs"], flat["num_minibatches"]) == (
        c["NUM_ENVS"], c["NUM_STEPS"], c["UPDATE_EPOCHS"], c["NUM_MINIBATCHES"])  # fmt: skip
    assert (flat["learning_rate"], flat["gamma"], flat["lam"], flat["clip_coef"], flat["ent_coef"], flat["vf_coef"],
            flat["max_grad_norm"], flat["anneal_lr"]) == (c["LR"], c["GAMMA"], c["GAE_LAMBDA"], c["CLIP_EPS"],
                                                          c["ENT_COEF"], c["VF_COEF"], c["MAX_GRAD_NORM"], c["ANNEAL_LR"])  # fmt: skip
    assert flat["hidden_sizes"] == [64, 64] and flat["activation"] == c["ACTIVATION"] == "tanh"


def test_seeds_bound_times_whole_processes(tmp_path: Path) -> None:
    out = tmp_path / "seeds"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/seeds_bound.py"), "--rounds", "1", "--sides", "one seed",
                        "--out", str(out)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    info = json.loads((out / "results.json").read_text())
    assert info["medians"]["one seed"] > 0
    assert (
        "| one seed | `ppox train --preset cartpole --total-steps 100000` |"
        in (out / "results.md").read_text()
    )
