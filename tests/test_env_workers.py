"""The subprocess env backend: the in-process transitions, records, restarts and errors, from
worker processes that never outlive their envs."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from functools import partial

import gymnasium as gym
import numpy as np
import pytest

from multiq import make_taskset
from multiq.envs.backends import EnvSettings
from multiq.envs.inprocess import TaskEnvs
from multiq.envs.multi import MultiTaskEnvs
from multiq.envs.workers import SubprocessTaskEnvs, _slices
from multiq.errors import EnvError

FIELDS = ("obs", "rewards", "terminated", "truncated", "valid")


class Flaky(gym.Wrapper):
    """CartPole whose every instance raises on its `fail_at`-th step (a rebuilt one too), or
    kills its own process there (`crash`)."""

    def __init__(self, fail_at: int, crash: bool = False):
        super().__init__(gym.make("CartPole-v1"))
        self.fail_at, self.crash, self.steps = fail_at, crash, 0

    def step(self, action):
        self.steps += 1
        if self.steps == self.fail_at:
            if self.crash:
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("injected failure")
        return self.env.step(action)


def make_flaky(fail_at: int, crash: bool = False) -> gym.Env:
    return Flaky(fail_at, crash)


def both(tasks, n_envs: int, workers: int, seed: int = 3):
    """The same tasks' envs in process and in `workers` processes per task."""
    inprocess = MultiTaskEnvs(tasks, n_envs, seed)
    subprocess = MultiTaskEnvs(tasks, n_envs, seed, settings=EnvSettings("subprocess", workers))
    return inprocess, subprocess


def assert_same_steps(a: MultiTaskEnvs, b: MultiTaskEnvs, tasks, steps: int, n_envs: int):
    """Steps both with the same random actions; every field must match at every step."""
    rng = np.random.default_rng(0)
    first_a, first_b = a.reset(), b.reset()
    for name in first_a:
        np.testing.assert_array_equal(first_a[name], first_b[name])
    for step in range(steps):
        actions = {t.name: rng.integers(0, t.num_actions, n_envs) for t in tasks}
        got_a, got_b = a.step(actions), b.step(actions)
        for field in FIELDS:
            for name, value in getattr(got_a, field).items():
                assert np.array_equal(value, getattr(got_b, field)[name]), (step, field, name)
    assert a.record() == b.record()


@pytest.mark.parametrize(
    ("entries", "n_envs", "workers", "steps"),
    [("minatar", 3, 2, 300), ("classic:CartPole,classic:MountainCar", 4, 3, 450)],
    ids=["minatar", "classic"],
)
def test_subprocess_envs_give_the_in_process_transitions(entries, n_envs, workers, steps):
    tasks = make_taskset(entries)
    inprocess, subprocess = both(tasks, n_envs, workers)
    try:
        assert_same_steps(inprocess, subprocess, tasks, steps, n_envs)
        ended = {n: len(e.finished) for n, e in subprocess.episodes.items()}
        assert sum(count > 0 for count in ended.values()) >= len(tasks) - 1, ended  # not Freeway
        assert ended == {n: len(e.finished) for n, e in inprocess.episodes.items()}
    finally:
        inprocess.close()
        subprocess.close()


def test_a_recorded_state_is_restored_exactly_across_backends():
    spec = make_taskset("minatar:Breakout")[0]
    make = partial(spec.make_env, evaluation=False)
    rng = np.random.default_rng(1)
    source = SubprocessTaskEnvs(spec.name, make, 4, workers=2)
    try:
        obs = source.reset([5, 6, 7, 8])
        for _ in range(150):
            obs = source.step(rng.integers(0, spec.num_actions, 4))[0]
        record = source.record()
        assert max(record["episode_index"]) >= 1  # episodes ended and were reseeded
        inprocess = TaskEnvs(spec.name, make, 4)
        assert np.array_equal(inprocess.restore(record, obs), obs)
        restored = SubprocessTaskEnvs(spec.name, make, 4, workers=3)
        assert np.array_equal(restored.restore(record, obs), obs)
        assert restored.record() == record
        for actions in rng.integers(0, spec.num_actions, (100, 4)):
            expected = source.step(actions)
            for got in (inprocess.step(actions), restored.step(actions)):
                for a, b in zip(expected, got, strict=True):
                    assert np.array_equal(a, b)
        assert restored.record() == source.record() == inprocess.record()
    finally:
        for envs in (source, inprocess, restored):
            envs.close()


def test_an_env_that_cannot_be_restored_starts_a_new_episode_and_the_worker_says_so(caplog):
    spec = make_taskset("classic:CartPole")[0]
    envs = SubprocessTaskEnvs(spec.name, partial(spec.make_env, evaluation=False), 3, workers=2)
    try:
        envs.reset([1, 2, 3])
        obs = envs.step(np.zeros(3, dtype=int))[0]
        expected = obs.copy()
        expected[2] += 1.0  # not what env 2 replays to
        with caplog.at_level("WARNING", logger="multiq"):
            got = envs.restore(envs.record(), expected)
        assert "env 2 could not be restored exactly" in caplog.text  # from the second worker
        assert envs.history.episode_index == [0, 0, 1] and envs.history.actions[2] == []
        np.testing.assert_array_equal(got[:2], obs[:2])
    finally:
        envs.close()


def test_restarts_and_the_error_that_stops_the_run_are_those_in_process(caplog):
    """Every env fails on its 7th step (a rebuilt one too): all four at once, so the budget of
    6 runs out in the second round at env 2, held by the second worker."""
    make = partial(make_flaky, 7)
    inprocess = TaskEnvs("flaky", make, 4, restarts=6)
    subprocess = SubprocessTaskEnvs("flaky", make, 4, restarts=6, workers=2)
    try:
        errors, logged = [], []
        for envs in (inprocess, subprocess):
            envs.reset([0, 1, 2, 3])
            results = []
            caplog.clear()
            with pytest.raises(EnvError) as info, caplog.at_level("WARNING", logger="multiq"):
                for _ in range(40):
                    results.append(envs.step(np.zeros(4, dtype=int)))
            errors.append((str(info.value), envs.restarted, results))
            logged.append([r.getMessage() for r in caplog.records])
        assert logged[0] == logged[1] and len(logged[0]) == 6
        assert logged[0][-1].endswith(
            "env 1 raised while stepping: RuntimeError: injected "
            "failure; rebuilding the env (0 restarts left)"
        )
        (message, restarted, results), (message_b, restarted_b, results_b) = errors
        assert (
            message
            == message_b
            == ("task 'flaky': env 2 raised while stepping: RuntimeError: injected failure")
        )
        assert restarted == restarted_b == 6
        assert len(results) == len(results_b) and results[6][4].all()  # step 7 rebuilt all four
        for got, got_b in zip(results, results_b, strict=True):
            for a, b in zip(got, got_b, strict=True):
                np.testing.assert_array_equal(a, b)
    finally:
        inprocess.close()
        subprocess.close()


def test_a_worker_that_dies_is_an_env_error_and_the_record_survives():
    tasks = make_taskset("classic:CartPole")
    crash = make_taskset({"id": "gym:CartPole-v1", "name": "crash"})[0]
    crash = dataclasses.replace(crash, make_env=lambda evaluation: make_flaky(5, crash=True))
    envs = MultiTaskEnvs([*tasks, crash], 4, 0, settings=EnvSettings("subprocess", 2))
    try:
        envs.reset()
        zeros = {"CartPole": np.zeros(4, dtype=int), "crash": np.zeros(4, dtype=int)}
        for _ in range(4):
            envs.step(zeros)
        before = envs.record()
        start = time.monotonic()
        died = r"task 'crash': the worker process of envs 0-1 died \(killed by SIGKILL\)"
        with pytest.raises(EnvError, match=died):
            envs.step(zeros)
        assert time.monotonic() - start < 10  # found, not waited for forever
        with pytest.raises(EnvError, match=died):
            envs.step(zeros)  # and again, at once, for a later call
        assert envs.record() == before  # rolled back: a checkpoint of the last consistent state
    finally:
        envs.close()
    assert_no_workers(envs)


def assert_no_workers(envs: MultiTaskEnvs) -> None:
    for task in envs.envs.values():
        for worker in getattr(task, "workers", []):
            assert not worker.process.is_alive() and worker.process.exitcode is not None


def test_close_leaves_no_child_processes_and_workers_ignore_ctrl_c():
    tasks = make_taskset("classic:CartPole,classic:Acrobot")
    envs = MultiTaskEnvs(tasks, 3, 0, settings=EnvSettings("subprocess", 2))
    pids = [w.process.pid for t in envs.envs.values() for w in t.workers]
    assert len(pids) == 4
    envs.reset()
    os.kill(pids[0], signal.SIGINT)  # Ctrl-C reaches the whole process group
    actions = {"CartPole": np.zeros(3, dtype=int), "Acrobot": np.zeros(3, dtype=int)}
    envs.step(actions)  # the worker lives on; the training process decides when to stop
    envs.close()
    envs.close()  # idempotent
    assert_no_workers(envs)
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left


def test_an_env_that_cannot_be_built_names_task_and_env_and_leaves_no_workers():
    def broken(evaluation: bool = False) -> gym.Env:
        raise ValueError("no such level")

    spec = dataclasses.replace(make_taskset("classic:CartPole")[0], name="broken", make_env=broken)
    ok = make_taskset("classic:Acrobot")[0]
    with pytest.raises(EnvError, match="task 'broken': env 0 raised while building: ValueError"):
        MultiTaskEnvs([ok, spec], 2, 0, settings=EnvSettings("subprocess", 1))


@pytest.mark.parametrize(
    ("n_envs", "workers", "expected"),
    [
        (4, 2, [(0, 2), (2, 4)]),
        (5, 2, [(0, 2), (2, 5)]),
        (2, 8, [(0, 1), (1, 2)]),
        (3, 1, [(0, 3)]),
    ],
)
def test_envs_are_split_into_near_equal_contiguous_slices(n_envs, workers, expected):
    assert _slices(n_envs, workers) == expected
