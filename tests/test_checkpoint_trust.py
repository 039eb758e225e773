"""Nothing in a checkpoint executes code, and a checkpoint that does not fit is a clear error.

Crafted files carry a pickle payload that would create a marker file if anything unpickled it,
in every part of the state, as a checksummed version-2 file and as a bare version-1 file; the
env snapshots of version-1 files are pickles, refused without being unpickled. Corrupted and
inconsistent checkpoints (a flipped byte, a short optimizer state, NaN weights, a negative
step count, no config) end in one ``ppox: error:`` line naming the file and the problem; the
short optimizer state, which made the fused Adam kernel crash the process, runs in a subprocess.
"""

from __future__ import annotations

import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from trust_helpers import Payload, assert_one_error, in_process, ppox_cli, rewrite, tiny_run

import ppox
from ppox.errors import CheckpointError
from ppox.io.checkpoint import load_checkpoint, nonfinite, save_checkpoint
from ppox.training.trainer import Trainer


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("trust") / "cartpole")


@pytest.fixture
def run(base_run: Path, tmp_path: Path) -> Path:
    """A private copy of the trained run."""
    return Path(shutil.copytree(base_run, tmp_path / "run"))


def _first_key(d: dict) -> str:
    return next(iter(d))


PLACES = {
    "top level": lambda s, p: s.__setitem__("extra", p),
    "config value": lambda s, p: s["config"]["env"].__setitem__("env_kwargs", {"x": p}),
    "env snapshot": lambda s, p: s["collector"]["env_states"].__setitem__(0, p),
    "inside an env snapshot": lambda s, p: s["collector"]["env_states"][0]["layers"][0]["attrs"].__setitem__("x", p),
    "rng state": lambda s, p: s["rng"].__setitem__("python", p),
    "optimizer": lambda s, p: s["optimizer"]["state"][0].__setitem__("step", p),
    "model": lambda s, p: s["model"].__setitem__(_first_key(s["model"]), p),
    "progress": lambda s, p: s["progress"].__setitem__("evals", [p]),
    "obs_norm": lambda s, p: s.__setitem__("obs_norm", p),
    "reward_scaler": lambda s, p: s["reward_scaler"].__setitem__("ret", [p, p]),
    "learner": lambda s, p: s["learner"].__setitem__("kl_coef", p),
    "collector stats": lambda s, p: s["collector"]["stats"].__setitem__("returns", [p]),
}  # fmt: skip


@pytest.mark.parametrize("version", [2, 1])
@pytest.mark.parametrize("place", list(PLACES))
def test_a_pickle_payload_anywhere_never_runs(
    run: Path, tmp_path: Path, place: str, version: int
) -> None:
    marker = tmp_path / "pwned"
    rewrite(run, lambda s: PLACES[place](s, Payload(marker)), version)
    with pytest.raises(
        CheckpointError,
        match=r"refused: it holds objects other than tensors and plain data \(it names io.open\)",
    ):
        load_checkpoint(run)
    with pytest.raises(CheckpointError, match="refused"):
        Trainer.resume(run)
    with pytest.raises(CheckpointError, match="refused"):
        ppox.load_policy(run)
    assert not marker.exists()


def test_a_payload_reaches_the_command_line_as_one_line(run: Path, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    rewrite(run, lambda s: PLACES["env snapshot"](s, Payload(marker)), 1)
    for args in (["train", "--resume", str(run)], ["eval", str(run)]):
        assert_one_error(
            in_process(capsys, *args), str(run / "checkpoint.pt"), "refused", "io.open"
        )
    assert not marker.exists()


@pytest.mark.parametrize("version", [1, 2])
def test_pickled_env_snapshots_of_old_checkpoints_are_refused_not_unpickled(
    run: Path, tmp_path: Path, capsys, version: int
) -> None:
    """Version-1 checkpoints stored each env as a pickle, which ppox unpickled on resume: a
    payload there ran. Now such bytes are never unpickled; the episodes restart instead."""
    marker = tmp_path / "pwned"
    blob = pickle.dumps((Payload(marker), {}))

    def old_style(s: dict) -> None:
        s["collector"]["env_states"] = [blob, blob]

    rewrite(run, old_style, version)
    trainer = Trainer.resume(run, total_steps=192)
    out = capsys.readouterr()
    assert "pickles (written before checkpoint version 2), which ppox never unpickles" in out.out
    if version == 1:
        assert "version-1 checkpoint" in out.err and "without an integrity check" in out.err
    summary = trainer.train()
    assert not marker.exists()
    assert summary["total_steps"] == 192 and summary["resumed_env_state_exactly"] is False
    assert load_checkpoint(run)["version"] == 2  # the resumed run wrote the new format
    assert all(isinstance(s, dict) for s in load_checkpoint(run)["collector"]["env_states"])


def test_a_flipped_byte_anywhere_is_reported_as_corruption(run: Path) -> None:
    """Every byte of the file is covered: 40 flips spread over the file (the header line
    included) are each caught before torch parses anything."""
    path = run / "checkpoint.pt"
    good = path.read_bytes()
    header = good.index(b"\n") + 1
    positions = sorted(
        {
            *np.linspace(header, len(good) - 1, 30).astype(int),
            *range(0, header, max(1, header // 10)),
        }
    )
    for pos in positions:
        bad = bytearray(good)
        bad[pos] ^= 0x01
        path.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(run)
        msg = str(err.value)
        assert str(path) in msg
        if pos >= header:
            assert "corrupted: checksum mismatch" in msg, (pos, msg)
        else:
            assert "corrupted" in msg or "not a readable ppox checkpoint" in msg, (pos, msg)
    path.write_bytes(good[:-100])
    with pytest.raises(CheckpointError, match="is corrupted: truncated"):
        load_checkpoint(run)


def _short_optimizer(s: dict) -> None:
    st = s["optimizer"]["state"][0]
    st["exp_avg"], st["exp_avg_sq"] = st["exp_avg"][:10].clone(), st["exp_avg_sq"][:10].clone()


def _nan_weight(s: dict) -> None:
    s["model"][_first_key(s["model"])].view(-1)[0] = math.nan


def _negative_step(s: dict) -> None:
    s["progress"]["global_step"] = -64


def _no_config(s: dict) -> None:
    del s["config"]


def _flip(run: Path) -> None:
    data = bytearray((run / "checkpoint.pt").read_bytes())
    data[len(data) // 2] ^= 0x20
    (run / "checkpoint.pt").write_bytes(bytes(data))


BROKEN = {
    "short optimizer": (_short_optimizer, ["optimizer state exp_avg has shape (10,)", "trainable parameters (one flat buffer) need ("]),
    "NaN weight": (_nan_weight, ["holds NaN or infinite values"]),
    "negative step": (_negative_step, ["progress.global_step is -64", "non-negative integer"]),
    "no config": (_no_config, ["holds no 'config' entry"]),
}  # fmt: skip


@pytest.mark.parametrize("version", [2, 1])
@pytest.mark.parametrize("case", list(BROKEN))
def test_inconsistent_checkpoints_are_one_clear_line_on_resume(
    run: Path, case: str, version: int, capsys
) -> None:
    """The short optimizer state crashed the process (SIGSEGV in the fused Adam kernel) before
    checkpoints were validated: that case runs in a subprocess, the others in this one."""
    change, needles = BROKEN[case]
    rewrite(run, change, version)
    before = (run / "checkpoint.pt").read_bytes()
    args = ("train", "--resume", str(run))
    r = ppox_cli(*args) if case == "short optimizer" else in_process(capsys, *args)
    assert_one_error(r, str(run / "checkpoint.pt"), *needles)
    assert (run / "checkpoint.pt").read_bytes() == before  # nothing was written
    assert len((run / "metrics.csv").read_text().splitlines()) == 3  # header + 2 iterations, kept


@pytest.mark.parametrize("case", ["NaN weight", "no config", "flip"])
def test_eval_of_a_broken_checkpoint_is_one_clear_line(run: Path, case: str, capsys) -> None:
    if case == "flip":
        _flip(run)
        needles = ["corrupted: checksum mismatch"]
    else:
        change, needles = BROKEN[case]
        rewrite(run, change)
    assert_one_error(in_process(capsys, "eval", str(run)), str(run / "checkpoint.pt"), *needles)


def test_a_flipped_byte_stops_a_resume(run: Path, capsys) -> None:
    _flip(run)
    assert_one_error(
        in_process(capsys, "train", "--resume", str(run)), "corrupted: checksum mismatch"
    )


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda s: s["progress"].__setitem__("iteration", 5), "does not fit iteration=5"),
        (lambda s: s["progress"].__setitem__("iteration", True), "progress.iteration is True"),
        (lambda s: s["optimizer"]["state"][0].__setitem__("exp_avg_sq", -s["optimizer"]["state"][0]["exp_avg_sq"] - 1), "exp_avg_sq holds negative values"),
        (lambda s: s["optimizer"]["param_groups"][0].__setitem__("params", [0, 1]), "params is [0, 1]"),
        (lambda s: s["model"].pop(_first_key(s["model"])), "model entries do not fit"),
        (lambda s: s["model"].__setitem__(_first_key(s["model"]), s["model"][_first_key(s["model"])].double()), "has dtype torch.float64"),
        (lambda s: s["rng"].__setitem__("torch", torch.zeros(7, dtype=torch.uint8)), "rng.torch has shape (7,)"),
        (lambda s: s["rng"]["generators"].pop("shuffle"), "rng.generators has entries ['sample']"),
        (lambda s: s["rng"]["numpy"].__setitem__(0, "PCG64"), "rng.numpy is"),
        (lambda s: s["collector"].__setitem__("raw_obs", torch.zeros(2, 3)), "collector.raw_obs has shape (2, 3)"),
        (lambda s: s["reward_scaler"].__setitem__("m2", -1.0), "reward_scaler.m2 is -1.0"),
        (lambda s: s["obs_norm"].__setitem__("count", math.inf), "obs_norm.count is inf"),
        (lambda s: s["learner"].__setitem__("kl_coef", math.nan), "learner.kl_coef is nan"),
        (lambda s: s.pop("rng"), "holds no 'rng' entry"),
        (lambda s: s["config"]["ppo"].__setitem__("num_envs", 2), "invalid config"),
        (lambda s: s["config"]["env"].__setitem__("num_envs", "two"), "invalid config"),
    ],
    ids=["step-vs-iteration", "bool-counter", "negative-second-moment", "param-groups", "missing-weight",
         "weight-dtype", "torch-rng", "generators", "numpy-rng", "raw-obs", "scaler", "obs-norm",
         "learner", "no-rng", "config-section", "config-type"],
)  # fmt: skip
def test_every_part_is_checked_before_use(run: Path, change, needle: str) -> None:
    rewrite(run, change)
    with pytest.raises(CheckpointError) as err:
        Trainer.resume(run)
    assert needle in str(err.value) and str(run / "checkpoint.pt") in str(err.value)


def test_negative_counts_of_non_zero_entries_are_refused(tmp_path: Path) -> None:
    """With ``obs_sparse`` the observation statistics hold counts of non-zero values: a negative
    one (which would make its entry look rare) stops the resume with its place named."""
    run = tiny_run(tmp_path / "sparse", "--normalize-obs", "--obs-sparse", "0.5")
    assert len(load_checkpoint(run)["obs_norm"]["nonzero"]) == 4
    rewrite(run, lambda s: s["obs_norm"]["nonzero"].__setitem__(0, -1.0))
    with pytest.raises(CheckpointError, match=r"obs_norm\.nonzero\[0\] is -1\.0; it must be ≥ 0"):
        Trainer.resume(run)


def test_a_non_finite_checkpoint_is_never_written(run: Path, tmp_path: Path) -> None:
    cfg = ppox.Config().replace(num_envs=2, num_steps=32, num_epochs=1, total_steps=64, eval_every=0,
                                eval_episodes=1, progress=False, tensorboard=False)  # fmt: skip
    trainer = Trainer.create(cfg, tmp_path / "new")
    trainer.collector.collect()
    trainer.save()
    path = tmp_path / "new" / "checkpoint.pt"
    before = path.read_bytes()
    name, param = next(iter(trainer.model.named_parameters()))
    with torch.no_grad():
        param.view(-1)[3] = math.inf
    with pytest.raises(
        CheckpointError,
        match=rf"refusing to write {path}: non-finite values .* in model.{name}; the previous checkpoint is kept",
    ):
        trainer.save()
    assert (
        path.read_bytes() == before
        and [p.name for p in path.parent.iterdir() if p.suffix == ".tmp"] == []
    )
    with torch.no_grad():
        param.view(-1)[3] = 0.0
    trainer.learner.optimizer.state[trainer.learner.flat.flat] = {"step": torch.tensor(1.0), "exp_avg": torch.full_like(trainer.learner.flat.flat, math.nan), "exp_avg_sq": torch.zeros_like(trainer.learner.flat.flat)}  # fmt: skip
    with pytest.raises(CheckpointError, match=r"optimizer\.state\.0\.exp_avg"):
        trainer.save()
    assert path.read_bytes() == before
    trainer.envs.close()


def test_nonfinite_names_every_bad_value() -> None:
    state = {
        "a": torch.tensor([1.0, math.nan]),
        "b": [1.0, math.inf, 2],
        "c": {"d": -math.inf, "e": torch.arange(3)},
    }
    assert nonfinite(state, "s") == ["s.a", "s.b[1]", "s.c.d"]
    assert nonfinite({"x": torch.zeros(4), "y": (1.5, 2)}, "s") == []


def test_a_valid_checkpoint_round_trips_and_a_v1_file_is_read_with_a_note(
    run: Path, capsys
) -> None:
    state = load_checkpoint(run)
    assert state["version"] == 2 and (run / "checkpoint.pt").read_bytes().startswith(
        b"ppox-checkpoint v2 sha256:"
    )
    rewrite(run, lambda s: None, 1)
    old = load_checkpoint(run)
    assert "version-1 checkpoint" in capsys.readouterr().err
    for k in state["model"]:
        assert torch.equal(state["model"][k], old["model"][k])
    save_checkpoint(
        {k: v for k, v in old.items() if k not in ("format", "version")}, run / "checkpoint.pt"
    )
    assert load_checkpoint(run)["version"] == 2
