"""Rollout storage and the collector (docs/architecture.md, "Data flow").

The collector drives a SAME_STEP-autoreset vector env: each step returns the next observation
(the reset one where an episode ended) and, for ended episodes, ``info["final_obs"]``. Truncated
episodes bootstrap from ``V(final_obs)`` (docs/design/advantages.md); terminated ones do not bootstrap at all.
The acting path runs under ``torch.inference_mode`` and writes into preallocated tensors.

Observations are stored as the model reads them (:data:`ppox.types.Obs`): one tensor for a
Box, a dict of leaf tensors for Dict / Tuple spaces, each leaf in its own dtype (images stay
uint8). The action mask comes from ``info["action_mask"]``, or from the observation's
``action_mask`` key when its space has one (docs/observations.md).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from ppox.core.advantages import next_values
from ppox.distributions.base import noisy_heads
from ppox.envs.snapshot import Snapshot
from ppox.envs.vector import LIFE_LOST_KEY
from ppox.errors import NumericalError
from ppox.nn.actor_critic import ActorCritic
from ppox.nn.memory import Recurrence
from ppox.nn.numpy_policy import NumpyActorCritic
from ppox.training.backends import act_backend as resolve_act_backend
from ppox.training.lockstep import Request, Steps, drive
from ppox.training.nonfinite import all_finite, bad_rows, describe, merge_rows
from ppox.training.normalizers import ObsNormalizer, RewardScaler
from ppox.types import MASK_KEY, Obs, ObsArrays, Rollout, cat_obs, obs_map

__all__ = ["MASK_KEY", "Collector", "EpisodeStats", "RolloutBuffer"]

_HOST = torch.device("cpu")


def _zeros_like_obs(model: ActorCritic, T: int, N: int, device: torch.device) -> Obs:
    layout = model.obs_layout
    if layout.fast:
        return torch.zeros((T, N, *model.obs_shape), device=device)
    leaves = {
        p: torch.from_numpy(np.zeros((T, N, *leaf.shape), dtype=leaf.dtype)).to(device)
        for p, leaf in layout.leaves.items()
    }
    return leaves if layout.structured else leaves[""]


class RolloutBuffer:
    """Preallocated ``[T, N, ...]`` storage for one iteration.

    What the env gives as NumPy (rewards, episode flags) is kept on the host and written
    through NumPy views of the same memory, so the acting loop makes no per-step torch tensors
    for it; :meth:`rollout` hands the whole batch to ``device`` in one transfer. What the policy
    reads and writes (observations, actions, log-probabilities, values, masks) is kept where the
    policy runs: on the host for a CPU run (written through NumPy views as well), on the device
    otherwise (``device_storage``), so that a GPU step moves only the observation up and the
    action down. ``obs`` is ``[T, N, *obs_shape]`` float32 for a Box, or per leaf
    ``[T, N, *leaf_shape]`` in the leaf's storage dtype (a dict for Dict / Tuple spaces).
    """

    def __init__(
        self,
        T: int,
        N: int,
        model: ActorCritic,
        device: torch.device,
        device_storage: bool | None = None,
    ) -> None:
        self.device = device
        self.on_device = device.type != "cpu" if device_storage is None else device_storage
        policy_side = device if self.on_device else _HOST

        def z(
            *shape: int, dtype: torch.dtype = torch.float32, where: torch.device = _HOST
        ) -> Tensor:
            return torch.zeros((T, N, *shape), dtype=dtype, device=where)

        head = model.head
        self.obs = _zeros_like_obs(model, T, N, policy_side)
        self.action = z(*head.action_shape, dtype=head.action_dtype, where=policy_side)
        self.logp, self.value = z(where=policy_side), z(where=policy_side)
        self.reward, self.terminated, self.done = z(), z(), z()
        self.mask = (
            z(*head.mask_shape, dtype=torch.bool, where=policy_side)
            if head.mask_shape is not None
            else None
        )
        self.has_mask = False
        self.memory = model.memory is not None
        if self.memory:  # the state carried into each step, and the episode starts at step 0
            self.state = z(model.state_size, where=policy_side)
            self.first_start = torch.ones(N, dtype=torch.bool, device=policy_side)
        self.valid = torch.ones((T, N), dtype=torch.bool)  # False: skipped (nonfinite_env="skip")
        self.np_valid = self.valid.numpy()
        self.skipped = 0  # transitions skipped in this rollout
        self.np_reward = self.reward.numpy()
        self.np_terminated, self.np_done = self.terminated.numpy(), self.done.numpy()
        if not self.on_device:
            self.np_obs: ObsArrays = obs_map(Tensor.numpy, self.obs)
            self.np_action, self.np_logp, self.np_value = (
                self.action.numpy(),
                self.logp.numpy(),
                self.value.numpy(),
            )

    def rollout(
        self, last_value: Tensor, last_obs: Obs, finals: list[tuple[Tensor, Obs, Tensor]]
    ) -> Rollout:
        """Assemble the rollout on the device; ``last_value`` is ``V(obs_T)`` ``[N]`` and
        ``last_obs`` that observation; ``finals`` the ``(flat index [k], final obs [k, ...],
        V(final obs) [k])`` of the truncated steps, kept so a critic can recompute every
        bootstrap value."""

        def dev(x: Tensor) -> Tensor:
            return x.to(self.device, copy=True)

        final_index = final_obs = final_values = None
        if finals:
            final_index = torch.cat([i for i, _, _ in finals]).to(self.device)
            final_values = torch.cat([v for _, _, v in finals]).to(self.device)
            final_obs = obs_map(lambda x: x.to(self.device), cat_obs([o for _, o, _ in finals]))
        value, done = dev(self.value), dev(self.done)
        mask = self.mask if self.has_mask else None
        return Rollout(
            obs=obs_map(dev, self.obs), action=dev(self.action), logp=dev(self.logp), value=value,
            next_value=next_values(value, last_value.to(self.device), done, final_index, final_values),
            reward=dev(self.reward), terminated=dev(self.terminated), done=done,
            mask=None if mask is None else dev(mask),
            last_obs=obs_map(dev, last_obs), final_obs=final_obs, final_index=final_index,
            valid=dev(self.valid) if self.skipped else None,
            state=dev(self.state) if self.memory else None,
            starts=self._starts(done) if self.memory else None,
        )  # fmt: skip

    def _starts(self, done: Tensor) -> Tensor:
        """``[T, N]`` bool: the steps that begin an episode (step 0's flags as collected, then
        wherever the step before ended one)."""
        first = self.first_start.to(self.device).unsqueeze(0)
        return torch.cat([first, done[:-1].bool()])

    def store_obs(self, t: int, obs: ObsArrays, obs_t: Obs | None) -> None:
        """Write the (normalized) observations of step ``t``, ``[N, ...]`` or a dict of leaves:
        ``obs`` as NumPy, ``obs_t`` the same as tensors where the policy runs (used on a device)."""
        if self.on_device:
            if isinstance(self.obs, dict):
                assert isinstance(obs_t, dict)
                for k, leaf in self.obs.items():
                    leaf[t] = obs_t[k]
            else:
                assert isinstance(obs_t, Tensor)
                self.obs[t] = obs_t
            return
        if isinstance(self.np_obs, dict):
            assert isinstance(obs, dict)
            for k, arr in self.np_obs.items():
                arr[t] = obs[k]
        else:
            self.np_obs[t] = obs


def game_ends(done: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """``done`` without the envs whose training episode ended at a lost life while the game goes
    on (:mod:`ppox.envs.atari`), so the episode statistics count whole games; ``done`` itself
    when no env reports one. ppox's vector envs put the flags in ``info``; Gymnasium's keep the
    ended step's info under ``final_info``."""
    flags = info.get(LIFE_LOST_KEY)
    if flags is None and isinstance(info.get("final_info"), dict):
        flags = info["final_info"].get(LIFE_LOST_KEY)
    return done if flags is None else done & ~np.asarray(flags, dtype=bool)


class EpisodeStats:
    """Raw (unnormalized) returns and lengths of the episodes finished during training (whole
    games for Atari with ``atari_episodic_life``: the caller leaves lost lives out of ``done``)."""

    def __init__(self, num_envs: int, window: int = 100) -> None:
        self.ret = np.zeros(num_envs)
        self.len = np.zeros(num_envs, dtype=np.int64)
        self.returns: deque[float] = deque(maxlen=window)
        self.lengths: deque[int] = deque(maxlen=window)
        self.episodes = 0

    def step(self, reward: np.ndarray, done: np.ndarray, discard: np.ndarray | None = None) -> None:
        """Add one vector step; ``discard`` ``[N]`` bool: envs whose episode is dropped unrecorded
        (a skipped non-finite transition)."""
        if discard is not None:
            self.ret[discard] = 0.0
            self.len[discard] = 0
            done = done & ~discard
            reward = np.where(discard, 0.0, reward)
        self.ret += reward
        self.len += 1
        if done.any():
            for i in np.flatnonzero(done):
                self.returns.append(float(self.ret[i]))
                self.lengths.append(int(self.len[i]))
            self.episodes += int(done.sum())
            self.ret[done] = 0.0
            self.len[done] = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "ret": self.ret.tolist(),
            "len": self.len.tolist(),
            "returns": list(self.returns),
            "lengths": list(self.lengths),
            "episodes": self.episodes,
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.ret, self.len = (
            np.asarray(s["ret"], dtype=np.float64),
            np.asarray(s["len"], dtype=np.int64),
        )
        self.returns.clear()
        self.returns.extend(s["returns"])
        self.lengths.clear()
        self.lengths.extend(s["lengths"])
        self.episodes = int(s["episodes"])


class Collector:
    """Steps ``envs`` with ``model`` and fills a :class:`RolloutBuffer`."""

    def __init__(
        self,
        envs: VectorEnv,
        model: ActorCritic,
        obs_norm: ObsNormalizer,
        reward_scaler: RewardScaler,
        num_steps: int,
        device: torch.device,
        generator: torch.Generator,
        act_backend: str = "auto",
        device_storage: bool | None = None,
        nonfinite: str = "error",
        label: str = "the environment",
        sign_reward: bool = False,
    ) -> None:
        self.envs, self.model, self.obs_norm, self.reward_scaler = (
            envs,
            model,
            obs_norm,
            reward_scaler,
        )
        self.device, self.generator, self.T = device, generator, num_steps
        self.N = envs.num_envs
        self.layout = model.obs_layout
        self.buffer = RolloutBuffer(num_steps, self.N, model, device, device_storage)
        self.stats = EpisodeStats(self.N)
        self.raw_obs: ObsArrays | None = (
            None  # as the env gave it (flattened to leaves), unnormalized
        )
        self.mask: Tensor | None = None
        self._obs_t: Obs | None = None  # the tensors of obs_np, made when read (:attr:`obs`)
        self.act_backend, self.act_backend_reason = resolve_act_backend(
            act_backend, model, storage_on_device=self.buffer.on_device
        )
        """``"numpy"`` or ``"torch"``, and why not NumPy (None when it is NumPy)."""
        self.lean = NumpyActorCritic(model) if self.act_backend == "numpy" else None
        self.nonfinite, self.label = nonfinite, label  # env.nonfinite_env; how errors name the envs
        self.sign = sign_reward  # env.sign_reward: the learner reads the rewards' signs
        # memory: the state carried into the next step, and which envs begin an episode there
        self.state = model.initial_state(self.N)
        self.start = torch.ones(self.N, dtype=torch.bool, device=device)

    def _rec(self) -> Recurrence | None:
        """The next step's recurrent input (None without memory)."""
        if self.model.memory is None:
            return None
        return Recurrence(self.state, self.start, 1)

    def reset(self, seeds: list[int]) -> None:
        """Reset every env once with its own seed; autoreset continues their RNG afterwards."""
        obs, info = self.envs.reset(seed=seeds)  # type: ignore[arg-type]
        if not all_finite(obs, np.zeros(self.N)):
            i = int(np.flatnonzero(bad_rows(obs, np.zeros(self.N)))[0])
            raise NumericalError(
                f"{self.label}: env {i} returned a non-finite {describe(obs, np.zeros(self.N), i)} on reset"
            )
        self._set_obs(obs, info)
        self.state = self.model.initial_state(self.N)
        self.start = torch.ones(self.N, dtype=torch.bool, device=self.device)

    def _set_obs(self, raw_obs: Any, info: dict[str, Any]) -> None:
        masks = raw_obs if self.layout.mask_in_obs else info  # both hold it under MASK_KEY
        if not self.layout.fast:
            raw_obs = self.layout.flatten(raw_obs)
        self.obs_norm.update(raw_obs)
        self.raw_obs = raw_obs
        self.obs_np = self.obs_norm(raw_obs)
        self.mask = self._read_mask(masks)

    @property
    def obs_np(self) -> ObsArrays:
        """The current observation, normalized, as NumPy (what the NumPy acting path reads)."""
        return self._obs_np

    @obs_np.setter
    def obs_np(self, value: ObsArrays) -> None:
        self._obs_np = value
        self._obs_t = None  # its tensors are made when read: the NumPy acting path never does

    @property
    def obs(self) -> Obs:
        """The current observation, normalized, as tensors where the policy runs."""
        if self._obs_t is None:
            self._obs_t = self._tensor(self._obs_np)
        return self._obs_t

    def refresh_obs(self) -> None:
        """Normalize the current observation again, after the statistics changed outside
        collection (the workers' merge), so the next step reads it as a resumed run would."""
        assert self.raw_obs is not None, "reset() first"
        self.obs_np = self.obs_norm(self.raw_obs)

    def _tensor(self, x: ObsArrays) -> Obs:
        return obs_map(lambda v: torch.from_numpy(v).to(self.device), x)

    def _read_mask(self, info: dict[str, Any]) -> Tensor | None:
        """The mask under ``MASK_KEY`` in ``info`` (or in a Dict observation), flat ``[N, M]``."""
        if MASK_KEY not in info or self.buffer.mask is None:
            return None
        mask = self.model.head.read_mask(info[MASK_KEY], self.N)
        return torch.from_numpy(mask).to(self.device)

    def collect(self) -> Rollout:
        """Run ``T`` vector steps; return the filled rollout (a copy on the device)."""
        with torch.inference_mode():
            return drive(self.collect_steps())

    def collect_steps(self) -> Steps[Rollout]:
        """:meth:`collect` as a generator of the NumPy policy's acting calls
        (:mod:`ppox.training.lockstep`): each step yields ``lean.act(obs, noise, mask)`` and
        receives its ``(action, log π, value)``; the torch acting path yields nothing."""
        buf, model, head, lean = self.buffer, self.model, self.model.head, self.lean
        buf.has_mask = self.mask is not None
        if buf.skipped:
            buf.np_valid[:] = True
            buf.skipped = 0
        self._finals: list[tuple[Tensor, Obs, Tensor]] = []
        if lean is not None:
            lean.refresh()
            noise = lean.noise(self.T, self.N, self.generator)
        noisy = [] if lean is not None else noisy_heads(head)
        for t in range(self.T):
            if self.mask is not None and buf.mask is not None:
                buf.mask[t] = self.mask
            buf.store_obs(t, self.obs_np, self.obs if buf.on_device else None)
            if lean is not None:
                mask = None if self.mask is None else self.mask.numpy()
                action_np, buf.np_logp[t], buf.np_value[t] = yield Request(
                    lean, "act", (self.obs_np, noise[t], mask)
                )
                buf.np_action[t] = action_np
            else:
                action_np = self._torch_act(t, noisy)
            raw_obs, reward, terminated, truncated, info = self.envs.step(head.to_env(action_np))
            skip = None
            if not all_finite(raw_obs, reward):
                raw_obs, reward, terminated, truncated, info, skip = self._nonfinite(
                    t, raw_obs, reward, terminated, truncated, info
                )
            done = terminated | truncated
            self.stats.step(reward, game_ends(done, info), skip)
            buf.np_reward[t] = self.reward_scaler(np.sign(reward) if self.sign else reward, done)
            buf.np_terminated[t] = terminated
            buf.np_done[t] = done
            if truncated.any():
                self._bootstrap_truncated(t, truncated & ~terminated, info)
            self._set_obs(raw_obs, info)
            if buf.memory:
                self.start = torch.from_numpy(done).to(self.device)
        with torch.inference_mode():
            return buf.rollout(model.value(self.obs, self._rec()), self.obs, self._finals)

    @torch.inference_mode()
    def _torch_act(self, t: int, noisy: list[Any]) -> np.ndarray:
        """Step ``t``'s action through the torch model (stored), as NumPy for the env; first the
        exploration matrices of ``noisy`` heads (gSDE), drawn where due."""
        buf, model = self.buffer, self.model
        for h in noisy:
            h.draw_noise(t, self.N, self.generator)
        if buf.memory:
            buf.state[t] = self.state
            if t == 0:
                buf.first_start.copy_(self.start)
            dist, value, self.state = model.step(self.obs, self.mask, self.state, self.start)
        else:
            dist, value = model(self.obs, self.mask)
        action, logp = dist.sample_log_prob(self.generator)
        buf.action[t], buf.logp[t], buf.value[t] = action, logp, value
        return action.cpu().numpy()  # type: ignore[no-any-return]

    @torch.inference_mode()
    def _nonfinite(
        self, t: int, raw_obs: Any, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
        info: dict[str, Any],
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any], np.ndarray]:  # fmt: skip
        """A step where some env returned a non-finite observation or reward: stop the run
        (``nonfinite_env="error"``), or ``"skip"``: the transition is left out of the loss with a
        reward of 0 and no bootstrap, the env's previous step is cut there as a truncation
        (bootstrapping from the last finite observation, so no advantage crosses the corrupted
        step), the episode is dropped from the statistics and the env is reset."""
        bad = bad_rows(raw_obs, reward)
        i = int(np.flatnonzero(bad)[0])
        what = describe(raw_obs, reward, i)
        if self.nonfinite == "error":
            raise NumericalError(
                f"{self.label}: env {i} returned a non-finite {what} at step {t + 1} of the rollout; nothing was "
                "trained on it and the last checkpoint is intact (nonfinite_env='skip' drops such transitions)"
            )
        if not (hasattr(self.envs, "envs") or hasattr(self.envs, "parent_pipes")):
            raise NumericalError(f"{self.label}: env {i} returned a non-finite {what}; nonfinite_env='skip' needs "
                                 "env_backend='gymnasium' (EnvPool cannot reset one env)")  # fmt: skip
        buf = self.buffer
        buf.np_valid[t, bad] = False
        buf.skipped += int(bad.sum())
        if (
            t > 0
        ):  # cut the previous step of each such env: a truncation at the last finite observation
            for n in np.flatnonzero(bad & (buf.np_done[t - 1] == 0)):
                buf.np_done[t - 1, n] = 1.0
                index = torch.tensor([(t - 1) * self.N + n])
                self._finals.append((index, obs_map(lambda x: x[n : n + 1].clone(), self.obs),  # noqa: B023
                                     buf.value[t, n : n + 1].to(self.device)))  # fmt: skip
        reset_obs, reset_info = self.envs.reset(options={"reset_mask": bad})
        raw_obs = merge_rows(raw_obs, reset_obs, bad)
        if MASK_KEY in reset_info and MASK_KEY in info:
            info = {**info, MASK_KEY: merge_rows(info[MASK_KEY], reset_info[MASK_KEY], bad)}
        if not all_finite(raw_obs, np.zeros(self.N)):
            raise NumericalError(
                f"{self.label}: env {i} returned a non-finite observation again after a reset"
            )
        reward = np.where(bad, 0.0, reward)
        return raw_obs, reward, terminated | bad, truncated & ~bad, info, bad

    @torch.inference_mode()
    def _bootstrap_truncated(self, t: int, truncated: np.ndarray, info: dict[str, Any]) -> None:
        idx = np.flatnonzero(truncated)
        if idx.size == 0:
            return
        final = self.layout.stack([info["final_obs"][i] for i in idx])
        if not all_finite(final, np.zeros(len(idx))):
            i = int(idx[np.flatnonzero(bad_rows(final, np.zeros(len(idx))))[0]])
            raise NumericalError(f"{self.label}: env {i} returned a non-finite final observation at step {t + 1} "
                                 "of the rollout (its episode was truncated there)")  # fmt: skip
        final_t = self._tensor(self.obs_norm(final))  # fresh tensors: kept as they are
        rec = None  # with memory the final observation continues from the state after step t
        if self.model.memory is not None:
            no_start = torch.zeros(len(idx), dtype=torch.bool, device=self.device)
            rec = Recurrence(self.state[torch.from_numpy(idx).to(self.device)], no_start, 1)
        self._finals.append(
            (torch.from_numpy(t * self.N + idx), final_t, self.model.value(final_t, rec))
        )

    # --- exact resume -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue collection exactly (env states included when possible)."""
        env_states = self.envs.call("ppox_get_state")  # type: ignore[attr-defined]
        assert self.raw_obs is not None, "reset() first"
        return {
            "raw_obs": obs_map(lambda x: torch.from_numpy(np.asarray(x)), self.raw_obs),
            "mask": None if self.mask is None else self.mask.cpu(),
            "env_states": list(env_states),
            "stats": self.stats.state_dict(),
            **(
                {"memory": {"state": self.state.cpu(), "start": self.start.cpu()}}
                if self.model.memory is not None
                else {}
            ),
        }

    def load_state_dict(self, state: dict[str, Any], fallback_seeds: list[int]) -> bool:
        """Restore; returns False when the envs could not be restored and were reset instead.

        Env states are plain data (:mod:`ppox.envs.snapshot`); an env that cannot be snapshotted
        (saved as None), a state that does not fit the env, or the pickled states of checkpoints
        written before version 2 (bytes, never unpickled) make every env restart from
        ``fallback_seeds``, with the episode statistics of the interrupted episodes cleared."""
        self.stats.load_state_dict(state["stats"])
        states = state["env_states"]
        # states that were not saved, or envs that cannot take them (a run resumed on another
        # backend, e.g. env_backend="auto" where EnvPool was installed in between)
        restored = (
            all(isinstance(s, dict) for s in states)
            and (hasattr(self.envs, "envs") or hasattr(self.envs, "parent_pipes"))
            and _set_states(self.envs, states)
        )
        if not restored:
            self.reset(fallback_seeds)
            self.stats.ret[:] = 0.0
            self.stats.len[:] = 0
            return False
        self.raw_obs = obs_map(Tensor.numpy, state["raw_obs"])
        self.refresh_obs()
        self.mask = None if state["mask"] is None else state["mask"].to(self.device)
        if self.model.memory is not None:
            self.state = state["memory"]["state"].to(self.device)
            self.start = state["memory"]["start"].to(self.device)
        return True


def _set_states(envs: VectorEnv, states: list[dict[str, Any]]) -> bool:
    """Give each sub-env its own saved state (``call`` would send the same argument to all);
    False when some sub-env refused its state (see :func:`ppox.envs.snapshot.set_state`)."""
    if hasattr(envs, "envs"):  # SyncVectorEnv
        done = []
        for env, s in zip(envs.envs, states):
            assert isinstance(env, Snapshot)
            done.append(env.ppox_set_state(s))
        return all(done)
    pipes = envs.parent_pipes  # type: ignore[attr-defined]  # AsyncVectorEnv
    for pipe, s in zip(pipes, states):
        pipe.send(("_call", ("ppox_set_state", (s,), {})))
    results = []
    for pipe in pipes:
        result, ok = pipe.recv()
        if not ok:
            raise RuntimeError(f"restoring an async env failed: {result}")
        results.append(result is True)
    return all(results)
