"""Run configuration: frozen, nested dataclasses with one docstring per field.

The docstring under each field is the documentation of that switch: the CLI shows it as the
``--help`` text (see :func:`field_docs`) and ``docs/config.md`` lists it. Field names are
unique across sections so that every field is a flat CLI flag (``--learning-rate 3e-4``).
Validation happens once, in :meth:`Config.validate`, with a message that names the field.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import math
import textwrap
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ppox.core.schedules import SCHEDULES
from ppox.errors import ConfigError


@dataclass(frozen=True)
class EnvConfig:
    """Which environment to train on and how it is vectorized and normalized."""

    env_id: str = "CartPole-v1"
    """Gymnasium environment id (any registered id, including ones you register yourself; a
    `module:Id` form imports `module` first so its registration runs)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments passed to `gymnasium.make` (JSON on the command line)."""
    num_envs: int = 8
    """Number of parallel environments collecting experience."""
    vectorization: str = "sync"
    """`sync` (all envs in this process) or `async` (one subprocess per env). With EnvPool:
    one worker thread (`sync`) or one per env up to the CPU count (`async`)."""
    env_backend: str = "gymnasium"
    """`gymnasium`, `envpool` (C++ batched envs for the ids listed in docs/envpool.md; `pip install
    envpool`; no exact resume of in-flight episodes) or `auto` (EnvPool when it is installed and
    supports the id, else Gymnasium; the run's config.json and checkpoint record the one it got,
    and a resume uses that one)."""
    max_episode_steps: int | None = None
    """Override the environment's time limit (None keeps the registered one)."""
    normalize_obs: bool = False
    """Normalize observations with running mean/std; the statistics are saved with the policy."""
    obs_clip: float = 10.0
    """Clip normalized observations to [-obs_clip, obs_clip]."""
    scale_reward: bool = False
    """Divide rewards by the running std of the discounted return (SPEC 5.3)."""
    reward_clip: float = 10.0
    """Clip scaled rewards to [-reward_clip, reward_clip]."""
    nonfinite_env: str = "error"
    """What a non-finite (NaN or infinite) observation or reward from an environment does:
    `error` stops the run with one line naming the environment, the worker, the env index and
    the step (the last checkpoint stays intact); `skip` resets that environment, leaves the
    transition out of the loss (the step before it is cut as a truncation) and counts it in the
    metrics column `skipped_transitions`."""


@dataclass(frozen=True)
class PolicyConfig:
    """Network and action head."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    """Widths of the MLP hidden layers."""
    activation: str = "tanh"
    """Hidden activation: `tanh`, `relu` or `elu`."""
    shared_trunk: bool = False
    """One trunk for actor and critic (True) or two separate trunks (False)."""
    init: str = "orthogonal"
    """Weight initialization (seed 001 "笨鸟先飞"): `orthogonal` (the activation's gain, zero
    biases), `xavier` (Glorot-uniform with the same gains), `normal` (Gaussian, variance
    gain²/fan_in) or `torch` (PyTorch's default for every layer, output gains ignored)."""
    policy_init_gain: float = 0.01
    """Init gain of the policy output layer; small so early actions are near uniform."""
    value_init_gain: float = 1.0
    """Init gain of the value output layer."""
    sigma_mode: str = "independent"
    """Gaussian σ for Box actions: `independent` (learned, state-independent), `fixed`,
    or `state` (a network output)."""
    init_log_std: float = 0.0
    """Initial log σ (the value for `fixed`)."""
    temperature: float = 1.0
    """Sampling temperature of categorical heads (logits are divided by it)."""
    action_bound: str = "clip"
    """How Box actions reach the env: `clip` to the bounds, or `rescale` from [-1, 1] to the
    bounds. The unclipped sample is what is stored and trained on."""
    multi_discrete: str = "factored"
    """MultiDiscrete / MultiBinary head: `factored` (one categorical per dimension, log-probs
    summed) or `flat` (one categorical over every combination; for comparison, small spaces)."""
    hybrid_mode: str = "independent"
    """Hybrid (Discrete type + Box parameters) head: `independent` (H-PPO), `autoregressive`
    (parameters conditioned on the chosen type) or `type_given_params` (the type head also
    reads the parameter head's mean)."""
    hybrid_detach: bool = True
    """With `type_given_params`: detach the parameter mean before the type head reads it, so
    the type's loss does not train the parameter head (seed 000 Q14)."""
    obs_encoders: dict[str, str] = field(default_factory=dict)
    """Encoder per observation key path (`{"items": "deep_sets"}`; paths join Dict keys and Tuple
    indices with `/`): a name given to `ppox.nn.register_encoder`, or `module:callable`. Other keys
    get the default for their kind (docs/observations.md)."""
    cnn_features: int = 512
    """Output width of the CNN that encodes uint8 image observations."""


@dataclass(frozen=True)
class PPOConfig:
    """Algorithm, rollout, loss and optimizer settings."""

    algo: str = "ppo-clip"
    """`ppo-clip`, `ppo-penalty` (adaptive KL penalty, SPEC 1.5) or `reinforce` (Monte Carlo
    reward-to-go with a baseline, SPEC 1.1); all share the collector and the learner."""

    num_steps: int = 32
    """Steps collected per environment per iteration (batch = num_steps × num_envs)."""
    num_epochs: int = 20
    """Passes over the batch per iteration."""
    num_minibatches: int = 1
    """Minibatches per epoch (minibatch = batch / num_minibatches)."""
    learning_rate: float = 1e-3
    """Adam learning rate at the start of training."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over the step budget."""
    adam_eps: float = 1e-5
    """Adam epsilon."""
    gamma: float = 0.98
    """Discount factor γ of the return."""
    lam: float = 0.8
    """GAE λ: 0 gives one-step TD errors, 1 Monte Carlo advantages."""
    advantage: str = "gae"
    """Advantage estimator: `gae` (GAE(γ, λ)), `nstep` (n_step-step returns minus V) or `mc`
    (Monte Carlo returns minus V, bootstrapped only where the rollout or a truncation cuts an
    episode; the same as `gae` with λ = 1). Ignored by `reinforce`."""
    n_step: int = 5
    """Rewards summed before bootstrapping when advantage=`nstep` (DPPO's K)."""
    recompute_adv: bool = False
    """Recompute values and advantages with the latest critic (no gradient) at the start of every
    epoch after the first (seed 001 "稳扎稳打"); value clipping then uses those values as V_old."""
    minibatch_order: str = "transitions"
    """How each epoch cuts minibatches: `transitions` (shuffle single steps), `trajectories`
    (shuffle whole episode segments, keeping their steps in order) or `fixed` (env by env in
    time order, the same every epoch)."""
    clip_coef: float = 0.2
    """PPO clip ε."""
    dual_clip: float | None = None
    """Dual-clip bound c > 1 for negative advantages (None: off)."""
    value_clip: float | None = None
    """Value-clip ε_v in return units (None: off; SPEC 1.4)."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus at the start of training."""
    ent_coef_end: float | None = None
    """Entropy weight at the end of training (None: same as ent_coef)."""
    ent_schedule: str = "constant"
    """How the entropy weight moves from ent_coef to ent_coef_end: constant, linear, exponential."""
    max_grad_norm: float | None = 0.5
    """Gradient-norm threshold for grad_clip `norm` and `ignore` (None: no clipping). The
    pre-clip norm is logged as `grad_norm`."""
    grad_clip: str = "norm"
    """`norm`: scale the gradient down to total norm ≤ max_grad_norm; `value`: clamp every
    element to ±grad_clip_value; `ignore`: skip the optimizer step of a minibatch whose norm
    exceeds max_grad_norm (counted as `skipped_updates`)."""
    grad_norm_type: float = 2.0
    """p of the total gradient norm (any p > 0; `inf` for the max-abs norm)."""
    grad_clip_value: float = 1.0
    """Element bound for grad_clip=`value`."""
    norm_adv: str = "minibatch"
    """Advantage normalization: `minibatch`, `batch` or `off`."""
    norm_adv_scope: str = "global"
    """With several workers (docs/distributed.md): normalize advantages with the mean and std of
    all workers' samples together (`global`, by all-reduce; seed 000 A5) or of each worker's own
    (`per_worker`, as the DPPO paper's workers do; seed 000 Q7). No effect in one process."""
    target_kl: float | None = None
    """Stop the epoch loop early when the approximate KL exceeds 1.5 × this (None: off)."""
    kl_coef: float = 1.0
    """ppo-penalty: initial KL weight β."""
    kl_target: float = 0.01
    """ppo-penalty: the KL the adaptive rule aims for."""
    kl_tolerance: float = 1.5
    """ppo-penalty: β grows when KL > kl_tolerance·kl_target, shrinks when KL < kl_target/kl_tolerance."""
    kl_raise: float = 2.0
    """ppo-penalty: factor β is multiplied by when the KL is too high."""
    kl_lower: float = 2.0
    """ppo-penalty: factor β is divided by when the KL is too low."""
    kl_coef_scope: str = "global"
    """ppo-penalty with several workers: adapt β from the KL over all workers' batches (`global`,
    one β everywhere) or from each worker's own batch (`per_worker`, DPPO's per-worker
    adaptation; β then differs by worker and checkpoints keep worker 0's). No effect in one process."""
    kl_margin: float | None = None
    """ppo-penalty: DPPO's hinge ξ·max(0, KL − kl_margin·kl_target)² per minibatch (None: off; DPPO uses 2)."""
    kl_margin_coef: float = 1000.0
    """ppo-penalty: ξ, the weight of the hinge (DPPO: 1000)."""
    baseline: str = "critic"
    """reinforce: the baseline b in (G_t − b)·∇log π: `critic` (a learned V(s), also used to
    bootstrap cut episodes), `mean` (running mean of past returns) or `none`."""
    nan_guard: str = "rollback"
    """What a non-finite loss or gradient does (the PPO × Family course's Q&A on NaN in training):
    `rollback` skips that minibatch step (counted in `nonfinite_updates`) and, after
    `nan_patience` such steps in a row, restores the policy and optimizer to their state at the
    start of the update, multiplies the learning rate by `nan_lr_factor` and carries on
    (counted in `rollbacks`, with a warning); after `nan_max_rollbacks` rollbacks with no finite
    update between them the run stops with an error. `error` stops the run at the first
    non-finite step. Either way no non-finite parameter is ever kept or checkpointed."""
    nan_patience: int = 3
    """nan_guard=`rollback`: non-finite minibatch steps in a row that trigger a rollback."""
    nan_lr_factor: float = 0.5
    """nan_guard=`rollback`: factor applied to the learning rate at each rollback (0 < f < 1)."""
    nan_max_rollbacks: int = 5
    """nan_guard=`rollback`: rollbacks in a row (no finite update between them) before the run stops."""


@dataclass(frozen=True)
class RunConfig:
    """Budget, seeds, evaluation, logging and checkpoints."""

    total_steps: int = 100_000
    """Environment steps to train for (summed over all envs)."""
    seed: int = 1
    """Master seed: drives Python, NumPy, torch and the collection envs' seeds."""
    eval_every: int = 10_000
    """Evaluate every this many environment steps (0: only at the end)."""
    eval_episodes: int = 10
    """Episodes per evaluation; episode i uses seed eval_seed + i."""
    eval_seed: int = 1_000_000
    """First evaluation seed. Collection seeds are drawn to avoid the evaluation set."""
    eval_deterministic: bool = True
    """Evaluate the mode of the policy (True) or sample from it (False)."""
    checkpoint_every: int = 10
    """Write a checkpoint every this many iterations (and always at the end)."""
    run_dir: str | None = None
    """Where the run is written (default: runs/<env>-s<seed>-<time>)."""
    device: str = "cpu"
    """`cpu`, `cuda`, `cuda:N` or `auto` (a GPU when one is present)."""
    act_backend: str = "auto"
    """How collection runs the policy: `numpy` acts in NumPy (3.5–4.5× cheaper per step than
    torch at a few envs; benchmarks/fixed_costs.py), which serves a plain MLP policy on the CPU
    reading a Box observation, whose action head declares a NumPy kernel (Discrete and Box
    heads do; docs/performance.md); `torch` always uses torch; `auto` takes `numpy` where it
    serves the policy and `torch` otherwise. An explicit `numpy` that cannot serve the policy is
    an error naming why. The backend a run got is printed at start and recorded in config.json
    and summary.json."""
    update_backend: str = "auto"
    """How each minibatch's gradient is computed: `numpy` writes the loss's gradient out by
    hand in NumPy (a 64-wide MLP's minibatch step at 64–256 samples takes a third to a quarter
    of autograd's time; benchmarks/fixed_costs.py), which serves PPO-Clip on the policies
    `act_backend=numpy` serves, and only for settings it is known to honour (every config field
    is classified; docs/performance.md); `autograd` always uses autograd; `auto` takes `numpy`
    where it serves the run and `autograd` otherwise. An explicit `numpy` that cannot serve the
    run is an error naming why. Recorded like `act_backend`."""
    threads: int = 1
    """Intra-op threads of torch and of NumPy's BLAS (per worker under torchrun); 1 is fastest
    for small MLPs on CPU (0: leave both libraries' defaults)."""
    batch_scope: str = "global"
    """With W workers under torchrun (docs/distributed.md): `global` makes num_envs, the batch
    (num_steps × num_envs) and its minibatches count all workers together, each worker running
    num_envs / W envs, so a run learns the same way on any number of workers; `per_worker` gives
    every worker num_envs envs and a W times larger batch. total_steps counts all workers' steps."""
    deterministic: bool = False
    """Ask torch for deterministic algorithms (slower on GPU; CPU runs are reproducible anyway)."""
    tensorboard: bool = True
    """Write TensorBoard events (scalars and histograms) to the run directory."""
    progress: bool = True
    """Show a live progress bar on the terminal."""


SECTIONS = ("env", "policy", "ppo", "run")
RECORD_KEYS = ("backends",)
"""Keys of a run's config.json that record what the run resolved (not config sections)."""


@dataclass(frozen=True)
class Config:
    """A full ppox run: environment, policy, algorithm and run settings."""

    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def batch_size(self) -> int:
        """Transitions per iteration (per worker with ``batch_scope="per_worker"``)."""
        return self.ppo.num_steps * self.env.num_envs

    def worker_envs(self, world: int) -> int:
        """Environments each of ``world`` workers runs (``batch_scope``)."""
        if world == 1 or self.run.batch_scope == "per_worker":
            return self.env.num_envs
        return self.env.num_envs // world

    def global_batch_size(self, world: int) -> int:
        """Transitions per iteration over all ``world`` workers."""
        return self.ppo.num_steps * self.worker_envs(world) * world

    def validate_world(self, world: int) -> Config:
        """Raise :class:`ConfigError` when the run cannot be split over ``world`` workers (each
        worker's minibatch is its equal share of the global minibatch); return self."""
        n, k = self.env.num_envs, self.ppo.num_minibatches
        if self.run.batch_scope == "global" and n % world:
            raise ConfigError(
                f"num_envs={n} cannot be shared by {world} workers with batch_scope='global' (each runs "
                f"num_envs / {world}); use a multiple of {world}, or batch_scope='per_worker'"
            )
        local = self.ppo.num_steps * self.worker_envs(world)
        if local % k:
            raise ConfigError(
                f"num_minibatches={k} must divide each of the {world} workers' batches of "
                f"num_steps × {self.worker_envs(world)} envs = {local}"
            )
        return self

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.ppo.num_minibatches

    @property
    def num_iterations(self) -> int:
        """Iterations needed to cover ``total_steps`` (the last one may overshoot)."""
        return max(1, math.ceil(self.run.total_steps / self.batch_size))

    def replace(self, **flat: Any) -> Config:
        """A copy with fields changed by flat name, e.g. ``cfg.replace(learning_rate=3e-4)``."""
        where = field_sections()
        updates: dict[str, dict[str, Any]] = {}
        for name, value in flat.items():
            if name not in where:
                raise ConfigError(f"unknown config field {name!r}")
            updates.setdefault(where[name], {})[name] = value
        parts = {s: dataclasses.replace(getattr(self, s), **u) for s, u in updates.items()}
        return dataclasses.replace(self, **parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming the key."""
        kinds = {"env": EnvConfig, "policy": PolicyConfig, "ppo": PPOConfig, "run": RunConfig}
        parts = {}
        for section, values in data.items():
            if section in RECORD_KEYS:  # what a run recorded beside its config (config.json)
                continue
            if section not in kinds:
                raise ConfigError(f"unknown config section {section!r}; allowed: {SECTIONS}")
            names = {f.name for f in dataclasses.fields(kinds[section])}
            unknown = set(values) - names - ({"ortho_init"} if section == "policy" else set())
            if unknown:
                raise ConfigError(
                    f"unknown field(s) {sorted(unknown)} in config section {section!r}"
                )
            values = dict(values)
            if (
                section == "policy" and "ortho_init" in values
            ):  # configs written before `init` existed
                values.setdefault("init", "orthogonal" if values.pop("ortho_init") else "torch")
            if "hidden_sizes" in values:
                values["hidden_sizes"] = tuple(values["hidden_sizes"])
            parts[section] = kinds[section](**values)
        return cls(**parts)

    def validate(self) -> Config:
        """Raise :class:`ConfigError` naming the first impossible field; return self."""
        for name, ok, allowed in _checks(self):
            if not ok:
                raise ConfigError(f"{name}={flat_values(self)[name]!r} is not allowed: {allowed}")
        if self.minibatch_size < 1 or self.batch_size % self.ppo.num_minibatches:
            raise ConfigError(
                f"num_minibatches={self.ppo.num_minibatches} must divide the batch of "
                f"num_steps × num_envs = {self.batch_size} into minibatches of at least one sample"
            )
        return self


def _checks(c: Config) -> list[tuple[str, bool, str]]:
    e, p, o, r = c.env, c.policy, c.ppo, c.run
    pos = "must be > 0"

    def opt_pos(x: float | None) -> bool:
        return x is None or x > 0

    return [
        ("env_id", bool(e.env_id), "a non-empty Gymnasium id"),
        ("num_envs", e.num_envs >= 1, "must be ≥ 1"),
        ("vectorization", e.vectorization in ("sync", "async"), "one of 'sync', 'async'"),
        ("env_backend", e.env_backend in ENV_BACKENDS, f"one of {ENV_BACKENDS}"),
        (
            "max_episode_steps",
            e.max_episode_steps is None or e.max_episode_steps >= 1,
            "None or ≥ 1",
        ),
        ("obs_clip", e.obs_clip > 0, pos),
        ("reward_clip", e.reward_clip > 0, pos),
        (
            "hidden_sizes",
            len(p.hidden_sizes) > 0 and all(h >= 1 for h in p.hidden_sizes),
            "one or more widths ≥ 1",
        ),
        ("activation", p.activation in ACTIVATIONS, f"one of {ACTIVATIONS}"),
        ("init", p.init in INITS, f"one of {INITS}"),
        (
            "sigma_mode",
            p.sigma_mode in ("independent", "fixed", "state"),
            "one of 'independent', 'fixed', 'state'",
        ),
        ("temperature", p.temperature > 0, pos),
        ("action_bound", p.action_bound in ("clip", "rescale"), "one of 'clip', 'rescale'"),
        ("multi_discrete", p.multi_discrete in ("factored", "flat"), "one of 'factored', 'flat'"),
        (
            "hybrid_mode",
            p.hybrid_mode in ("independent", "autoregressive", "type_given_params"),
            "one of 'independent', 'autoregressive', 'type_given_params'",
        ),
        (
            "obs_encoders",
            all(isinstance(k, str) and isinstance(v, str) and v for k, v in p.obs_encoders.items()),
            "a mapping of observation key path → encoder name or 'module:callable'",
        ),
        ("cnn_features", p.cnn_features >= 1, "must be ≥ 1"),
        ("num_steps", o.num_steps >= 1, "must be ≥ 1"),
        ("num_epochs", o.num_epochs >= 1, "must be ≥ 1"),
        ("num_minibatches", o.num_minibatches >= 1, "must be ≥ 1"),
        ("learning_rate", o.learning_rate > 0, pos),
        ("adam_eps", o.adam_eps > 0, pos),
        ("gamma", 0 <= o.gamma <= 1, "must lie in [0, 1]"),
        ("lam", 0 <= o.lam <= 1, "must lie in [0, 1]"),
        ("clip_coef", o.clip_coef > 0, pos),
        ("dual_clip", o.dual_clip is None or o.dual_clip > 1, "None or > 1"),
        ("value_clip", opt_pos(o.value_clip), "None or > 0"),
        ("vf_coef", o.vf_coef >= 0, "must be ≥ 0"),
        ("ent_coef", o.ent_coef >= 0, "must be ≥ 0"),
        ("ent_coef_end", o.ent_coef_end is None or o.ent_coef_end >= 0, "None or ≥ 0"),
        ("ent_schedule", o.ent_schedule in SCHEDULES, f"one of {SCHEDULES}"),
        ("max_grad_norm", opt_pos(o.max_grad_norm), "None or > 0"),
        ("grad_clip", o.grad_clip in GRAD_CLIPS, f"one of {GRAD_CLIPS}"),
        (
            "grad_clip",
            not (o.grad_clip == "ignore" and o.max_grad_norm is None),
            "'ignore' needs a max_grad_norm",
        ),
        ("grad_norm_type", o.grad_norm_type > 0, "must be > 0 (inf for the max norm)"),
        ("grad_clip_value", o.grad_clip_value > 0, pos),
        ("algo", o.algo in ALGOS, f"one of {ALGOS}"),
        ("advantage", o.advantage in ADVANTAGES, f"one of {ADVANTAGES}"),
        ("n_step", o.n_step >= 1, "must be ≥ 1"),
        ("minibatch_order", o.minibatch_order in ORDERS, f"one of {ORDERS}"),
        ("kl_coef", o.kl_coef >= 0, "must be ≥ 0"),
        ("kl_target", o.kl_target > 0, pos),
        ("kl_tolerance", o.kl_tolerance >= 1, "must be ≥ 1"),
        ("kl_raise", o.kl_raise >= 1, "must be ≥ 1"),
        ("kl_lower", o.kl_lower >= 1, "must be ≥ 1"),
        ("kl_margin", opt_pos(o.kl_margin), "None or > 0"),
        ("kl_margin_coef", o.kl_margin_coef >= 0, "must be ≥ 0"),
        ("baseline", o.baseline in BASELINES, f"one of {BASELINES}"),
        ("nonfinite_env", e.nonfinite_env in NONFINITE_ENV, f"one of {NONFINITE_ENV}"),
        ("nan_guard", o.nan_guard in NAN_GUARDS, f"one of {NAN_GUARDS}"),
        ("nan_patience", o.nan_patience >= 1, "must be ≥ 1"),
        ("nan_lr_factor", 0 < o.nan_lr_factor < 1, "must lie in (0, 1)"),
        ("nan_max_rollbacks", o.nan_max_rollbacks >= 1, "must be ≥ 1"),
        (
            "norm_adv",
            o.norm_adv in ("minibatch", "batch", "off"),
            "one of 'minibatch', 'batch', 'off'",
        ),
        ("norm_adv_scope", o.norm_adv_scope in SCOPES, f"one of {SCOPES}"),
        ("kl_coef_scope", o.kl_coef_scope in SCOPES, f"one of {SCOPES}"),
        ("batch_scope", r.batch_scope in SCOPES, f"one of {SCOPES}"),
        ("target_kl", opt_pos(o.target_kl), "None or > 0"),
        ("total_steps", r.total_steps >= 1, "must be ≥ 1"),
        ("eval_every", r.eval_every >= 0, "must be ≥ 0"),
        ("eval_episodes", r.eval_episodes >= 1, "must be ≥ 1"),
        ("eval_seed", r.eval_seed >= 0, "must be ≥ 0"),
        ("checkpoint_every", r.checkpoint_every >= 1, "must be ≥ 1"),
        ("threads", r.threads >= 0, "must be ≥ 0"),
        ("act_backend", r.act_backend in ACT_BACKENDS, f"one of {ACT_BACKENDS}"),
        ("update_backend", r.update_backend in UPDATE_BACKENDS, f"one of {UPDATE_BACKENDS}"),
        (
            "device",
            r.device == "auto" or r.device == "cpu" or r.device.startswith("cuda"),
            "cpu, cuda, cuda:N or auto",
        ),
    ]


ENV_BACKENDS = ("gymnasium", "envpool", "auto")
ACT_BACKENDS = ("auto", "numpy", "torch")
UPDATE_BACKENDS = ("auto", "numpy", "autograd")
ACTIVATIONS = ("tanh", "relu", "elu")
INITS = ("orthogonal", "xavier", "normal", "torch")
ALGOS = ("ppo-clip", "ppo-penalty", "reinforce")
ADVANTAGES = ("gae", "nstep", "mc")
ORDERS = ("transitions", "trajectories", "fixed")
GRAD_CLIPS = ("norm", "value", "ignore")
BASELINES = ("critic", "mean", "none")
SCOPES = ("global", "per_worker")
NONFINITE_ENV = ("error", "skip")
NAN_GUARDS = ("rollback", "error")


def _sections() -> dict[str, type]:
    """Section name → its dataclass."""
    return {"env": EnvConfig, "policy": PolicyConfig, "ppo": PPOConfig, "run": RunConfig}


@cache
def field_sections() -> dict[str, str]:
    """Flat field name → section name."""
    out: dict[str, str] = {}
    for section, kind in _sections().items():
        for f in dataclasses.fields(kind):
            if f.name in out:  # pragma: no cover - guarded by a test
                raise RuntimeError(f"config field {f.name!r} appears in two sections")
            out[f.name] = section
    return out


def flat_values(cfg: Config) -> dict[str, Any]:
    return {f: getattr(getattr(cfg, s), f) for f, s in field_sections().items()}


@cache
def field_docs() -> dict[str, str]:
    """Flat field name → its docstring, read from this module's source (attribute docstrings)."""
    docs: dict[str, str] = {}
    for kind in _sections().values():
        tree = ast.parse(textwrap.dedent(inspect.getsource(kind)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                    docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def config_markdown() -> str:
    """The config reference page (``docs/config.md``), generated from the field docstrings."""
    defaults = dataclasses.asdict(Config())
    docs = field_docs()
    lines = [
        "# Configuration reference",
        "",
        "Generated from the field docstrings in `src/ppox/config.py` by `ppox.config.config_markdown()`",
        "(`make docs` rewrites this file; a test keeps the two in sync).",
        "Every field is a flag of `ppox train` (`--field-name VALUE`; booleans as `--flag` / `--no-flag`;",
        "`none` for optional fields) and a keyword of `Config.replace(field_name=value)` in Python.",
    ]
    for section, kind in _sections().items():
        lines += [
            "",
            f"## `{section}`: {(kind.__doc__ or '').strip()}",
            "",
            "| field | default | meaning |",
            "|---|---|---|",
        ]
        for f in dataclasses.fields(kind):
            lines.append(
                f"| `{f.name}` | `{defaults[section][f.name]!r}` | {docs.get(f.name, '')} |"
            )
    return "\n".join(lines) + "\n"


# --- parsing field values from text (the CLI flags, ablation variants) ------------------------
def field_types() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in _sections().values():
        hints = typing.get_type_hints(kind)
        out.update({f.name: hints[f.name] for f in dataclasses.fields(kind)})
    return out


def parser_for(tp: Any, name: str) -> Any:
    """A string → value converter for a field's annotation."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        inner = parser_for(next(a for a in args if a is not type(None)), name)
        return lambda s: None if s.lower() in ("none", "null", "off") else inner(s)
    if typing.get_origin(tp) is tuple:
        return lambda s: tuple(int(x) for x in s.replace(",", " ").split())
    if typing.get_origin(tp) is dict or tp is dict:
        return _json_dict(name)
    return tp


def parse_field_value(name: str, text: str) -> Any:
    """A config field's value from text as its flag parses it; booleans as true/false (1/0, yes/no)."""
    tp = field_types()[name]
    if tp is bool:
        words = {
            "true": True,
            "1": True,
            "yes": True,
            "on": True,
            "false": False,
            "0": False,
            "no": False,
            "off": False,
        }
        if text.lower() not in words:
            raise ValueError("expected true or false")
        return words[text.lower()]
    return parser_for(tp, name)(text)


def _json_dict(name: str) -> Any:
    def parse(s: str) -> dict[str, Any]:
        try:
            value = json.loads(s)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(
                f"--{name.replace('_', '-')} expects a JSON object: {exc}"
            ) from None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"--{name.replace('_', '-')} expects a JSON object")
        return value

    return parse
