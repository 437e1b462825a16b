"""Faults inside a run, in process: non-finite losses and env data, envs that raise, stops.

Each case asserts the message (task, env step, what), which checkpoint is left and that it
resumes; an interrupted run with `save_replay` resumes to bit-identical weights.
"""

from __future__ import annotations

import re
import signal

import faulty_envs
import numpy as np
import pytest
import torch

from multiq.api import MultiTaskDQN
from multiq.errors import EnvError, NonFiniteError
from multiq.runio.layout import CHECKPOINT_FILE, MODEL_FILE
from multiq.train.callbacks import Callback
from multiq.train.stop import Interrupted

QUIET = {"tensorboard": False, "progress_bar": False, "eval_episodes": 2}
SMALL = {
    **QUIET,
    "learning_starts": 100,
    "buffer_size": 2_000,
    "target_update_interval": 100,
    "log_interval": 250,
    "checkpoint_freq": 0,
}


def faulty(fault: str, at_step: int, times: int = 1) -> dict:
    faulty_envs.reset_counts()
    kwargs = {"fault": fault, "at_step": at_step, "times": times}
    return {"id": f"gym:{faulty_envs.FAULTY_ID}", "name": "Faulty", "kwargs": kwargs}


def saved_step(run_dir) -> int:
    return MultiTaskDQN.resume(run_dir).state.env_steps


def test_a_nonfinite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    model = MultiTaskDQN(
        "gym:CartPole-v1", run_dir=tmp_path, learning_rate=1e30, **{**SMALL, "checkpoint_freq": 200}
    )
    with pytest.raises(NonFiniteError) as info:
        model.learn(3_000)
    message = str(info.value)
    assert "non-finite" in message and "CartPole" in message and "env step" in message
    assert "is kept" in message
    assert not (tmp_path / MODEL_FILE).exists()  # no poisoned model
    resumed = MultiTaskDQN.resume(tmp_path)
    assert resumed.learner.nonfinite_parameters() == []
    assert 0 <= resumed.state.env_steps < 3_000


def test_weights_that_became_nonfinite_are_never_saved(tmp_path):
    model = MultiTaskDQN("gym:CartPole-v1", run_dir=tmp_path, **SMALL)
    model.save_checkpoint()
    before = (tmp_path / CHECKPOINT_FILE).read_bytes()
    with torch.no_grad():
        next(model.learner.online.parameters()).fill_(float("inf"))
    with pytest.raises(NonFiniteError, match="was not written"):
        model.save_checkpoint()
    with pytest.raises(NonFiniteError, match="was not written"):
        model.save(tmp_path / "model.pt")
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == before
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize(("fault", "what"), [("nan_obs", "observation"), ("nan_reward", "reward")])
def test_a_nonfinite_env_value_names_task_and_step_and_saves_a_checkpoint(tmp_path, fault, what):
    model = MultiTaskDQN(["gym:CartPole-v1", faulty(fault, at_step=300)], run_dir=tmp_path, **SMALL)
    with pytest.raises(NonFiniteError) as info:
        model.learn(1_000)
    message = str(info.value)
    assert f"task 'Faulty': env 0 returned a non-finite {what}" in message
    assert "at env step" in message and "checkpoint" in message and "--resume" in message
    step = saved_step(tmp_path)
    assert 250 <= step <= 310  # the last consistent step before the fault
    replay_nan = [
        np.isnan(buffer.obs).any() or np.isnan(buffer.rewards).any()
        for buffer in model.trainer.replay.buffers.values()
    ]
    assert not any(replay_nan)  # the bad values never reached the replay


def test_an_env_that_raises_names_task_and_step_and_the_resume_finishes(tmp_path):
    model = MultiTaskDQN([faulty("raise", at_step=400)], run_dir=tmp_path, **SMALL)
    with pytest.raises(EnvError) as info:
        model.learn(1_000)
    message = str(info.value)
    assert (
        "task 'Faulty': env 0 raised while stepping: RuntimeError: injected env failure" in message
    )
    step = int(re.search(r"at env step (\d+)", message).group(1))
    assert 0 < step < 400 and "--resume" in message
    resumed = MultiTaskDQN.resume(tmp_path)
    assert resumed.state.env_steps == step  # the checkpoint of the last consistent step
    resumed.learn()  # the fault was injected once: the resumed run reaches its budget
    assert resumed.summary["env_steps_per_task"] == 1_000


def test_on_env_error_restart_rebuilds_the_env_and_finishes(tmp_path, caplog):
    task = [faulty("raise", at_step=200, times=2)]
    model = MultiTaskDQN(task, run_dir=tmp_path, on_env_error="restart", env_restarts=2, **SMALL)
    with caplog.at_level("WARNING", logger="multiq"):
        model.learn(800)
    assert model.summary["env_steps_per_task"] == 800
    rebuilt = [r for r in caplog.records if "rebuilding the env" in r.getMessage()]
    assert len(rebuilt) == 2 and "1 restarts left" in rebuilt[0].getMessage()


def test_restarts_used_up_stop_the_run(tmp_path):
    task = [faulty("raise", at_step=200, times=3)]
    model = MultiTaskDQN(task, run_dir=tmp_path, on_env_error="restart", env_restarts=1, **SMALL)
    with pytest.raises(EnvError, match="injected env failure"):
        model.learn(800)


TWO_CARTPOLES = [
    {"id": "gym:CartPole-v1", "name": "A"},
    {"id": "gym:CartPole-v1", "name": "B", "kwargs": {"sutton_barto_reward": True}},
]


class StopAt(Callback):
    """Requests a stop as SIGINT would, once the step axis reaches `step`."""

    def __init__(self, step: int, number: int = signal.SIGINT):
        self.step, self.number = step, number

    def on_step(self, trainer) -> bool:
        if trainer.state.env_steps >= self.step and not trainer._stop.requested:
            trainer._stop.signal_number = self.number
        return True


def test_a_stop_request_saves_a_checkpoint_at_a_consistent_point(tmp_path):
    model = MultiTaskDQN("gym:CartPole-v1", run_dir=tmp_path, **SMALL)
    with pytest.raises(Interrupted) as info:
        model.learn(1_000, callbacks=StopAt(420, signal.SIGTERM))
    assert info.value.signal_number == signal.SIGTERM
    assert "stopped by SIGTERM at env step 421" in str(info.value)
    assert saved_step(tmp_path) == 421  # the step after the request


@pytest.mark.parametrize(
    ("tasks", "schedule"),
    [(TWO_CARTPOLES, "uniform"), ("minatar:Breakout,minatar:Asterix", "progress")],
    ids=["classic-uniform", "minatar-progress"],
)
def test_an_interrupted_run_resumes_exactly(tmp_path, tasks, schedule):
    settings = {
        **SMALL, "save_replay": True, "eval_freq": 500, "task_schedule": schedule,
        "learning_starts": 200,
    }  # fmt: skip
    whole = MultiTaskDQN(tasks, run_dir=tmp_path / "whole", **settings).learn(1_200)
    cut = MultiTaskDQN(tasks, run_dir=tmp_path / "cut", **settings)
    with pytest.raises(Interrupted):
        cut.learn(1_200, callbacks=StopAt(613))
    resumed = MultiTaskDQN.resume(tmp_path / "cut")
    resumed.learn()
    expected, got = whole.learner.state_dict(), resumed.learner.state_dict()
    for key in ("online", "target"):
        for name, tensor in expected[key].items():
            assert torch.equal(tensor, got[key][name]), f"{key}.{name} differs"
    assert resumed.summary["tasks"] == whole.summary["tasks"]
    assert resumed.state.updates == whole.state.updates


class Killed(BaseException):
    """SIGKILL stand-in: nothing after it runs (the trainer catches Exceptions, not this)."""


class KillAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step(self, trainer) -> bool:
        if trainer.state.env_steps >= self.step:
            raise Killed
        return True


def test_a_kill_right_after_add_task_resumes_into_the_new_phase(tmp_path):
    model = MultiTaskDQN("gym:CartPole-v1", run_dir=tmp_path, **SMALL)
    model.learn(300)
    model.add_task("classic:Acrobot")
    with pytest.raises(Killed):  # before any periodic checkpoint of the new phase
        model.learn(300, callbacks=KillAt(350))
    resumed = MultiTaskDQN.resume(tmp_path)  # config.yaml names Acrobot: so does the checkpoint
    assert resumed.task_names == ["CartPole", "Acrobot"]
    resumed.learn()
    assert [p["tasks"] for p in resumed.summary["phases"]] == [
        ["CartPole"],
        ["CartPole", "Acrobot"],
    ]
