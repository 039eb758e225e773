"""Observation encoders (docs/observations.md): one encoder per leaf (or subtree) of the observation
space, their features concatenated into the ``[B, F]`` input of the MLP trunks.

Defaults by leaf kind (:class:`ppox.types.ObsLeaf`):

- ``vector`` (a float Box, any shape) → ``flatten``: the values as they are (normalized when
  ``normalize_obs``); the MLP trunk that reads the concatenation is their MLP.
- ``image`` (a uint8 Box with bounds [0, 255] or [0, 1]: HW, HWC or CHW) → ``cnn``: the CNN
  ``PolicyConfig.cnn`` names (Nature, IMPALA, small, MinAtar; docs/pixels.md) on ``x / 255``
  (``x / 1`` for binary planes), converted from uint8 one minibatch at a time.
- ``discrete`` / ``multi_discrete`` → ``one_hot`` (one block per dimension).
- ``binary`` (MultiBinary) → ``flatten`` (0/1 as floats).

Any node of the space can get another encoder through ``PolicyConfig.obs_encoders`` (key path →
a name given to :func:`register_encoder`, or ``"module:callable"``). A builder is called as
``builder(space, policy_config)`` and returns an ``nn.Module`` with an ``out_features`` attribute
whose ``forward`` maps the node's batch to ``[B, out_features]``: a tensor ``[B, *leaf_shape]``
for a leaf, a dict of relative leaf path → tensor for a Dict / Tuple node.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from ppox.config import PolicyConfig
from ppox.errors import ConfigError
from ppox.nn.init import init_layers
from ppox.types import ObsLayout, channels_first, image_high

EncoderBuilder = Callable[[spaces.Space, PolicyConfig], nn.Module]
_REGISTRY: dict[str, EncoderBuilder] = {}

DEFAULT_ENCODERS = {
    "vector": "flatten",
    "image": "cnn",
    "discrete": "one_hot",
    "multi_discrete": "one_hot",
    "binary": "flatten",
}
"""Leaf kind → the registered encoder it gets unless ``obs_encoders`` names another."""


def register_encoder(name: str, builder: EncoderBuilder | None = None) -> Any:
    """Register ``builder(space, cfg) -> nn.Module`` (with ``out_features``) under ``name``, for
    ``obs_encoders={"key/path": name}``. Also a decorator: ``@register_encoder("deep_sets")``.
    Registering a name again replaces its builder (the built-in names included)."""

    def deco(fn: EncoderBuilder) -> EncoderBuilder:
        _REGISTRY[name] = fn
        return fn

    return deco if builder is None else deco(builder)


def registered_encoders() -> list[str]:
    return sorted(_REGISTRY)


def resolve_encoder(name: str) -> EncoderBuilder:
    """A registered name, or ``"module:callable"`` (imported) → the builder."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    module, sep, attr = name.partition(":")
    if not sep:
        raise ConfigError(
            f"obs_encoders names encoder {name!r}, which is not registered; registered: "
            f"{registered_encoders()} (or give 'module:callable')"
        )
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"obs_encoders: cannot load encoder builder {name!r} ({exc})") from None
    if not callable(obj):
        raise ConfigError(f"obs_encoders: {name!r} is not callable")
    return obj  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Built-in encoders
# --------------------------------------------------------------------------------------------


class Flatten(nn.Module):
    """``[B, *shape]`` → ``[B, prod(shape)]`` float32 (vectors as they are, MultiBinary as 0/1)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.out_features = math.prod(shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], self.out_features).float()


class OneHot(nn.Module):
    """Integers ``[B, *shape]`` of ``d = prod(shape)`` dimensions with sizes ``nvec`` (values
    ``start … start + n − 1``) → ``[B, Σ nvec]``, one one-hot block per dimension."""

    offsets: Tensor
    start: Tensor

    def __init__(self, nvec: np.ndarray, start: np.ndarray) -> None:
        super().__init__()
        nvec = np.asarray(nvec, np.int64).reshape(-1)
        self.d, self.out_features = len(nvec), int(nvec.sum())
        offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
        self.register_buffer("offsets", torch.as_tensor(offsets), persistent=False)
        self.register_buffer(
            "start", torch.as_tensor(np.asarray(start, np.int64).reshape(-1)), persistent=False
        )

    def forward(self, x: Tensor) -> Tensor:
        idx = x.reshape(x.shape[0], self.d).long() - self.start + self.offsets
        out = torch.zeros(x.shape[0], self.out_features, device=x.device)
        return out.scatter_(1, idx, 1.0)


NATURE_LAYERS = ((32, 8, 4, 0), (64, 4, 2, 0), (64, 3, 1, 0))
"""(channels, kernel, stride, padding) of the Nature CNN; it needs ≥ 36 pixels a side."""
SMALL_LAYERS = ((32, 3, 1, 1), (64, 3, 2, 1), (64, 3, 1, 1))
"""The variant for smaller images: 3×3 kernels, padding 1, strides 1, 2, 1 (any size ≥ 1)."""
MINATAR_LAYERS = ((16, 3, 1, 0),)
"""One 3×3 convolution of 16 channels, no padding: the MinAtar paper's networks (Young & Tian
2019, "MinAtar: An Atari-Inspired Testbed for Thorough and Reproducible Reinforcement Learning
Experiments"); any size ≥ 3."""
NATURE_MIN_SIDE = 36
IMPALA_CHANNELS = (16, 32, 32)
"""Channels of the IMPALA ResNet's three stages (Espeholt et al. 2018, "IMPALA: Scalable
Distributed Deep-RL with Importance Weighted Actor-Learner Architectures", Figure 3)."""


def image_geometry(shape: tuple[int, ...]) -> tuple[bool, int, int, int]:
    """``(hwc, channels, height, width)`` of an HW, HWC or CHW image shape."""
    hwc = len(shape) == 3 and not channels_first(shape)
    if len(shape) == 2:
        return False, 1, shape[0], shape[1]
    if hwc:
        return True, shape[2], shape[0], shape[1]
    return False, shape[0], shape[1], shape[2]


class ImageEncoder(nn.Module):
    """uint8 images ``[B, H, W]``, ``[B, H, W, C]`` or ``[B, C, H, W]`` → ``[B, features]``.

    ReLU convolutions (``layers``: (channels, kernel, stride, padding) each) on ``x / high``
    (255, or 1 for binary planes), then a linear layer and a ReLU. The channel axis is the
    shorter of the first and last axes (:func:`ppox.types.channels_first`); HWC is permuted.
    The images stay uint8 until this forward pass: a minibatch is converted, never the rollout.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        features: int,
        layers: tuple[tuple[int, int, int, int], ...] | None = None,
        high: int = 255,
    ) -> None:
        super().__init__()
        self.hwc, c, h, w = image_geometry(shape)
        if layers is None:
            layers = NATURE_LAYERS if min(h, w) >= NATURE_MIN_SIDE else SMALL_LAYERS
        modules: list[nn.Module] = []
        for out, k, s, p in layers:
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            if h < 1 or w < 1:
                raise ConfigError(f"image observations of shape {shape} are too small for this CNN")
            modules += [nn.Conv2d(c, out, k, s, p), nn.ReLU()]
            c = out
        self.convs = nn.Sequential(*modules)
        self.linear = nn.Linear(c * h * w, features)
        self.out_features = features
        self.scale = 1.0 / high

    def forward(self, x: Tensor) -> Tensor:
        y = self.convs(_pixels(x, self.hwc, self.scale))
        return torch.relu(self.linear(y.flatten(1)))


def _pixels(x: Tensor, hwc: bool, scale: float) -> Tensor:
    """uint8 images → float ``[B, C, H, W]`` times ``scale``, in the channels-last memory layout
    (made while still uint8): the same convolution, and on CPU oneDNN's faster kernels for it
    (docs/pixels.md, "Speed")."""
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif hwc:
        x = x.permute(0, 3, 1, 2)
    return x.contiguous(memory_format=torch.channels_last).float() * scale


class ResidualBlock(nn.Module):
    """``x + conv(relu(conv(relu(x))))``, 3×3 convolutions that keep the channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ImpalaEncoder(nn.Module):
    """The IMPALA ResNet (:data:`IMPALA_CHANNELS`): per stage a 3×3 convolution, a 3×3 max-pool
    of stride 2 and two :class:`ResidualBlock`; then a ReLU, a linear layer to ``features`` and a
    ReLU. uint8 images in, scaled by ``1 / high`` in the forward pass."""

    def __init__(self, shape: tuple[int, ...], features: int, high: int = 255) -> None:
        super().__init__()
        self.hwc, c, h, w = image_geometry(shape)
        stages: list[nn.Module] = []
        for out in IMPALA_CHANNELS:
            stages += [
                nn.Conv2d(c, out, 3, padding=1),
                nn.MaxPool2d(3, stride=2, padding=1),
                ResidualBlock(out),
                ResidualBlock(out),
            ]
            c, h, w = out, (h + 1) // 2, (w + 1) // 2
        self.stages = nn.Sequential(*stages)
        self.linear = nn.Linear(c * h * w, features)
        self.out_features = features
        self.scale = 1.0 / high

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.stages(_pixels(x, self.hwc, self.scale)))
        return torch.relu(self.linear(y.flatten(1)))


CNN_LAYERS = {"nature": NATURE_LAYERS, "small": SMALL_LAYERS, "minatar": MINATAR_LAYERS}


@register_encoder("flatten")
def _flatten(space: spaces.Space, cfg: PolicyConfig) -> nn.Module:
    return Flatten(tuple(space.shape or ()))


@register_encoder("one_hot")
def _one_hot(space: spaces.Space, cfg: PolicyConfig) -> nn.Module:
    if isinstance(space, spaces.Discrete):
        return OneHot(np.array([space.n]), np.array([space.start]))
    if isinstance(space, spaces.MultiDiscrete):
        return OneHot(space.nvec, space.start)
    raise ConfigError(f"the one_hot encoder takes Discrete or MultiDiscrete spaces, not {space}")


@register_encoder("cnn")
def _cnn(space: spaces.Space, cfg: PolicyConfig) -> nn.Module:
    """The CNN ``cfg.cnn`` names, initialized as the literature does: the Nature, small and
    MinAtar CNNs orthogonally with gain √2 (ReLU layers; as in OpenAI Baselines' and CleanRL's
    Atari PPO) unless ``cfg.init`` says otherwise; the IMPALA ResNet's convolutions keep
    PyTorch's default, as in CleanRL's Procgen PPO, and its linear layer gets ``cfg.init``."""
    shape = tuple(space.shape or ())
    if len(shape) not in (2, 3):
        raise ConfigError(f"the cnn encoder takes HW, HWC or CHW Box spaces, not {space}")
    high = 1 if isinstance(space, spaces.Box) and image_high(space) == 1 else 255
    enc: nn.Module
    if cfg.cnn == "impala":
        enc = ImpalaEncoder(shape, cfg.cnn_features, high)
        if cfg.init != "torch":
            init_layers(enc.linear, cfg.init, math.sqrt(2))
        return enc
    if cfg.cnn == "nature" and min(image_geometry(shape)[2:]) < NATURE_MIN_SIDE:
        raise ConfigError(
            f"cnn='nature' needs images of at least {NATURE_MIN_SIDE} pixels a side, not {shape} "
            "(use cnn='small', 'minatar', 'impala' or 'auto')"
        )
    enc = ImageEncoder(shape, cfg.cnn_features, CNN_LAYERS.get(cfg.cnn), high)
    if cfg.init != "torch":  # √2 for the ReLU layers, as in the Atari PPO setups
        init_layers(enc, cfg.init, math.sqrt(2))
    return enc


# --------------------------------------------------------------------------------------------
# The observation encoder: every leaf (or custom subtree) of the space, concatenated
# --------------------------------------------------------------------------------------------

Selector = str | list[tuple[str, str]] | None
"""How a part reads its input: a leaf path, (relative, full) leaf paths of a subtree, or None
(the whole observation)."""


class ObsEncoder(nn.Module):
    """:data:`ppox.types.Obs` ``[B, …]`` → features ``[B, out_features]``.

    One part per leaf in the layout's order, except where ``cfg.obs_encoders`` attaches an
    encoder to a node: that one part reads the node's whole subtree.
    """

    def __init__(self, layout: ObsLayout, cfg: PolicyConfig) -> None:
        super().__init__()
        custom = dict(cfg.obs_encoders)
        _check_paths(custom, layout)
        self.parts = nn.ModuleList()
        self.paths: list[str] = []
        self.selectors: list[Selector] = []
        self.out_features = 0
        done: set[str] = set()
        for path, leaf in layout.leaves.items():
            node = next(
                (c for c in custom if c == "" or path == c or path.startswith(c + "/")), None
            )
            if node is None:
                name, node, space = DEFAULT_ENCODERS[leaf.kind], path, leaf.space
            elif node in done:
                continue
            else:
                name, space = custom[node], layout.nodes[node]
            done.add(node)
            module, width = _build(name, node, space, cfg)
            self.parts.append(module)
            self.paths.append(node)
            self.selectors.append(_selector(layout, node))
            self.out_features += width

    def forward(self, obs: Any) -> Tensor:
        feats = [part(_select(obs, sel)) for part, sel in zip(self.parts, self.selectors)]
        return feats[0] if len(feats) == 1 else torch.cat(feats, dim=-1)


def _check_paths(custom: dict[str, str], layout: ObsLayout) -> None:
    unknown = sorted(set(custom) - set(layout.nodes))
    if unknown:
        raise ConfigError(
            f"obs_encoders key(s) {unknown} are not key paths of the observation space; "
            f"its paths: {sorted(layout.nodes)}"
        )
    nested = sorted(
        a for a in custom for b in custom if a != b and (b == "" or a.startswith(b + "/"))
    )
    if nested:
        raise ConfigError(
            f"obs_encoders key(s) {nested} lie inside another key that has an encoder"
        )


def _build(name: str, path: str, space: spaces.Space, cfg: PolicyConfig) -> tuple[nn.Module, int]:
    module = resolve_encoder(name)(space, cfg)
    width = getattr(module, "out_features", None)
    if not isinstance(module, nn.Module) or not isinstance(width, int) or width < 1:
        raise ConfigError(
            f"encoder {name!r} for observation key {path!r} must return an nn.Module with an "
            f"int attribute out_features ≥ 1 (got {type(module).__name__}, out_features={width!r})"
        )
    return module, width


def _selector(layout: ObsLayout, node: str) -> Selector:
    if not layout.structured:
        return None
    if node in layout.leaves:
        return node
    cut = len(node) + 1 if node else 0
    return [(leaf.path[cut:], leaf.path) for leaf in layout.leaves_under(node)]


def _select(obs: Any, sel: Selector) -> Any:
    if sel is None:
        return obs
    if isinstance(sel, str):
        return obs[sel]
    return {rel: obs[full] for rel, full in sel}


def obs_features(space: spaces.Space, cfg: PolicyConfig | None = None) -> int:
    """Width of the features the MLP trunks read for observations of ``space``."""
    cfg = cfg or PolicyConfig()
    layout = ObsLayout(space)
    if layout.fast and not cfg.obs_encoders:
        return math.prod(layout.leaves[""].shape)
    with torch.random.fork_rng(devices=[]):
        return ObsEncoder(layout, cfg).out_features
