"""Saving and restoring the exact state of a running environment, as plain data.

A snapshot never holds code or objects: it is nested dicts and lists of numbers, strings,
bools, None and NumPy arrays written as ``(dtype, shape, bytes)``, so the checkpoint that
carries it loads with ``torch.load(weights_only=True)`` and nothing in it can run anything.

:func:`get_state` walks the wrapper chain down to the unwrapped env and captures, layer by
layer, every instance attribute that is plain data (recursively: lists, tuples, dicts, deques,
NumPy arrays and scalars, NumPy generators by their bit generator's state, NumPy's legacy
``RandomState`` by its MT19937 state, and the objects of :data:`NESTED_MODULES` attribute by
attribute, restored into the fresh env's object of the same class). A documented set of
attributes is left out because a freshly made env of the same config already has them right
(:data:`STATIC_NAMES`; spaces, whose RNG state alone is kept; the ``EnvSpec``; renderers;
MuJoCo's ``model`` and ``data``, whose dynamic state is saved with ``mj_getState`` over the full
integration state, warm start included). An env holding any other object (a Box2D world, a
running simulator, a function) cannot be snapshotted: :func:`get_state` returns None and the
collector restarts that env's episodes on resume and says so.

:func:`set_state` writes the values back into a freshly made env of the same config: it checks
that the wrapper chain has the same classes layer by layer, decodes everything first (arrays
only of numeric dtypes, NumPy generators only of the bit generators NumPy ships, looked up by
name, never imported) and only then writes, so a snapshot that does not fit changes nothing
and is answered with False.
"""

from __future__ import annotations

import collections
import math
import re
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

FORMAT = "ppox-env-snapshot"
VERSION = 1

STATIC_NAMES = frozenset({"metadata", "_metadata", "_cached_spec", "spec"})
"""Attribute names left out of every layer: the env's static description (render modes, fps,
its registration), which the freshly made env already has."""
NESTED_MODULES = ("minatar.environments.",)
"""Modules whose objects an env may hold and a snapshot captures attribute by attribute (their
state is plain data): MinAtar's games (:mod:`ppox.envs.minatar`)."""
_RENDER_MODULES = ("pygame", "gymnasium.envs.mujoco.mujoco_rendering")
"""Renderer objects (windows, clocks, MuJoCo's renderer) are left out: render-only, rebuilt lazily."""
_BIT_GENERATORS: dict[str, type[np.random.BitGenerator]] = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "MT19937": np.random.MT19937,
    "Philox": np.random.Philox,
    "SFC64": np.random.SFC64,
}
"""The bit generators a snapshot may name (NumPy's own); anything else is refused."""
_DTYPE = re.compile(r"^[<>|=][biufcSU][0-9]{1,4}$")
"""Array dtypes a snapshot may hold: booleans, integers, floats and complex numbers only."""
_TAG = "__ppox__"
_MAX_DEPTH = 32


class SnapshotError(ValueError):
    """A value that cannot go into a snapshot, or a snapshot that does not fit the env."""


# --- encoding ------------------------------------------------------------------------------------
def _encode(value: Any, depth: int = 0) -> Any:
    """``value`` as plain data (see the module docstring); raises :class:`SnapshotError`."""
    if depth > _MAX_DEPTH:
        raise SnapshotError("nested too deeply")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, np.ndarray) and type(value) is np.ndarray:
        return _encode_array(value)
    if isinstance(value, np.generic):
        return {_TAG: "scalar", **_encode_array(np.asarray(value))}
    if isinstance(value, np.random.Generator):
        return {_TAG: "generator", "state": _encode(value.bit_generator.state, depth + 1)}
    if type(value) is np.random.RandomState:
        return {_TAG: "random_state", "state": _encode(value.get_state(legacy=False), depth + 1)}
    if type(value) is list:
        return [_encode(v, depth + 1) for v in value]
    if type(value) is tuple:
        return {_TAG: "tuple", "items": [_encode(v, depth + 1) for v in value]}
    if type(value) is dict:
        items = [[_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in value.items()]
        return {_TAG: "dict", "items": items}
    if type(value) is collections.deque:
        items = [_encode(v, depth + 1) for v in value]
        return {_TAG: "deque", "maxlen": value.maxlen, "items": items}
    raise SnapshotError(f"a {type(value).__module__}.{type(value).__qualname__} is not plain data")


def _encode_array(a: np.ndarray) -> dict[str, Any]:
    if not _DTYPE.match(a.dtype.str):
        raise SnapshotError(f"an array of dtype {a.dtype} is not plain data")
    return {
        _TAG: "array",
        "dtype": a.dtype.str,
        "shape": list(a.shape),
        "data": np.ascontiguousarray(a).tobytes(),
    }


def _space_rngs(space: gym.spaces.Space) -> Any:
    """The RNG state of a space (and of the parts of a Tuple / Dict space), or None if unused."""
    rng = space._np_random  # noqa: SLF001  (None until the space is seeded or sampled)
    parts = [_space_rngs(s) for s in _subspaces(space)]
    if rng is None and all(p is None for p in parts):
        return None
    return {
        _TAG: "space",
        "rng": None if rng is None else _encode(rng),
        "parts": parts,
    }


def _subspaces(space: gym.spaces.Space) -> list[gym.spaces.Space]:
    """The parts of a Tuple or Dict space (each has its own RNG); none for other spaces."""
    if isinstance(space, gym.spaces.Dict):
        return list(space.spaces.values())
    if isinstance(space, gym.spaces.Tuple):
        return list(space.spaces)
    return []


def _skipped(obj: Any, name: str, value: Any) -> bool:
    """Attributes a fresh env of the same config already has right (module docstring)."""
    if name in STATIC_NAMES or isinstance(value, EnvSpec):
        return True
    if name == "env" and isinstance(obj, gym.Wrapper):
        return True  # the next layer: captured on its own
    module = type(value).__module__
    if name in ("model", "data") and module.startswith("mujoco"):
        return True  # saved with mj_getState
    return module.startswith(_RENDER_MODULES)


def _nested(value: Any) -> bool:
    """An object captured attribute by attribute like a layer: an instance of a Python class
    from :data:`NESTED_MODULES` (restored into the fresh env's object of the same class)."""
    module = type(value).__module__
    return module.startswith(NESTED_MODULES)


def _layer(obj: Any) -> dict[str, Any]:
    _check_layout(type(obj))
    attrs: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if isinstance(value, gym.spaces.Space):
            rngs = _space_rngs(value)
            if rngs is not None:
                attrs[name] = rngs
        elif _nested(value):
            attrs[name] = {_TAG: "object", **_layer(value)}
        elif not _skipped(obj, name, value):
            try:
                attrs[name] = _encode(value)
            except SnapshotError as exc:
                raise SnapshotError(f"{_type_name(obj)}.{name}: {exc}") from None
    return {"type": _type_name(obj), "attrs": attrs}


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python, not in C


def _check_layout(cls: type) -> None:
    """Every class of a layer must keep its state in the instance ``__dict__``: Python classes
    without ``__slots__`` (a C type or a slot would hold state that ``vars`` does not show)."""
    for c in cls.__mro__:
        if c is object:
            continue
        slots = set(getattr(c, "__slots__", ()) if "__slots__" in vars(c) else ()) - {
            "__dict__",
            "__weakref__",
        }
        if not c.__flags__ & _HEAPTYPE or slots:
            raise SnapshotError(f"{c.__module__}.{c.__qualname__} keeps state outside __dict__")


def _type_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _chain(env: gym.Env) -> list[Any]:
    """The wrappers from ``env`` inwards, then the unwrapped env."""
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def _mujoco_state(base: Any) -> dict[str, Any] | None:
    if not (
        hasattr(base, "model")
        and hasattr(base, "data")
        and type(base.data).__module__.startswith("mujoco")
    ):
        return None
    import mujoco

    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(base.model, spec))
    mujoco.mj_getState(base.model, base.data, state, spec)
    return {"spec": int(spec), "state": _encode_array(state)}


def get_state(env: gym.Env) -> dict[str, Any] | None:
    """``env``'s exact state (its wrappers included) as plain data, or None when some attribute
    is not plain data (the env cannot be snapshotted; see the module docstring)."""
    try:
        layers = [_layer(obj) for obj in _chain(env)]
    except SnapshotError:
        return None
    return {
        "format": FORMAT,
        "version": VERSION,
        "layers": layers,
        "mujoco": _mujoco_state(env.unwrapped),
    }


# --- decoding ------------------------------------------------------------------------------------
def _decode(data: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise SnapshotError("nested too deeply")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [_decode(v, depth + 1) for v in data]
    if type(data) is not dict or not isinstance(data.get(_TAG), str):
        raise SnapshotError(f"unexpected {type(data).__name__} in a snapshot")
    tag = data[_TAG]
    if tag in ("array", "scalar"):
        array = _decode_array(data)
        return array if tag == "array" else array[()]
    if tag == "generator":
        return _decode_generator(_decode(data["state"], depth + 1))
    if tag == "random_state":
        return _decode_random_state(_decode(data["state"], depth + 1))
    return _decode_container(tag, data, depth)


def _decode_container(tag: str, data: dict[str, Any], depth: int) -> Any:
    items = data.get("items")
    if type(items) is not list:
        raise SnapshotError(f"a {tag!r} entry without items")
    if tag == "tuple":
        return tuple(_decode(v, depth + 1) for v in items)
    if tag == "dict":
        pairs = [_pair(v) for v in items]
        return {_key(_decode(k, depth + 1)): _decode(v, depth + 1) for k, v in pairs}
    if tag == "deque":
        maxlen = data.get("maxlen")
        if maxlen is not None and (type(maxlen) is not int or maxlen < 0):
            raise SnapshotError(f"deque maxlen {maxlen!r}")
        return collections.deque((_decode(v, depth + 1) for v in items), maxlen)
    raise SnapshotError(f"unknown entry {tag!r}")


def _pair(v: Any) -> tuple[Any, Any]:
    if type(v) is not list or len(v) != 2:
        raise SnapshotError("a dict item that is not a [key, value] pair")
    return v[0], v[1]


def _key(k: Any) -> Any:
    try:
        hash(k)
    except TypeError:
        raise SnapshotError(f"unhashable dict key {k!r}") from None
    return k


def _decode_array(d: dict[str, Any]) -> np.ndarray:
    dtype, shape, raw = d.get("dtype"), d.get("shape"), d.get("data")
    if not (isinstance(dtype, str) and _DTYPE.match(dtype)):
        raise SnapshotError(f"array dtype {dtype!r} is not a numeric dtype")
    if type(shape) is not list or not all(type(n) is int and n >= 0 for n in shape):
        raise SnapshotError(f"array shape {shape!r}")
    dt = np.dtype(dtype)
    if type(raw) is not bytes or len(raw) != math.prod(shape) * dt.itemsize:
        raise SnapshotError(f"array data does not hold {shape} values of {dt}")
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


def _decode_generator(state: Any) -> np.random.Generator:
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise SnapshotError(
            f"bit generator {name!r} is not one of NumPy's {sorted(_BIT_GENERATORS)}"
        )
    bit_generator = _BIT_GENERATORS[name]()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise SnapshotError(f"{name} state: {exc}") from None
    return np.random.Generator(bit_generator)


def _decode_random_state(state: Any) -> np.random.RandomState:
    """NumPy's legacy generator (MT19937 only) from ``RandomState.get_state(legacy=False)``."""
    if not isinstance(state, dict) or state.get("bit_generator") != "MT19937":
        raise SnapshotError("a RandomState entry that is not an MT19937 state")
    rs = np.random.RandomState()
    try:
        rs.set_state(state)
    except (TypeError, ValueError, KeyError) as exc:
        raise SnapshotError(f"RandomState state: {exc}") from None
    return rs


@dataclass
class _Write:
    """One decoded attribute, written only once every attribute has decoded."""

    obj: Any
    name: str
    value: Any


def _space_writes(space: Any, data: Any, out: list[_Write]) -> None:
    if not isinstance(space, gym.spaces.Space) or type(data) is not dict:
        raise SnapshotError("a space's RNG state for an attribute that is not a space")
    if data.get(_TAG) != "space" or type(data.get("parts")) is not list:
        raise SnapshotError("malformed space entry")
    if data["rng"] is not None:
        rng = _decode(data["rng"])
        if not isinstance(rng, np.random.Generator):
            raise SnapshotError("a space RNG that is not a generator")
        out.append(_Write(space, "_np_random", rng))
    if data["parts"]:
        subspaces = _subspaces(space)
        if len(subspaces) != len(data["parts"]):
            raise SnapshotError("a composite space with another number of parts")
        for sub, part in zip(subspaces, data["parts"]):
            if part is not None:
                _space_writes(sub, part, out)


def _layer_writes(obj: Any, layer: Any, out: list[_Write]) -> None:
    if type(layer) is not dict or layer.get("type") != _type_name(obj):
        found = layer.get("type") if type(layer) is dict else layer
        raise SnapshotError(f"layer {_type_name(obj)} holds a snapshot of {found!r}")
    attrs = layer.get("attrs")
    if type(attrs) is not dict:
        raise SnapshotError("a layer without attributes")
    current = vars(obj)
    for name, data in attrs.items():
        if not (isinstance(name, str) and name.isidentifier() and not name.startswith("__")):
            raise SnapshotError(f"attribute name {name!r}")
        have = current.get(name)
        if isinstance(have, gym.spaces.Space):
            _space_writes(have, data, out)
            continue
        if type(data) is dict and data.get(_TAG) == "object":
            if not _nested(have):
                raise SnapshotError(f"{_type_name(obj)}.{name} holds no object to restore into")
            _layer_writes(have, data, out)
            continue
        if name in STATIC_NAMES or (name in current and _skipped(obj, name, have)):
            raise SnapshotError(f"{_type_name(obj)}.{name} is not restored from a snapshot")
        out.append(_Write(obj, name, _decode(data)))


def _mujoco_write(base: Any, data: Any) -> Any:
    """Check the MuJoCo state against ``base``; return the function that writes it."""
    if data is None:
        return None
    if _mujoco_state(base) is None or type(data) is not dict:
        raise SnapshotError("a MuJoCo state for an env that is not a MuJoCo env")
    import mujoco

    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = _decode_array(data.get("state") or {})
    if (
        data.get("spec") != int(spec)
        or state.dtype != np.float64
        or state.shape != (mujoco.mj_stateSize(base.model, spec),)
    ):
        raise SnapshotError("a MuJoCo state of another kind or size")

    def write() -> None:
        mujoco.mj_setState(base.model, base.data, state, spec)
        mujoco.mj_forward(base.model, base.data)

    return write


def set_state(env: gym.Env, state: Any) -> bool:
    """Write ``state`` (from :func:`get_state` on an env of the same config) into ``env``, a
    freshly made one; False (and ``env`` unchanged) when it does not fit or is not a snapshot."""
    try:
        if (
            type(state) is not dict
            or state.get("format") != FORMAT
            or state.get("version") != VERSION
        ):
            raise SnapshotError("not a ppox env snapshot")
        layers, objs = state.get("layers"), _chain(env)
        if type(layers) is not list or len(layers) != len(objs):
            raise SnapshotError("another wrapper chain")
        writes: list[_Write] = []
        for obj, layer in zip(objs, layers):
            _layer_writes(obj, layer, writes)
        mujoco_write = _mujoco_write(env.unwrapped, state.get("mujoco"))
    except (SnapshotError, TypeError, ValueError, KeyError, IndexError, OverflowError):
        return False
    for w in writes:
        vars(w.obj)[w.name] = w.value  # plain values straight into __dict__: no setter runs
    if mujoco_write is not None:
        mujoco_write()
    return True


class Snapshot(gym.Wrapper):
    """Outermost wrapper that lets a vector env (sync or async) save and restore each sub-env
    through ``envs.call("ppox_get_state")`` / ``ppox_set_state`` (one state per sub-env)."""

    def ppox_get_state(self) -> dict[str, Any] | None:
        return get_state(self.env)

    def ppox_set_state(self, state: Any) -> bool:
        return set_state(self.env, state)
