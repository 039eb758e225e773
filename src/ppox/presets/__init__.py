"""Tuned presets: a name → (one-line description, config overrides by flat field name).

Every preset records where its numbers come from; results are in ``benchmarks/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ppox.config import Config
from ppox.errors import ConfigError
from ppox.presets.bases import BASES
from ppox.presets.box2d import BOX2D
from ppox.presets.classic import CLASSIC
from ppox.presets.hybrid import HYBRID
from ppox.presets.memory import MEMORY
from ppox.presets.mujoco import MUJOCO
from ppox.presets.pixels import PIXELS
from ppox.presets.traffic import TRAFFIC
from ppox.presets.trpo import TRPO


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    overrides: dict[str, Any]

    def config(self) -> Config:
        return Config().replace(**self.overrides)


PRESETS: dict[str, Preset] = {
    name: Preset(name, desc, ov)
    for name, (desc, ov) in {
        **CLASSIC,
        **BOX2D,
        **MUJOCO,
        **TRPO,
        **HYBRID,
        **TRAFFIC,
        **MEMORY,
        **PIXELS,
        **BASES,
    }.items()
}
DEFAULT_PRESET = "cartpole"


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(
            f"preset={name!r} is unknown; available presets: {', '.join(sorted(PRESETS))}"
        )
    return PRESETS[name]
