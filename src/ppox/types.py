"""Named containers passed between the collector, the advantage step and the learner.

Shape glossary: ``T`` rollout steps, ``N`` envs, ``B`` samples in a (mini)batch, ``A`` the
action shape of the head (``()`` for Discrete, ``(d,)`` for Box), ``M`` the mask shape.

Observations (docs/observations.md) are an :data:`Obs`: one tensor ``[..., *obs_shape]`` when the space is a
single leaf (a ``Box``, the fast path, or a ``Discrete`` / ``MultiDiscrete`` / ``MultiBinary``),
or, for ``Dict`` / ``Tuple`` spaces nested to any depth, a flat dict of *leaf path* → tensor
``[..., *leaf_shape]``. A path joins Dict keys and Tuple indices with ``/``: ``"pos"``,
``"sensors/lidar"``, ``"0/1"``. Every leaf keeps its own shape and storage dtype
(:class:`ObsLeaf`); :class:`ObsLayout` maps a space to its leaves and env output to that form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from ppox.errors import EnvError

MASK_KEY = "action_mask"
"""Key of a boolean action mask (True = legal) in the env's ``info`` or in a Dict observation."""

Obs = Tensor | dict[str, Tensor]
"""A batch of observations as the network reads it (see the module docstring)."""

ObsArrays = np.ndarray | dict[str, np.ndarray]
"""The NumPy form of :data:`Obs`, as it comes out of :meth:`ObsLayout.flatten`."""

_X = TypeVar("_X")
_Y = TypeVar("_Y")


def obs_map(fn: Callable[[_X], _Y], obs: _X | dict[str, _X]) -> _Y | dict[str, _Y]:
    """``fn`` applied to a single observation array/tensor, or to every leaf of a dict of them."""
    if isinstance(obs, dict):
        return {k: fn(v) for k, v in obs.items()}
    return fn(obs)


def nest_map(fn: Callable[[Any], Any], tree: Any) -> Any:
    """``fn`` on every leaf of a nested env value (dicts and tuples of arrays, as Gymnasium's
    Dict / Tuple spaces give them), the nesting kept."""
    if isinstance(tree, dict):
        return {k: nest_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(nest_map(fn, v) for v in tree)
    return fn(tree)


def nest_join(fn: Callable[[list[Any]], Any], trees: list[Any]) -> Any:
    """``fn`` on the list of every tree's leaf at each position (``np.stack`` to batch single
    values, ``np.concatenate`` to join batches), the nesting of ``trees[0]`` kept."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: nest_join(fn, [t[k] for t in trees]) for k in first}
    if isinstance(first, tuple):
        return tuple(nest_join(fn, [t[i] for t in trees]) for i in range(len(first)))
    return fn(trees)


def cat_obs(parts: list[Obs]) -> Obs:
    """Observation batches joined along the batch axis (leaf by leaf for dict observations)."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: torch.cat([p[k] for p in parts]) for k in first}  # type: ignore[index]
    return torch.cat(parts)  # type: ignore[arg-type]


class Rollout(NamedTuple):
    """One iteration of experience, time-major ``[T, N, ...]``."""

    obs: Obs  # [T, N, *obs_shape] (or a dict of leaves) observations the policy saw, normalized
    action: Tensor  # [T, N, *A] unclipped actions as sampled
    logp: Tensor  # [T, N] log π_old(action | obs)
    value: Tensor  # [T, N] V_old(obs)
    next_value: Tensor  # [T, N] V_old of the true next observation (final obs at an episode end)
    reward: Tensor  # [T, N] (scaled) reward
    terminated: Tensor  # [T, N] float, 1 where the episode reached a terminal state
    done: Tensor  # [T, N] float, 1 where the episode ended (terminated or truncated)
    mask: Tensor | None  # [T, N, *M] action masks, or None
    # what a critic needs to recompute next_value (recompute_adv):
    last_obs: Obs | None = None  # [N, ...] the observation after the last step, normalized
    final_obs: Obs | None = None  # [K, ...] final observations of the K truncated steps, normalized
    final_index: Tensor | None = None  # [K] their flat index t·N + n (int64)
    valid: Tensor | None = None  # [T, N] bool: transitions that enter the loss (None: all)
    # a policy with memory (docs/memory.md): [T, N, D] the recurrent state carried into each
    # step (before its reset), and [T, N] bool: the step begins an episode (the state is reset)
    state: Tensor | None = None
    starts: Tensor | None = None


class Batch(NamedTuple):
    """A flattened rollout with advantages, ``[B, ...]`` (``obs`` may be a dict of leaves)."""

    obs: Obs
    action: Tensor
    logp: Tensor
    value: Tensor
    adv: Tensor
    ret: Tensor
    mask: Tensor | None
    state: Tensor | None = None  # [B, D] recurrent state carried into each step (memory only)
    starts: Tensor | None = None  # [B] bool: the step begins an episode (memory only)

    def take(self, idx: Tensor) -> Batch:
        """The samples at ``idx`` ``[b]`` (of every leaf of a dict observation too)."""
        return Batch(*(None if x is None else obs_map(lambda t: t[idx], x) for x in self))  # type: ignore[arg-type]

    def trainable(self) -> Batch:
        """The batch with every tensor made under ``torch.inference_mode`` (the collector's)
        copied, so autograd may save it for the backward pass; others are kept as they are."""

        def plain(t: Tensor) -> Tensor:
            return t.clone() if t.is_inference() else t

        return Batch(*(None if x is None else obs_map(plain, x) for x in self))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Observation layout: a space → its leaves
# --------------------------------------------------------------------------------------------

LEAF_KINDS = ("vector", "image", "discrete", "multi_discrete", "binary")
SUPPORTED_OBS = (
    "Box (float vectors of any shape; uint8 images with bounds [0, 255] or [0, 1], HW, HWC or CHW), "
    "Discrete, MultiDiscrete, MultiBinary, and Dict / Tuple of these nested to any depth"
)


class ObsLeaf(NamedTuple):
    """One leaf of an observation space and how it is stored per sample.

    ``kind``: ``vector`` (a non-image Box; float32, normalized when ``normalize_obs``),
    ``image`` (uint8, never normalized), ``discrete`` (int64 ``()``), ``multi_discrete``
    (int64) or ``binary`` (MultiBinary, int8). ``keys`` is the chain of Dict keys / Tuple
    indices that reaches the leaf in the env's nested observation.
    """

    path: str
    space: spaces.Space
    kind: str
    shape: tuple[int, ...]
    dtype: np.dtype
    keys: tuple[Any, ...]


def is_image(space: spaces.Space) -> bool:
    """A uint8 Box of 2 or 3 dimensions with bounds exactly [0, 255], or exactly [0, 1] (binary
    planes, as MinAtar's observations; the encoder scales by the upper bound)."""
    return (
        isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) in (2, 3)
        and bool(np.all(space.low == 0)) and image_high(space) in (1, 255)
    )  # fmt: skip


def image_high(space: spaces.Box) -> int:
    """The upper bound of a uint8 Box when it is the same everywhere (0 otherwise)."""
    high = np.asarray(space.high)
    return int(high.flat[0]) if high.size and bool(np.all(high == high.flat[0])) else 0


def channels_first(shape: tuple[int, ...]) -> bool:
    """Whether a 3-D image shape is CHW: its first axis is strictly shorter than its last
    (``(3, 84, 84)``); otherwise HWC (``(84, 84, 3)``, and ties such as ``(4, 4, 4)``)."""
    return len(shape) == 3 and shape[0] < shape[-1]


def _leaf_kind(space: spaces.Space) -> tuple[str, np.dtype] | None:
    if isinstance(space, spaces.Box):
        return (
            ("image", np.dtype(np.uint8)) if is_image(space) else ("vector", np.dtype(np.float32))
        )
    if isinstance(space, spaces.Discrete):
        return "discrete", np.dtype(np.int64)
    if isinstance(space, spaces.MultiDiscrete):
        return "multi_discrete", np.dtype(np.int64)
    if isinstance(space, spaces.MultiBinary):
        return "binary", np.dtype(np.int8)
    return None


def children(space: spaces.Space) -> list[tuple[Any, spaces.Space]]:
    """``(key, subspace)`` of a Dict (in its key order) or a Tuple (indices); ``[]`` otherwise."""
    if isinstance(space, spaces.Dict):
        return list(space.spaces.items())
    if isinstance(space, spaces.Tuple):
        return list(enumerate(space.spaces))
    return []


def join(path: str, key: Any) -> str:
    return f"{path}/{key}" if path else str(key)


class ObsLayout:
    """How observations of ``space`` are stored and fed to the network.

    ``leaves``: path → :class:`ObsLeaf`, in the space's order. ``nodes``: every path (leaves and
    Dict / Tuple nodes; ``""`` is the whole observation) → its subspace, the places a custom
    encoder can be attached. A top-level Dict key ``action_mask`` is the action mask, not an
    observation leaf (``mask_in_obs``). Raises :class:`EnvError` naming the key path of a
    space that cannot be stored (``Text``, ``Graph``, ``Sequence``, …).
    """

    def __init__(self, space: spaces.Space) -> None:
        self.space = space
        self.structured = isinstance(space, (spaces.Dict, spaces.Tuple))
        self.mask_in_obs = isinstance(space, spaces.Dict) and MASK_KEY in space.spaces
        self.leaves: dict[str, ObsLeaf] = {}
        self.nodes: dict[str, spaces.Space] = {}
        self._walk(space, "", ())
        if not self.leaves:
            raise EnvError(f"observation space {space} has no parts ppox can encode")

    def _walk(self, space: spaces.Space, path: str, keys: tuple[Any, ...]) -> None:
        if path in self.nodes:
            raise EnvError(
                f"observation space has two parts at key path {path!r}; rename a Dict key"
            )
        self.nodes[path] = space
        parts = children(space)
        if parts:
            for key, sub in parts:
                if not (keys == () and key == MASK_KEY and self.mask_in_obs):
                    self._walk(sub, join(path, key), (*keys, key))
            return
        kind = _leaf_kind(space)
        if kind is None:
            where = f"at key {path!r} " if path else ""
            raise EnvError(
                f"observation space {where}is {space}, which ppox cannot encode (not supported); "
                f"supported: {SUPPORTED_OBS}. Pad variable-size data to a fixed size with a mask key "
                "and register an encoder for it (docs/observations.md)"
            )
        shape = () if isinstance(space, spaces.Discrete) else tuple(space.shape or ())
        self.leaves[path] = ObsLeaf(path, space, kind[0], shape, kind[1], keys)

    @property
    def fast(self) -> bool:
        """A single float (vector) Box: observations go through unchanged code paths."""
        return not self.structured and self.leaves[""].kind == "vector"

    @property
    def norm_shape(self) -> tuple[int, ...] | dict[str, tuple[int, ...]] | None:
        """What :class:`~ppox.training.normalizers.ObsNormalizer` tracks: the Box's shape (a single
        vector Box), the shapes of the vector leaves by path (Dict / Tuple), or None."""
        if self.structured:
            return {p: leaf.shape for p, leaf in self.leaves.items() if leaf.kind == "vector"}
        return self.leaves[""].shape if self.fast else None

    def leaves_under(self, path: str) -> Iterator[ObsLeaf]:
        """The leaves at or below the node ``path``."""
        for p, leaf in self.leaves.items():
            if not path or p == path or p.startswith(path + "/"):
                yield leaf

    def flatten(self, obs: Any) -> ObsArrays:
        """A batch of env observations (nested dicts / tuples of ``[B, ...]`` arrays, as a
        vector env returns them) → :data:`ObsArrays` in the leaves' storage dtypes."""
        if not self.structured:
            return np.asarray(obs, dtype=self.leaves[""].dtype)
        return {
            p: np.asarray(_get(obs, leaf.keys), dtype=leaf.dtype) for p, leaf in self.leaves.items()
        }

    def stack(self, items: list[Any]) -> ObsArrays:
        """Single observations (one per env, e.g. from ``info["final_obs"]``) → a batch."""
        if not self.structured:
            return np.stack(items) if self.fast else np.stack(items).astype(self.leaves[""].dtype)
        return {p: np.stack([np.asarray(_get(o, leaf.keys), dtype=leaf.dtype) for o in items])
                for p, leaf in self.leaves.items()}  # fmt: skip

    def is_single(self, obs: Any) -> bool:
        """Whether ``obs`` is one observation (not a batch), judged by its first leaf's rank."""
        leaf = next(iter(self.leaves.values()))
        return np.ndim(_get(obs, leaf.keys)) == len(leaf.shape)


def _get(obs: Any, keys: tuple[Any, ...]) -> Any:
    for k in keys:
        obs = obs[k]
    return obs
