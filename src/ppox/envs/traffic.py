"""Traffic-signal control on SUMO: several intersections, one MultiDiscrete action.

``ppox/Traffic-v0`` (:class:`TrafficEnv`) controls every traffic light of a SUMO network at
once. Each light picks its next green phase, so the action is ``MultiDiscrete(nvec)`` with one
entry per light (``nvec[i]`` = that light's number of green phases). The simulation, the phase
logic (yellow transitions, minimum green), the per-light observations and the rewards are
sumo-rl's (its multi-agent ``SumoEnvironment`` and ``TrafficSignal``); this module joins the
lights into one agent and changes how SUMO is started and stopped.

- Lights are ordered by ``sorted()`` of their SUMO ids (:attr:`TrafficEnv.agents`).
- Observation: the lights' sumo-rl observations (``[phase one-hot, min-green passed, lane
  densities, lane queues]``, all in [0, 1]) concatenated into one float32 Box. Every light gets
  a segment of the same length ``obs_dim_per_light`` (the largest light's); shorter ones are
  padded with zeros whose bounds are [0, 0], so ``obs.reshape(num_lights, -1)`` gives one row
  per light.
- Reward: the sum of the lights' rewards; ``info["rewards"]`` has them one by one (float64,
  light order; zeros after ``reset``).
- ``info["action_mask"]``: flat bool, length ``sum(nvec)``, the lights' masks one after the
  other (for equal phase counts this is ``mask2d.reshape(-1)`` of a ``[num_lights, n]`` array).
  sumo-rl ignores a requested phase change until ``yellow_time + min_green`` seconds have
  passed since the light's last change; while that holds, only the light's current green phase
  is legal, otherwise all its phases are. Illegal actions are not an error: they keep the phase,
  as in sumo-rl.
- Episodes end on simulated time, not on a terminal state: the step that reaches
  ``num_seconds`` returns ``terminated=False, truncated=True``. An episode has
  ``ceil(num_seconds / delta_time)`` steps (200 with the defaults); the id is registered
  without a TimeLimit.
- Seeding: every reset draws SUMO's ``--seed`` from the env's ``np_random``, so
  ``reset(seed=s)`` fixes the episode and the unseeded resets after it.

SUMO backends: ``"traci"`` (default) runs each simulation as a ``sumo`` child process reached
over a socket, so any number of envs can live in one process. ``"libsumo"`` runs SUMO inside
this process (about 10x faster here) but allows only one simulation per process; a second env
asking for it raises :class:`EnvError`. ``"auto"`` takes libsumo when it is free and traci
otherwise (with ``vectorization="async"`` every worker process gets libsumo). Both backends
give bit-identical simulations. SUMO is started once per env and reloaded on reset.

Nothing here imports SUMO at module import time; SUMO, sumo-rl and friends come with
``pip install "ppox[traffic]"``. ``SUMO_HOME`` is taken from the ``eclipse-sumo`` wheel when
not set. The env cannot be pickled (it holds a running simulation): ``pickle.dumps`` raises
:class:`TypeError`, and ppox's snapshots restart its episodes on resume.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import subprocess
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from ppox.errors import EnvError

__all__ = ["DEFAULT_NET", "ENV_ID", "INSTALL_HINT", "TrafficEnv", "register_traffic_envs"]

ENV_ID = "ppox/Traffic-v0"
INSTALL_HINT = 'pip install "ppox[traffic]"'
DEFAULT_NET = ("2x2grid", "2x2.net.xml", "2x2.rou.xml")
"""(folder in ``sumo_rl/nets``, net file, route file) of the default network: sumo-rl's 2x2 grid,
four lights with four green phases each, four flows of 0.1 vehicles/s."""

Backend = Literal["traci", "libsumo"]
BackendChoice = Literal["traci", "libsumo", "auto"]
Obs = NDArray[np.float32]
Action = NDArray[np.int64]

_SEED_BOUND = 2**31 - 1  # SUMO's --seed is a C int
_CONNECT_TIMEOUT_S = 60.0
_libsumo_owner: weakref.ReferenceType[Any] | None = None
"""The simulation that holds libsumo in this process (libsumo runs one at a time)."""


def _missing(what: str, exc: BaseException) -> EnvError:
    return EnvError(
        f"{ENV_ID} needs {what}, which cannot be imported ({exc}); install it with: {INSTALL_HINT}"
    )


@functools.cache
def _sumo_rl() -> Any:
    """Import sumo-rl (after pointing ``SUMO_HOME`` at the ``eclipse-sumo`` wheel if unset)."""
    if "SUMO_HOME" not in os.environ:
        try:
            import sumo  # type: ignore[import-untyped]  # the eclipse-sumo wheel
        except ImportError as exc:
            raise _missing(
                "SUMO (the eclipse-sumo package, or SUMO_HOME set to a SUMO install)", exc
            ) from None
        os.environ["SUMO_HOME"] = sumo.SUMO_HOME
    try:
        import sumo_rl  # type: ignore[import-untyped]
    except ImportError as exc:
        raise _missing("sumo-rl", exc) from None
    return sumo_rl


def _libsumo() -> Any:
    try:
        import libsumo  # type: ignore[import-untyped]
    except ImportError as exc:
        raise _missing("libsumo (for backend='libsumo')", exc) from None
    return libsumo


def _libsumo_free(sim: Any) -> bool:
    """Whether ``sim`` may start libsumo: importable and not running another simulation in this
    process (a live owner, or a simulation loaded by someone else or inherited through fork)."""
    try:
        libsumo = _libsumo()
    except EnvError:
        return False
    owner = _libsumo_owner() if _libsumo_owner is not None else None
    if owner is not None:
        return owner is sim
    return not libsumo.isLoaded()


@functools.cache
def _sumo_modules() -> SimpleNamespace:
    """sumo-rl and the SUMO client modules it runs on, imported once."""
    sumo_rl = _sumo_rl()
    import sumolib  # type: ignore[import-untyped]
    from sumo_rl.environment.observations import (  # type: ignore[import-untyped]
        DefaultObservationFunction,
    )

    return SimpleNamespace(
        sumo_rl=sumo_rl,
        sumolib=sumolib,
        DefaultObservationFunction=DefaultObservationFunction,
        # traci's socket client, even where LIBSUMO_AS_TRACI makes `import traci` give libsumo
        traci=importlib.import_module("traci.main"),
    )


@functools.cache
def _simulation_class() -> type[Any]:
    """``_Simulation``: :class:`_SumoProcess` on top of sumo-rl's ``SumoEnvironment`` (made on
    first use, since sumo-rl is imported only then)."""
    base = _sumo_modules().sumo_rl.SumoEnvironment
    return type("_Simulation", (_SumoProcess, base), {"__doc__": _SumoProcess.__doc__})


class _SumoProcess:
    """sumo-rl's multi-agent ``SumoEnvironment`` (its ``step`` and everything under it, via the
    base class added by :func:`_simulation_class`), with SUMO started, reloaded and stopped here.

    sumo-rl's constructor starts a throwaway SUMO just to list the lights (about a second, in
    traci's connection retry, and printing to stdout), its ``reset`` restarts the process, and
    its backend is chosen for the whole process by ``LIBSUMO_AS_TRACI``. This class starts one
    SUMO per instance (a socket connection of its own, or libsumo), reloads it on reset, and
    closes it without traci's global connection table.
    """

    # provided by sumo-rl's SumoEnvironment
    _compute_observations: Callable[[], Any]
    traffic_signals: dict[str, Any]
    sumo: Any
    """The running simulation: a traci connection, the libsumo module, or ``None`` (closed)."""

    def __init__(
        self,
        *,
        net_file: str,
        route_file: str,
        num_seconds: int,
        delta_time: int,
        yellow_time: int,
        min_green: int,
        reward_fn: str | Callable[[Any], float],
        backend: BackendChoice,
        sumo_warnings: bool,
    ) -> None:
        m = _sumo_modules()
        # The attributes SumoEnvironment.__init__ (sumo-rl 1.4) sets, for multi-agent mode.
        self.render_mode = None
        self.virtual_display = (0, 0)
        self.disp = None
        self._net = net_file
        self._route = route_file
        self.use_gui = False
        self._sumo_binary: str = m.sumolib.checkBinary("sumo")
        self.begin_time = 0
        self.sim_max_time = num_seconds
        self.delta_time = delta_time
        self.max_depart_delay = -1
        self.waiting_time_memory = 1000
        self.time_to_teleport = -1
        self.min_green = min_green
        self.max_green = 50  # unused by sumo-rl
        self.yellow_time = yellow_time
        self.single_agent = False
        self.reward_fn = reward_fn
        self.sumo_seed = 0
        self.fixed_ts = False
        self.sumo_warnings = sumo_warnings
        self.additional_sumo_cmd = None
        self.add_system_info = False
        self.add_per_agent_info = False
        self.label = f"ppox-{id(self)}"
        self.observation_class = m.DefaultObservationFunction
        self.reward_range = (-float("inf"), float("inf"))
        self.episode = 0
        self.metrics: list[dict[str, Any]] = []
        self.out_csv_name = None
        self.vehicles: dict[str, Any] = {}
        self.sumo = None
        self._backend_wanted = backend
        self.backend: Backend = "traci"  # the one in use, set on start
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = os.getpid()  # the process that started SUMO
        self._start_simulation()
        try:
            self.ts_ids: list[str] = list(self.sumo.trafficlight.getIDList())
            self._make_signals()
        except BaseException:
            self.close()
            raise
        self.observations: dict[str, Any] = {ts: None for ts in self.ts_ids}
        self.rewards: dict[str, Any] = {ts: None for ts in self.ts_ids}

    def _make_signals(self) -> None:
        signal = _sumo_modules().sumo_rl.TrafficSignal
        self.traffic_signals = {
            ts: signal(
                self,
                ts,
                self.delta_time,
                self.yellow_time,
                self.min_green,
                self.max_green,
                self.begin_time,
                self.reward_fn,
                self.sumo,
            )
            for ts in self.ts_ids
        }

    def _sumo_args(self) -> list[str]:
        args = [
            "-n", self._net,
            "-r", self._route,
            "--max-depart-delay", str(self.max_depart_delay),
            "--waiting-time-memory", str(self.waiting_time_memory),
            "--time-to-teleport", str(self.time_to_teleport),
            "--seed", str(self.sumo_seed),
            "--no-step-log", "true",
        ]  # fmt: skip
        if not self.sumo_warnings:
            args += ["--no-warnings", "true"]
        return args

    def _start_simulation(self) -> None:
        self._pid = os.getpid()
        if self._backend_wanted == "traci" or (
            self._backend_wanted == "auto" and not _libsumo_free(self)
        ):
            self._start_traci()
        else:
            self._start_libsumo()

    def _start_libsumo(self) -> None:
        global _libsumo_owner
        libsumo = _libsumo()
        if not _libsumo_free(self):
            raise EnvError(
                "backend='libsumo' runs one SUMO simulation per process and another one is "
                "running here; use backend='traci' or 'auto' for several envs in one process "
                "(or vectorization='async', one env per worker process)"
            )
        libsumo.start([self._sumo_binary, *self._sumo_args()])
        _libsumo_owner = weakref.ref(self)
        self.sumo = libsumo
        self.backend = "libsumo"

    def _start_traci(self) -> None:
        """Start ``sumo`` as a child process and connect to it (``traci.start`` would sleep a
        second before its first retry and print to stdout)."""
        traci = _sumo_modules().traci
        deadline = time.monotonic() + _CONNECT_TIMEOUT_S
        while True:
            port = traci.getFreeSocketPort()
            cmd = [self._sumo_binary, *self._sumo_args(), "--remote-port", str(port)]
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    self.sumo = traci.connect(port, numRetries=0, proc=proc)
                except (traci.FatalTraCIError, traci.TraCIException):  # not listening yet / exited
                    time.sleep(0.01)
                    continue
                self._proc = proc
                self.backend = "traci"
                return
            if proc.poll() is None:  # deadline
                proc.kill()
                proc.wait()
                raise EnvError(
                    f"SUMO did not accept a connection within {_CONNECT_TIMEOUT_S:.0f} s: {' '.join(cmd)}"
                )
            if time.monotonic() >= deadline:
                raise EnvError(f"SUMO exited with code {proc.returncode} at start: {' '.join(cmd)}")
            # SUMO exited early, most likely because another process took the port: new port

    def start_episode(self, sumo_seed: int) -> None:
        """Begin an episode with SUMO's ``--seed sumo_seed`` (reload, or start after close)."""
        self.sumo_seed = sumo_seed
        if self.sumo is None:
            self._start_simulation()
        else:
            self.sumo.load(self._sumo_args())
        self.episode += 1
        self.metrics = []
        self.vehicles = {}
        self._make_signals()
        self._compute_observations()

    def close(self) -> None:
        """Stop SUMO (idempotent) and reap its process."""
        global _libsumo_owner
        sumo, proc = self.sumo, self._proc
        self.sumo, self._proc = None, None
        if sumo is None or os.getpid() != self._pid:
            return  # closed, or a copy inherited through fork: the simulation is the parent's
        if self.backend == "libsumo":
            if _libsumo_owner is not None and _libsumo_owner() is self:
                _libsumo_owner = None
                sumo.close()
            return
        try:
            sumo.close()  # asks SUMO to quit and waits for the process
        except Exception:  # SUMO already gone or the socket broken
            pass
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _default_files() -> tuple[str, str]:
    folder, net, route = DEFAULT_NET
    nets = Path(_sumo_modules().sumo_rl.__file__).parent / "nets" / folder
    return str(nets / net), str(nets / route)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class TrafficEnv(gym.Env[Obs, Action]):
    """Every traffic light of a SUMO network, controlled with one ``MultiDiscrete`` action.

    Args:
        net_file, route_file: SUMO ``.net.xml`` / ``.rou.xml`` files; both ``None`` (default)
            use sumo-rl's 2x2 grid (4 lights, 4 phases each), shipped inside sumo-rl.
        num_seconds: simulated seconds per episode (default 1000).
        delta_time: simulated seconds per step (default 5); must exceed ``yellow_time``.
            An episode has ``ceil(num_seconds / delta_time)`` steps (200 by default).
        yellow_time: seconds of yellow between two green phases (default 2).
        min_green: seconds a green phase lasts at least (default 5).
        reward_fn: a sumo-rl reward name (``"diff-waiting-time"`` (default), ``"average-speed"``,
            ``"queue"``, ``"pressure"``) or a function of sumo-rl's ``TrafficSignal`` to float.
        backend: ``"traci"`` (default; any number of envs per process), ``"libsumo"`` (about
            10x faster; one simulation per process, a second one raises :class:`EnvError`) or
            ``"auto"`` (libsumo when this process has none running, else traci; decided each
            time SUMO starts). Both give identical simulations for the same seed.
        sumo_warnings: let SUMO print its warnings (default ``False``).
        render_mode: only ``None`` (SUMO's GUI is not supported).

    Raises :class:`EnvError` when SUMO or sumo-rl is missing, a file does not exist or the
    network has no traffic light; :class:`ValueError` for bad numbers.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        net_file: str | os.PathLike[str] | None = None,
        route_file: str | os.PathLike[str] | None = None,
        num_seconds: int = 1000,
        delta_time: int = 5,
        yellow_time: int = 2,
        min_green: int = 5,
        reward_fn: str | Callable[[Any], float] = "diff-waiting-time",
        backend: BackendChoice = "traci",
        sumo_warnings: bool = False,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; {ENV_ID} has no rendering"
            )
        self.render_mode = None
        num_seconds = _check_int("num_seconds", num_seconds, 1)
        delta_time = _check_int("delta_time", delta_time, 1)
        yellow_time = _check_int("yellow_time", yellow_time, 0)
        min_green = _check_int("min_green", min_green, 0)
        if delta_time <= yellow_time:
            raise ValueError(
                f"delta_time ({delta_time}) must be greater than yellow_time ({yellow_time})"
            )
        if backend not in ("traci", "libsumo", "auto"):
            raise ValueError(f"backend must be 'traci', 'libsumo' or 'auto', got {backend!r}")
        sumo_rl = _sumo_modules().sumo_rl
        if isinstance(reward_fn, str) and reward_fn not in sumo_rl.TrafficSignal.reward_fns:
            names = ", ".join(repr(k) for k in sumo_rl.TrafficSignal.reward_fns)
            raise ValueError(
                f"reward_fn={reward_fn!r} is not a sumo-rl reward; choose one of {names} or pass a function"
            )
        if not isinstance(reward_fn, str) and not callable(reward_fn):
            raise ValueError(f"reward_fn must be a reward name or a function, got {reward_fn!r}")
        if (net_file is None) != (route_file is None):
            raise ValueError(
                "give both net_file and route_file, or neither (for the default 2x2 grid)"
            )
        if net_file is None or route_file is None:
            net_file, route_file = _default_files()
        for kind, path in (("net_file", net_file), ("route_file", route_file)):
            if not Path(path).is_file():
                raise EnvError(f"{kind}={str(path)!r} does not exist")

        self.num_seconds = num_seconds
        self.delta_time = delta_time
        self.episode_steps = math.ceil(num_seconds / delta_time)
        """Steps per episode."""
        self._sim: Any = _simulation_class()(
            net_file=str(Path(net_file).resolve()),
            route_file=str(Path(route_file).resolve()),
            num_seconds=num_seconds,
            delta_time=delta_time,
            yellow_time=yellow_time,
            min_green=min_green,
            reward_fn=reward_fn,
            backend=backend,
            sumo_warnings=sumo_warnings,
        )
        try:
            self._init_spaces()
        except BaseException:
            self._sim.close()
            raise
        self._needs_reset = True
        self.sumo_seed: int | None = None
        """SUMO's ``--seed`` for the current episode (``None`` before the first reset)."""

    def _init_spaces(self) -> None:
        sim = self._sim
        self.agents: tuple[str, ...] = tuple(sorted(sim.ts_ids))
        """The lights' SUMO ids, in action / observation / mask / reward order."""
        if not self.agents:
            raise EnvError(f"the network {sim._net!r} has no traffic lights")
        signals = [sim.traffic_signals[ts] for ts in self.agents]
        self.nvec = np.array([ts.num_green_phases for ts in signals], dtype=np.int64)
        if (self.nvec < 1).any():
            bad = [a for a, n in zip(self.agents, self.nvec) if n < 1]
            raise EnvError(f"traffic lights {bad} have no green phase")
        boxes = [ts.observation_space for ts in signals]
        self.obs_dim_per_light = max(int(b.shape[0]) for b in boxes)
        low = np.zeros((len(boxes), self.obs_dim_per_light), dtype=np.float32)
        high = np.zeros_like(low)
        for i, b in enumerate(boxes):
            low[i, : b.shape[0]] = b.low
            high[i, : b.shape[0]] = b.high
        self.observation_space = spaces.Box(low.reshape(-1), high.reshape(-1), dtype=np.float32)
        self.action_space = spaces.MultiDiscrete(self.nvec)
        self._offsets = np.concatenate([[0], np.cumsum(self.nvec)])

    # -- gymnasium API ----------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        sumo_seed = int(self.np_random.integers(_SEED_BOUND))
        self._needs_reset = True
        self._sim.start_episode(sumo_seed)
        self._needs_reset = False
        self.sumo_seed = sumo_seed
        return self._observation(), self._info(np.zeros(len(self.agents)))

    def step(self, action: Any) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError(f"{ENV_ID}: call reset() before step() (and after an episode ends)")
        a = self._parse_action(action)
        _, rewards, dones, _ = self._sim.step({ts: int(a[i]) for i, ts in enumerate(self.agents)})
        if set(rewards) != set(self.agents):  # lights share delta_time, so all act every step
            raise RuntimeError(
                f"sumo-rl stepped only lights {sorted(rewards)} of {list(self.agents)}"
            )
        per_light = np.array([rewards[ts] for ts in self.agents], dtype=np.float64)
        truncated = bool(dones["__all__"])
        self._needs_reset = truncated
        return self._observation(), float(per_light.sum()), False, truncated, self._info(per_light)

    def close(self) -> None:
        """Stop SUMO (idempotent; a later ``reset`` starts it again)."""
        sim = getattr(self, "_sim", None)
        if sim is not None:
            sim.close()
        self._needs_reset = True

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError(
            f"{ENV_ID} holds a running SUMO simulation and cannot be pickled (ppox's snapshots "
            f"restart its episodes on resume)"
        )

    # -- helpers ----------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The SUMO backend in use: ``"traci"`` or ``"libsumo"``."""
        backend: Backend = self._sim.backend
        return backend

    def action_mask(self) -> NDArray[np.bool_]:
        """The legal actions now: flat bool ``[sum(nvec)]``, one ``[nvec[i]]`` block per light.

        A light whose last phase change is less than ``yellow_time + min_green`` seconds ago
        keeps its phase whatever it is asked (sumo-rl's rule), so only its current green phase
        is legal; otherwise every phase is.
        """
        mask = np.zeros(int(self._offsets[-1]), dtype=bool)
        for i, name in enumerate(self.agents):
            ts = self._sim.traffic_signals[name]
            start, stop = int(self._offsets[i]), int(self._offsets[i + 1])
            if ts.time_since_last_phase_change < ts.yellow_time + ts.min_green:
                mask[start + int(ts.green_phase)] = True
            else:
                mask[start:stop] = True
        return mask

    def _observation(self) -> Obs:
        obs = np.zeros((len(self.agents), self.obs_dim_per_light), dtype=np.float32)
        for i, ts in enumerate(self.agents):
            o = self._sim.observations[ts]
            obs[i, : len(o)] = o
        return obs.reshape(-1)

    def _info(self, per_light: NDArray[np.float64]) -> dict[str, Any]:
        return {
            "action_mask": self.action_mask(),
            "rewards": per_light,
            "sim_time": float(self._sim.sim_step),
        }

    def _parse_action(self, action: Any) -> Action:
        try:
            a = np.asarray(action)
        except (TypeError, ValueError):
            raise ValueError(
                f"action must be {len(self.agents)} integers, got {action!r}"
            ) from None
        if a.shape != self.nvec.shape or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(
                f"action must be {len(self.agents)} integers (one per light), got {action!r}"
            )
        a = a.astype(np.int64)
        if ((a < 0) | (a >= self.nvec)).any():
            raise ValueError(
                f"action {a.tolist()} is out of range: light i takes 0..nvec[i]-1, nvec={self.nvec.tolist()}"
            )
        return a


def register_traffic_envs() -> None:
    """Register ``ppox/Traffic-v0`` with Gymnasium (idempotent; no TimeLimit: the env truncates
    its episodes itself after ``num_seconds``). Does not import SUMO."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="ppox.envs.traffic:TrafficEnv", max_episode_steps=None)


register_traffic_envs()
