"""Ray collectors: the worker's chunks, the task blocks, and runs on a local Ray instance."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from multiq.agents.policy import Policy
from multiq.api import MultiTaskDQN
from multiq.collect.chunks import CollectorWorker, blocks
from multiq.collect.cluster import start_ray
from multiq.config import Config
from multiq.errors import EnvError
from multiq.runio.layout import CHECKPOINT_FILE, METRICS_FILE
from multiq.tasks.suites import make_taskset
from multiq.train.loop import updates_due

FAULTS_DIR = Path(__file__).parents[1] / "faults"
SETTINGS = {
    "learning_starts": 200, "buffer_size": 4000, "eval_freq": 0, "eval_episodes": 2,
    "tensorboard": False, "progress_bar": False, "log_interval": 500, "checkpoint_freq": 0,
    "target_update_interval": 200, "hidden_size": 32,
}  # fmt: skip


def test_blocks_split_the_tasks_contiguously_and_never_leave_a_collector_without_one():
    assert blocks(5, 2) == [range(0, 3), range(3, 5)]
    assert blocks(5, 4) == [range(0, 2), range(2, 3), range(3, 4), range(4, 5)]
    assert blocks(2, 4) == [range(0, 1), range(1, 2)]
    assert blocks(3, 1) == [range(0, 3)]


def test_updates_due_counts_every_multiple_past_the_learning_start():
    # one vector step (<= 4 env steps): the sequential rule, nothing before learn_from
    assert updates_due(96, 100, 8, 100, 4) == 0
    assert updates_due(100, 104, 8, 100, 4) == 1
    # a chunk from 90 to 130: multiples of 8 past 100 are 104, 112, 120, 128
    assert updates_due(90, 130, 8, 100, 4) == 4
    assert updates_due(90, 100, 8, 200, 4) == 0


def test_a_worker_answers_with_chained_observations_and_the_counts_asked():
    tasks = make_taskset("gym:CartPole-v1,gym:Acrobot-v1")
    model = MultiTaskDQN(config=Config(tasks="gym:CartPole-v1,gym:Acrobot-v1", **SETTINGS))
    worker = CollectorWorker(list(tasks), 2, 7, Policy.snapshot(model.policy.net), (0, 1))
    first = worker.collect({"CartPole": 30, "Acrobot": 5}, epsilon=1.0)
    assert first.vector_steps == 30
    assert first.obs["CartPole"].shape == (31, 2, 4)
    assert first.actions["CartPole"].shape == (30, 2)
    assert first.obs["Acrobot"].shape == (6, 2, 6)
    assert first.rewards["Acrobot"].shape == first.valid["Acrobot"].shape == (5, 2)
    assert first.env_steps("CartPole", 2) == 60
    second = worker.collect({"CartPole": 3}, epsilon=1.0)
    assert "Acrobot" not in second.actions
    # the next chunk starts where the last one ended
    np.testing.assert_array_equal(second.obs["CartPole"][0], first.obs["CartPole"][-1])
    # CartPole gives +1 per step: the finished returns are the valid steps of ended episodes
    returns = first.finished["CartPole"] + second.finished["CartPole"]
    assert all(r == int(r) and r >= 1 for r in returns)
    worker.close()


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance for this module; its workers can import the faulty test envs."""
    ray = pytest.importorskip("ray")
    patch = pytest.MonkeyPatch()
    patch.setenv("PYTHONPATH", f"{FAULTS_DIR}:{':'.join(sys.path)}")
    patch.setenv("RAY_AUTH_MODE", "disabled")
    patch.syspath_prepend(str(FAULTS_DIR))
    ray.shutdown()
    start_ray(min_cpus=4)
    yield ray
    ray.shutdown()
    patch.undo()


def train(run_dir: Path, collectors: int, steps: int = 1500, **extra) -> MultiTaskDQN:
    cfg = Config(
        tasks="gym:CartPole-v1,gym:Acrobot-v1,gym:MountainCar-v0", total_steps_per_task=steps,
        collectors=collectors, collector_chunk=40, broadcast_interval=20, seed=3,
        **{**SETTINGS, **extra},
    )  # fmt: skip
    return MultiTaskDQN(config=cfg, run_dir=run_dir).learn()


def test_ray_collectors_give_each_task_the_transitions_and_updates_of_in_process_ones(
    tmp_path, local_ray
):
    local = train(tmp_path / "local", collectors=0)
    remote = train(tmp_path / "ray", collectors=2)  # blocks: CartPole+Acrobot, MountainCar
    assert remote.state.task_env_steps == local.state.task_env_steps == {
        "CartPole": 1500, "Acrobot": 1500, "MountainCar": 1500,
    }  # fmt: skip
    assert remote.state.updates == local.state.updates > 0
    # every env step reached the replay: stored transitions + autoreset steps (one after each
    # ended episode, the last one's maybe past the budget) = env steps. In process MountainCar's
    # episodes are truncated at 200 steps: 1500 - 7. An actor's policy depends on when Ray
    # delivers the broadcasts, so it may reach the goal once and end one more episode.
    assert len(local.trainer.replay.buffers["MountainCar"]) == 1493
    for model in (local, remote):
        buffer = model.trainer.replay.buffers["MountainCar"]
        ends = int(buffer.done.sum())
        assert 1500 - ends <= len(buffer) <= 1500 - ends + 1
    assert remote.summary["task_env_steps"] == local.summary["task_env_steps"]


def test_a_ray_run_resumes_in_process_to_the_same_counts(tmp_path, local_ray):
    train(tmp_path / "run", collectors=2, steps=800)
    resumed = MultiTaskDQN.resume(tmp_path / "run", collectors=0, total_steps_per_task=1500)
    resumed.learn()
    assert resumed.state.task_env_steps == {"CartPole": 1500, "Acrobot": 1500, "MountainCar": 1500}
    assert resumed.state.phase_index == 1
    assert resumed.config.collectors == 0


def test_an_env_error_in_an_actor_names_it_and_leaves_a_checkpoint(tmp_path, local_ray):
    cfg = Config(
        tasks=[{"id": "gym:faulty_envs:FaultyCartPole-v0", "name": "Faulty",
                "kwargs": {"fault": "raise", "at_step": 300}}, "gym:Acrobot-v1"],
        total_steps_per_task=2000, collectors=2, collector_chunk=50, **SETTINGS,
    )  # fmt: skip
    model = MultiTaskDQN(config=cfg, run_dir=tmp_path / "run")
    with pytest.raises(EnvError, match=r"collector 0") as raised:
        model.learn()
    assert "injected env failure" in str(raised.value)
    assert (tmp_path / "run" / CHECKPOINT_FILE).is_file()
    steps = model.state.task_env_steps
    assert steps["Faulty"] < 2000 and not math.isnan(steps["Faulty"])


def test_sigterm_during_a_ray_run_saves_a_checkpoint_that_resumes(tmp_path):
    """Ray's start installs its own SIGTERM handler; multiq's must win (exit 143, checkpoint)."""
    run = tmp_path / "run"
    sets = [a for s in ("collectors=2", "progress_bar=false", "log_interval=200",
                        "learning_starts=200", "eval_freq=0", "eval_episodes=2",
                        "tensorboard=false") for a in ("--set", s)]  # fmt: skip
    command = [sys.executable, "-m", "multiq.cli", "train", "--tasks",
               "gym:CartPole-v1,gym:Acrobot-v1", "--steps", "500000", "--run-dir", str(run),
               *sets]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / METRICS_FILE).is_file() or len((run / METRICS_FILE).read_text()) < 2000:
        assert time.monotonic() < deadline and process.poll() is None, "no training rows"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "a checkpoint was saved" in stderr
    resumed = MultiTaskDQN.resume(run, collectors=0)
    assert resumed.state.env_steps > 0
