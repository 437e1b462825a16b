"""Phases: only a phase's tasks step, get replay and build envs; phases in JSON and summary.json."""

from __future__ import annotations

import dataclasses
import json

import pytest
import tiny_config

from multiq import make_taskset
from multiq.api import MultiTaskDQN
from multiq.errors import ConfigError
from multiq.phases.phase import Phase

TINY = tiny_config.TINY_RUN


class CountingMake:
    """A spec's `make_env`, counting the training and the evaluation envs it builds."""

    def __init__(self, make_env):
        self.make_env = make_env
        self.training = 0
        self.evaluation = 0

    def __call__(self, evaluation: bool = False):
        if evaluation:
            self.evaluation += 1
        else:
            self.training += 1
        return self.make_env(evaluation=evaluation)


def counted_model(tmp_path, **overrides):
    specs = list(make_taskset("classic:CartPole,classic:Acrobot"))
    counters = {s.name: CountingMake(s.make_env) for s in specs}
    specs = [dataclasses.replace(s, make_env=counters[s.name]) for s in specs]
    config = {**TINY, **overrides}
    model = MultiTaskDQN(task_specs=specs, run_dir=tmp_path / "run", **config)
    return model, counters


def test_a_phase_steps_only_its_tasks(tmp_path):
    model, counters = counted_model(tmp_path)
    model.add_phase(Phase("p", ("CartPole",), 300))

    model.learn(300, evaluate=False)

    state = model.state
    assert state.task_env_steps.get("CartPole") == 300
    assert state.task_env_steps.get("Acrobot", 0) == 0
    assert state.env_steps == 300 and state.phase_index == 1
    assert list(model.trainer.replay.buffers) == ["CartPole"]
    assert len(model.trainer.replay.buffers["CartPole"]) > 0
    assert counters["Acrobot"].training == counters["Acrobot"].evaluation == 0
    assert counters["CartPole"].training == 1  # n_envs = 1
    assert counters["CartPole"].evaluation == 0
    # updates every 4 env steps once 100 are in: (300 - 100) / 4
    assert state.updates == 50
    assert [p.name for p in model.phases] == ["p"]


def test_an_evaluating_phase_builds_other_tasks_envs_for_evaluation_only(tmp_path):
    model, counters = counted_model(tmp_path)
    model.add_phase(Phase("p", ("CartPole",), 200))

    model.learn(200, evaluate=True)

    assert counters["Acrobot"].training == 0
    assert counters["Acrobot"].evaluation > 0  # the random policy and the final evaluation
    assert "Acrobot" not in model.trainer.replay.buffers
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["tasks"]) == {"CartPole", "Acrobot"}  # every held task is evaluated
    assert summary["task_env_steps"] == {"CartPole": 200}


def test_learn_without_a_count_keeps_the_added_phase_budget(tmp_path):
    """`learn()` trains the planned phase to its own budget, not the config's default count."""
    model, _ = counted_model(tmp_path, total_steps_per_task=1_000)
    model.add_phase(Phase("p", ("CartPole",), 200))

    model.learn(evaluate=False)

    assert model.state.task_env_steps == {"CartPole": 200}
    assert model.phases[0].steps_per_task == 200


def test_a_phase_naming_an_unknown_task_is_refused(tmp_path):
    model, _ = counted_model(tmp_path)
    with pytest.raises(Exception, match="MountainCar"):
        model.add_phase(Phase("p", ("CartPole", "MountainCar"), 100))


@pytest.mark.parametrize(
    "phase",
    [
        Phase("plain", ("A",), 10),
        Phase(
            "full",
            ("A", "B"),
            123,
            task_weights={"A": 0.25, "B": 0.75},
            td_tasks=("B",),
            frozen=("trunk", "inputs/*"),
            lr_scales={"head/*": 2.0},
            terms=({"kind": "distill", "teachers": {"A": "source"}, "weight": 0.5},),
            eval_at_start=True,
        ),
        Phase("no-td", ("A",), 5, td_tasks=()),
    ],
    ids=["plain", "full", "no-td"],
)
def test_phase_dict_round_trip(phase):
    data = phase.to_dict()
    assert Phase.from_dict(data) == phase
    through_json = json.loads(json.dumps(data))
    assert Phase.from_dict(through_json) == phase
    assert through_json == data  # plain JSON types only (lists, dicts)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(name="x", tasks=(), steps_per_task=10),
        dict(name="x", tasks=("A",), steps_per_task=0),
        dict(name="x", tasks=("A",), steps_per_task=10, terms=({"kind": "l2"},)),
        dict(name="x", tasks=("A",), steps_per_task=10, end_actions=({"kind": "save"},)),
        dict(name="x", tasks=("A",), steps_per_task=10, rehearse=("A",)),
        dict(name="x", tasks=("A",), steps_per_task=10, rehearse=("B",), rehearsal_share=1.0),
    ],
    ids=[
        "no-tasks",
        "no-budget",
        "unknown-term",
        "unknown-end-action",
        "rehearse-active",
        "share-1",
    ],
)
def test_invalid_phases_raise_config_errors(kwargs):
    with pytest.raises(ConfigError):
        Phase(**kwargs)


def test_summary_lists_each_phase_with_its_steps(tmp_path):
    model = MultiTaskDQN("classic:CartPole,classic:Acrobot", run_dir=tmp_path / "run", **TINY)
    model.learn(300)
    model.add_task("classic:MountainCar")
    model.learn(200)

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    phases = summary["phases"]
    assert [p["name"] for p in phases] == ["train", "phase1"]
    first, second = phases
    assert first["tasks"] == ["CartPole", "Acrobot"]
    assert (first["start_step"], first["end_step"], first["steps_per_task"]) == (0, 300, 300)
    assert second["tasks"] == ["CartPole", "Acrobot", "MountainCar"]
    assert (second["start_step"], second["end_step"], second["steps_per_task"]) == (300, 500, 200)
    assert "head/MountainCar" in second["trainable"]
    assert "head/MountainCar" not in first["trainable"]
    assert summary["env_steps_per_task"] == 500
    assert summary["task_env_steps"] == {"CartPole": 500, "Acrobot": 500, "MountainCar": 200}
    assert set(summary["tasks"]) == {"CartPole", "Acrobot", "MountainCar"}
