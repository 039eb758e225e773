"""Diagonal Gaussian for Box actions, and the Box head, with its NumPy kernel.

Samples are unbounded; the caller stores and trains on them and bounds only the copy sent to
the environment (the PPO × Family course's Q&A on continuous actions: storing clipped actions
changes the density the ratio uses). σ is fixed, learned independently of the state, or a
network output (the three modes of the course's action-space lecture).

:class:`GaussianKernel` is the same math in NumPy for the fast paths, declared by
:class:`GaussianHead` (``numpy_kernel``) and never inherited by its subclasses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from ppox.config import PolicyConfig
from ppox.distributions.base import ActionHead, KernelPass, float32_ones
from ppox.errors import ConfigError, EnvError

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
"""``log √(2π)``, the constant of a normal log-density."""
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def normal_log_density(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Elementwise ``log N(x; mean, exp(log_std)²)`` (no sum)."""
    z = (x - mean) * torch.exp(-log_std)
    return -0.5 * z.square() - log_std - LOG_SQRT_2PI


def normal_entropy(log_std: Tensor) -> Tensor:
    """Elementwise entropy of ``N(·, exp(log_std)²)``."""
    return log_std + 0.5 + LOG_SQRT_2PI


def normal_kl(mean_p: Tensor, log_std_p: Tensor, mean_q: Tensor, log_std_q: Tensor) -> Tensor:
    """Elementwise ``KL(N_p ‖ N_q)``."""
    var_ratio = torch.exp(2 * (log_std_p - log_std_q))
    t = ((mean_p - mean_q) * torch.exp(-log_std_q)).square()
    return 0.5 * (var_ratio + t - 1) - (log_std_p - log_std_q)


class DiagNormal:
    """Independent normals over the last axis: ``mean`` and ``log_std`` are ``[B, d]``."""

    def __init__(self, mean: Tensor, log_std: Tensor) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(
            self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device
        )
        return self.mean + noise * self.log_std.exp()

    def sample_log_prob(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        noise = torch.randn(
            self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device
        )
        action = self.mean + noise * self.log_std.exp()
        # z = noise exactly, so the density needs no division
        return action, (-0.5 * noise.square() - self.log_std - LOG_SQRT_2PI).sum(-1)

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, action: Tensor) -> Tensor:
        return normal_log_density(action, self.mean, self.log_std).sum(-1)

    def entropy(self) -> Tensor:
        return normal_entropy(self.log_std).sum(-1)

    def kl(self, other: DiagNormal) -> Tensor:
        return normal_kl(self.mean, self.log_std, other.mean, other.log_std).sum(-1)

    def histograms(self) -> dict[str, Tensor]:
        return {"action_std": self.log_std.exp()}


SDE_VARIANCE_FLOOR = 1e-6
"""Added to a gSDE variance ``φ² · σ²`` before its log, so that features that are all zero
(a dead ReLU layer) give a tiny σ rather than log 0 (Stable-Baselines3 adds the same 1e-6)."""


def sde_log_std(latent: Tensor, log_scale: Tensor) -> Tensor:
    """gSDE's per-dimension log σ ``[B, d]``: ``½ log(Σ_f φ_f² σ_fd² + floor)`` for features
    ``latent [B, F]`` and the matrix of log scales ``log_scale [F, d]`` (the variance of
    ``φᵀE`` with ``E_fd ~ N(0, σ_fd²)``)."""
    variance = latent.square() @ torch.exp(2 * log_scale)
    return 0.5 * torch.log(variance + SDE_VARIANCE_FLOOR)


class SDENormal(DiagNormal):
    """gSDE's distribution (Raffin et al. 2022, "Smooth Exploration for Robotic Reinforcement
    Learning"): for one state a diagonal normal ``N(μ, σ(s)²)`` with ``σ(s)`` from
    :func:`sde_log_std`, so log-probabilities, entropy and KL are :class:`DiagNormal`'s. A
    sample is ``μ + φᵀ(ε ⊙ σ)`` with the head's current exploration matrices ``ε [B, F, d]``
    (standard normals drawn by :meth:`GaussianHead.draw_noise`), so consecutive actions of an
    env share their noise until the matrices are drawn again."""

    def __init__(self, mean: Tensor, log_std: Tensor, latent: Tensor, head: GaussianHead) -> None:
        super().__init__(mean, log_std)
        self.latent, self.head = latent, head

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        eps = self.head.exploration(self.latent.shape[0], generator)
        scale = torch.exp(self.head.log_std)  # [F, d]
        return self.mean + (self.latent.unsqueeze(1) @ (eps * scale)).squeeze(1)

    def sample_log_prob(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        action = self.sample(generator)
        return action, self.log_prob(action)


class SigmaMixin(nn.Module):
    """log σ of ``dim`` Gaussians, as attributes of the head itself (so the parameter is called
    ``log_std`` in checkpoints): ``independent`` (a learned vector), ``fixed`` (a buffer),
    ``state`` (a linear layer ``log_std_layer`` of the features, clamped to
    [LOG_STD_MIN, LOG_STD_MAX]) or, for heads that pass ``sde=True``, ``sde`` (a learned
    ``[in_features, dim]`` matrix of log scales; :func:`sde_log_std`)."""

    def init_sigma(
        self, in_features: int, dim: int, cfg: PolicyConfig, *, sde: bool = False
    ) -> None:
        self.sigma_mode = cfg.sigma_mode
        init = torch.full((dim,), float(cfg.init_log_std))
        if self.sigma_mode == "independent":
            self.log_std = nn.Parameter(init)
        elif self.sigma_mode == "fixed":
            self.register_buffer("log_std", init)
        elif self.sigma_mode == "sde":
            if not sde:
                raise ConfigError(
                    f"sigma_mode='sde' is not available for the {type(self).__name__}'s Gaussian "
                    "(gSDE serves Box action spaces, alone or inside Dict and Tuple spaces); use "
                    "'independent', 'fixed' or 'state'"
                )
            self.log_std = nn.Parameter(torch.full((in_features, dim), float(cfg.init_log_std)))
        else:
            self.log_std_layer = nn.Linear(in_features, dim)
            nn.init.zeros_(self.log_std_layer.weight)
            nn.init.constant_(self.log_std_layer.bias, cfg.init_log_std)

    def sigma(self, features: Tensor) -> Tensor:
        """``[..., dim]`` for ``state``, else the ``[dim]`` vector (broadcasts)."""
        if self.sigma_mode == "state":
            layer = self.log_std_layer
            return F.linear(features, layer.weight, layer.bias).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return self.log_std


class BoxBound:
    """Maps stored (unbounded) Box samples to what the env accepts: ``clip`` to the bounds, or
    ``rescale`` from [-1, 1] to the bounds (clipping to [-1, 1] first)."""

    def __init__(self, space: spaces.Box, mode: str) -> None:
        self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)
        self.mode = mode
        if mode == "rescale" and not (np.isfinite(self.low).all() and np.isfinite(self.high).all()):
            raise EnvError(f"action_bound='rescale' needs finite Box bounds, got {space}")

    def __call__(self, action: np.ndarray) -> np.ndarray:
        if self.mode == "rescale":
            unit = np.clip(action, -1.0, 1.0)
            return self.low + (unit + 1.0) * 0.5 * (self.high - self.low)
        return np.clip(action, self.low, self.high)

    def inverse(self, action: np.ndarray) -> np.ndarray:
        """A stored action that maps to ``action`` (itself under ``clip``; the [-1, 1] point
        under ``rescale``)."""
        if self.mode == "rescale":
            return (2.0 * (action - self.low) / (self.high - self.low) - 1.0).astype(np.float32)
        return action.astype(np.float32)


def check_box(space: spaces.Box) -> int:
    """The action dimension of a 1-D Box (EnvError otherwise)."""
    if len(space.shape) != 1:
        raise EnvError(f"Box action spaces must be one-dimensional, got shape {space.shape}")
    return int(space.shape[0])


class SDENoise:
    """A rollout's gSDE exploration matrices: ``noise[t]`` is the ``[N, F, d]`` draw in force
    at step ``t`` (a new one every ``every`` steps)."""

    def __init__(self, draws: list[np.ndarray], every: int) -> None:
        self.draws, self.every = draws, every

    def __getitem__(self, t: int) -> np.ndarray:
        return self.draws[t // self.every]


class GaussianKernel:
    """:class:`DiagNormal` over a :class:`GaussianHead`'s outputs, in NumPy.

    ``out`` is the mean layer's output ``[B, d]``, followed by the ``log_std_layer``'s
    ``[B, d]`` (before the clamp) for a state-conditioned σ; a learned or fixed log σ is read
    from the head (a view of its parameter or buffer, :meth:`refresh`). Acting draws
    ``mean + σ·ε`` from standard normals drawn per rollout (:meth:`noise`).
    """

    def __init__(self, head: GaussianHead) -> None:
        self.head = head
        self.state_sigma = head.sigma_mode == "state"
        self.sde = head.sigma_mode == "sde"
        self.reads_features = self.sde  # act() takes the actor's features (gSDE's φ)
        self.dim = head.action_shape[0]
        self.out_layers: list[nn.Linear] = [head.mean] + (
            [head.log_std_layer] if self.state_sigma else []
        )
        self.refresh()

    def refresh(self) -> None:
        """Views of a learned or fixed log σ and of a learned one's gradient (the learner's flat
        buffer may have replaced their storage since the last call)."""
        self.log_std: np.ndarray | None = None
        self.log_std_grad: np.ndarray | None = None
        if self.sde:  # acting only: the NumPy update does not serve gSDE (training/backends.py)
            log_scale = self.head.log_std.detach().numpy()  # [F, d], fixed for a rollout
            self.scale, self.variance_scale = np.exp(log_scale), np.exp(2 * log_scale)
        elif not self.state_sigma:
            log_std = self.head.log_std
            self.log_std = log_std.detach().numpy()
            if isinstance(log_std, nn.Parameter) and log_std.grad is not None:
                self.log_std_grad = log_std.grad.numpy()

    def noise(self, steps: int, num_envs: int, generator: torch.Generator) -> np.ndarray | SDENoise:
        """A rollout's randomness: ``[T, N, d]`` standard normals (float32); with gSDE the
        exploration matrices of the rollout (:class:`SDENoise`), drawn in the order and shapes
        :meth:`GaussianHead.draw_noise` draws them on the torch path."""
        if self.sde:
            f = self.head.log_std.shape[0]
            every = self.head.noise_every or steps
            draws = [
                torch.randn((num_envs, f, self.dim), generator=generator).numpy()
                for _ in range(0, steps, every)
            ]
            return SDENoise(draws, every)
        return torch.randn((steps, num_envs, self.dim), generator=generator).numpy()

    def _split(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean [B, d], log σ)``: ``[B, d]`` clamped for a state σ, else the ``[d]`` vector."""
        if self.state_sigma:
            return out[:, : self.dim], np.clip(out[:, self.dim :], LOG_STD_MIN, LOG_STD_MAX)
        assert self.log_std is not None
        return out, self.log_std

    def act(
        self,
        out: np.ndarray,
        noise: np.ndarray,
        mask: np.ndarray | None,
        features: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(mean + σ·ε [B, d], log π [B])`` for one step's normals ``ε`` (float32); with gSDE
        ``(mean + φᵀ(ε ⊙ σ), log π)`` for the step's matrices ``ε [B, F, d]`` and the actor's
        features ``φ [B, F]``."""
        if self.sde:
            assert features is not None
            return self._act_sde(out, noise, features)
        mean, log_std = self._split(out)
        log_std = np.broadcast_to(log_std, mean.shape)
        action = mean + noise * np.exp(log_std)
        logp = (-0.5 * np.square(noise) - log_std - np.float32(LOG_SQRT_2PI)).sum(-1)
        return action.astype(np.float32, copy=False), logp.astype(np.float32, copy=False)

    def _act_sde(
        self, mean: np.ndarray, eps: np.ndarray, latent: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:class:`SDENormal`'s sample and log-density in NumPy."""
        noise = np.matmul(latent[:, None, :], eps * self.scale)[:, 0]  # [B, d]
        log_std = 0.5 * np.log(
            np.square(latent) @ self.variance_scale + np.float32(SDE_VARIANCE_FLOOR)
        )
        z = noise * np.exp(-log_std)
        logp = (-0.5 * np.square(z) - log_std - np.float32(LOG_SQRT_2PI)).sum(-1)
        action = mean + noise
        return action.astype(np.float32, copy=False), logp.astype(np.float32, copy=False)

    def mode(self, out: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """The mean ``[B, d]`` (float32; with gSDE as well: its noise has mean 0)."""
        return np.ascontiguousarray(out[:, : self.dim], dtype=np.float32)

    def encode(self, action: np.ndarray) -> tuple[np.ndarray, ...]:
        """Stored actions ``[B, d]`` as float32."""
        return (action.astype(np.float32, copy=False),)

    def forward(
        self, out: np.ndarray, encoded: tuple[np.ndarray, ...], mask: np.ndarray | None
    ) -> KernelPass:
        """log π(a) and the entropy ``[B]``; keeps ``z = (a − μ)/σ`` and ``1/σ``."""
        if self.sde:
            raise ValueError("the NumPy update does not serve sigma_mode='sde' (autograd does)")
        mean, log_std = self._split(out)
        inv_std = np.exp(-log_std)
        z = encoded[0] - mean
        z *= inv_std
        d = z.shape[1]
        logp = np.square(z) @ np.full(d, -0.5, np.float32)
        if self.state_sigma:  # torch's clamp passes the gradient inside its bounds, ends included
            raw = out[:, d:]
            live = (raw >= LOG_STD_MIN) & (raw <= LOG_STD_MAX)
            sum_log_std = log_std @ float32_ones(d)
            logp -= sum_log_std + LOG_SQRT_2PI * d
            entropy = sum_log_std + (0.5 + LOG_SQRT_2PI) * d
            return KernelPass(logp, entropy, (z, inv_std, live))
        logp -= float(log_std.sum()) + LOG_SQRT_2PI * d
        entropy = np.full(z.shape[0], np.sum(log_std + (0.5 + LOG_SQRT_2PI)), dtype=np.float32)
        return KernelPass(logp, entropy, (z, inv_std))

    def backward(
        self,
        p: KernelPass,
        encoded: tuple[np.ndarray, ...],
        mask: np.ndarray | None,
        g_logp: np.ndarray,
        g_entropy: float,
    ) -> np.ndarray:
        """d loss / d ``out``: ``d log π/d μ = z/σ``, ``d log π/d log σ = z² − 1`` and
        ``d H/d log σ = 1`` per dimension; a learned log σ's gradient (the sum over the batch)
        is written into its ``.grad``, a state σ's passes the clamp where it is not active."""
        z, inv_std = p.cache[0], p.cache[1]
        g = g_logp[:, None] * z
        if self.state_sigma:
            g_log_std = g * z
            g_log_std -= g_logp[:, None]
            g_log_std += g_entropy
            g_log_std *= p.cache[2]
            g *= inv_std
            return np.concatenate([g, g_log_std], 1)
        if self.log_std_grad is not None:
            np.dot(float32_ones(g.shape[0]), g * z, out=self.log_std_grad)
            self.log_std_grad -= float(g_logp.sum()) - g_entropy * g_logp.shape[0]
        g *= inv_std
        return g


class GaussianHead(ActionHead, SigmaMixin):
    """Diagonal Gaussian over a Box; σ ``independent`` (learned), ``fixed``, ``state`` or
    ``sde`` (:class:`SDENormal`; the head then holds the current exploration matrices)."""

    action_dtype = torch.float32
    numpy_kernel = GaussianKernel

    def __init__(self, in_features: int, space: spaces.Box, cfg: PolicyConfig) -> None:
        super().__init__()
        dim = check_box(space)
        self.action_shape = (dim,)
        self.mean = nn.Linear(in_features, dim)
        self.init_sigma(in_features, dim, cfg, sde=True)
        self.bound = BoxBound(space, cfg.action_bound)
        if self.sigma_mode == "sde":
            self.noise_every = cfg.sde_sample_freq
            self.learn_features = cfg.sde_learn_features
            self.eps: Tensor | None = None  # [B, F, d] standard normals; never checkpointed

    def forward(self, features: Tensor, mask: Tensor | None = None) -> DiagNormal:
        mean = F.linear(features, self.mean.weight, self.mean.bias)
        if self.sigma_mode == "sde":
            latent = features if self.learn_features else features.detach()
            return SDENormal(mean, sde_log_std(latent, self.log_std), features.detach(), self)
        return DiagNormal(mean, self.sigma(features))

    def draw_noise(self, t: int, batch: int, generator: torch.Generator | None) -> None:
        if t == 0 or (self.noise_every and t % self.noise_every == 0):
            self.eps = self._draw(batch, generator)

    def exploration(self, batch: int, generator: torch.Generator | None) -> Tensor:
        """The current exploration matrices, drawn afresh (and kept) when there are none for
        ``batch`` envs: outside collection, a stochastic policy holds its matrices until the
        batch changes or :meth:`draw_noise` is called (evaluation calls it per run)."""
        if self.eps is None or self.eps.shape[0] != batch:
            self.eps = self._draw(batch, generator)
        return self.eps

    def _draw(self, batch: int, generator: torch.Generator | None) -> Tensor:
        f, d = self.log_std.shape
        return torch.randn(
            (batch, f, d), generator=generator, dtype=self.log_std.dtype, device=self.log_std.device
        )

    def output_layers(self) -> list[nn.Linear]:
        return [self.mean]

    def to_env(self, action: np.ndarray) -> np.ndarray:
        return self.bound(action)

    def from_env(self, action: Any) -> np.ndarray:
        return self.bound.inverse(np.asarray(action, dtype=np.float32))
