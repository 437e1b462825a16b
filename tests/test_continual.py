"""Continual sequences: each method's phases, rehearsal shares, bad input, end to end runs,
a new task joining a trained agent, and a kill between phases."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from multiq.api import MultiTaskDQN
from multiq.cli import main
from multiq.config import FAMILY_DEFAULTS, Config
from multiq.errors import ConfigError
from multiq.phases.phase import Phase
from multiq.recipes.continual import METHODS, PREVIOUS_TEACHER, SequenceSetup, sequence_phases
from multiq.train.callbacks import Callback
from multiq.train.loop import Trainer

SETTINGS = {
    "learning_starts": 50, "buffer_size": 1_000, "eval_freq": 0, "eval_episodes": 2,
    "tensorboard": False, "progress_bar": False, "target_update_interval": 100,
    "ewc_fisher_states": 64, "log_interval": 100,
}  # fmt: skip
SEQUENCE = "classic:CartPole,classic:Acrobot"


def setup(names=("A", "B", "C")) -> SequenceSetup:
    return SequenceSetup(list(names), 100, Config(rehearsal_share=0.25, ewc_lambda=7.0))


def test_finetune_trains_one_task_per_phase_and_evaluates_first():
    phases = sequence_phases(setup(), "finetune")
    assert [(p.name, p.tasks, p.rehearse, p.terms) for p in phases] == [
        ("1-A", ("A",), (), ()), ("2-B", ("B",), (), ()), ("3-C", ("C",), (), ()),
    ]  # fmt: skip
    assert [p.eval_at_start for p in phases] == [True, False, False]


def test_rehearsal_samples_the_earlier_tasks_with_the_configured_share():
    phases = sequence_phases(setup(("A", "B", "A", "C")), "rehearsal")
    assert [p.rehearse for p in phases] == [(), ("A",), ("B",), ("A", "B")]
    assert {p.rehearsal_share for p in phases} == {0.25}


def test_ewc_consolidates_after_every_phase_and_penalises_after_the_first():
    phases = sequence_phases(setup(), "ewc")
    assert [p.end_actions for p in phases] == [({"kind": "ewc", "tasks": [n]},) for n in "ABC"]
    assert phases[0].terms == ()
    assert phases[2].terms == ({"kind": "ewc", "weight": 7.0},)


def test_distill_teaches_the_earlier_tasks_from_the_previous_agent():
    phases = sequence_phases(setup(), "distill")
    third = phases[2]
    assert third.rehearse == ("A", "B") and third.td_tasks == ("C",)
    assert third.terms[0]["teachers"] == {"A": PREVIOUS_TEACHER, "B": PREVIOUS_TEACHER}
    assert all(p.end_actions == ({"kind": "teacher", "id": PREVIOUS_TEACHER},) for p in phases)


def test_every_registered_method_has_a_test_above():
    # progressive: tests/test_progressive_transfer.py
    assert set(METHODS) == {"finetune", "rehearsal", "ewc", "distill", "progressive"}


@pytest.mark.parametrize(
    ("phase", "shares", "expected"),
    [
        (Phase("p", ("C",), 10, rehearse=("A", "B"), rehearsal_share=0.5), [1.0],
         {"C": 48, "A": 24, "B": 24}),
        (Phase("p", ("C",), 10, rehearse=("A",), rehearsal_share=0.25), [1.0],
         {"C": 48, "A": 16}),
        # one each, then 62 split 1:3 by largest remainder: 15.5 -> 16, 46.5 -> 46
        (Phase("p", ("C", "D"), 10), [1.0, 3.0], {"C": 17, "D": 47}),
    ],
)  # fmt: skip
def test_rehearsal_sample_counts(phase, shares, expected):
    class Buffers:
        buffers = {"A": [0], "B": [0]}

    trainer = Trainer.__new__(Trainer)
    trainer.context = SimpleNamespace(config=Config(batch_size=32))
    trainer.replay = Buffers()
    assert trainer._sample_counts(phase, np.array(shares)) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "rehersal"}, "did you mean 'rehearsal'"),
        ({"sequence": "classic:CartPole"}, "at least two tasks"),
        ({"sequence": "classic:CartPole,classic:CartPole"}, "appears twice"),
        ({"cycles": 0}, "cycles must be >= 1"),
    ],
)
def test_bad_sequences_are_refused(tmp_path, kwargs, message):
    arguments = {"sequence": SEQUENCE, "method": "finetune", **kwargs}
    with pytest.raises(ConfigError, match=message):
        MultiTaskDQN.continual(run_dir=tmp_path / "run", **arguments, **SETTINGS)
    assert not (tmp_path / "run").exists()  # nothing written


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_a_tiny_sequence_through_the_cli(tmp_path, capsys, method):
    run_dir = tmp_path / method
    sets = [a for k, v in SETTINGS.items() for a in ("--set", f"{k}={str(v).lower()}")]
    argv = ["continual", "--sequence", SEQUENCE, "--method", method, "--steps-per-task", "300"]
    assert main([*argv, "--run-dir", str(run_dir), *sets]) == 0
    out = capsys.readouterr().out
    assert "Evaluation matrix R" in out and (run_dir / "matrix.png").is_file()
    resumed = MultiTaskDQN.resume(run_dir)
    assert [p.name for p in resumed.phases] == ["1-CartPole", "2-Acrobot"]
    assert resumed.state.task_env_steps == {"CartPole": 300, "Acrobot": 300}
    if method == "ewc":
        assert len(resumed.learner.ewc.fisher) > 0  # consolidated and saved


def test_a_yaml_sequence_sets_its_keys_and_the_others_follow_the_tasks(tmp_path, capsys):
    path = tmp_path / "sequence.yaml"
    path.write_text(yaml.safe_dump({"tasks": SEQUENCE, "n_step": 1, **SETTINGS}))
    run_dir = tmp_path / "run"
    argv = ["continual", str(path), "--steps-per-task", "200", "--run-dir", str(run_dir)]
    assert main(argv) == 0
    assert "defaults for vector tasks: " in capsys.readouterr().out
    saved = Config.from_yaml(run_dir / "config.yaml")
    assert (saved.n_step, saved.learning_starts) == (1, 50)  # the file's
    assert saved.learning_rate == FAMILY_DEFAULTS["vector"]["learning_rate"]


def test_a_new_task_training_alone_leaves_the_old_weights_untouched(tmp_path):
    model = MultiTaskDQN("classic:CartPole", run_dir=tmp_path, **SETTINGS).learn(300)
    before = {k: v.clone() for k, v in model.learner.online.state_dict().items()}
    model.add_tasks_phase("classic:Acrobot", 300, train="new")
    model.learn()
    after = model.learner.online.state_dict()
    moved = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert moved == []  # every weight the agent had stays as it was
    new = [k for k in after if k not in before]
    assert new and any(after[k].abs().sum() > 0 for k in new)
    assert model.summary["phases"][1]["trainable"] == ["inputs/6_float32", "head/Acrobot"]


def test_add_tasks_on_resume_through_the_cli(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    sets = [a for k, v in SETTINGS.items() for a in ("--set", f"{k}={str(v).lower()}")]
    train = ["train", "--tasks", "classic:CartPole", "--steps", "300", "--run-dir", run_dir]
    assert main([*train, *sets, "--set", "save_replay=true"]) == 0
    argv = ["train", "--resume", run_dir, "--add-tasks", "classic:Acrobot", "--steps", "300"]
    assert main([*argv, "--rehearse"]) == 0
    resumed = MultiTaskDQN.resume(run_dir)
    assert resumed.phases[-1].rehearse == ("CartPole",) and resumed.phases[-1].tasks == ("Acrobot",)
    assert resumed.state.task_env_steps == {"CartPole": 300, "Acrobot": 300}
    with pytest.raises(SystemExit):  # argparse: exit code 2 and the valid choices
        main([*argv, "--train", "none"])


class Killed(BaseException):
    """SIGKILL stand-in (the trainer catches Exceptions, not this)."""


class KillInPhase(Callback):
    def __init__(self, phase_index: int):
        self.phase_index = phase_index

    def on_step(self, trainer) -> bool:
        if trainer.state.phase_index == self.phase_index:
            raise Killed
        return True


def phase_places(phases: list[dict]) -> list[dict]:
    return [{k: p[k] for k in ("name", "tasks", "start_step", "end_step")} for p in phases]


def test_a_kill_between_phases_resumes_with_the_same_phases_and_counts(tmp_path):
    whole = MultiTaskDQN.continual(SEQUENCE, "rehearsal", run_dir=tmp_path / "a",
                                   total_steps_per_task=300, **SETTINGS).learn()  # fmt: skip
    cut = MultiTaskDQN.continual(
        SEQUENCE, "rehearsal", run_dir=tmp_path / "b", total_steps_per_task=300, **SETTINGS
    )
    with pytest.raises(Killed):
        cut.learn(callbacks=KillInPhase(1))  # the first step of phase 2
    resumed = MultiTaskDQN.resume(tmp_path / "b")
    assert resumed.state.phase_index == 1 and resumed.state.env_steps == 300
    resumed.learn()
    assert phase_places(resumed.summary["phases"]) == phase_places(whole.summary["phases"])
    assert resumed.state.task_env_steps == whole.state.task_env_steps


def test_adding_a_held_task_is_refused_and_the_run_folder_is_untouched(tmp_path, capsys):
    run_dir = tmp_path / "run"
    sets = [a for k, v in SETTINGS.items() for a in ("--set", f"{k}={str(v).lower()}")]
    train = ["train", "--tasks", SEQUENCE, "--steps", "200", "--run-dir", str(run_dir)]
    assert main([*train, *sets]) == 0
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    argv = ["train", "--resume", str(run_dir), "--add-tasks", "classic:Acrobot", "--steps", "200"]
    assert main(argv) == 2
    assert "already holds task(s) ['Acrobot']" in capsys.readouterr().err
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert after == before
