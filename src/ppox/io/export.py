"""ONNX export of a trained policy, verified against :meth:`ppox.io.policy.Policy.predict`
(docs/export.md).

:func:`export_onnx` writes one ONNX graph that maps what the environment emits to what it takes,
exactly as ``Policy.predict(obs, deterministic=True)`` does:

- the raw observation in (a float32 ``obs [batch, *obs_shape]`` for a Box; one input
  ``obs/<leaf path>`` per leaf, in its storage dtype, for Dict / Tuple observations);
- the run's observation normalization, frozen: ``(x − mean) / sqrt(var + eps)`` clipped to
  ``±obs_clip``, computed in float64 and rounded to float32 as ``predict`` does;
- the network, the deterministic action (the distribution's mode: the argmax of every discrete
  part, the mean of every continuous part) with an ``action_mask`` input where the action head
  takes masks (the masked argmax);
- the env mapping of the action: Box actions clipped to the space or rescaled from [-1, 1]
  (``action_bound``), discrete ``start`` offsets, multi-discrete shapes, and the parts of a
  hybrid / Dict / Tuple action as named outputs ``action/<key>``;
- for a policy with memory (``memory`` lstm / gru), the recurrent state in and out (``state``,
  ``episode_start`` → ``state_out``) with ``predict``'s reset at episode starts.

Anything it cannot reproduce (an action head it does not know, a network the tracer cannot
follow) is a one-line :class:`ExportError`, never a different model. Before the file is written
the graph is run with onnxruntime (when installed) on observations sampled from the observation
space and compared with ``predict`` (``check``); :func:`verify_onnx` does the same on
observations you give it, such as :func:`record_observations` collects from the environment.

The export uses PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``;
no ``onnxscript`` needed), which needs the ``onnx`` package; onnxruntime runs the checks. Both
come with ``pip install 'ppox[export]'``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
import io
import json
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from ppox.core.normalize import normalize
from ppox.distributions.base import ActionHead
from ppox.distributions.categorical import CategoricalHead
from ppox.distributions.composite import CompositeHead, HybridHead
from ppox.distributions.multi_categorical import JointCategoricalHead, MultiCategoricalHead
from ppox.distributions.normal import BoxBound, GaussianHead
from ppox.errors import EnvError, PpoxError
from ppox.io.checkpoint import save_atomic
from ppox.io.policy import Policy, load_policy
from ppox.training.normalizers import ObsNormalizer
from ppox.types import MASK_KEY, nest_join, nest_map

__all__ = [
    "DEFAULT_OPSET",
    "ExportError",
    "ExportInfo",
    "Recording",
    "TensorSpec",
    "VerifyResult",
    "export_onnx",
    "onnx_feed",
    "record_observations",
    "verify_onnx",
]

DEFAULT_OPSET = 17
"""ONNX opset written unless ``opset`` says otherwise (every onnxruntime ≥ 1.18 runs it)."""
BATCH = "batch"
"""Name of the dynamic leading axis of every input and output."""
_EPS = float(inspect.signature(normalize).parameters["eps"].default)
"""The ``eps`` of :func:`ppox.core.normalize.normalize`, as ``ObsNormalizer`` applies it."""
CHECK_SAMPLES = 64
"""Observations the export's own check compares (recurrent: 8 envs × 8 steps)."""
CHECK_ATOL = CHECK_RTOL = 1e-5
"""Tolerance of float actions in the checks: ``|onnx − predict| ≤ atol + rtol·|predict|``."""


class ExportError(PpoxError):
    """The policy cannot be exported exactly (or its export does not match ``predict``)."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the exported graph."""

    name: str
    shape: tuple[int | str, ...]
    """Dimensions; the leading one is ``"batch"`` (any size)."""
    dtype: str
    """NumPy dtype name: ``float32``, ``int64``, ``bool``, ``uint8``, ``int8``."""
    doc: str

    def __str__(self) -> str:
        dims = ", ".join(map(str, self.shape))
        return f"{self.name} {self.dtype}[{dims}]: {self.doc}"


@dataclass(frozen=True)
class ExportInfo:
    """What :func:`export_onnx` wrote."""

    path: Path
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    baked_in: tuple[str, ...]
    """What the graph does besides the network, in words."""
    recurrent: bool
    checked: bool
    """Whether the graph was compared with ``Policy.predict`` before it was written."""
    check_note: str
    """The check's result, or why it was skipped."""

    def summary(self) -> str:
        """A few lines for a terminal: the file, its inputs, outputs and what is baked in."""
        lines = [f"wrote {self.path} (ONNX opset {self.opset})", "inputs:"]
        lines += [f"  {s}" for s in self.inputs]
        lines += ["outputs:"] + [f"  {s}" for s in self.outputs]
        lines += ["baked in:"] + [f"  {b}" for b in self.baked_in]
        lines.append(f"checked: {self.check_note}")
        return "\n".join(lines)


@dataclass(frozen=True)
class VerifyResult:
    """How an exported graph's actions compare with ``Policy.predict``'s."""

    n: int
    """Observations compared."""
    mismatches: int
    """Observations whose action differs: any integer part, or a float part by more than
    ``atol + rtol·|predict|``."""
    max_abs_diff: float
    """Largest ``|onnx − predict|`` over the float parts of the actions (0.0 when none)."""
    max_state_diff: float | None = None
    """Largest difference of the recurrent states after each step (None without memory)."""

    @property
    def ok(self) -> bool:
        """No observation got a different action."""
        return self.mismatches == 0

    def __str__(self) -> str:
        state = "" if self.max_state_diff is None else f", max state diff {self.max_state_diff:.3g}"
        return (
            f"{self.n} observations: {self.mismatches} different actions, "
            f"max |onnx - predict| {self.max_abs_diff:.3g}{state}"
        )


@dataclass(frozen=True)
class Recording:
    """Observations met by a policy acting in its environment (:func:`record_observations`)."""

    obs: Any
    """A batch ``[n, …]`` in the env's own form (an array, or dicts / tuples of arrays)."""
    masks: np.ndarray | None
    """``[n, mask_size]`` flat bool masks as the action head reads them (all True where the env
    gave none), or None when the head takes no mask or the observation carries it."""
    episode_starts: np.ndarray
    """``[n]`` bool: the observation begins an episode (one env, in order)."""


# --------------------------------------------------------------------------------------------
# The env mapping of an action, as torch modules (ActionHead.to_env)
# --------------------------------------------------------------------------------------------


class _ToEnv(nn.Module, ABC):
    """The stored action ``[B, *action_shape]`` → the env's arrays, one output each."""

    specs: list[TensorSpec]
    notes: list[str]

    @abstractmethod
    def outputs(self, action: Tensor) -> list[Tensor]:
        """The env's arrays of a batch of stored actions, in :attr:`specs`' order."""


class _Discrete(_ToEnv):
    def __init__(self, head: CategoricalHead, name: str) -> None:
        super().__init__()
        self.start = int(head.start)
        n = head.logits.out_features
        self.specs = [TensorSpec(name, (BATCH,), "int64", f"Discrete({n}) action")]
        self.notes = [f"{name}: argmax offset by start={self.start}"] if self.start else []

    def outputs(self, action: Tensor) -> list[Tensor]:
        return [action + self.start if self.start else action]


class _Bound(nn.Module):
    """:class:`ppox.distributions.normal.BoxBound` in torch, operation for operation."""

    low: Tensor
    high: Tensor
    span: Tensor

    def __init__(self, bound: BoxBound) -> None:
        super().__init__()
        self.mode = bound.mode
        self.register_buffer("low", torch.from_numpy(bound.low.copy()))
        self.register_buffer("high", torch.from_numpy(bound.high.copy()))
        self.register_buffer("span", torch.from_numpy(bound.high - bound.low))

    def forward(self, action: Tensor) -> Tensor:
        if self.mode == "rescale":
            unit = action.clamp(-1.0, 1.0)
            return self.low + (unit + 1.0) * 0.5 * self.span
        return torch.minimum(torch.maximum(action, self.low), self.high)  # np.clip's order

    def note(self, name: str) -> str:
        if self.mode == "rescale":
            return (
                f"{name}: clipped to [-1, 1] and rescaled to the Box bounds (action_bound=rescale)"
            )
        return f"{name}: clipped to the Box bounds (action_bound=clip)"


class _Box(_ToEnv):
    def __init__(self, head: GaussianHead, name: str) -> None:
        super().__init__()
        self.bound = _Bound(head.bound)
        d = head.action_shape[0]
        self.specs = [TensorSpec(name, (BATCH, d), "float32", f"Box({d}) action (the mean)")]
        self.notes = [self.bound.note(name)]

    def outputs(self, action: Tensor) -> list[Tensor]:
        return [self.bound(action)]


class _MultiDiscrete(_ToEnv):
    """Both multi-discrete heads: the factored argmax, or the joint index unravelled."""

    start: Tensor

    def __init__(self, head: MultiCategoricalHead | JointCategoricalHead, name: str) -> None:
        super().__init__()
        self.joint = isinstance(head, JointCategoricalHead)
        self.nvec = [int(n) for n in head.nvec]
        self.offset = bool(head.start.any())
        self.register_buffer("start", torch.from_numpy(head.start.astype(np.int64)))
        self.env_shape = tuple(int(s) for s in head.env_shape)
        kind = "joint categorical" if self.joint else "factored"
        self.specs = [
            TensorSpec(name, (BATCH, *self.env_shape), "int64", f"MultiDiscrete {self.nvec}")
        ]
        self.notes = [f"{name}: {kind} argmax" + (" offset by start" if self.offset else "")]

    def outputs(self, action: Tensor) -> list[Tensor]:
        if self.joint:  # np.unravel_index, row-major
            parts, rest = [], action
            for n in reversed(self.nvec):
                parts.append(torch.remainder(rest, n))
                rest = torch.div(rest, n, rounding_mode="floor")
            out = torch.stack(parts[::-1], dim=-1) + self.start
        else:
            out = action + self.start if self.offset else action
        return [out.reshape(-1, *self.env_shape)]


class _Hybrid(_ToEnv):
    def __init__(self, head: HybridHead, name: str) -> None:
        super().__init__()
        self.start, self.type_index = int(head.start), head.type_index
        self.bound = _Bound(head.bound)
        type_name, param_name = (f"{name}/{k}" for k in _order(head.keys, head.type_index))
        type_spec = TensorSpec(type_name, (BATCH,), "int64", f"hybrid action type (K={head.K})")
        param_spec = TensorSpec(param_name, (BATCH, head.P), "float32", "its parameters (Box)")
        self.specs = [type_spec, param_spec] if head.type_index == 0 else [param_spec, type_spec]
        self.notes = [
            f"{type_name}: argmax over the types"
            + (f" offset by start={self.start}" if self.start else ""),
            self.bound.note(param_name) + f", the mean (hybrid_mode={head.mode_})",
        ]

    def outputs(self, action: Tensor) -> list[Tensor]:
        k = action[:, 0].to(torch.int64)
        k = k + self.start if self.start else k
        x = self.bound(action[:, 1:])
        return [k, x] if self.type_index == 0 else [x, k]


class _Composite(_ToEnv):
    def __init__(self, head: CompositeHead, name: str) -> None:
        super().__init__()
        self.parts = nn.ModuleList(
            _to_env(child, f"{name}/{key}") for key, child in zip(head.keys, head.children_)
        )
        self.slices = [(sl.start, sl.stop) for sl in head.layout.slices]
        self.shapes = [tuple(c.action_shape) for c in head.children_]
        self.dtypes = [
            torch.float32 if c.action_dtype.is_floating_point else torch.int64
            for c in head.children_
        ]
        self.specs = [s for p in self._parts() for s in p.specs]
        self.notes = [n for p in self._parts() for n in p.notes]

    def _parts(self) -> list[_ToEnv]:
        return [p for p in self.parts if isinstance(p, _ToEnv)]

    def outputs(self, action: Tensor) -> list[Tensor]:
        out: list[Tensor] = []
        for part, (a, b), shape, dtype in zip(self._parts(), self.slices, self.shapes, self.dtypes):
            out += part.outputs(action[:, a:b].reshape(-1, *shape).to(dtype))
        return out


def _order(keys: list[str], type_index: int) -> tuple[str, str]:
    """``(type key, parameter key)`` of a hybrid space."""
    return keys[type_index], keys[1 - type_index]


_HEADS: dict[type, type[_ToEnv]] = {
    CategoricalHead: _Discrete,
    GaussianHead: _Box,
    MultiCategoricalHead: _MultiDiscrete,
    JointCategoricalHead: _MultiDiscrete,
    HybridHead: _Hybrid,
    CompositeHead: _Composite,
}


def _to_env(head: nn.Module, name: str) -> _ToEnv:
    """The torch twin of ``head.to_env`` (exact class only: a subclass may map differently)."""
    builder = _HEADS.get(type(head))
    if builder is None:
        raise ExportError(
            f"cannot export the action head {type(head).__name__} to ONNX (exported: "
            f"{', '.join(sorted(t.__name__ for t in _HEADS))}); its env mapping is unknown"
        )
    return builder(head, name)  # type: ignore[call-arg]


# --------------------------------------------------------------------------------------------
# The exported module
# --------------------------------------------------------------------------------------------


class _Leaf(nn.Module):
    """One observation input and its frozen normalization (float64, as ``ObsNormalizer``)."""

    mean: Tensor
    std: Tensor

    def __init__(self, norm: ObsNormalizer | None) -> None:
        super().__init__()
        self.normalized = norm is not None and norm.enabled and not norm.passthrough
        self.clip, self.rare = 0.0, 0
        if norm is not None and self.normalized:
            centre, scale = norm.affine()  # what the normalizer itself computes with
            self.register_buffer("mean", torch.from_numpy(np.asarray(centre, np.float64)))
            self.register_buffer("std", torch.from_numpy(np.asarray(scale, np.float64)))
            self.clip, self.count = float(norm.clip), float(norm.moments.count)
            rare = norm.rare()
            self.rare = 0 if rare is None else int(np.count_nonzero(rare))

    def forward(self, x: Tensor) -> Tensor:
        if not self.normalized:
            return x
        out = (x.to(torch.float64) - self.mean) / self.std
        return out.clamp(-self.clip, self.clip).to(torch.float32)


class _Exported(nn.Module):
    """``(*obs leaves, [action_mask], [state, episode_start])`` → ``(*action parts,
    [state_out])``: ``Policy.predict(obs, deterministic=True)`` as one traceable module."""

    def __init__(self, policy: Policy, with_mask: bool) -> None:
        super().__init__()
        self.model = copy.deepcopy(policy.model).cpu().eval()
        layout = self.model.obs_layout
        self.structured = layout.structured
        self.paths = list(layout.leaves)
        norm = policy.obs_norm
        if self.structured:
            leaves = norm.leaves or {}
            self.leaves = nn.ModuleList(_Leaf(leaves.get(p)) for p in self.paths)
        else:
            self.leaves = nn.ModuleList([_Leaf(None if norm.passthrough else norm)])
        head = self.model.head
        self.with_mask = with_mask and head.mask_shape is not None
        self.recurrent = self.model.memory is not None
        self.to_env = _to_env(head, "action")

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        n = len(self.paths)
        xs = [leaf(x) for leaf, x in zip(self.leaves, inputs[:n])]
        obs: Any = dict(zip(self.paths, xs)) if self.structured else xs[0]
        rest = list(inputs[n:])
        mask = rest.pop(0) if self.with_mask else None
        if self.recurrent:
            dist, _, state = self.model.step(obs, mask, rest[0], rest[1])
        else:
            dist = self.model.dist(obs, mask)
        outs = self.to_env.outputs(dist.mode())
        return (*outs, state) if self.recurrent else tuple(outs)

    def input_specs(self) -> list[TensorSpec]:
        layout = self.model.obs_layout
        specs = []
        for path, leaf_mod in zip(self.paths, self.leaves):
            leaf = layout.leaves[path]
            name = f"obs/{path}" if self.structured else "obs"
            assert isinstance(leaf_mod, _Leaf)
            norm = "normalized inside" if leaf_mod.normalized else "used as given"
            doc = f"raw {leaf.kind} observation ({norm})"
            specs.append(TensorSpec(name, (BATCH, *leaf.shape), leaf.dtype.name, doc))
        head = self.model.head
        if self.with_mask:
            doc = "True = legal; the head's flat mask (all True: no mask)"
            specs.append(TensorSpec("action_mask", (BATCH, head.mask_size), "bool", doc))
        if self.recurrent:
            d = self.model.state_size
            specs.append(TensorSpec("state", (BATCH, d), "float32", _state_doc(self.model)))
            doc = "True where an episode begins (the state is reset to zeros first)"
            specs.append(TensorSpec("episode_start", (BATCH,), "bool", doc))
        return specs

    def output_specs(self) -> list[TensorSpec]:
        specs = list(self.to_env.specs)
        if self.recurrent:
            doc = "the state to pass back as `state` with the next observation"
            specs.append(TensorSpec("state_out", (BATCH, self.model.state_size), "float32", doc))
        return specs

    def baked_in(self) -> list[str]:
        notes = []
        for path, leaf in zip(self.paths, self.leaves):
            assert isinstance(leaf, _Leaf)
            where = f"obs/{path}" if self.structured else "obs"
            if leaf.normalized:
                notes.append(
                    f"{where}: observation normalization frozen at {leaf.count:.0f} observations "
                    f"((x - mean) / sqrt(var + {_EPS:g}) in float64, clipped to ±{leaf.clip:g}"
                    + (
                        f"; {leaf.rare} rarely non-zero entries divided by the root mean square of "
                        "their non-zero values, not centred)"
                        if leaf.rare
                        else ")"
                    )
                )
        if not any(isinstance(x, _Leaf) and x.normalized for x in self.leaves):
            notes.append("no observation normalization (normalize_obs off, or no vector leaves)")
        notes.append("the deterministic action: the mode of the policy's distribution")
        if self.with_mask:
            notes.append("action_mask: masked argmax (masked logits set to the lowest float32)")
        elif self.model.head.mask_shape is not None:
            notes.append("no action_mask input (mask=False, or the env gives none): all legal")
        notes += self.to_env.notes
        if self.recurrent:
            notes.append(f"recurrent state: {_state_doc(self.model)}; reset at episode_start")
        return notes


def _state_doc(model: nn.Module) -> str:
    """The flat state's layout: each core's h (and c) side by side."""
    memory = getattr(model, "memory", None)
    parts = []
    for name, core in (memory or {}).items():
        pieces = "h, c" if core.kind == "lstm" else "h"
        parts.append(f"{name} {core.kind} ({pieces}, {core.size} each)")
    return "[" + "; ".join(parts) + "] side by side"


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def export_onnx(
    run_dir_or_policy: str | Path | Policy,
    path: str | Path,
    *,
    opset: int | None = None,
    trust_imports: bool = False,
    mask: bool | None = None,
    check: bool = True,
) -> ExportInfo:
    """Write the policy of a run directory (or checkpoint, or a loaded :class:`Policy`) to
    ``path`` as an ONNX graph that returns ``Policy.predict(obs, deterministic=True)``'s action.

    Args:
        run_dir_or_policy: a run directory, a ``checkpoint.pt``, or a :class:`Policy`.
        path: the ``.onnx`` file to write (atomically: a temporary file, then a rename).
        opset: the ONNX opset (default :data:`DEFAULT_OPSET`).
        trust_imports: let the checkpoint's config import the module it names (docs/trust.md).
        mask: whether the graph has an ``action_mask`` input (the action head must take masks).
            None: when the environment gives masks (``info["action_mask"]`` at a reset, or an
            ``action_mask`` observation key); False: no input, every action legal.
        check: before writing, run the graph with onnxruntime (when it is installed) on
            observations sampled from the observation space (and random legal masks, and
            episodes of 8 steps for a recurrent policy) and compare with ``predict``.

    Returns:
        the :class:`ExportInfo` (names, shapes and dtypes of the inputs and outputs).

    Raises:
        ExportError: the policy holds something the export cannot reproduce exactly, or the
            check found a different action; nothing is written then.
    """
    policy = _policy(run_dir_or_policy, trust_imports)
    if opset is not None and not 9 <= opset <= 30:
        raise ExportError(f"opset={opset} is not an ONNX opset this exporter writes (9-30)")
    module = _Exported(policy, _with_mask(policy, mask))
    inputs, outputs = module.input_specs(), module.output_specs()
    steps = _samples(policy, module.recurrent, module.with_mask)
    example = _example(policy, steps[0], inputs)
    data = _trace(module, example, inputs, outputs, opset or DEFAULT_OPSET)
    baked_in = module.baked_in()
    data = _annotate(data, policy, baked_in)
    checked, note = False, "skipped (check=False)"
    if check and not _has_onnxruntime():
        note = "skipped: onnxruntime is not installed (pip install 'ppox[export]')"
    elif check:
        try:
            result = _compare(_session(data), policy, steps, CHECK_ATOL, CHECK_RTOL)
        except ExportError as exc:
            raise ExportError(f"{exc}; not written") from None
        if not result.ok:
            raise ExportError(
                f"the exported graph's actions differ from Policy.predict's ({result}); not written"
            )
        checked, note = True, f"{result} (sampled from the observation space; onnxruntime)"
    target = Path(path)
    save_atomic(data, target)
    return ExportInfo(
        path=target,
        opset=opset or DEFAULT_OPSET,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        baked_in=tuple(baked_in),
        recurrent=module.recurrent,
        checked=checked,
        check_note=note,
    )


def _with_mask(policy: Policy, mask: bool | None) -> bool:
    """Whether the exported graph takes an ``action_mask`` (see :func:`export_onnx`)."""
    head = policy.model.head
    if head.mask_shape is None:
        if mask:
            raise ExportError(f"mask=True, but the action head {type(head).__name__} takes no mask")
        return False
    if mask is not None:
        return mask
    if policy.model.obs_layout.mask_in_obs:
        return True
    from ppox.envs.make import make_env  # the env registry only when it is needed

    env = make_env(policy.config.env)
    try:
        _, info = env.reset(seed=0)
    finally:
        env.close()
    return MASK_KEY in info


def _policy(source: str | Path | Policy, trust_imports: bool) -> Policy:
    if isinstance(source, Policy):
        return source
    return load_policy(source, "cpu", trust_imports=trust_imports)


def _trace(
    module: _Exported,
    example: tuple[Tensor, ...],
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    opset: int,
) -> bytes:
    """The ONNX bytes of ``module`` traced on ``example`` (every leading axis dynamic)."""
    _require("onnx", "exporting a policy to ONNX")
    names = [s.name for s in inputs] + [s.name for s in outputs]
    buf = io.BytesIO()
    try:
        quiet = io.StringIO()  # the exporter prints its graph when it fails
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
            torch.onnx.export(
                module,
                example,
                buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects
                dynamo=False,
                opset_version=opset,
                input_names=[s.name for s in inputs],
                output_names=[s.name for s in outputs],
                dynamic_axes={n: {0: BATCH} for n in names},
                do_constant_folding=True,
            )
    except PpoxError:
        raise
    except Exception as exc:  # an op or a custom module the exporter cannot write
        raise ExportError(
            f"cannot export this policy to ONNX: {type(exc).__name__}: {_line(exc)}"
        ) from None
    return buf.getvalue()


def _annotate(data: bytes, policy: Policy, baked_in: list[str]) -> bytes:
    """The graph checked by ``onnx.checker`` and described in its metadata: ``doc_string`` (what
    is baked in) and ``metadata_props`` ``ppox.env_id``, ``ppox.config`` (the run's config)."""
    onnx = _require("onnx", "exporting a policy to ONNX")
    model = onnx.load_from_string(data)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ExportError(f"the exported graph is not valid ONNX: {_line(exc)}") from None
    model.producer_name = "ppox"
    model.doc_string = "Policy.predict(obs, deterministic=True) of a ppox run: " + "; ".join(
        baked_in
    )
    props = {
        "ppox.env_id": policy.config.env.env_id,
        "ppox.config": json.dumps(policy.config.to_dict(), default=str),
    }
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return bytes(model.SerializeToString())


def _require(module: str, what: str) -> Any:
    """Import ``module`` (an optional dependency) or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"{what} needs {module}: pip install 'ppox[export]'") from None


def _line(exc: BaseException) -> str:
    """An exception's message on one line (its first non-empty line, shortened)."""
    lines = [s.strip() for s in str(exc).splitlines() if s.strip()]
    text = lines[0] if lines else "no message"
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------------------------
# Observations, masks and the comparison with predict
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    """One call of both models: a batch of env observations, its raw masks, its starts."""

    obs: Any
    masks: np.ndarray | None
    starts: np.ndarray | None


def onnx_feed(
    policy: Policy,
    obs: Any,
    mask: Any = None,
    *,
    state: np.ndarray | None = None,
    episode_start: np.ndarray | None = None,
    input_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """The exported graph's inputs for a batch of env observations ``obs`` (``[B, …]``, in the
    env's form), as ``predict`` reads them: leaves in their storage dtypes, ``mask`` (what the
    env put in ``info["action_mask"]``, or the observation's ``action_mask`` key) as the head's
    flat bool mask (all True when None), and for a recurrent policy ``state`` (zeros when None)
    and ``episode_start`` (all True when ``state`` is None, else all False when None).
    ``input_names`` (the session's) drops the ``action_mask`` a graph exported without it lacks.
    """
    model = policy.model
    layout = model.obs_layout
    x = layout.flatten(obs)
    if layout.structured:
        assert isinstance(x, dict)
        feed = {f"obs/{p}": np.ascontiguousarray(v) for p, v in x.items()}
        if layout.mask_in_obs:
            mask = obs[MASK_KEY]
    else:
        assert isinstance(x, np.ndarray)
        feed = {"obs": np.ascontiguousarray(x)}
    n = next(iter(feed.values())).shape[0]
    head = model.head
    if head.mask_shape is not None and (input_names is None or "action_mask" in input_names):
        flat = np.ones((n, head.mask_size), bool) if mask is None else head.read_mask(mask, n)
        feed["action_mask"] = flat
    if model.memory is not None:
        fresh = state is None
        h = np.zeros((n, model.state_size), np.float32) if state is None else state
        begin = np.full(n, fresh) if episode_start is None else episode_start
        feed["state"] = np.asarray(h, np.float32).reshape(n, model.state_size)
        feed["episode_start"] = np.asarray(begin, bool).reshape(n)
    return feed


def _flat_action(action: Any, name: str = "action") -> dict[str, np.ndarray]:
    """``predict``'s action (an array, or tuples / dicts of them) → output name → array."""
    if isinstance(action, dict):
        return {
            k: v for key, a in action.items() for k, v in _flat_action(a, f"{name}/{key}").items()
        }
    if isinstance(action, tuple):
        return {
            k: v for i, a in enumerate(action) for k, v in _flat_action(a, f"{name}/{i}").items()
        }
    return {name: np.asarray(action)}


def _compare(
    session: Any, policy: Policy, steps: list[_Step], atol: float, rtol: float
) -> VerifyResult:
    """Run ``steps`` through both models (a recurrent one carrying each model's own state from
    step to step) and count the observations whose actions differ."""
    names = [o.name for o in session.get_outputs()]
    input_names = [i.name for i in session.get_inputs()]
    recurrent = policy.model.memory is not None
    state_ref: np.ndarray | None = None
    state_onnx: np.ndarray | None = None
    n = mismatches = 0
    max_diff, max_state = 0.0, 0.0
    for step in steps:
        feed = onnx_feed(policy, step.obs, step.masks, state=state_onnx,
                         episode_start=step.starts, input_names=input_names)  # fmt: skip
        feed = {k: v for k, v in feed.items() if k in input_names}  # a pruned input is absent
        try:
            got = dict(zip(names, session.run(None, feed)))
        except Exception as exc:  # e.g. a shape the tracer froze
            raise ExportError(f"onnxruntime cannot run the exported graph: {_line(exc)}") from None
        if recurrent:
            ref, state_ref = policy.predict(step.obs, mask=step.masks, state=state_ref,
                                            episode_start=step.starts)  # fmt: skip
            state_onnx = got.pop("state_out")
            assert state_ref is not None
            max_state = max(max_state, float(np.abs(state_onnx - state_ref).max(initial=0.0)))
        else:
            ref = policy.predict(step.obs, mask=step.masks)
        expected = _flat_action(ref)
        if set(expected) != set(got):
            raise ExportError(
                f"the graph's outputs {sorted(got)} are not predict's action parts {sorted(expected)}"
            )
        rows = len(next(iter(expected.values())))
        bad = np.zeros(rows, bool)
        for key, want in expected.items():
            have = got[key].reshape(want.shape)
            if np.issubdtype(want.dtype, np.floating):
                diff = np.abs(have.astype(np.float64) - want).reshape(rows, -1)
                max_diff = max(max_diff, float(diff.max(initial=0.0)))
                tol = atol + rtol * np.abs(want).reshape(rows, -1)
                bad |= ~(diff <= tol).all(1)
            else:
                bad |= (have != want).reshape(rows, -1).any(1) | (have.dtype != want.dtype)
        n += rows
        mismatches += int(bad.sum())
    return VerifyResult(n, mismatches, max_diff, max_state if recurrent else None)


def _rng_space(space: spaces.Space, seed: int) -> spaces.Space:
    out = copy.deepcopy(space)
    out.seed(seed)
    return out


def _stack(items: list[Any]) -> Any:
    """Single nested observations (or masks) → one batch with a leading axis on every leaf."""
    return nest_join(lambda leaves: np.stack([np.asarray(x) for x in leaves]), items)


def _take(batch: Any, idx: int | slice | np.ndarray) -> Any:
    """The rows ``idx`` of every leaf of a nested batch."""
    return nest_map(lambda a: np.asarray(a)[idx], batch)


def _legal_masks(head: ActionHead, n: int, rng: np.random.Generator) -> np.ndarray:
    """``[n, mask_size]`` random flat masks the head accepts (rows that leave nothing legal
    become all True; a fifth are all True, the no-mask case)."""
    masks = rng.random((n, head.mask_size)) < 0.6
    masks[rng.random(n) < 0.2] = True
    for i in range(n):
        try:
            head.check_mask(masks[i : i + 1])
        except EnvError:
            masks[i] = True
    return masks


def _samples(policy: Policy, recurrent: bool, with_mask: bool) -> list[_Step]:
    """The export's check: observations sampled from the space (seeded), random legal masks
    (all True for a graph without a mask input); a recurrent policy gets 8 steps of 8 envs with
    random episode starts."""
    layout = policy.model.obs_layout
    head = policy.model.head
    space = _rng_space(layout.space, 0)
    rng = np.random.default_rng(0)
    shape = (8, 8) if recurrent else (1, CHECK_SAMPLES)
    steps = []
    for t in range(shape[0]):
        obs = _stack([space.sample() for _ in range(shape[1])])
        masks = _legal_masks(head, shape[1], rng) if with_mask else None
        if layout.mask_in_obs:
            legal = np.ones((shape[1], head.mask_size), bool)
            obs[MASK_KEY], masks = legal if masks is None else masks, None
        starts = (rng.random(shape[1]) < 0.2) | (t == 0) if recurrent else None
        steps.append(_Step(obs, masks, starts))
    return steps


def _example(policy: Policy, step: _Step, inputs: list[TensorSpec]) -> tuple[Tensor, ...]:
    """The tracer's example inputs: the first two rows of a check batch."""
    two = _Step(_take(step.obs, slice(0, 2)), None, None)
    if step.masks is not None:
        two = _Step(two.obs, step.masks[:2], None)
    names = [s.name for s in inputs]
    feed = onnx_feed(policy, two.obs, two.masks, input_names=names)
    return tuple(torch.from_numpy(np.ascontiguousarray(feed[s])) for s in names)


# --------------------------------------------------------------------------------------------
# onnxruntime: verification
# --------------------------------------------------------------------------------------------


def _has_onnxruntime() -> bool:
    try:
        importlib.import_module("onnxruntime")
    except ImportError:
        return False
    return True


def _session(model: bytes | str | Path) -> Any:
    """An onnxruntime CPU session (one thread: the graphs are tiny)."""
    ort = _require("onnxruntime", "running an ONNX policy")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        what = source if isinstance(source, str) else "the graph"
        raise ExportError(f"onnxruntime cannot load {what}: {_line(exc)}") from None


def verify_onnx(
    path: str | Path,
    policy: Policy | str | Path,
    observations: Any,
    masks: Any = None,
    *,
    episode_starts: Any = None,
    atol: float = CHECK_ATOL,
    rtol: float = CHECK_RTOL,
    trust_imports: bool = False,
) -> VerifyResult:
    """Run the ONNX graph at ``path`` with onnxruntime on ``observations`` and compare its
    actions with ``policy.predict(obs, deterministic=True, mask=…)``.

    ``observations`` is a batch ``[n, …]`` in the env's form (:attr:`Recording.obs`), ``masks``
    the matching masks (the env's ``info["action_mask"]`` batched, or the flat
    :attr:`Recording.masks`; None: no mask). A policy without memory is compared on the whole
    batch at once; a recurrent one steps through the batch as ``n`` consecutive steps of one
    env, each model carrying its own state, with ``episode_starts`` ``[n]`` bool (default: only
    the first). Float actions count as equal within ``atol + rtol·|predict|``; integer actions
    must be equal.
    """
    pol = _policy(policy, trust_imports)
    session = _session(path)
    first = next(iter(_leaves(observations)))
    n = int(np.shape(first)[0])
    if pol.model.memory is None:
        steps = [_Step(observations, masks, None)]
    else:
        starts = np.zeros(n, bool) if episode_starts is None else np.asarray(episode_starts, bool)
        if episode_starts is None:
            starts[0] = True
        steps = [
            _Step(_take(observations, slice(i, i + 1)),
                  None if masks is None else _take(masks, slice(i, i + 1)), starts[i : i + 1])
            for i in range(n)
        ]  # fmt: skip
    return _compare(session, pol, steps, atol, rtol)


def _leaves(batch: Any) -> list[Any]:
    if isinstance(batch, dict):
        return [x for v in batch.values() for x in _leaves(v)]
    if isinstance(batch, tuple):
        return [x for v in batch for x in _leaves(v)]
    return [batch]


def record_observations(policy: Policy, n: int, *, seed: int = 0) -> Recording:
    """``n`` observations met by ``policy`` acting deterministically in one env of its run's
    config (``reset(seed=seed)``, then new episodes as they end), with the masks the env gave
    and where episodes begin: the input :func:`verify_onnx` compares on."""
    from ppox.envs.make import make_env  # the env registry only when recording

    env = make_env(policy.config.env, evaluation=True)
    head = policy.model.head
    layout = policy.model.obs_layout
    takes_mask = head.mask_shape is not None and not layout.mask_in_obs
    obs_list: list[Any] = []
    masks: list[np.ndarray] = []
    starts = np.zeros(n, bool)
    state = None
    try:
        obs, info = env.reset(seed=seed)
        starts[0] = True
        for i in range(n):
            raw = info.get(MASK_KEY) if takes_mask else None
            flat = head.read_mask(_stack([raw]), 1)[0] if raw is not None else None
            obs_list.append(obs)
            if takes_mask:
                masks.append(np.ones(head.mask_size, bool) if flat is None else flat)
            batch = _stack([obs])
            m = None if flat is None else flat[None]
            if policy.model.memory is not None:
                action, state = policy.predict(batch, mask=m, state=state,
                                               episode_start=starts[i : i + 1])  # fmt: skip
            else:
                action = policy.predict(batch, mask=m)
            obs, _, terminated, truncated, info = env.step(_take(action, 0))
            if (terminated or truncated) and i + 1 < n:
                obs, info = env.reset()
                starts[i + 1] = True
    finally:
        env.close()
    return Recording(_stack(obs_list), np.stack(masks) if takes_mask else None, starts)
