"""Run configuration: frozen, nested dataclasses with one docstring per field.

The docstring under each field is the documentation of that switch: the CLI shows it as the
``--help`` text (see :func:`field_docs`) and ``docs/config.md`` lists it. Field names are
unique across sections so that every field is a flat CLI flag (``--learning-rate 3e-4``).

The annotation of a field is its whole contract: the type (``int``, ``float``, ``bool``,
``str``, ``Literal[...]`` for a choice, ``X | None`` where ``None`` means something) and, in
``Annotated[..., Span(...)]``, the range of a number. One parser reads it (:func:`check_value`
for Python values, :func:`parse_text` for command-line text), for every entry point: the
flags of ``ppox train``, a ``--config`` JSON file (:func:`read_config_file`) and the Python
API (``Config(...)``, :meth:`Config.replace`, :meth:`Config.from_dict`, then
:meth:`Config.validate`). A value that does not fit is a :class:`ConfigError` naming the
field, the value and what is allowed; the allowed text is generated from the same annotation
(:func:`describe_type`) and listed in ``docs/config.md``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import math
import numbers
import re
import textwrap
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from ppox.errors import ConfigError

# --- the types of the choices ------------------------------------------------------------------
Vectorization = Literal["sync", "async"]
EnvBackend = Literal["gymnasium", "envpool", "auto"]
NonfiniteEnv = Literal["error", "skip"]
Activation = Literal["tanh", "relu", "elu"]
Init = Literal["orthogonal", "xavier", "normal", "torch"]
SigmaMode = Literal["independent", "fixed", "state", "sde"]
ActionBound = Literal["clip", "rescale"]
MultiDiscreteHead = Literal["factored", "flat"]
HybridMode = Literal["independent", "autoregressive", "type_given_params"]
Algo = Literal["ppo-clip", "ppo-penalty", "reinforce", "trpo"]
AdvantageKind = Literal["gae", "nstep", "mc"]
MinibatchOrder = Literal["transitions", "trajectories", "fixed"]
Memory = Literal["none", "lstm", "gru"]
Cnn = Literal["auto", "nature", "impala", "small", "minatar"]
MemoryStates = Literal["stale", "fresh"]
Schedule = Literal["constant", "linear", "exponential"]
"""The same kinds as ``ppox.core.schedules.SCHEDULES`` (a test keeps them equal)."""
GradClip = Literal["norm", "value", "ignore"]
NormAdv = Literal["minibatch", "batch", "off"]
Scope = Literal["global", "per_worker"]
Baseline = Literal["critic", "mean", "none"]
NanGuard = Literal["rollback", "error"]
ActBackend = Literal["auto", "numpy", "torch"]
UpdateBackend = Literal["auto", "numpy", "autograd"]


# --- what a field's annotation may carry besides its type --------------------------------------
@dataclass(frozen=True)
class Span:
    """The range of a number: ``lo ≤ x ≤ hi`` (``<`` at an open end); floats must be finite,
    and ``+inf`` is allowed only where ``inf`` is set (it means something there)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    inf: bool = False

    def __contains__(self, x: float) -> bool:
        if isinstance(x, float) and not math.isfinite(x):
            return self.inf and x == math.inf
        lo_ok = self.lo is None or (x > self.lo if self.lo_open else x >= self.lo)
        hi_ok = self.hi is None or (x < self.hi if self.hi_open else x <= self.hi)
        return lo_ok and hi_ok

    def describe(self) -> str:
        lo, hi = _num(self.lo), _num(self.hi)
        if self.lo is not None and self.hi is not None and not (self.lo_open or self.hi_open):
            text = f"from {lo} to {hi}"
        else:
            parts = []
            if self.lo is not None:
                parts.append(f"{'>' if self.lo_open else '≥'} {lo}")
            if self.hi is not None:
                parts.append(f"{'<' if self.hi_open else '≤'} {hi}")
            text = " and ".join(parts)
        return text + (", or inf" if self.inf else "")


def _num(x: float | None) -> str:
    """A bound as a reader writes it: 4096, 1e-12, 0.5, 4294967295."""
    if x is None:
        return ""
    if float(x).is_integer() and abs(x) < 1e16:
        return str(int(x))
    return f"{x:g}"


@dataclass(frozen=True)
class Seq:
    """A list of integers (``hidden_sizes``): its length and the range of each item."""

    item: Span
    min_len: int
    max_len: int


@dataclass(frozen=True)
class Text:
    """A string that must match ``pattern`` (whole), described as ``what``."""

    pattern: str
    what: str


SEED_LIMIT = 2**32
"""Seeds are integers in [0, 2³²): the range NumPy's ``seed`` takes; every seed ppox derives
(evaluation seeds ``eval_seed + i``, the shuffling generator's ``seed + 1``) stays within what
NumPy, torch and Gymnasium accept."""
LOG_STD_BOUNDS = (-20.0, 2.0)
"""The clamp of a state-dependent log σ (``ppox.distributions.normal.LOG_STD_MIN/MAX``; a test
keeps them equal): the initial log σ must lie in it too."""
MAX_BATCH = 2**24
"""The most transitions one iteration may collect (``num_steps × num_envs``, per worker)."""
MAX_ASYNC_ENVS = 256
"""The most envs ``vectorization="async"`` starts on Gymnasium: one worker process each."""

_STEPS = Span(1, 10**12)
_COEF = Span(0, 1000)
_BETA = Span(0, 1e6)
_FACTOR = Span(1, 100)
_COUNT = Span(1, 10**6)


@dataclass(frozen=True)
class EnvConfig:
    """Which environment to train on and how it is vectorized and normalized."""

    env_id: Annotated[str, Text(r"\S.*", "a Gymnasium environment id")] = "CartPole-v1"
    """Gymnasium environment id (any registered id, including ones you register yourself; a
    `module:Id` form imports `module` first so its registration runs)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments passed to `gymnasium.make` (a JSON object on the command line; standard
    JSON, so no NaN or Infinity, because the run's config.json must read back the same). Any
    error the environment raises while being made is reported as one line naming env_id and
    env_kwargs. `max_episode_steps` belongs in its own field; `render_mode` is not allowed
    (training envs do not render; `ppox eval --gif` does)."""
    num_envs: Annotated[int, Span(1, 4096)] = 8
    """Number of parallel environments collecting experience (at most 4096, and at most 256 with
    `vectorization=async` on Gymnasium, where each is a process of its own)."""
    vectorization: Vectorization = "sync"
    """`sync` (all envs in this process) or `async` (one subprocess per env). With EnvPool:
    one worker thread (`sync`) or one per env up to the CPU count (`async`)."""
    env_backend: EnvBackend = "gymnasium"
    """`gymnasium`, `envpool` (C++ batched envs for the ids listed in docs/envpool.md; `pip install
    envpool`; no exact resume of in-flight episodes) or `auto` (EnvPool when it is installed and
    supports the id, else Gymnasium; the run's config.json and checkpoint record the one it got,
    and a resume uses that one)."""
    max_episode_steps: Annotated[int | None, Span(1, 2**31 - 1)] = None
    """Override the environment's time limit (None keeps the registered one); at most 2³¹ − 1,
    the largest limit EnvPool stores."""
    normalize_obs: bool = False
    """Normalize observations with running mean/std; the statistics are saved with the policy."""
    obs_clip: Annotated[float, Span(0, 1e6, lo_open=True)] = 10.0
    """Clip normalized observations to [-obs_clip, obs_clip] (a normalized observation is a
    number of standard deviations, so 1e6 is as good as no clipping)."""
    obs_sparse: Annotated[float, Span(0, 1)] = 0.0
    """With `normalize_obs`: an entry of the observation that was non-zero in fewer than this
    fraction of the observations so far is divided by the root mean square of its non-zero values
    and not centred, instead of standardized (standardizing an entry that is almost always zero,
    such as a contact force, turns its rare non-zero values into jumps to ±obs_clip). 0 standardizes
    every entry; `base-continuous` uses 0.1 (docs/presets.md). Ignored without `normalize_obs`."""
    obs_norm_until: Annotated[int, Span(0, 10**12)] = 0
    """With `normalize_obs`: the observation statistics stop updating once they hold this many
    observations (every env's, the first reset's included; with several workers, all workers'
    together), and later observations are normalized with the statistics as they then stand. The
    batch that crosses the limit adds only its first rows, so the statistics hold exactly this
    many. 0 (the default) updates them for the whole run; `base-continuous` uses 100000
    (docs/presets.md). Statistics that keep moving rescale the policy's inputs under it: on
    InvertedDoublePendulum-v5, runs that had reached the ceiling fell from it later
    (docs/design/normalization.md). Ignored without `normalize_obs`."""
    scale_reward: bool = False
    """Divide rewards by the running std of the discounted return (Engstrom et al. 2020,
    "Implementation Matters in Deep Policy Gradients: A Case Study on PPO and TRPO")."""
    reward_clip: Annotated[float, Span(0, 1e6, lo_open=True)] = 10.0
    """Clip scaled rewards to [-reward_clip, reward_clip] (in standard deviations of the return,
    so 1e6 is as good as no clipping)."""
    sign_reward: bool = False
    """Replace each reward by its sign (−1, 0 or +1) where the learner reads it, before
    `scale_reward`, as the DQN and PPO Atari setups clip rewards (Mnih et al. 2015). Episode
    statistics and evaluations keep the game's score (docs/pixels.md)."""
    atari_preprocessing: bool = True
    """For Atari ids (ale-py's, e.g. `BreakoutNoFrameskip-v4`, `ALE/Pong-v5`): apply the standard
    preprocessing below (docs/pixels.md). False makes the id as Gymnasium registers it. The
    `atari_*` fields may differ from their defaults only for Atari ids."""
    atari_noop_max: Annotated[int, Span(0, 1000)] = 30
    """Atari: up to this many NOOP frames after a real reset (drawn uniformly from 1 … n; 0 for none)."""
    atari_frame_skip: Annotated[int, Span(1, 64)] = 4
    """Atari: frames per action, rewards summed, the observation the pixel-wise maximum of the
    last two frames."""
    atari_screen_size: Annotated[int, Span(8, 1024)] = 84
    """Atari: side of the square frame the screen is resized to (area interpolation)."""
    atari_grayscale: bool = True
    """Atari: ALE's grayscale screen (True) or its RGB screen (False, 3 channels per frame)."""
    atari_frame_stack: Annotated[int, Span(1, 64)] = 4
    """Atari: the observation is the last n processed frames, oldest first (channels first)."""
    atari_fire_reset: bool = True
    """Atari: after each reset (a lost life included), press FIRE, then action 2, in games whose
    action 1 is FIRE (games that wait for FIRE to start)."""
    atari_episodic_life: bool = True
    """Atari: a lost life ends the training episode as terminated (no bootstrap across it) while
    the game goes on; training statistics and evaluation count whole games."""
    nonfinite_env: NonfiniteEnv = "error"
    """What a non-finite (NaN or infinite) observation or reward from an environment does:
    `error` stops the run with one line naming the environment, the worker, the env index and
    the step (the last checkpoint stays intact); `skip` resets that environment, leaves the
    transition out of the loss (the step before it is cut as a truncation) and counts it in the
    metrics column `skipped_transitions`."""


@dataclass(frozen=True)
class PolicyConfig:
    """Network and action head."""

    hidden_sizes: Annotated[tuple[int, ...], Seq(Span(1, 4096), 0, 16)] = (64, 64)
    """Widths of the MLP hidden layers: 0 to 16 layers of 1 to 4096 units (a comma-separated
    list on the command line, `64,64`; a JSON list in a config file). An empty list (`''` on the
    command line) has the heads read the encoder's features directly, as the Atari CNN policies
    do (docs/pixels.md)."""
    activation: Activation = "tanh"
    """Hidden activation: `tanh`, `relu` or `elu`."""
    shared_trunk: bool = False
    """One trunk for actor and critic (True) or two separate trunks (False)."""
    init: Init = "orthogonal"
    """Weight initialization (a trick of the PPO × Family course's "seven realms" tuning
    lecture): `orthogonal` (the activation's gain, zero biases), `xavier`
    (Glorot-uniform with the same gains), `normal` (Gaussian, variance gain²/fan_in) or
    `torch` (PyTorch's default for every layer, output gains ignored)."""
    policy_init_gain: Annotated[float, Span(0, 100)] = 0.01
    """Init gain of the policy output layer; small so early actions are near uniform."""
    value_init_gain: Annotated[float, Span(0, 100)] = 1.0
    """Init gain of the value output layer."""
    sigma_mode: SigmaMode = "independent"
    """Gaussian σ for Box actions: `independent` (learned, state-independent), `fixed`,
    `state` (a network output) or `sde` (generalized state-dependent exploration, gSDE: the
    noise is φ(s)ᵀE with φ the actor's last hidden features and E a learned-scale Gaussian
    matrix drawn per env and held for `sde_sample_freq` steps; Raffin et al. 2022, "Smooth
    Exploration for Robotic Reinforcement Learning"; docs/exploration.md)."""
    init_log_std: Annotated[float, Span(-20.0, 2.0)] = 0.0
    """Initial log σ (the value for `fixed`; with `sde` the initial log of every entry of the
    matrix of scales), within the clamp [-20, 2] that a state-dependent log σ is held to (σ
    from 2e-9 to 7.4)."""
    sde_sample_freq: Annotated[int, Span(0, 2**20)] = 0
    """With sigma_mode=`sde`: draw new exploration matrices every this many steps of a rollout
    (0: once per rollout, at its start; Stable-Baselines3's `sde_sample_freq=-1`). Allowed only
    with `sde`."""
    sde_learn_features: bool = False
    """With sigma_mode=`sde`: let the gradient of the log-probability through σ(s) reach the
    features φ(s) (False, as Stable-Baselines3's default: φ is treated as a constant there, and
    only the mean trains the trunk). Allowed only with `sde`."""
    temperature: Annotated[float, Span(1e-3, 1e3)] = 1.0
    """Sampling temperature of categorical heads (logits are divided by it); from 1e-3 (already
    greedy) to 1e3 (already uniform), so the divided logits stay far from float32 overflow."""
    action_bound: ActionBound = "clip"
    """How Box actions reach the env: `clip` to the bounds, or `rescale` from [-1, 1] to the
    bounds. The unclipped sample is what is stored and trained on."""
    multi_discrete: MultiDiscreteHead = "factored"
    """MultiDiscrete / MultiBinary head: `factored` (one categorical per dimension, log-probs
    summed) or `flat` (one categorical over every combination; for comparison, small spaces)."""
    hybrid_mode: HybridMode = "independent"
    """Hybrid (Discrete type + Box parameters) head: `independent` (H-PPO), `autoregressive`
    (parameters conditioned on the chosen type) or `type_given_params` (the type head also
    reads the parameter head's mean)."""
    hybrid_detach: bool = True
    """With `type_given_params`: detach the parameter mean before the type head reads it, so
    the type's loss does not train the parameter head (the PPO × Family course's Q&A on its
    second lecture, on action spaces, discusses this H-PPO variant)."""
    init_from: Annotated[str | None, Text(r"[^\x00]+", "a run directory or checkpoint path")] = None
    """Start a new run's policy (weights and observation statistics) from the checkpoint of this
    run directory: a `ppox bc` clone, or an earlier run of the same network (docs/bc.md). The
    network it holds must be the one this config describes (checked; an error otherwise); the
    optimizer, the value function's training and everything else start fresh. Ignored on resume."""
    obs_encoders: dict[str, str] = field(default_factory=dict)
    """Encoder per observation key path (`{"items": "deep_sets"}`; paths join Dict keys and Tuple
    indices with `/`): a name given to `ppox.nn.register_encoder`, or `module:callable`. Other keys
    get the default for their kind (docs/observations.md)."""
    cnn: Cnn = "auto"
    """The CNN for image observations (docs/pixels.md): `nature` (Mnih et al. 2015: 8×8/4, 4×4/2,
    3×3/1 convolutions, then a linear layer; images ≥ 36 pixels a side), `impala` (the IMPALA
    ResNet of Espeholt et al. 2018: three stages of a convolution, a max-pool and two residual
    blocks, 16/32/32 channels), `small` (three 3×3 convolutions for small images), `minatar`
    (one 3×3 convolution of 16 channels, as the MinAtar paper's networks) or `auto` (`nature`
    from 36 pixels a side, `small` below)."""
    cnn_features: Annotated[int, Span(1, 4096)] = 512
    """Output width of the CNN that encodes uint8 image observations (its last linear layer)."""
    memory: Memory = "none"
    """A recurrent memory stage between the observation encoder and the MLP trunks: `none`,
    `lstm` or `gru` (docs/memory.md). Trained with truncated backpropagation through time over
    sequences of `bptt` steps; every action head works unchanged on its output."""
    memory_size: Annotated[int, Span(1, 4096)] = 64
    """Hidden size of the memory core (an LSTM's state is twice this: h and c)."""
    memory_shared: bool = False
    """One memory core read by the actor and the critic (True), or one each (False, as
    sb3-contrib's `enable_critic_lstm`). `shared_trunk` needs a shared core."""


@dataclass(frozen=True)
class PPOConfig:
    """Algorithm, rollout, loss and optimizer settings."""

    algo: Algo = "ppo-clip"
    """`ppo-clip`, `ppo-penalty` (the adaptive KL penalty of "Proximal Policy Optimization
    Algorithms", Schulman et al. 2017, §4), `reinforce` (Monte Carlo reward-to-go with a
    baseline, as in the PPO × Family course's policy-gradient tutorial) or `trpo` (the KL as a
    hard constraint: a natural-gradient step by conjugate gradient and a line search, "Trust
    Region Policy Optimization", Schulman et al. 2015; the critic trained by num_epochs ×
    num_minibatches of regression at learning_rate); all share the collector and the learner."""

    num_steps: Annotated[int, Span(1, 2**20)] = 32
    """Steps collected per environment per iteration (batch = num_steps × num_envs, at most
    2²⁴ transitions)."""
    num_epochs: Annotated[int, Span(1, 1000)] = 20
    """Passes over the batch per iteration."""
    num_minibatches: Annotated[int, Span(1, MAX_BATCH)] = 1
    """Minibatches per epoch (minibatch = batch / num_minibatches; it must divide the batch)."""
    learning_rate: Annotated[float, Span(0, 1, lo_open=True)] = 1e-3
    """Adam learning rate at the start of training; at most 1 (Adam moves each parameter by
    about the learning rate per step, so larger values leave any sensible scale in a few
    steps)."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over the step budget."""
    adam_eps: Annotated[float, Span(1e-12, 1)] = 1e-5
    """Adam epsilon, from 1e-12 to 1: the step is lr·m/(√v + ε), so a tinier ε lets a nearly
    zero gradient take a full step (or divide 0 by 0 in float32)."""
    gamma: Annotated[float, Span(0, 1)] = 0.98
    """Discount factor γ of the return."""
    lam: Annotated[float, Span(0, 1)] = 0.8
    """GAE λ: 0 gives one-step TD errors, 1 Monte Carlo advantages."""
    advantage: AdvantageKind = "gae"
    """Advantage estimator: `gae` (GAE(γ, λ)), `nstep` (n_step-step returns minus V) or `mc`
    (Monte Carlo returns minus V, bootstrapped only where the rollout or a truncation cuts an
    episode; the same as `gae` with λ = 1). Ignored by `reinforce`."""
    n_step: Annotated[int, Span(1, 2**20)] = 5
    """Rewards summed before bootstrapping when advantage=`nstep` (DPPO's K; n_step ≥ num_steps
    gives Monte Carlo returns within the rollout)."""
    recompute_adv: bool = False
    """Recompute values and advantages with the latest critic (no gradient) at the start of every
    epoch after the first (a trick of the PPO × Family course's "seven realms" tuning
    lecture); value clipping then uses those values as V_old."""
    minibatch_order: MinibatchOrder = "transitions"
    """How each epoch cuts minibatches: `transitions` (shuffle single steps), `trajectories`
    (shuffle whole episode segments, keeping their steps in order) or `fixed` (env by env in
    time order, the same every epoch)."""
    bptt: Annotated[int | None, Span(1, 2**20)] = None
    """With `memory`: the length K of the sequences trained with truncated backpropagation
    through time (None: the whole rollout, `num_steps`). It must divide `num_steps`; the
    rollout of each env is cut into num_steps / K sequences and minibatches are whole
    sequences (docs/memory.md)."""
    memory_states: MemoryStates = "stale"
    """With `memory`: the state each training sequence starts from: `stale` (as stored during
    collection) or `fresh` (recomputed with the current network before every epoch after the
    first, from the state stored at the start of the rollout; costs one forward pass of the
    memory core over the rollout per epoch)."""
    clip_coef: Annotated[float, Span(0, 1, lo_open=True)] = 0.2
    """PPO clip ε, in (0, 1] (with ε > 1 the lower bound 1 − ε of the ratio would be negative)."""
    dual_clip: Annotated[float | None, Span(1, 100, lo_open=True)] = None
    """Dual-clip bound c > 1 for negative advantages, at most 100 (None: off)."""
    value_clip: Annotated[float | None, Span(0, 1e6, lo_open=True)] = None
    """Value-clip ε_v in return units (None: off; the value-function clipping of "The 37
    Implementation Details of Proximal Policy Optimization", Huang et al. 2022)."""
    vf_coef: Annotated[float, _COEF] = 0.5
    """Weight of the value loss, from 0 to 1000 (loss weights are bounded so that a weighted
    float32 loss term cannot overflow while its loss is below 1e35)."""
    ent_coef: Annotated[float, _COEF] = 0.0
    """Weight of the entropy bonus at the start of training (0 to 1000, as vf_coef)."""
    ent_coef_end: Annotated[float | None, _COEF] = None
    """Entropy weight at the end of training (None: same as ent_coef)."""
    ent_schedule: Schedule = "constant"
    """How the entropy weight moves from ent_coef to ent_coef_end: `constant`, `linear` or
    `exponential` (geometric, so both ends must be > 0)."""
    max_grad_norm: Annotated[float | None, Span(0, 1e6, lo_open=True)] = 0.5
    """Gradient-norm threshold for grad_clip `norm` and `ignore` (None: no clipping). The
    pre-clip norm is logged as `grad_norm`."""
    grad_clip: GradClip = "norm"
    """`norm`: scale the gradient down to total norm ≤ max_grad_norm; `value`: clamp every
    element to ±grad_clip_value; `ignore`: skip the optimizer step of a minibatch whose norm
    exceeds max_grad_norm (counted as `skipped_updates`)."""
    grad_norm_type: Annotated[float, Span(1, 4, inf=True)] = 2.0
    """p of the total gradient norm: 1 ≤ p ≤ 4, or `inf` for the max-abs norm (p < 1 is not a
    norm, and float32 |g|^p overflows for |g| > 3.4e38^(1/p), already 7e3 at p = 10, which
    would zero the clipped gradient)."""
    grad_clip_value: Annotated[float, Span(0, 1e6, lo_open=True)] = 1.0
    """Element bound for grad_clip=`value`."""
    norm_adv: NormAdv = "minibatch"
    """Advantage normalization: `minibatch`, `batch` or `off`."""
    norm_adv_scope: Scope = "global"
    """With several workers (docs/distributed.md): normalize advantages with the mean and std of
    all workers' samples together (`global`, by all-reduce) or of each worker's own
    (`per_worker`, as the DPPO paper's workers do); the PPO × Family course's Q&A on its second
    lecture weighs the two for DPPO. No effect in one process."""
    target_kl: Annotated[float | None, Span(0, 1000, lo_open=True)] = None
    """Stop the epoch loop early when the approximate KL exceeds 1.5 × this (None: off)."""
    kl_coef: Annotated[float, _BETA] = 1.0
    """ppo-penalty: initial KL weight β, from 0 to 1e6."""
    kl_target: Annotated[float, Span(0, 100, lo_open=True)] = 0.01
    """ppo-penalty: the KL the adaptive rule aims for."""
    kl_tolerance: Annotated[float, _FACTOR] = 1.5
    """ppo-penalty: β grows when KL > kl_tolerance·kl_target, shrinks when KL < kl_target/kl_tolerance."""
    kl_raise: Annotated[float, _FACTOR] = 2.0
    """ppo-penalty: factor β is multiplied by when the KL is too high (1 to 100)."""
    kl_lower: Annotated[float, _FACTOR] = 2.0
    """ppo-penalty: factor β is divided by when the KL is too low (1 to 100)."""
    kl_coef_scope: Scope = "global"
    """ppo-penalty with several workers: adapt β from the KL over all workers' batches (`global`,
    one β everywhere) or from each worker's own batch (`per_worker`, DPPO's per-worker
    adaptation; β then differs by worker and checkpoints keep worker 0's). No effect in one process."""
    kl_margin: Annotated[float | None, Span(0, 100, lo_open=True)] = None
    """ppo-penalty: DPPO's hinge ξ·max(0, KL − kl_margin·kl_target)² per minibatch (None: off; DPPO uses 2)."""
    kl_margin_coef: Annotated[float, _BETA] = 1000.0
    """ppo-penalty: ξ, the weight of the hinge (DPPO: 1000; at most 1e6)."""
    max_kl: Annotated[float, Span(0, 10, lo_open=True)] = 0.01
    """trpo: δ, the bound on the mean KL(π_old ‖ π_new) over the batch that each policy step must
    keep (the line search checks it exactly)."""
    cg_iters: Annotated[int, Span(1, 1000)] = 10
    """trpo: conjugate-gradient iterations solving F s = g for the natural-gradient direction."""
    cg_damping: Annotated[float, Span(0, 1e3)] = 0.1
    """trpo: λ added to the Fisher matrix (F + λI) in the conjugate gradient, for a matrix that
    is singular or nearly so."""
    line_search_steps: Annotated[int, Span(1, 100)] = 10
    """trpo: step sizes the backtracking line search tries (the full step, then shrunk each
    time) before it leaves the policy unchanged for this update."""
    line_search_shrink: Annotated[float, Span(0, 1, lo_open=True, hi_open=True)] = 0.8
    """trpo: factor the line search shrinks the step by after each rejected try."""
    baseline: Baseline = "critic"
    """reinforce: the baseline b in (G_t − b)·∇log π: `critic` (a learned V(s), also used to
    bootstrap cut episodes), `mean` (running mean of past returns) or `none`."""
    nan_guard: NanGuard = "rollback"
    """What a non-finite loss or gradient does (the PPO × Family course's Q&A on NaN in training):
    `rollback` skips that minibatch step (counted in `nonfinite_updates`) and, after
    `nan_patience` such steps in a row, restores the policy and optimizer to their state at the
    start of the update, multiplies the learning rate by `nan_lr_factor` and carries on
    (counted in `rollbacks`, with a warning); after `nan_max_rollbacks` rollbacks with no finite
    update between them the run stops with an error. `error` stops the run at the first
    non-finite step. Either way no non-finite parameter is ever kept or checkpointed."""
    nan_patience: Annotated[int, _COUNT] = 3
    """nan_guard=`rollback`: non-finite minibatch steps in a row that trigger a rollback."""
    nan_lr_factor: Annotated[float, Span(0, 1, lo_open=True, hi_open=True)] = 0.5
    """nan_guard=`rollback`: factor applied to the learning rate at each rollback (0 < f < 1)."""
    nan_max_rollbacks: Annotated[int, _COUNT] = 5
    """nan_guard=`rollback`: rollbacks in a row (no finite update between them) before the run stops."""


@dataclass(frozen=True)
class RunConfig:
    """Budget, seeds, evaluation, logging and checkpoints."""

    total_steps: Annotated[int, _STEPS] = 100_000
    """Environment steps to train for (summed over all envs; at most 1e12)."""
    seed: Annotated[int, Span(0, SEED_LIMIT - 1)] = 1
    """Master seed: drives Python, NumPy, torch and the collection envs' seeds; 0 ≤ seed < 2³²
    (NumPy's seed range)."""
    eval_every: Annotated[int, Span(0, 10**12)] = 10_000
    """Evaluate every this many environment steps (0: only at the end)."""
    eval_episodes: Annotated[int, Span(1, 10_000)] = 10
    """Episodes per evaluation, run side by side (one env each, at most 10,000); episode i uses
    seed eval_seed + i."""
    eval_seed: Annotated[int, Span(0, SEED_LIMIT - 1)] = 1_000_000
    """First evaluation seed; eval_seed + eval_episodes ≤ 2³² so every evaluation seed is a
    valid seed. Collection seeds are drawn to avoid the evaluation set."""
    eval_deterministic: bool = True
    """Evaluate the mode of the policy (True) or sample from it (False)."""
    eval_max_steps: Annotated[int, Span(1, 10**9)] = 100_000
    """The most steps one evaluation episode may take (also in `ppox eval` and its GIF). An
    environment without a time limit (CliffWalking-v1, say) could otherwise keep an evaluation
    going forever; 100,000 is above every time limit Gymnasium registers (the longest, Atari's,
    is 108,000 frames = 27,000 steps at the default frame skip), so only episodes that would
    not end on their own are cut. A cut episode counts its return so far and is reported as
    cut (`truncated_at_cap` in `ppox eval`'s output, a warning during training)."""
    checkpoint_every: Annotated[int, Span(1, 10**9)] = 10
    """Write a checkpoint every this many iterations (and always at the end)."""
    run_dir: Annotated[str | None, Text(r"[^\x00]+", "a directory path")] = None
    """Where the run is written (default: runs/<env>-s<seed>-<time>)."""
    device: Annotated[str, Text(r"cpu|auto|cuda(:\d{1,3})?", "cpu, cuda, cuda:N or auto")] = "cpu"
    """`cpu`, `cuda`, `cuda:N` or `auto` (a GPU when one is present)."""
    act_backend: ActBackend = "auto"
    """How collection runs the policy: `numpy` acts in NumPy (3.5–4.5× cheaper per step than
    torch at a few envs; benchmarks/fixed_costs.py), which serves a plain MLP policy on the CPU
    reading a Box observation, whose action head declares a NumPy kernel (Discrete and Box
    heads do; docs/performance.md); `torch` always uses torch; `auto` takes `numpy` where it
    serves the policy and `torch` otherwise. An explicit `numpy` that cannot serve the policy is
    an error naming why. The backend a run got is printed at start and recorded in config.json
    and summary.json. Deterministic evaluations follow: with `torch` they act through torch too,
    otherwise through the NumPy actor where it serves the policy (the same actions to float32
    rounding; `ppox eval --backend torch` evaluates a run through torch)."""
    update_backend: UpdateBackend = "auto"
    """How each minibatch's gradient is computed: `numpy` writes the loss's gradient out by
    hand in NumPy (a 64-wide MLP's minibatch step at 64–256 samples takes a third to a quarter
    of autograd's time; benchmarks/fixed_costs.py), which serves PPO-Clip on the policies
    `act_backend=numpy` serves, and only for settings it is known to honour (every config field
    is classified; docs/performance.md); `autograd` always uses autograd; `auto` takes `numpy`
    where it serves the run and `autograd` otherwise. An explicit `numpy` that cannot serve the
    run is an error naming why. Recorded like `act_backend`."""
    overlap_collection: bool = False
    """Collect the next rollout in a worker process while the learner updates on this one
    (docs/performance.md, "Overlapped collection"): on a machine with a free core an iteration
    takes about the longer of collection and update instead of their sum. Every rollout after
    the first is collected by the policy of one update earlier than a synchronous run would use
    (a fixed lag of one iteration, deterministic and resumed exactly; a rollout collected right
    after a checkpoint has none); PPO's ratio is taken against the policy that collected. One
    process on the CPU only (not under torchrun), with Gymnasium's envs (not EnvPool) and
    `threads=1`."""
    threads: Annotated[int, Span(0, 1024)] = 1
    """Intra-op threads (per worker under torchrun) for the library the update computes in:
    NumPy's BLAS for the NumPy update, torch for autograd; the other library gets one, since
    both pools spinning at once slow a run down many times over (docs/performance.md, "Threads
    and processes"). 1 is fastest for small MLPs; more helps wide networks and image encoders
    on a machine with idle cores (0: every core this process may use; at most 1024, more than
    any CPU has cores). Recorded in the run's backends as ``threads``. A product split over
    more threads adds in another order, so runs with different thread counts differ in their
    last bits and then in their paths; the same count gives the same run."""
    batch_scope: Scope = "global"
    """With W workers under torchrun (docs/distributed.md): `global` makes num_envs, the batch
    (num_steps × num_envs) and its minibatches count all workers together, each worker running
    num_envs / W envs, so a run learns the same way on any number of workers; `per_worker` gives
    every worker num_envs envs and a W times larger batch. total_steps counts all workers' steps."""
    deterministic: bool = False
    """Ask torch for deterministic algorithms (slower on GPU; CPU runs are reproducible anyway)."""
    tensorboard: bool = True
    """Write TensorBoard events to the run directory: every iteration's scalars, and histograms of
    the policy's action distribution at the first iteration and at every evaluation."""
    progress: bool = True
    """Show progress: a live bar on a terminal; where stderr is not a terminal (CI logs, nohup
    files) a one-line status every `progress_interval` seconds."""
    progress_interval: Annotated[float, Span(0, 86_400)] = 30.0
    """Seconds between the status lines written when stderr is not a terminal (0: one per
    iteration); the last iteration always writes one."""
    wandb: bool = False
    """Log the metrics to Weights & Biases too (`pip install 'ppox[wandb]'`), beside TensorBoard;
    `WANDB_MODE=offline` keeps everything on disk."""
    wandb_project: Annotated[str | None, Text(r"[\w.\-]{1,128}", "a W&B project name")] = None
    """The W&B project (default: ppox)."""
    wandb_group: Annotated[str | None, Text(r"[^\x00]{1,128}", "a group name")] = None
    """The W&B group (seeds of one setting together, say)."""
    wandb_tags: Annotated[
        str | None, Text(r"[^,\x00]{1,64}(,[^,\x00]{1,64}){0,63}", "comma-separated tags")
    ] = None
    """W&B tags, comma-separated."""


SECTIONS = ("env", "policy", "ppo", "run")
RECORD_KEYS = ("backends", "origin")
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
        if self.run.overlap_collection and world > 1:
            raise ConfigError(
                f"overlap_collection=True runs in one process; this run has {world} workers (torchrun): "
                "turn it off, the workers already collect side by side"
            )
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
        if self.policy.memory != "none":
            seqs = self.ppo.num_steps // sequence_length(self) * self.worker_envs(world)
            if seqs % k:
                raise ConfigError(
                    f"num_minibatches={k} must divide each of the {world} workers' {seqs} "
                    f"sequences (num_steps / bptt × {self.worker_envs(world)} envs): with "
                    f"memory={self.policy.memory!r} minibatches are whole sequences"
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
        """A copy with fields changed by flat name, e.g. ``cfg.replace(learning_rate=3e-4)``.
        Each value is checked against its field's annotation (:class:`ConfigError` naming the
        field); the rules between fields are :meth:`validate`'s."""
        where = field_sections()
        updates: dict[str, dict[str, Any]] = {}
        for name, value in flat.items():
            if name not in where:
                raise ConfigError(f"unknown config field {name!r}{_did_you_mean(name, where)}")
            updates.setdefault(where[name], {})[name] = check_field(name, value)
        parts = {s: dataclasses.replace(getattr(self, s), **u) for s, u in updates.items()}
        return dataclasses.replace(self, **parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Config:
        """Inverse of :meth:`to_dict`: sections of fields, as a config.json holds them. Unknown
        sections and keys, and values that do not fit their field, are a :class:`ConfigError`
        naming them."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"a config is a JSON object of sections {SECTIONS} (got {_kind(data)})"
            )
        parts = {}
        for section, values in data.items():
            if section in RECORD_KEYS:  # what a run recorded beside its config (config.json)
                continue
            if section not in _sections():
                raise ConfigError(
                    f"unknown config section {section!r}{_did_you_mean(str(section), SECTIONS)}; "
                    f"allowed: {', '.join(SECTIONS)}"
                )
            parts[section] = _section_from_dict(section, values)
        return cls(**parts)

    def validate(self) -> Config:
        """Raise :class:`ConfigError` naming the first field that does not fit its annotation,
        or the first rule between fields that fails; return the config with every value in its
        canonical form (ints as floats in float fields, lists as tuples): ``self`` when they
        already are."""
        values = flat_values(self)
        canonical = {name: check_field(name, value) for name, value in values.items()}
        changed = {
            k: v for k, v in canonical.items() if type(v) is not type(values[k]) or v != values[k]
        }
        cfg = self.replace(**changed) if changed else self
        _check_rules(cfg)
        return cfg


def _section_from_dict(section: str, values: Any) -> Any:
    kind = _sections()[section]
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"config section {section!r} must be a JSON object of fields (got {_kind(values)})"
        )
    values = dict(values)
    if section == "policy" and "ortho_init" in values:  # configs written before `init` existed
        old = values.pop("ortho_init")
        if not isinstance(old, bool):
            raise ConfigError(f"ortho_init={_show(old)} is not allowed: true or false")
        values.setdefault("init", "orthogonal" if old else "torch")
    names = [f.name for f in dataclasses.fields(kind)]
    unknown = [str(k) for k in values if k not in names]
    if unknown:
        hint = _did_you_mean(unknown[0], names)
        raise ConfigError(f"unknown field(s) {sorted(unknown)} in config section {section!r}{hint}")
    return kind(**{name: check_field(name, value) for name, value in values.items()})


def _check_rules(c: Config) -> None:
    """The rules between fields, each raising :class:`ConfigError` naming the fields."""
    e, o, r = c.env, c.ppo, c.run
    if c.batch_size > MAX_BATCH:
        raise ConfigError(
            f"num_steps × num_envs = {o.num_steps} × {e.num_envs} = {c.batch_size} is not allowed: "
            f"a batch holds at most {MAX_BATCH} transitions"
        )
    if c.batch_size % o.num_minibatches:
        raise ConfigError(
            f"num_minibatches={o.num_minibatches} must divide the batch of "
            f"num_steps × num_envs = {c.batch_size} into minibatches of at least one sample"
        )
    _check_memory(c)
    if o.grad_clip == "ignore" and o.max_grad_norm is None:
        raise ConfigError("grad_clip='ignore' needs a max_grad_norm (got None)")
    end = o.ent_coef if o.ent_coef_end is None else o.ent_coef_end
    if o.ent_schedule == "exponential" and (o.ent_coef <= 0 or end <= 0):
        raise ConfigError(
            f"ent_schedule='exponential' needs ent_coef > 0 and ent_coef_end > 0 (got ent_coef="
            f"{o.ent_coef}, ent_coef_end={o.ent_coef_end}): a geometric schedule cannot reach or "
            "leave 0; use 'linear'"
        )
    if r.eval_seed + r.eval_episodes > SEED_LIMIT:
        raise ConfigError(
            f"eval_seed + eval_episodes = {r.eval_seed} + {r.eval_episodes} is not allowed: the "
            f"evaluation seeds eval_seed … eval_seed + eval_episodes − 1 must stay below 2³² = {SEED_LIMIT}"
        )
    if e.vectorization == "async" and e.env_backend != "envpool" and e.num_envs > MAX_ASYNC_ENVS:
        raise ConfigError(
            f"num_envs={e.num_envs} with vectorization='async' is not allowed: at most "
            f"{MAX_ASYNC_ENVS} env processes (use 'sync', or env_backend='envpool')"
        )
    p = c.policy
    sde_fields = {"sde_sample_freq": p.sde_sample_freq, "sde_learn_features": p.sde_learn_features}
    for name, value in sde_fields.items():
        if value and p.sigma_mode != "sde":  # both default to 0 / False
            raise ConfigError(
                f"{name}={value!r} needs sigma_mode='sde' (got sigma_mode={p.sigma_mode!r}); it "
                "would be ignored"
            )
    _check_trpo(c)
    if e.max_episode_steps is not None and "max_episode_steps" in e.env_kwargs:
        raise ConfigError(
            "max_episode_steps is given twice, as a field and in env_kwargs; keep the field"
        )
    if "render_mode" in e.env_kwargs:
        raise ConfigError(
            f"env_kwargs sets render_mode={e.env_kwargs['render_mode']!r}: training envs do not "
            "render (a window or frames every step; no display on a server); `ppox eval --gif` "
            "renders an evaluation episode"
        )


TRPO_FIELDS = ("max_kl", "cg_iters", "cg_damping", "line_search_steps", "line_search_shrink")
"""The fields only ``algo="trpo"`` reads."""


def _check_trpo(c: Config) -> None:
    """``algo="trpo"``: its own fields only with it, and none of PPO's that it would ignore."""
    o = c.ppo
    values = flat_values(c)
    if o.algo != "trpo":
        defaults = flat_values(Config())
        for name in TRPO_FIELDS:
            if values[name] != defaults[name]:
                raise ConfigError(
                    f"{name}={values[name]!r} needs algo='trpo' (got algo={o.algo!r}); it would be ignored"
                )
        return
    ignored = {
        "target_kl": (o.target_kl is not None, "the trust region bounds the KL of every step (max_kl)"),
        "dual_clip": (o.dual_clip is not None, "TRPO's surrogate is not clipped"),
        "recompute_adv": (o.recompute_adv, "the policy takes one step per update, before the critic's epochs"),
    }  # fmt: skip
    for name, (bad, why) in ignored.items():
        if bad:
            raise ConfigError(
                f"{name}={values[name]!r} is not available with algo='trpo': {why} (docs/design/losses.md)"
            )


def sequence_length(c: Config) -> int:
    """K, the length of the sequences a recurrent policy trains on (``bptt`` or ``num_steps``)."""
    return c.ppo.num_steps if c.ppo.bptt is None else c.ppo.bptt


def _check_memory(c: Config) -> None:
    """The rules of a recurrent policy (``memory``): whole sequences in every minibatch."""
    p, o = c.policy, c.ppo
    if p.memory == "none":
        return
    k = sequence_length(c)
    if o.num_steps % k:
        raise ConfigError(
            f"bptt={k} must divide num_steps={o.num_steps}: each env's rollout is cut into "
            "sequences of bptt steps"
        )
    sequences = o.num_steps // k * c.env.num_envs
    if sequences % o.num_minibatches:
        raise ConfigError(
            f"num_minibatches={o.num_minibatches} must divide the {sequences} sequences of a rollout "
            f"(num_steps / bptt × num_envs = {o.num_steps} / {k} × {c.env.num_envs}): with "
            f"memory={p.memory!r} minibatches are whole sequences"
        )
    unsupported = {
        "minibatch_order": (o.minibatch_order == "trajectories", "'transitions' or 'fixed'"),
        "recompute_adv": (o.recompute_adv, "false"),
        "nonfinite_env": (c.env.nonfinite_env == "skip", "'error'"),
        "baseline": (o.algo == "reinforce" and o.baseline != "critic", "'critic'"),
    }
    for name, (bad, allowed) in unsupported.items():
        if bad:
            value = flat_values(c)[name]
            raise ConfigError(
                f"{name}={value!r} is not available with memory={p.memory!r} (training "
                f"sequences are never cut or thinned): use {allowed} (docs/memory.md)"
            )
    if p.shared_trunk and not p.memory_shared:
        raise ConfigError(
            f"shared_trunk=True with memory={p.memory!r} needs memory_shared=True (a shared "
            "trunk reads one memory core)"
        )


# --- the parser: Python values and command-line text against a field's annotation ------------
def check_field(name: str, value: Any) -> Any:
    """``value`` in its canonical form if it fits field ``name``'s annotation; else a
    :class:`ConfigError` naming the field, the value and what is allowed."""
    return check_value(name, value, field_types()[name])


def check_value(label: str, value: Any, tp: Any) -> Any:
    """``value`` in its canonical form if it fits the annotation ``tp`` (a field's, or a
    command-line option's); else a :class:`ConfigError` ``label=value is not allowed: …``."""
    ok, canonical = _conform(value, tp)
    if ok:
        return canonical
    base = _strip_optional(_strip(tp)[0])[0]
    got = f" (got {_kind(value)})" if value is None or not _type_fits(value, base) else ""
    raise ConfigError(f"{label}={_show(value)} is not allowed: {describe_type(tp)}{got}")


def _strip(tp: Any) -> tuple[Any, list[Any]]:
    """``Annotated[T, m...]`` → ``(T, [m...])``; anything else → ``(tp, [])``."""
    if typing.get_origin(tp) is Annotated:
        base, *meta = typing.get_args(tp)
        return base, meta
    return tp, []


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """``T | None`` → ``(T, True)``; anything else → ``(tp, False)``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def _meta(meta: list[Any], kind: type) -> Any:
    return next((m for m in meta if isinstance(m, kind)), None)


def _conform(value: Any, tp: Any) -> tuple[bool, Any]:
    base, meta = _strip(tp)
    base, optional = _strip_optional(base)
    if value is None:
        return optional, None
    if not _type_fits(value, base):
        return False, None
    if typing.get_origin(base) is Literal:
        return value in typing.get_args(base), value
    if base is bool:
        return True, value
    if base is int or base is float:
        return _conform_number(value, base, _meta(meta, Span))
    if base is str:
        text = _meta(meta, Text)
        return (
            bool(value) if text is None else re.fullmatch(text.pattern, value) is not None
        ), value
    if typing.get_origin(base) is tuple:
        return _conform_seq(value, _meta(meta, Seq))
    return _conform_dict(value, typing.get_args(base))


def _type_fits(value: Any, base: Any) -> bool:
    """Whether ``value`` has the Python type ``base`` asks for (a bool is no number; an int is
    a float; any list or tuple is a sequence; any mapping a dict)."""
    origin = typing.get_origin(base)
    if origin is Literal or base is str:
        return isinstance(value, str)
    if base is bool:
        return isinstance(value, bool)
    if base is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if base is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if origin is tuple:
        return isinstance(value, (list, tuple))
    if origin is dict or base is dict:
        return isinstance(value, Mapping)
    raise TypeError(f"no rule for the annotation {base!r}")  # pragma: no cover - a new field kind


def _conform_number(value: Any, base: type, span: Span | None) -> tuple[bool, Any]:
    try:
        x = base(value)
    except (OverflowError, ValueError):  # an int too large for a float
        return False, None
    if span is None:
        return math.isfinite(x), x
    return x in span, x


def _conform_seq(value: Any, seq: Seq) -> tuple[bool, Any]:
    items = []
    for v in value:
        if not _type_fits(v, int) or int(v) not in seq.item:
            return False, None
        items.append(int(v))
    return seq.min_len <= len(items) <= seq.max_len, tuple(items)


def _conform_dict(value: Mapping, args: tuple[Any, ...]) -> tuple[bool, Any]:
    out = dict(value)
    if not all(isinstance(k, str) for k in out):
        return False, None
    if args and args[1] is str:  # obs_encoders: key path → encoder name
        return all(
            isinstance(v, str) and v.strip() for v in out.values()
        ), out  # "" is the whole observation
    try:  # env_kwargs: what standard JSON writes and reads back unchanged
        same = json.loads(json.dumps(out, allow_nan=False)) == out
    except (TypeError, ValueError, RecursionError):
        return False, None
    return same, out


def describe_type(tp: Any) -> str:
    """What an annotation allows, in words (error messages, ``--help``, docs/config.md)."""
    base, meta = _strip(tp)
    base, optional = _strip_optional(base)
    text = _describe_base(base, meta)
    return f"{text}, or none" if optional else text


def _describe_base(base: Any, meta: list[Any]) -> str:
    span, seq, txt = _meta(meta, Span), _meta(meta, Seq), _meta(meta, Text)
    if typing.get_origin(base) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(base))
    if base is bool:
        return "true or false"
    if base is int:
        return f"an integer {span.describe()}" if span else "an integer"
    if base is float:
        number = "a number" if span and span.inf else "a finite number"
        return f"{number} {span.describe()}" if span else number
    if base is str:
        return txt.what if txt else "a non-empty string"
    if typing.get_origin(base) is tuple:
        return f"a list of {seq.min_len} to {seq.max_len} integers, each {seq.item.describe()}"
    if typing.get_args(base)[1:] == (str,):
        return "a JSON object of key paths ('' is the whole observation) to non-empty names"
    return "a JSON object (standard JSON: no NaN or Infinity)"


def _show(value: Any) -> str:
    """``repr(value)`` on one line, shortened to 80 characters."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"<an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits>"
    try:
        text = repr(value)
    except Exception:  # a value whose repr itself fails
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    """The JSON-ish kind of a value, for '(got …)'."""
    if value is None:
        return "none"
    names = {bool: "a bool", int: "an integer", float: "a number", str: "a string",
             list: "a list", tuple: "a list", dict: "an object"}  # fmt: skip
    for kind, name in names.items():
        if type(value) is kind:
            return name
    return f"type {type(value).__name__}"


def _did_you_mean(name: str, choices: Any) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


NONE_WORDS = ("none", "null")
"""How optional fields are set to None on the command line."""
BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True,
              "false": False, "0": False, "no": False, "off": False}  # fmt: skip
"""How a boolean is written in an ablation variant (``normalize_obs=yes``)."""


def parse_text(label: str, text: str, tp: Any) -> Any:
    """The value that command-line ``text`` spells for the annotation ``tp``, checked with
    :func:`check_value`; :class:`ConfigError` ``label='text' is not allowed: …`` otherwise.

    Numbers are Python literals (``3e-4``, ``1_000``; ``nan`` and ``inf`` parse and are then
    refused unless allowed), ``none``/``null`` is None for optional fields, a list is
    ``64,64`` (or JSON), a dict is a JSON object."""
    base, _ = _strip(tp)
    base, optional = _strip_optional(base)
    if optional and text.strip().lower() in NONE_WORDS:
        return check_value(label, None, tp)
    try:
        value = _from_text(text, base)
    except (ValueError, TypeError, RecursionError):
        raise ConfigError(f"{label}={_show(text)} is not allowed: {describe_type(tp)}") from None
    return check_value(label, value, tp)


def _from_text(text: str, base: Any) -> Any:
    if base is bool:
        return BOOL_WORDS[text.strip().lower()] if text.strip().lower() in BOOL_WORDS else text
    if base is int:
        return int(text)
    if base is float:
        return float(text)
    if typing.get_origin(base) is tuple:
        if text.strip().startswith("["):
            return loads_json(text)
        return tuple(int(x) for x in text.replace(",", " ").split())
    if typing.get_origin(base) is dict or base is dict:
        return loads_json(text)
    return text  # str and Literal


def parse_field_value(name: str, text: str) -> Any:
    """A config field's value from text as its flag parses it (booleans as true/false, 1/0,
    yes/no, on/off); :class:`ConfigError` naming the field otherwise."""
    if name not in field_sections():
        raise ConfigError(f"unknown config field {name!r}{_did_you_mean(name, field_sections())}")
    return parse_text(name, text, field_types()[name])


def loads_json(text: str) -> Any:
    """``json.loads`` that refuses a key given twice in one object (json would keep the last
    silently)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise ValueError(f"key {k!r} appears twice in one object")
            out[k] = v
        return out

    return json.loads(text, object_pairs_hook=pairs)


def read_config_file(path: str | Path) -> Config:
    """The config in a JSON file (a run's config.json, or one written by hand), checked field by
    field; every problem is a :class:`ConfigError` naming the file (call
    :meth:`Config.validate` for the rules between fields)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"--config {path}: cannot read the file ({_one_line(exc)})") from None
    try:
        data = loads_json(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"--config {path}: not valid JSON ({_one_line(exc)})") from None
    try:
        return Config.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"--config {path}: {exc}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# --- the fields: sections, types, docs ---------------------------------------------------------
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
def field_types() -> dict[str, Any]:
    """Flat field name → its full annotation (``Annotated`` metadata included)."""
    out: dict[str, Any] = {}
    for kind in _sections().values():
        hints = typing.get_type_hints(kind, include_extras=True)
        out.update({f.name: hints[f.name] for f in dataclasses.fields(kind)})
    return out


def choices(name: str) -> tuple[str, ...]:
    """The allowed values of a choice field, read from its ``Literal`` annotation."""
    base = _strip_optional(_strip(field_types()[name])[0])[0]
    if typing.get_origin(base) is not Literal:
        raise ValueError(f"config field {name!r} is not a choice")
    return typing.get_args(base)


def is_bool_field(name: str) -> bool:
    return field_types()[name] is bool


def allowed(name: str) -> str:
    """What field ``name`` allows, in words."""
    return describe_type(field_types()[name])


@cache
def field_docs() -> dict[str, str]:
    """Flat field name → its docstring, read from this module's source (attribute docstrings)."""
    docs: dict[str, str] = {}
    for kind in _sections().values():
        docs.update(attribute_docs(kind))
    return docs


def attribute_docs(kind: type) -> dict[str, str]:
    """Field name → the docstring under it in the source of dataclass ``kind``."""
    docs: dict[str, str] = {}
    tree = ast.parse(textwrap.dedent(inspect.getsource(kind)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def config_markdown() -> str:
    """The config reference page (``docs/config.md``), generated from the field docstrings and
    annotations."""
    defaults = dataclasses.asdict(Config())
    docs = field_docs()
    lines = [
        "# Configuration reference",
        "",
        "Generated from the field docstrings and annotations in `src/ppox/config.py` by",
        "`ppox.config.config_markdown()` (`make docs` rewrites this file; a test keeps the two in sync).",
        "Every field is a flag of `ppox train` (`--field-name VALUE`; booleans as `--flag` / `--no-flag`;",
        "`none` for optional fields), a key of its section in a `--config` JSON file (`null` for",
        "none) and a keyword of `Config.replace(field_name=value)` in Python. All three are checked",
        "by one parser against the field's annotation: a value outside **allowed** is an error",
        "naming the field, the value and what is allowed, before anything is written.",
    ]
    for section, kind in _sections().items():
        lines += [
            "",
            f"## `{section}`: {(kind.__doc__ or '').strip()}",
            "",
            "| field | default | allowed | meaning |",
            "|---|---|---|---|",
        ]
        for f in dataclasses.fields(kind):
            lines.append(
                f"| `{f.name}` | `{defaults[section][f.name]!r}` | {allowed(f.name)} | {docs.get(f.name, '')} |"
            )
    lines += ["", f"Rules between fields: {RULES}"]
    return "\n".join(lines) + "\n"


RULES = (
    "num_minibatches divides num_steps × num_envs, which is at most 2²⁴; grad_clip=`ignore` needs "
    "a max_grad_norm; ent_schedule=`exponential` needs ent_coef > 0 and ent_coef_end > 0; "
    "eval_seed + eval_episodes ≤ 2³²; vectorization=`async` on Gymnasium runs at most 256 envs; "
    "max_episode_steps is not also given in env_kwargs, which does not set render_mode."
)
"""The rules between fields that :meth:`Config.validate` checks, in words (docs/config.md)."""
