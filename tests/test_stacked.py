"""Several seeds from one command: stacked in lockstep (ppox.training.stacked) or in forked
processes, every seed ending with the numbers it ends with alone."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from ppox.cli import main
from ppox.config import Config
from ppox.io.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ppox.training.lockstep import Request
from ppox.training.stacked import StackedCalls, deal, drive_together, train_seeds, train_together
from ppox.training.trainer import Trainer

SPEED = ("steps_per_second", "wall_time_s")


def cartpole(seed: int, **kw: Any) -> Config:
    return Config().replace(total_steps=1024, num_envs=4, num_steps=32, num_epochs=3, num_minibatches=2,
                            eval_every=512, eval_episodes=2, tensorboard=False, progress=False, seed=seed,
                            **kw)  # fmt: skip


def pendulum(seed: int, **kw: Any) -> Config:
    """A Gaussian head with its own log σ, observation and reward normalization, ReLU trunks."""
    return Config().replace(env_id="Pendulum-v1", total_steps=1024, num_envs=2, num_steps=64, num_epochs=2,
                            num_minibatches=4, normalize_obs=True, scale_reward=True, activation="relu",
                            eval_every=0, eval_episodes=1, tensorboard=False, progress=False, seed=seed,
                            **kw)  # fmt: skip


def same_run(a: Path, b: Path) -> None:
    """The two run directories hold the same metrics (but speed), weights and Adam state."""
    rows = [list(csv.DictReader((d / "metrics.csv").open())) for d in (a, b)]
    assert len(rows[0]) == len(rows[1]) > 0
    for r, s in zip(*rows):
        assert {k: v for k, v in r.items() if k not in SPEED} == {
            k: v for k, v in s.items() if k not in SPEED
        }
    ca, cb = (load_checkpoint(d / CHECKPOINT_NAME) for d in (a, b))
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    for k in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(ca["optimizer"]["state"][0][k], cb["optimizer"]["state"][0][k]), k
    assert ca["obs_norm"] == cb["obs_norm"] or all(
        torch.equal(torch.as_tensor(x), torch.as_tensor(y))
        for x, y in zip(ca["obs_norm"].values(), cb["obs_norm"].values())
    )


def wide(seed: int, **kw: Any) -> Config:
    """Trunks wider than the joint acting plan serves (acting seed by seed, the update stacked),
    ELU, hidden layers of two widths."""
    return cartpole(seed, hidden_sizes=(160, 8), activation="elu", **kw)


def shared(seed: int, **kw: Any) -> Config:
    """One trunk for the actor and the critic (the critic's gradient joins the actor's)."""
    return pendulum(seed, shared_trunk=True, **kw)


def early_stop(seed: int, **kw: Any) -> Config:
    """Epochs cut short at a target KL: the seeds' requests fall out of step (made one by one,
    while a stacked net's work arrays hold another grouping's pass)."""
    return cartpole(seed, **kw).replace(target_kl=0.002, num_epochs=6)


@pytest.mark.parametrize(
    "make",
    [cartpole, pendulum, wide, shared, early_stop],
    ids=["categorical", "gaussian", "wide", "shared", "early-stop"],
)
def test_seeds_stacked_end_bit_for_bit_as_alone(tmp_path: Path, make: Any) -> None:
    seeds = [1, 2, 3]
    for s in seeds:
        Trainer.create(make(s), tmp_path / "alone" / f"s{s}").train()
    trainers = [Trainer.create(make(s), tmp_path / "together" / f"s{s}") for s in seeds]
    results, calls, reason = train_together(trainers)
    assert reason is None and calls is not None
    # every acting step, forward pass and gradient was made stacked (all seeds stay in step)
    steps = trainers[0].cfg.ppo.num_steps * (
        1024 // (trainers[0].num_envs * trainers[0].cfg.ppo.num_steps)
    )
    if make is early_stop:  # the seeds stopped their epochs at different points: out of step
        assert calls.stacked["act"] < steps and calls.stacked["forward"] < 6 * 2 * 8, calls.stacked
    else:
        assert calls.stacked["act"] == (0 if make in (wide, shared) else steps)  # joint plans only
    assert calls.stacked["forward"] >= calls.stacked["gradient"] > 0  # a stop follows a forward
    assert all(isinstance(r, dict) for r in results)
    for s in seeds:
        same_run(tmp_path / "alone" / f"s{s}", tmp_path / "together" / f"s{s}")


def test_seeds_that_cannot_be_stacked_train_one_after_another(tmp_path: Path) -> None:
    trainers = [
        Trainer.create(cartpole(s, act_backend="torch"), tmp_path / f"s{s}") for s in (1, 2)
    ]
    results, calls, reason = train_together(trainers)
    assert calls is None and reason is not None and "acting runs in torch" in reason
    assert all(isinstance(r, dict) for r in results)


def test_a_run_that_fails_stops_only_itself() -> None:
    class Echo:
        def twice(self, x: int) -> int:
            return 2 * x

    target = Echo()

    def run(n: int, fail_at: int | None = None):  # noqa: ANN202
        total = 0
        for i in range(n):
            if i == fail_at:
                raise RuntimeError(f"failed at {i}")
            total += yield Request(target, "twice", (i,))
        return total

    seen: list[int] = []

    def calls(requests: list[Request]) -> list[Any]:
        seen.append(len(requests))
        return [getattr(r.target, r.method)(*r.args) for r in requests]

    results = drive_together([run(3), run(5, fail_at=1), run(4)], calls)
    assert results[0] == 2 * (0 + 1 + 2) and results[2] == 2 * (0 + 1 + 2 + 3)
    assert isinstance(results[1], RuntimeError) and "failed at 1" in str(results[1])
    assert seen == [3, 2, 2, 1]  # the failed run left after its first request


def test_unlike_requests_are_made_one_by_one() -> None:
    class Echo:
        def act(self, x: int) -> int:
            return x + 1

        def forward(self, x: int) -> int:
            return x - 1

    e = Echo()
    calls = StackedCalls()
    assert calls([Request(e, "act", (1,)), Request(e, "forward", (1,))]) == [2, 0]
    assert calls.stacked == {"act": 0, "forward": 0, "gradient": 0}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ppox", *args], capture_output=True, text=True, timeout=300
    )


TINY = ["--total-steps", "512", "--eval-every", "0", "--eval-episodes", "2", "--no-tensorboard"]


@pytest.mark.parametrize(
    "extra",
    [[], ["--jobs", "1"], ["--jobs", "1", "--stack-seeds"]],
    ids=["forked", "one-after-another", "stacked"],
)
def test_train_seeds_writes_one_run_per_seed_as_alone(tmp_path: Path, extra: list[str]) -> None:
    r = run_cli("train", *TINY, "--seeds", "1", "2", "--run-dir", str(tmp_path / "many"), *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 of 2 seeds trained" in r.stdout
    assert ("stacked in one process" in r.stdout) == ("--stack-seeds" in extra)
    for s in (1, 2):
        assert (
            main(
                [
                    "train",
                    *TINY,
                    "--no-progress",
                    "--seed",
                    str(s),
                    "--run-dir",
                    str(tmp_path / f"one{s}"),
                ]
            )
            == 0
        )
        same_run(tmp_path / "many" / f"seed-{s}", tmp_path / f"one{s}")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--seeds", "1", "1"], "--seeds must be distinct"),
        (["--seeds", "1", "2", "--seed", "3"], "--seed and --seeds exclude each other"),
        (["--jobs", "2"], "--jobs is for training several seeds"),
        (["--stack-seeds"], "--stack-seeds is for training several seeds"),
        (["--seeds", "1", "2", "--resume", "somewhere"], "--resume continues one run"),
        (["--seeds", "1", "2", "--auto-resume"], "--auto-resume with --seeds needs"),
    ],
)
def test_train_seeds_bad_input_gives_one_clear_line(args: list[str], needle: str) -> None:
    r = run_cli("train", *TINY, *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert needle in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_train_seeds_refuses_before_writing_when_one_directory_is_taken(tmp_path: Path) -> None:
    (tmp_path / "many" / "seed-2").mkdir(parents=True)
    (tmp_path / "many" / "seed-2" / "notes.txt").write_text("mine")
    r = run_cli("train", *TINY, "--seeds", "1", "2", "--run-dir", str(tmp_path / "many"))
    assert r.returncode == 2 and "seed-2" in r.stderr and "already holds files" in r.stderr, (
        r.stderr
    )
    assert not (tmp_path / "many" / "seed-1").exists()
    assert (tmp_path / "many" / "seed-2" / "notes.txt").read_text() == "mine"


def test_train_seeds_never_writes_into_another_runs_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", *TINY, "--no-progress", "--run-dir", str(run)]) == 0
    r = run_cli("train", "--config", str(run / "config.json"), "--seeds", "1", "2")  # its run_dir
    assert r.returncode == 2 and "is a run's own directory" in r.stderr, r.stderr
    assert not (run / "seed-1").exists()


def test_deal_splits_the_seeds_left_over_between_two_processes() -> None:
    assert deal([1, 2, 3, 4, 5], 2) == ([[1, 3, 5], [2, 4]], {})  # round-robin
    assert deal([1, 2, 3, 4, 5], 2, split=True) == ([[1, 3, 5], [2, 4]], {5: (0, 1)})
    assert deal([1, 2, 3, 4], 2, split=True) == ([[1, 3], [2, 4]], {})  # even: nothing to split
    assert deal([1, 2, 3, 4, 5], 5, split=True) == ([[1], [2], [3], [4], [5]], {})
    assert deal([1, 2, 3, 4, 5], 9, split=True) == ([[1], [2], [3], [4], [5]], {})
    # 7 seeds on 3 processes: 2 whole seeds each, the 7th split between the first two
    assert deal(list(range(1, 8)), 3, split=True) == ([[1, 4, 7], [2, 5], [3, 6]], {7: (0, 1)})
    # 5 seeds on 3: one whole each; seeds 4 and 5 split so that every process has 5/3
    assert deal([1, 2, 3, 4, 5], 3, split=True) == ([[1, 4], [2], [3, 5]], {4: (0, 1), 5: (2, 0)})


def split_seeds(tmp_path: Path, make: Any = cartpole, fail: int | None = None) -> list[Any]:
    """Seeds 1-3 on two processes, stacked: seed 3's second half moves to the second one."""

    def build(seed: int) -> Trainer:
        if seed == fail:
            raise RuntimeError(f"seed {seed} cannot start")
        return Trainer.create(make(seed), tmp_path / "together" / f"s{seed}")

    return train_seeds(
        build,
        [1, 2, 3],
        2,
        stack=True,
        resume=lambda s: Trainer.create_or_resume(make(s), tmp_path / "together" / f"s{s}"),
        echo=lambda line: None,
    )


@pytest.mark.parametrize("make", [cartpole, pendulum], ids=["categorical", "gaussian"])
def test_a_seed_split_between_processes_ends_as_alone(tmp_path: Path, make: Any) -> None:
    outcomes = split_seeds(tmp_path, make)
    assert [o[0] for o in outcomes] == [1, 2, 3]
    assert all(isinstance(o[1], dict) for o in outcomes), outcomes
    # seed 3 paused at half its budget (1024 // 2 = 512 steps) and went on in the other process
    assert "seed 3 from another at step 512" in outcomes[2][2], outcomes[2][2]
    assert "seeds 2 stacked" in outcomes[1][2]
    for s in (1, 2, 3):
        Trainer.create(make(s), tmp_path / "alone" / f"s{s}").train()
        same_run(tmp_path / "alone" / f"s{s}", tmp_path / "together" / f"s{s}")
    summary = outcomes[2][1]
    assert summary["total_steps"] == 1024 and summary["resumed_env_state_exactly"] is True


def test_a_seed_whose_episodes_cannot_be_resumed_exactly_is_not_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Trainer, "resumes_exactly", lambda self: False)  # forked workers inherit it
    outcomes = split_seeds(tmp_path)
    assert all(isinstance(o[1], dict) for o in outcomes), outcomes
    assert "seeds 1 3 stacked in one process" == outcomes[2][2]  # trained whole where it started
    Trainer.create(cartpole(3), tmp_path / "alone").train()
    same_run(tmp_path / "alone", tmp_path / "together" / "s3")


def test_a_split_seed_that_cannot_start_stops_only_itself(tmp_path: Path) -> None:
    outcomes = split_seeds(tmp_path, fail=3)
    assert isinstance(outcomes[0][1], dict) and isinstance(outcomes[1][1], dict)
    assert outcomes[2][1] == "RuntimeError: seed 3 cannot start", outcomes[2]


def test_train_seeds_cli_splits_the_odd_seed_and_every_seed_ends_as_alone(tmp_path: Path) -> None:
    r = run_cli("train", *TINY, "--seeds", "1", "2", "3", "--jobs", "2", "--stack-seeds",
                "--run-dir", str(tmp_path / "many"))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 of 3 seeds trained" in r.stdout and "seed 3 from another at step 256" in r.stdout
    assert (
        main(["train", *TINY, "--no-progress", "--seed", "3", "--run-dir", str(tmp_path / "one")])
        == 0
    )
    same_run(tmp_path / "many" / "seed-3", tmp_path / "one")


def test_a_split_seed_whose_first_process_dies_is_reported_by_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    def dies_on_seed_3(self: Trainer) -> bool:
        if self.cfg.run.seed == 3:  # in the first process, as it starts seed 3's first half
            os._exit(3)
        return True

    monkeypatch.setattr(Trainer, "resumes_exactly", dies_on_seed_3)
    outcomes = split_seeds(tmp_path)
    assert outcomes[0][1] == "its worker process ended (exit code 3)"
    assert isinstance(outcomes[1][1], dict)  # the other process went on
    assert outcomes[2][1] == "the process training its first half ended before handing it over"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_killing_the_seeds_command_ends_its_workers(tmp_path: Path) -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "ppox", "train", "--total-steps", "200000", "--no-tensorboard",
         "--seeds", "1", "2", "3", "--jobs", "2", "--stack-seeds", "--run-dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def children() -> list[int]:
        out = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                if f"PPid:\t{proc.pid}\n" in status.read_text():
                    out.append(int(status.parent.name))
            except OSError:
                pass
        return out

    deadline = time.monotonic() + 60
    while len(children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = children()
    assert len(workers) == 2, workers
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.1)
    for w in workers:  # gone, or a zombie nobody reaps yet
        status = Path(f"/proc/{w}/status")
        assert not status.exists() or "State:\tZ" in status.read_text(), w


def test_only_runs_that_resume_exactly_are_split(tmp_path: Path) -> None:
    """Box2D's envs cannot be snapshotted (their resume restarts the episodes): not split."""
    for env_id, exact in (("CartPole-v1", True), ("LunarLander-v3", False)):
        t = Trainer.create(cartpole(1, env_id=env_id), tmp_path / env_id)
        assert t.resumes_exactly() is exact, env_id
        t.close_collection()
        t.release_run_dir()


def test_outcomes_come_in_the_order_of_the_seeds(tmp_path: Path) -> None:
    def build(seed: int) -> Trainer:
        if seed == 2:
            raise RuntimeError("seed 2 cannot start")
        return Trainer.create(cartpole(seed, total_steps=256), tmp_path / f"s{seed}")

    outcomes = train_seeds(build, [1, 2], 1, stack=True, echo=lambda line: None)
    assert [o[0] for o in outcomes] == [1, 2] and outcomes[1][2] == "not started"
