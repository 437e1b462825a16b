"""An env whose results break its declared spaces stops the run with an EnvError naming the
task, the env, the step and what was wrong, after a checkpoint, on every env backend; values
outside a Box's bounds are taken and logged once; the usual Python stand-ins are taken."""

from __future__ import annotations

import re
from functools import partial

import broken_envs
import gymnasium as gym
import numpy as np
import pytest

from multiq.api import MultiTaskDQN
from multiq.envs.checks import BoundsWatch
from multiq.envs.inprocess import TaskEnvs
from multiq.envs.multi import MultiTaskEnvs
from multiq.envs.workers import SubprocessTaskEnvs
from multiq.errors import EnvError
from multiq.tasks.suites import make_taskset

SMALL = {
    "tensorboard": False, "progress_bar": False, "eval_episodes": 2, "eval_freq": 0,
    "learning_starts": 100, "buffer_size": 2_000, "target_update_interval": 100,
    "log_interval": 250, "checkpoint_freq": 0,
}  # fmt: skip
WHAT = {
    "shape": "its observation has shape (5,), but its observation space declares (4,)",
    "dtype": "its observation has dtype <U1, which its observation space's float32 cannot hold",
    "reward": "its reward '1.0' (str) is not a real number",
    "flag": "its terminated flag 0 (int) is not a bool",
    "tuple": "its step returned 4 values, not Gymnasium's five",
}


def make_broken(way: str, at_step: int = 5, evaluation: bool = False) -> gym.Env:
    return broken_envs.BreaksSpaces(way, at_step)


def step_until_error(envs, steps: int = 10) -> str:
    envs.reset(list(range(2)))
    with pytest.raises(EnvError) as info:
        for _ in range(steps):
            envs.step(np.zeros(2, dtype=int))
    return str(info.value)


@pytest.mark.parametrize("way", sorted(WHAT))
def test_each_broken_rule_is_an_env_error_naming_task_env_and_what(way):
    envs = TaskEnvs("Broken", partial(make_broken, way), 2)
    try:
        message = step_until_error(envs)
    finally:
        envs.close()
    assert message.startswith("task 'Broken': env 0 broke its declared spaces while stepping: ")
    assert WHAT[way] in message


def test_a_broken_env_is_rebuilt_while_restarts_last_as_one_that_raises():
    envs = TaskEnvs("Broken", partial(make_broken, "reward"), 2, restarts=2)
    envs.reset([0, 1])
    failed = [envs.step(np.zeros(2, dtype=int))[4] for _ in range(5)]
    assert failed[4].all() and envs.restarted == 2  # both envs broke at their 5th step
    assert "its reward '1.0' (str) is not a real number" in envs.restart_errors[0]
    message = step_until_error(envs)
    envs.close()
    assert WHAT["reward"] in message


def test_a_worker_process_names_the_same_error():
    envs = SubprocessTaskEnvs("Broken", partial(make_broken, "shape"), 2, workers=2)
    try:
        message = step_until_error(envs)
    finally:
        envs.close()
    assert message == (
        f"task 'Broken': env 0 broke its declared spaces while stepping: {WHAT['shape']}; fix "
        "the env or the spaces it declares"
    )


def test_a_broken_reset_observation_is_named_too():
    class BadReset(broken_envs.BreaksSpaces):
        def reset(self, *, seed=None, options=None):
            obs, info = super().reset(seed=seed)
            return obs[:3], info

    broke = r"env 0 broke its declared spaces while resetting: .*shape \(3,\)"
    with pytest.raises(EnvError, match=broke):
        TaskEnvs("Broken", BadReset, 1).reset([0])


def test_plain_python_values_and_numpy_bools_are_taken():
    envs = TaskEnvs("Plain", partial(make_broken, "plain", 1), 2)
    envs.reset([0, 1])
    for _ in range(30):
        obs, rewards, terminated, *_ = envs.step(np.zeros(2, dtype=int))
    assert obs.dtype == np.float32 and rewards.tolist() == [1.0, 1.0]
    assert terminated.dtype == bool
    envs.close()


def test_values_outside_the_bounds_are_taken_and_logged_once(caplog):
    spec = make_taskset([{"id": f"gym:{broken_envs.BROKEN_ID}", "name": "Loose",
                          "kwargs": {"way": "bounds", "at_step": 3}}])  # fmt: skip
    BoundsWatch.logged.discard("Loose")
    with caplog.at_level("WARNING", logger="multiq"):
        for _ in range(2):  # a second set of envs (a next phase, an evaluation) logs no more
            envs = MultiTaskEnvs(spec, 2, seed=0)
            envs.reset()
            for _ in range(10):
                obs = envs.step({"Loose": np.zeros(2, dtype=int)}).obs["Loose"]
            envs.close()
    assert (obs == 2.0).all()
    logged = [r.getMessage() for r in caplog.records if "outside its Box bounds" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].startswith("task 'Loose': env 0 returned an observation outside its Box")


@pytest.mark.parametrize("async_updates", [False, True], ids=["sequential", "async"])
def test_a_broken_env_stops_the_run_after_a_checkpoint(tmp_path, async_updates):
    """The issue's case: a registered env whose observations get shape (5,) after 50 steps."""
    task = [{"id": f"gym:broken_envs:{broken_envs.BROKEN_ID}", "name": "Broken",
             "kwargs": {"way": "shape", "at_step": 150}}]  # fmt: skip
    model = MultiTaskDQN(task, run_dir=tmp_path, async_updates=async_updates, **SMALL)
    with pytest.raises(EnvError) as info:
        model.learn(400, evaluate=False)
    message = str(info.value)
    assert f"task 'Broken': env 0 broke its declared spaces while stepping: {WHAT['shape']}" in (
        message
    )
    step = int(re.search(r"at env step (\d+)", message).group(1))
    assert 100 <= step < 160 and "--resume" in message
    assert MultiTaskDQN.resume(tmp_path).state.env_steps == step  # the last consistent step
