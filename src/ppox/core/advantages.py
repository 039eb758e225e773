"""Advantage and return estimators (docs/design/advantages.md): GAE from "High-Dimensional
Continuous Control Using Generalized Advantage Estimation" (Schulman et al. 2016), the K-step
returns of DPPO ("Emergence of Locomotion Behaviours in Rich Environments", Heess et al. 2017) and
the Monte Carlo reward-to-go of the PPO × Family course's policy-gradient tutorial.

Shapes: ``T`` is the rollout length (time), ``N`` the number of parallel environments. All inputs
are time-major ``[T, N]`` float tensors (booleans are accepted for ``terminated`` / ``done``).
The recursions run backwards in time in float64 NumPy on the host, which for the tiny per-step
work involved is several times cheaper than a loop of small torch ops; the result comes back as
tensors of the input's dtype and device.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _host(x: Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()


def next_values(
    values: Tensor,
    last_value: Tensor,
    done: Tensor,
    final_index: Tensor | None = None,
    final_values: Tensor | None = None,
) -> Tensor:
    """``V(s_{t+1})`` ``[T, N]`` of the true next observation, as :func:`gae` takes it.

    Args:
        values: ``[T, N]`` ``V(s_t)``.
        last_value: ``[N]`` value of the observation after the rollout's last step.
        done: ``[T, N]`` episode ends.
        final_index: ``[K]`` flat indices ``t·N + n`` of the truncated steps, or None.
        final_values: ``[K]`` values of those steps' final observations.

    Returns:
        ``values[t + 1]`` inside an episode, ``last_value`` at the last step, the final
        observation's value at a truncation and 0 at any other episode end (a terminated step
        is never bootstrapped).
    """
    nxt = torch.cat([values[1:], last_value.unsqueeze(0)])
    out = torch.where(done.bool(), torch.zeros_like(nxt), nxt)
    if final_index is not None and final_values is not None:
        out.view(-1)[final_index] = final_values.to(out.dtype)
    return out


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    done: Tensor,
    *,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalized Advantage Estimation (Schulman et al. 2016) with correct episode ends.

    Args:
        rewards: ``[T, N]`` reward received after the action at step ``t``.
        values: ``[T, N]`` ``V(s_t)`` from the rollout critic.
        next_values: ``[T, N]`` ``V(s_{t+1})`` of the *true* next observation: for a step that
            ends an episode this is the value of the final observation (not of the reset one).
        terminated: ``[T, N]`` the episode reached a terminal state: no bootstrap from
            ``next_values[t]``.
        done: ``[T, N]`` the episode ended (terminated or truncated): the λ-trace is cut, so no
            advantage flows across the boundary into the previous episode.
        gamma: discount factor γ.
        lam: GAE λ; 0 gives the one-step TD error, 1 the Monte Carlo advantage.

    Returns:
        ``(advantages, returns)``, both ``[T, N]``, with ``returns = advantages + values``
        (the λ-return targets for the critic).

    ``δ_t = r_t + γ (1 − terminated_t) V(s_{t+1}) − V(s_t)`` and
    ``A_t = δ_t + γ λ (1 − done_t) A_{t+1}``. A truncated step therefore bootstraps from the
    final observation's value but does not pass the trace back across the reset.
    """
    r, v, nv = _host(rewards), _host(values), _host(next_values)
    not_term = 1.0 - _host(terminated)
    not_done = 1.0 - _host(done)
    delta = r + gamma * not_term * nv - v
    adv = np.empty_like(delta)
    running = np.zeros_like(delta[0])
    for t in range(delta.shape[0] - 1, -1, -1):
        running = delta[t] + gamma * lam * not_done[t] * running
        adv[t] = running
    out = torch.from_numpy(adv).to(device=values.device, dtype=values.dtype)
    return out, out + values


def discounted_returns(
    rewards: Tensor,
    done: Tensor,
    *,
    gamma: float,
    bootstrap: Tensor | None = None,
) -> Tensor:
    """Monte Carlo reward-to-go ``G_t = r_t + γ (1 − done_t) G_{t+1}`` computed backwards.

    Args:
        rewards: ``[T, N]``.
        done: ``[T, N]`` episode ends; the sum restarts after each.
        gamma: discount factor.
        bootstrap: optional ``[N]`` value used as ``G_T`` for episodes still running at the end
            of the rollout (zero when omitted, i.e. pure Monte Carlo).

    Returns:
        ``[T, N]`` returns.
    """
    r, not_done = _host(rewards), 1.0 - _host(done)
    out = np.empty_like(r)
    running = np.zeros_like(r[0]) if bootstrap is None else _host(bootstrap).copy()
    for t in range(r.shape[0] - 1, -1, -1):
        running = r[t] + gamma * not_done[t] * running
        out[t] = running
    return torch.from_numpy(out).to(device=rewards.device, dtype=rewards.dtype)


def nstep_returns(
    rewards: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    done: Tensor,
    *,
    gamma: float,
    n: int,
) -> Tensor:
    """K-step (n-step) returns (DPPO, Heess et al. 2017; docs/design/advantages.md).

    ``R_t = r_t + γ r_{t+1} + … + γ^{k−1} r_{t+k−1} + γ^k V(s_{t+k})`` with ``k ≤ n`` steps, where
    the sum stops early at an episode end (``done``: a terminated end adds no bootstrap, a
    truncated one bootstraps from its final observation's value) or at the end of the rollout
    (bootstrap from ``V(s_T)``). ``n = 1`` gives the one-step TD target; ``n ≥ T`` gives the
    Monte Carlo return within the rollout, bootstrapped where it is cut.

    Args:
        rewards: ``[T, N]``.
        next_values: ``[T, N]`` ``V(s_{t+1})`` of the true next observation (as for :func:`gae`).
        terminated: ``[T, N]`` no bootstrap from ``next_values[t]``.
        done: ``[T, N]`` the episode ended at ``t``; the sum never crosses it.
        gamma: discount factor.
        n: the largest number of rewards summed, ``n ≥ 1``.

    Returns:
        ``[T, N]`` returns (the critic's targets; advantages are ``returns − values``).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1 (got {n})")
    r, nv = _host(rewards), _host(next_values)
    not_term, not_done = 1.0 - _host(terminated), 1.0 - _host(done)
    T = r.shape[0]
    out = np.empty_like(r)
    for t in range(T):
        acc = np.zeros_like(r[0])
        disc = np.ones_like(r[0])  # γ^l while the episode is still running, 0 after it ended
        for j in range(t, min(t + n, T)):
            acc += disc * r[j]
            last = (j == t + n - 1) or (j == T - 1)
            # bootstrap where this step closes the window: at an episode end (unless terminated),
            # at the n-th step, or at the rollout's last step
            close = np.maximum(1.0 - not_done[j], float(last))
            acc += disc * close * gamma * not_term[j] * nv[j]
            disc = disc * gamma * (1.0 - close)
        out[t] = acc
    return torch.from_numpy(out).to(device=rewards.device, dtype=rewards.dtype)
