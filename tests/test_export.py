"""ONNX export (``ppox.io.export``, docs/export.md): the exported graph's actions equal
``Policy.predict``'s.

- Trained runs (a few seconds each, shared by the module): a continuous policy (Pendulum-v1,
  normalized observations, clipped Box actions), a discrete policy with action masks
  (PpoxToyMasked-v0), a hybrid policy (ppox/Moving-v0: a type and its parameters, a dict mask)
  and a recurrent one (LSTM on PpoxToyCueRecall-v0). Each policy acts in its env for 1000
  steps; on those 1000 observations (and masks) onnxruntime's actions equal ``predict``'s:
  integer actions exactly, float actions within 1e-5 absolute (no relative slack). The
  comparison is made by hand with onnxruntime and again through ``verify_onnx``.
- Untrained networks of every other action head and observation kind (multi-discrete factored
  and flat, MultiBinary, Dict actions, nested Dict / Tuple observations with images, discrete
  leaves and a mask key, a rescaled Box with a state-dependent σ, autoregressive hybrids, a
  shared GRU), exported and verified on 200 recorded observations.
- The errors: what cannot be exported exactly is a one-line ``ExportError`` and nothing is
  written (an unknown action head, an op the exporter lacks, a network the tracer would freeze
  into a different model); missing optional packages name ``ppox[export]``; a checkpoint that
  names a module to import is refused without ``trust_imports``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import ppox
from ppox.config import Config
from ppox.distributions.categorical import CategoricalHead
from ppox.errors import ConfigError
from ppox.io.checkpoint import load_checkpoint, save_checkpoint
from ppox.io.export import (
    ExportError,
    Recording,
    export_onnx,
    onnx_feed,
    record_observations,
    verify_onnx,
)
from ppox.io.policy import Policy, build_model
from ppox.nn.encoders import register_encoder

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ATOL = 1e-5
"""Float actions: ``|onnx − predict| ≤ 1e-5`` (absolute; the actions are O(1))."""
N = 1000

TINY = dict(num_envs=4, num_steps=64, num_epochs=2, num_minibatches=2, hidden_sizes=(32, 32),
            eval_every=0, tensorboard=False, progress=False, seed=3, total_steps=2048)  # fmt: skip
RUNS: dict[str, dict[str, Any]] = {
    "continuous": dict(env_id="Pendulum-v1", normalize_obs=True),
    "masked": dict(env_id="PpoxToyMasked-v0", normalize_obs=True),
    "hybrid": dict(env_id="ppox/Moving-v0", normalize_obs=True),
    "recurrent": dict(
        env_id="PpoxToyCueRecall-v0", normalize_obs=True, memory="lstm", memory_size=16, bptt=8
    ),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``trained(kind)``: the run directory of a tiny training run (trained once per module)."""
    runs: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in runs:
            run = tmp_path_factory.mktemp(kind) / "run"
            ppox.train(Config().replace(**{**TINY, **RUNS[kind]}), run)
            runs[kind] = run
        return runs[kind]

    return get


def _flat(action: Any, name: str = "action") -> dict[str, np.ndarray]:
    """``predict``'s action as output name → array (``action/<key>`` for tuples / dicts)."""
    if isinstance(action, dict):
        return {k: v for key, a in action.items() for k, v in _flat(a, f"{name}/{key}").items()}
    if isinstance(action, tuple):
        return {k: v for i, a in enumerate(action) for k, v in _flat(a, f"{name}/{i}").items()}
    return {name: np.asarray(action)}


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for key, w in want.items():
        g = got[key]
        assert g.dtype == w.dtype and g.shape == w.shape, key
        if np.issubdtype(w.dtype, np.floating):
            np.testing.assert_allclose(g, w, rtol=0, atol=ATOL, err_msg=key)
        else:
            np.testing.assert_array_equal(g, w, err_msg=key)


def _by_hand(session: Any, policy: Policy, rec: Recording) -> dict[str, np.ndarray]:
    """onnxruntime on the recorded observations, fed by hand (a Box observation, the flat
    masks), compared with ``predict``; the predicted actions for further checks."""
    names = [o.name for o in session.get_outputs()]
    inputs = {i.name for i in session.get_inputs()}
    obs = np.asarray(rec.obs, np.float32)
    if policy.model.memory is None:
        feed = {"obs": obs, **({"action_mask": rec.masks} if "action_mask" in inputs else {})}
        got = dict(zip(names, session.run(None, feed)))
        want = _flat(policy.predict(obs, mask=rec.masks))
        _assert_same(got, want)
        return want
    state_onnx = np.zeros((1, policy.model.state_size), np.float32)
    state_ref = None
    actions = []
    for i in range(len(obs)):  # one env, step by step, each model carrying its own state
        start = rec.episode_starts[i : i + 1]
        feed = {"obs": obs[i : i + 1], "state": state_onnx, "episode_start": start}
        got = dict(zip(names, session.run(None, feed)))
        state_onnx = got.pop("state_out")
        action, state_ref = policy.predict(obs[i : i + 1], state=state_ref, episode_start=start)
        _assert_same(got, _flat(action))
        np.testing.assert_allclose(state_onnx, state_ref, rtol=0, atol=ATOL)
        actions.append(action)
    return {"action": np.concatenate(actions)}


@pytest.mark.parametrize("kind", list(RUNS))
def test_onnx_actions_equal_predict_on_1000_recorded_observations(
    kind: str, trained: Callable[[str], Path], tmp_path: Path
) -> None:
    run = trained(kind)
    path = tmp_path / "policy.onnx"
    info = export_onnx(run, path)
    assert info.checked and "0 different actions" in info.check_note
    assert [p.name for p in tmp_path.iterdir()] == ["policy.onnx"]  # no temporary file left
    policy = ppox.load_policy(run)
    rec = record_observations(policy, N, seed=11)
    assert len(rec.episode_starts) == N and rec.episode_starts[0]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = _by_hand(session, policy, rec)
    result = verify_onnx(path, policy, rec.obs, rec.masks,
                         episode_starts=rec.episode_starts, atol=ATOL, rtol=0.0)  # fmt: skip
    assert result.n == N and result.mismatches == 0 and result.ok, result
    assert result.max_abs_diff <= ATOL
    assert policy.obs_norm.enabled and policy.obs_norm.moments.count > 0  # normalization baked in
    assert any("observation normalization frozen" in b for b in info.baked_in)
    if kind == "continuous":
        a = want["action"]
        assert a.shape == (N, 1) and a.dtype == np.float32 and a.std() > 1e-3
        assert [s.name for s in info.inputs] == ["obs"] and info.outputs[0].shape == ("batch", 1)
    if kind == "masked":
        a, masks = want["action"], rec.masks
        assert masks is not None and not masks.all() and len(np.unique(a)) > 1
        assert masks[np.arange(N), a].all()  # every action legal
        assert (policy.predict(rec.obs) != a).sum() > 50  # the mask changes many actions
        assert [(s.name, s.dtype) for s in info.inputs] == [
            ("obs", "float32"),
            ("action_mask", "bool"),
        ]
    if kind == "hybrid":
        assert [(s.name, s.dtype) for s in info.outputs] == [
            ("action/0", "int64"),
            ("action/1", "float32"),
        ]
        x = want["action/1"]
        assert len(np.unique(want["action/0"])) > 1 and (x >= [0, -1]).all() and (x <= 1).all()
    if kind == "recurrent":
        names = [s.name for s in info.inputs + info.outputs]
        assert names == ["obs", "state", "episode_start", "action", "state_out"]
        assert info.recurrent and rec.episode_starts.sum() > 10


def test_the_hybrid_dict_mask_as_the_env_gives_it(
    trained: Callable[[str], Path], tmp_path: Path
) -> None:
    """``verify_onnx`` and ``onnx_feed`` take the env's own masks (a dict for a hybrid space)."""
    run = trained("hybrid")
    policy = ppox.load_policy(run)
    export_onnx(policy, tmp_path / "p.onnx", check=False)
    rec = record_observations(policy, 64)
    raw = {"type": np.ones((64, 3), bool), "params": np.tile(np.eye(3, 2, dtype=bool), (64, 1, 1))}
    assert verify_onnx(tmp_path / "p.onnx", policy, rec.obs, raw).ok
    feed = onnx_feed(policy, rec.obs, raw)
    assert feed["action_mask"].shape == (64, 3 + 6) and feed["action_mask"].dtype == bool


def _policy(env_id: str, **fields: Any) -> Policy:
    """An untrained policy for ``env_id`` with observation statistics of random data."""
    cfg = Config().replace(env_id=env_id, hidden_sizes=(16,), **fields)
    torch.manual_seed(0)
    model, norm = build_model(cfg)
    if cfg.env.normalize_obs and norm.leaves is None and not norm.passthrough:
        data = np.random.default_rng(0).normal(1.0, 3.0, (50, *model.obs_shape))
        if cfg.env.obs_sparse:
            data[5:, 0] = 0.0  # entry 0 non-zero in 5 of 50 observations: rare
        norm.update(data)
    return Policy(model, norm, cfg)


OTHERS = {
    "multidiscrete": ("PpoxToyMultiDiscreteBandit-v0", {}),
    "multidiscrete-flat": ("PpoxToyMultiDiscreteBandit-v0", {"multi_discrete": "flat"}),
    "multibinary": ("PpoxToyMultiBinaryBandit-v0", {}),
    "dict-action": ("PpoxToyNestedDictBandit-v0", {}),
    "box-rescale-state-sigma": ("Pendulum-v1", {"action_bound": "rescale", "sigma_mode": "state"}),
    "hybrid-autoregressive": ("ppox/Moving-v0", {"hybrid_mode": "autoregressive"}),
    "hybrid-type-given-params": ("PpoxToyHybridBandit-v0", {"hybrid_mode": "type_given_params"}),
    "sparse-obs": ("Pendulum-v1", {"normalize_obs": True, "obs_sparse": 0.5}),
    "nested-obs": ("PpoxToyNestedObs-v0", {"normalize_obs": True}),
    "nested-obs-image": ("PpoxToyNestedObsImage-v0", {}),
    "obs-mask-key": ("PpoxToyNestedObsMask-v0", {}),
    "image": ("PpoxToyImageBandit-v0", {}),
    "gru-shared": ("Pendulum-v1", {"memory": "gru", "memory_size": 8, "memory_shared": True}),
}


@pytest.mark.parametrize("case", list(OTHERS))
def test_other_heads_and_observations_export_exactly(case: str, tmp_path: Path) -> None:
    env_id, fields = OTHERS[case]
    policy = _policy(env_id, **fields)
    info = export_onnx(policy, tmp_path / "p.onnx")
    assert info.checked, info.check_note
    rec = record_observations(policy, 200)
    result = verify_onnx(tmp_path / "p.onnx", policy, rec.obs, rec.masks,
                         episode_starts=rec.episode_starts, atol=ATOL, rtol=0.0)  # fmt: skip
    assert result.ok and result.n == 200, result
    if case == "nested-obs":
        dtypes = {s.name: s.dtype for s in info.inputs}
        assert dtypes["obs/mode"] == "int64" and dtypes["obs/sensors/bump"] == "int8"
        assert dtypes["obs/sensors/lidar"] == "float32"
    if case == "obs-mask-key":
        assert "action_mask" in [s.name for s in info.inputs]
    if case == "sparse-obs":
        assert "1 rarely non-zero entries divided by the root mean square" in info.summary()


def test_without_a_mask_input(trained: Callable[[str], Path], tmp_path: Path) -> None:
    """``mask=False``: no ``action_mask`` input; the graph is predict without a mask."""
    policy = ppox.load_policy(trained("masked"))
    info = export_onnx(policy, tmp_path / "p.onnx", mask=False)
    assert [s.name for s in info.inputs] == ["obs"]
    rec = record_observations(policy, 200)
    assert verify_onnx(tmp_path / "p.onnx", policy, rec.obs).ok
    assert not verify_onnx(tmp_path / "p.onnx", policy, rec.obs, rec.masks).ok  # masks matter


def test_the_file_describes_itself(trained: Callable[[str], Path], tmp_path: Path) -> None:
    import onnx

    info = export_onnx(trained("masked"), tmp_path / "p.onnx", opset=18)
    model = onnx.load(str(tmp_path / "p.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    assert (
        props["ppox.env_id"] == "PpoxToyMasked-v0"
        and '"normalize_obs": true' in props["ppox.config"]
    )
    assert "masked argmax" in model.doc_string and info.opset == 18
    assert model.opset_import[0].version == 18
    text = info.summary()
    assert "action_mask bool[batch, 5]" in text and "action int64[batch]" in text


# --------------------------------------------------------------------------------------------
# errors: one line, nothing written
# --------------------------------------------------------------------------------------------


def _one_line_error(call: Callable[[], Any], match: str) -> str:
    with pytest.raises(ExportError, match=match) as err:
        call()
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 400
    return msg


class _RenamedHead(CategoricalHead):
    """A head ppox's export does not know (a subclass may map actions differently)."""


def test_an_unknown_action_head_is_refused(tmp_path: Path) -> None:
    policy = _policy("PpoxToyMasked-v0")
    policy.model.head.__class__ = _RenamedHead
    target = tmp_path / "p.onnx"
    target.write_bytes(b"previous")
    _one_line_error(lambda: export_onnx(policy, target), r"action head _RenamedHead")
    assert target.read_bytes() == b"previous" and len(list(tmp_path.iterdir())) == 1


class _Lgamma(nn.Module):
    """An encoder with an op the ONNX exporter lacks."""

    out_features = 5

    def forward(self, x: Tensor) -> Tensor:
        return torch.lgamma(x.abs() + 1)


class _Frozen(nn.Module):
    """An encoder the tracer would freeze: a number read out of the batch becomes a constant of
    the trace, so an unchecked export would be a different model."""

    out_features = 5

    def forward(self, x: Tensor) -> Tensor:
        return x - float(x.mean())


class _ThroughNumpy(nn.Module):
    """An encoder whose output goes through NumPy: a constant (of the example's batch size) in
    a trace."""

    out_features = 5

    def forward(self, x: Tensor) -> Tensor:
        return torch.from_numpy(np.tanh(x.detach().numpy()))


@pytest.mark.parametrize(
    "encoder, match",
    [(_Lgamma, r"cannot export this policy to ONNX: .*lgamma"),
     (_Frozen, r"actions differ from Policy.predict's \(64 observations: [1-9].*not written"),
     (_ThroughNumpy, r"onnxruntime cannot run the exported graph: .*; not written")],
    ids=["missing-op", "frozen-by-the-tracer", "through-numpy"],
)  # fmt: skip
def test_a_network_that_cannot_be_exported_exactly_is_refused(
    encoder: type[nn.Module], match: str, tmp_path: Path
) -> None:
    name = f"export_test_{encoder.__name__.lower()}"
    register_encoder(name, lambda space, cfg: encoder())
    policy = _policy("PpoxToyMasked-v0", obs_encoders={"": name})
    _one_line_error(lambda: export_onnx(policy, tmp_path / "p.onnx"), match)
    assert list(tmp_path.iterdir()) == []


def test_bad_opset(tmp_path: Path) -> None:
    _one_line_error(
        lambda: export_onnx(_policy("Pendulum-v1"), tmp_path / "p.onnx", opset=3), "opset=3"
    )


def test_missing_packages_name_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = _policy("Pendulum-v1")
    export_onnx(policy, tmp_path / "p.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime → ImportError
    info = export_onnx(policy, tmp_path / "q.onnx")  # written, unchecked
    assert not info.checked and "onnxruntime is not installed" in info.check_note
    obs = np.zeros((2, 3), np.float32)
    _one_line_error(lambda: verify_onnx(tmp_path / "p.onnx", policy, obs), r"ppox\[export\]")
    monkeypatch.setitem(sys.modules, "onnx", None)
    _one_line_error(
        lambda: export_onnx(policy, tmp_path / "r.onnx"),
        r"needs onnx: pip install 'ppox\[export\]'",
    )
    assert not (tmp_path / "r.onnx").exists()


def test_a_checkpoint_naming_a_module_needs_trust_imports(
    trained: Callable[[str], Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained("masked"), run)
    state = load_checkpoint(run)
    for key in ("format", "version"):
        state.pop(key)
    state["config"]["env"]["env_id"] = "toy_envs:PpoxToyMasked-v0"  # imports tests/toy_envs.py
    save_checkpoint(state, run / "checkpoint.pt")
    with pytest.raises(ConfigError, match="trust"):
        export_onnx(run, tmp_path / "p.onnx")
    assert not (tmp_path / "p.onnx").exists()
    assert export_onnx(run, tmp_path / "p.onnx", trust_imports=True).checked


def test_the_export_command(
    trained: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ppox export RUN --onnx PATH --verify N``: writes, describes, verifies; a bad path is one
    line before anything is written."""
    from ppox.cli import main

    run = trained("masked")
    out = tmp_path / "policy.onnx"
    assert main(["export", str(run), "--onnx", str(out), "--verify", "300"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "action_mask" in text
    assert "verified on 300 observations: 0 actions differ" in text
    assert main(["export", str(run), "--onnx", str(tmp_path / "p.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ppox: error: --onnx") and not (tmp_path / "p.txt").exists()
