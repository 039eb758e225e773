"""Action distributions and the head registry."""

from ppox.distributions.base import ActionDist
from ppox.distributions.categorical import MaskedCategorical
from ppox.distributions.heads import ActionHead, make_head, register_head, supported_spaces
from ppox.distributions.normal import DiagNormal

__all__ = [
    "ActionDist",
    "ActionHead",
    "DiagNormal",
    "MaskedCategorical",
    "make_head",
    "register_head",
    "supported_spaces",
]
