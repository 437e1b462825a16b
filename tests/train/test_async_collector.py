"""`async_updates`: a child process steps the envs while the learner updates.

The replay ratio is the sequential loop's exactly (same updates for the same env steps), runs
are bit-identical run to run, an interrupted run resumes to the weights of an uninterrupted one,
the child acts with the learner's weights, and its failures are named.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from multiq import config
from multiq.api import MultiTaskDQN
from multiq.cli import main as cli_main
from multiq.collect import choice as collector_choice
from multiq.collect.args import CollectorArgs
from multiq.collect.child import (
    AsyncCollector,
    main_is_multiq_command,
    pending_chunk,
    pending_meta,
    pending_tensors,
)
from multiq.collect.chunks import Chunk
from multiq.errors import EnvError, MultiqError
from multiq.phases.phase import Phase
from multiq.phases.state import TrainState
from multiq.replay.buffers import MultiTaskReplay
from multiq.tasks.suites import make_taskset
from multiq.train.callbacks import Callback
from multiq.train.stop import Interrupted

FAULTS = Path(__file__).resolve().parents[1] / "faults"
TWO_GAMES = "minatar:Breakout,minatar:Freeway"
SMALL = {
    "tensorboard": False, "progress_bar": False, "eval_episodes": 2, "eval_freq": 0,
    "learning_starts": 200, "buffer_size": 2_000, "target_update_interval": 100,
    "log_interval": 250, "checkpoint_freq": 0, "seed": 3,
}  # fmt: skip


def train(run_dir: Path, tasks=TWO_GAMES, steps: int = 1_000, **extra) -> MultiTaskDQN:
    model = MultiTaskDQN(tasks, run_dir=run_dir, **{**SMALL, **extra})
    model.learn(steps, evaluate=False)
    return model


def weights(model: MultiTaskDQN) -> dict[str, torch.Tensor]:
    return model.learner.online.state_dict()


def same_weights(a: MultiTaskDQN, b: MultiTaskDQN) -> bool:
    wa, wb = weights(a), weights(b)
    return all(torch.equal(wa[name], wb[name]) for name in wa)


@pytest.mark.parametrize(
    ("schedule", "train_freq"), [("uniform", 1), ("uniform", 4), ("progress", 2)]
)
def test_async_runs_hold_the_sequential_replay_ratio_exactly(tmp_path, schedule, train_freq):
    """Samples per env step. Uniform: the same updates for the same env steps per task
    (tolerance: none). Progress (unequal shares that follow the returns, which differ): the
    last vector step may step another number of tasks, so the phase's env steps may differ by
    at most T - 1 = 1 and the updates by at most one."""
    settings = {"task_schedule": schedule, "train_freq": train_freq}
    sequential = train(tmp_path / "seq", **settings)
    side_by_side = train(tmp_path / "async", async_updates=True, **settings)
    for model in (sequential, side_by_side):
        assert model.state.env_steps == 1_000
    if schedule == "uniform":
        assert side_by_side.state.updates == sequential.state.updates > 0
        assert side_by_side.state.task_env_steps == sequential.state.task_env_steps
        return
    total = sum(sequential.state.task_env_steps.values())
    assert abs(sum(side_by_side.state.task_env_steps.values()) - total) <= 1
    assert abs(side_by_side.state.updates - sequential.state.updates) <= 1
    ratio = [m.state.updates / sum(m.state.task_env_steps.values())
             for m in (sequential, side_by_side)]  # fmt: skip
    assert ratio[1] == pytest.approx(ratio[0], rel=0.01)


@pytest.mark.parametrize("async_updates", [False, True], ids=["sequential", "async"])
def test_a_run_is_bit_identical_run_to_run(tmp_path, async_updates):
    first = train(tmp_path / "a", steps=600, async_updates=async_updates)
    second = train(tmp_path / "b", steps=600, async_updates=async_updates)
    assert same_weights(first, second)


def test_async_acting_differs_from_the_sequential_loop_only_by_its_lag(tmp_path):
    """Same envs and budget, one vector step of policy lag: the weights differ (if they did
    not, acting would not be side by side)."""
    sequential = train(tmp_path / "seq", steps=600)
    side_by_side = train(tmp_path / "async", steps=600, async_updates=True)
    assert not same_weights(sequential, side_by_side)


class StopAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step(self, trainer) -> bool:
        if trainer.state.env_steps >= self.step and not trainer._stop.requested:
            trainer._stop.signal_number = signal.SIGINT
        return True


def test_an_interrupted_async_run_resumes_to_the_uninterrupted_weights(tmp_path):
    settings = {**SMALL, "save_replay": True, "async_updates": True}
    whole = MultiTaskDQN(TWO_GAMES, run_dir=tmp_path / "whole", **settings)
    whole.learn(900, evaluate=False)
    cut = MultiTaskDQN(TWO_GAMES, run_dir=tmp_path / "cut", **settings)
    with pytest.raises(Interrupted):
        cut.learn(900, callbacks=StopAt(413), evaluate=False)
    resumed = MultiTaskDQN.resume(tmp_path / "cut")
    resumed.learn(evaluate=False)
    assert resumed.state.updates == whole.state.updates
    assert resumed.state.task_env_steps == whole.state.task_env_steps
    assert same_weights(resumed, whole)


def test_a_checkpoint_keeps_the_step_in_flight_and_a_sequential_resume_finishes(tmp_path):
    settings = {**SMALL, "save_replay": True, "async_updates": True}
    cut = MultiTaskDQN(TWO_GAMES, run_dir=tmp_path, **settings)
    with pytest.raises(Interrupted):
        cut.learn(700, callbacks=StopAt(301), evaluate=False)
    resumed = MultiTaskDQN.resume(tmp_path, async_updates=False)
    assert resumed.resumed.collector_record["pending"]["tasks"] == ["Breakout", "Freeway"]
    resumed.learn(evaluate=False)
    assert resumed.state.env_steps == 700


def test_the_child_acts_with_the_weights_the_learner_has_when_a_step_is_requested(tmp_path):
    model = MultiTaskDQN("minatar:Breakout", run_dir=tmp_path, **SMALL)
    learner, specs = model.learner, list(model.learner.specs.values())
    replay = MultiTaskReplay(specs, 100, 1, 1, 0.99)
    state = TrainState(phase_task_env_steps={"Breakout": 0})
    rng = np.random.default_rng(0)
    collector = AsyncCollector(CollectorArgs(specs, 1, 0, replay, learner.policy, rng), budget=100)
    try:
        collector.step(0.0, np.ones(1), state)  # step 1 stored, step 2 requested
        with torch.no_grad():
            head = learner.online.heads.heads["Breakout"].advantage
            head.bias.copy_(torch.tensor([0.0, 0.0, 1e6]))  # greedy action 2 everywhere
        state.updates += 1  # the learner moved: the next request carries its weights
        collector.step(0.0, np.ones(1), state)  # step 2 (old weights) stored, step 3 asked
        collector.step(0.0, np.ones(1), state)  # step 3 stored
    finally:
        collector.close()
    actions = replay.buffers["Breakout"].actions[:3, 0].tolist()
    assert actions[2] == 2 and len(replay.buffers["Breakout"]) == 3


def test_a_kept_step_round_trips_through_its_record():
    specs = make_taskset(TWO_GAMES)
    names = [s.name for s in specs]
    rng = np.random.default_rng(1)
    chunk_obs = {n: rng.integers(0, 2, (2, 1, *s.obs_shape)).astype(bool)
                 for n, s in zip(names, specs, strict=True)}  # fmt: skip
    chunk = Chunk(
        obs=chunk_obs,
        actions={n: np.array([[1]]) for n in names},
        rewards={n: np.array([[0.5]], dtype=np.float32) for n in names},
        terminated={n: np.array([[False]]) for n in names},
        truncated={n: np.array([[True]]) for n in names},
        valid={n: np.array([[True]]) for n in names},
        finished={"Breakout": [2.0], "Freeway": []},
        restarts={"Breakout": 0, "Freeway": 1},
        vector_steps=1,
    )
    back = pending_chunk(pending_meta(chunk), pending_tensors(chunk))
    assert back.finished == chunk.finished and back.restarts == chunk.restarts
    for field in ("obs", "actions", "rewards", "terminated", "truncated", "valid"):
        for name in names:
            assert np.array_equal(getattr(back, field)[name], getattr(chunk, field)[name])


def test_an_env_error_in_the_child_names_task_and_step_and_the_resume_finishes(tmp_path):
    sys.path.insert(0, str(FAULTS))
    task = [{"id": "gym:faulty_envs:FaultyCartPole-v0", "name": "Faulty",
             "kwargs": {"fault": "raise", "at_step": 400}}]  # fmt: skip
    model = MultiTaskDQN(task, run_dir=tmp_path, async_updates=True, **SMALL)
    with pytest.raises(EnvError) as info:
        model.learn(500, evaluate=False)
    message = str(info.value)
    assert "task 'Faulty': env 0 raised while stepping: RuntimeError: injected" in message
    step = int(re.search(r"at env step (\d+)", message).group(1))
    # the child counts env.step calls (not the reset steps): the fault comes at step >= 400
    assert 400 <= step < 500 and "--resume" in message
    resumed = MultiTaskDQN.resume(tmp_path)
    assert resumed.state.env_steps == step
    resumed.learn(evaluate=False)  # a new child counts < 400 steps: no fault this time
    assert resumed.state.env_steps == 500


class KillChild(Callback):
    killed = False

    def on_step(self, trainer) -> bool:
        if trainer.state.env_steps >= 50 and not self.killed:
            os.kill(trainer.collector._process.pid, signal.SIGKILL)
            self.killed = True
        return True


def test_a_collector_process_that_dies_is_named_and_leaves_a_checkpoint(tmp_path):
    model = MultiTaskDQN("minatar:Breakout", run_dir=tmp_path, async_updates=True, **SMALL)
    with pytest.raises(MultiqError, match=r"collector process .*died with exit code -9"):
        model.learn(500, callbacks=KillChild(), evaluate=False)
    assert MultiTaskDQN.resume(tmp_path).state.env_steps >= 50


@pytest.mark.skipif(sys.platform != "linux", reason="signals to a process group")
def test_no_child_process_outlives_a_run(tmp_path):
    train(tmp_path, steps=300, async_updates=True)
    assert not multiprocessing.active_children()


def phase_of(steps: int, tasks: int):
    return Phase(name="p", tasks=tuple(f"T{i}" for i in range(tasks)), steps_per_task=steps)


@pytest.mark.parametrize(
    ("setting", "steps", "command", "cores", "kind"),
    [
        ("auto", 20_000, True, 2, "async"),  # 5 x 20k = 100k env steps: it pays
        ("auto", 19_999, True, 2, "local"),  # too short: the child's start would show
        ("auto", 80_000, False, 2, "local"),  # a user's script: maybe no __main__ guard
        ("auto", 80_000, True, 1, "local"),  # no core for the child
        (True, 10, False, 1, "async"),
        (False, 80_000, True, 2, "local"),
    ],
)
def test_auto_steps_the_envs_side_by_side_where_it_pays(
    monkeypatch, setting, steps, command, cores, kind
):
    monkeypatch.setattr(collector_choice, "main_is_multiq_command", lambda: command)
    monkeypatch.setattr(collector_choice, "usable_cores", lambda: cores)
    cfg = config.Config(async_updates=setting)
    assert collector_choice.collector_kind(cfg, phase_of(steps, 5)) == kind
    assert collector_choice.collector_kind(cfg.replace(collectors=2), phase_of(steps, 5)) == "ray"
    if setting == "auto":
        workers = cfg.replace(env_backend="subprocess")
        assert collector_choice.collector_kind(workers, phase_of(steps, 5)) == "local"


def test_the_multiq_command_is_told_from_a_users_script(monkeypatch):
    script = types.ModuleType("__main__")
    script.__file__, script.__spec__ = "/home/me/train.py", None
    command = types.ModuleType("__main__")
    command.__file__, command.__spec__ = "/venv/bin/multiq", None
    module = types.ModuleType("__main__")
    module.__spec__ = types.SimpleNamespace(name="multiq.cli")
    for main, expected in ((script, False), (command, True), (module, True)):
        monkeypatch.setitem(sys.modules, "__main__", main)
        assert main_is_multiq_command() is expected


def test_the_async_updates_flag_sets_the_key_on_a_new_run_and_on_a_resume(tmp_path):
    run = tmp_path / "r"
    sets = [a for k, v in SMALL.items() if k != "seed" for a in ("--set", f"{k}={v}")]
    assert cli_main(["train", "--tasks", "gym:CartPole-v1", "--steps", "300", "--run-dir",
                     str(run), "--async-updates", "false", *sets]) == 0  # fmt: skip
    assert "async_updates: false" in (run / "config.yaml").read_text()
    assert cli_main(["train", "--resume", str(run), "--steps", "400", "--async-updates",
                     "auto"]) == 0  # fmt: skip
    assert "async_updates: auto" in (run / "config.yaml").read_text()
    with pytest.raises(SystemExit) as bad:
        cli_main(["train", "--tasks", "gym:CartPole-v1", "--async-updates", "yes"])
    assert bad.value.code == 2
