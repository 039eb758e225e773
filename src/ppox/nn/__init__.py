"""Networks: observation encoders, the actor-critic, initialization."""

from ppox.nn.actor_critic import ActorCritic, obs_encoder_dim
from ppox.nn.encoders import (
    DEFAULT_ENCODERS,
    EncoderBuilder,
    ImageEncoder,
    ObsEncoder,
    OneHot,
    register_encoder,
    registered_encoders,
)
from ppox.nn.init import init_actor_critic

__all__ = [
    "DEFAULT_ENCODERS",
    "ActorCritic",
    "EncoderBuilder",
    "ImageEncoder",
    "ObsEncoder",
    "OneHot",
    "init_actor_critic",
    "obs_encoder_dim",
    "register_encoder",
    "registered_encoders",
]
