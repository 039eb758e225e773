"""Networks: MLP encoders, the actor-critic, initialization."""

from ppox.nn.actor_critic import ActorCritic, obs_encoder_dim
from ppox.nn.init import init_actor_critic

__all__ = ["ActorCritic", "init_actor_critic", "obs_encoder_dim"]
