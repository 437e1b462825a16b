"""The training loop under task schedules: env steps, replay samples and their logged shares."""

from __future__ import annotations

import csv
import json

import pytest
import tiny_config

from multiq.api import MultiTaskDQN
from multiq.errors import ConfigError
from multiq.report.metrics import SUMMARY_FILE
from multiq.runio.tracking import METRICS_FILE

TWO_TASKS = "gym:CartPole-v1,gym:Acrobot-v1"
TINY = tiny_config.TINY | {"log_interval": 200}


def last_logged(run_dir, key: str) -> float:
    with open(run_dir / METRICS_FILE) as f:
        values = [float(row["value"]) for row in csv.DictReader(f) if row["key"] == key]
    assert values, f"{key} was never logged"
    return values[-1]


@pytest.fixture(scope="module")
def weighted_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("weighted")
    model = MultiTaskDQN(
        TWO_TASKS, run_dir=run_dir, task_schedule="weighted", schedule_uniform_mix=0.01,
        task_weights={"CartPole": 3.0, "Acrobot": 1.0}, **TINY,
    )  # fmt: skip
    return model.learn(total_steps_per_task=1000)


def test_weighted_schedule_splits_env_steps_by_alpha(weighted_run):
    steps = weighted_run.state.task_env_steps
    assert list(steps) == ["CartPole", "Acrobot"]
    # the budget T x total_steps_per_task, to a vector step
    assert 2000 <= sum(steps.values()) < 2000 + 2
    # shares 0.99 * [0.75, 0.25] + 0.01 / 2 -> ratio 0.7475 / 0.2525
    assert steps["CartPole"] / steps["Acrobot"] == pytest.approx(0.7475 / 0.2525, rel=0.01)
    assert weighted_run.state.env_steps == 1000


def test_weighted_schedule_logs_its_shares(weighted_run):
    run_dir = weighted_run.run_dir
    assert last_logged(run_dir, "task/CartPole/env_step_share") == pytest.approx(0.7475, abs=0.005)
    # 32 samples: one each, then 30 x [0.7475, 0.2525] = [22.4, 7.6] rounds to [22, 8]
    assert last_logged(run_dir, "task/CartPole/sample_share") == pytest.approx(23 / 32)
    assert last_logged(run_dir, "task/Acrobot/sample_share") == pytest.approx(9 / 32)
    assert last_logged(run_dir, "task/CartPole/env_steps") > 1000


def test_summary_gives_each_task_its_env_steps(weighted_run):
    summary = json.loads((weighted_run.run_dir / SUMMARY_FILE).read_text())
    assert summary["task_schedule"] == "weighted"
    assert summary["task_env_steps"]["CartPole"] == weighted_run.state.task_env_steps["CartPole"]
    assert summary["env_steps_per_s"] > 0


def test_uniform_schedule_steps_every_task_equally(tmp_path):
    model = MultiTaskDQN(TWO_TASKS, run_dir=tmp_path, **TINY).learn(600, evaluate=False)
    assert model.state.task_env_steps == {"CartPole": 600, "Acrobot": 600}
    assert last_logged(tmp_path, "task/Acrobot/sample_share") == pytest.approx(0.5)
    assert last_logged(tmp_path, "task/Acrobot/env_step_share") == pytest.approx(0.5)
    # one update every train_freq (4) vector steps once learning started at 100
    assert model.state.updates == (600 - 100) // 4


def test_resume_keeps_each_tasks_env_steps(tmp_path):
    kwargs = dict(TINY, task_schedule="weighted", task_weights={"CartPole": 1.0, "Acrobot": 3.0})
    first = MultiTaskDQN(TWO_TASKS, run_dir=tmp_path, **kwargs).learn(500, evaluate=False)
    saved = dict(first.state.task_env_steps)
    resumed = MultiTaskDQN.resume(tmp_path)
    assert resumed.state.task_env_steps == saved
    resumed.learn(1000, evaluate=False)
    steps = resumed.state.task_env_steps
    assert 2000 <= sum(steps.values()) < 2000 + 2 and steps["Acrobot"] > steps["CartPole"]


@pytest.mark.parametrize("schedule", ["resample", "progress"])
def test_adaptive_schedules_train_and_log(tmp_path, schedule):
    model = MultiTaskDQN(TWO_TASKS, run_dir=tmp_path, task_schedule=schedule, **TINY)
    model.learn(600, evaluate=False)
    total = sum(model.state.task_env_steps.values())
    assert 1200 <= total < 1200 + 2  # at most one vector step over
    shares = [last_logged(tmp_path, f"task/{n}/sample_share") for n in ("CartPole", "Acrobot")]
    assert sum(shares) == pytest.approx(1.0)


def test_a_zero_uniform_mix_is_refused():
    with pytest.raises(ConfigError, match=r"schedule_uniform_mix must be in \(0, 1\]"):
        MultiTaskDQN(TWO_TASKS, schedule_uniform_mix=0.0, **TINY)


def test_unknown_schedule_is_refused_before_training(tmp_path):
    with pytest.raises(
        ConfigError, match="task_schedule must be one of .*got 'weigthed'; did you mean"
    ):
        MultiTaskDQN(TWO_TASKS, run_dir=tmp_path, task_schedule="weigthed", **TINY).learn(200)
