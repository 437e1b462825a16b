"""A finished run is a record: resuming it (`multiq train --resume`, `multiq meta --resume`)
changes no file and says so; training more takes an explicit `--steps` (or `--add-tasks`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multiq.api import MultiTaskDQN
from multiq.cli import main

SETS = [
    "--set", "learning_starts=50", "--set", "eval_episodes=1", "--set", "tensorboard=false",
    "--set", "progress_bar=false", "--set", "batch_size=8", "--set", "buffer_size=1000",
    "--set", "log_interval=100", "--set", "eval_freq=0", "--set", "hidden_size=16",
    "--set", "async_updates=false", "--device", "cpu",
]  # fmt: skip
STEPS = 200


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run folder, by relative path."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def run(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


def env_steps(run_dir: Path) -> int:
    return json.loads((run_dir / "summary.json").read_text())["env_steps_per_task"]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "source"
    argv = ["train", "--tasks", "classic:CartPole", "--steps", STEPS, *SETS, "--run-dir", run_dir]
    assert main([str(a) for a in argv]) == 0
    return run_dir


def assert_resume_changes_nothing(capsys, run_dir: Path) -> None:
    before = snapshot(run_dir)
    out = run(capsys, "train", "--resume", run_dir)
    assert "is finished" in out and "nothing was changed" in out and "--steps" in out
    assert "resuming" not in out
    assert snapshot(run_dir) == before  # model.pt, summary.json, metrics.csv, ... byte-identical


def test_a_finished_train_run_is_left_alone(capsys, source, tmp_path):
    run_dir = tmp_path / "copy"
    run(capsys, "train", "--tasks", "classic:CartPole", "--steps", STEPS, *SETS,
        "--run-dir", run_dir)  # fmt: skip
    assert_resume_changes_nothing(capsys, run_dir)


def test_a_finished_transfer_run_is_left_alone_until_steps_ask_for_more(capsys, source, tmp_path):
    run_dir = tmp_path / "finetune"
    run(capsys, "transfer", source, "--tasks", "classic:Acrobot", "--steps", STEPS, *SETS,
        "--run-dir", run_dir)  # fmt: skip
    assert env_steps(run_dir) == STEPS
    assert_resume_changes_nothing(capsys, run_dir)
    assert env_steps(run_dir) == STEPS  # the bug: a new phase over every task, 2x the steps

    out = run(capsys, "train", "--resume", run_dir, "--steps", 2 * STEPS)
    assert "resuming" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps_per_task"] == 2 * STEPS
    assert [p["tasks"] for p in summary["phases"]] == [["Acrobot"]]  # the target phase, longer
    model = MultiTaskDQN.resume(run_dir)
    assert model.state.task_env_steps == {"Acrobot": 2 * STEPS}  # the source did not step


def test_a_finished_continual_run_is_left_alone(capsys, tmp_path):
    run_dir = tmp_path / "continual"
    run(capsys, "continual", "--sequence", "classic:CartPole,classic:Acrobot", "--steps", STEPS,
        *SETS, "--run-dir", run_dir)  # fmt: skip
    assert env_steps(run_dir) == 2 * STEPS
    assert_resume_changes_nothing(capsys, run_dir)


def test_a_finished_meta_run_is_left_alone(capsys, tmp_path):
    run_dir = tmp_path / "meta"
    meta = ["--meta-iterations", 2, "--set", "meta_batch_size=2", "--set", "inner_steps=60",
            "--set", "inner_learning_starts=20", "--set", "inner_buffer_size=100"]  # fmt: skip
    run(capsys, "meta", "--family", "cartpole-physics", *meta, *SETS, "--run-dir", run_dir)
    before = snapshot(run_dir)
    out = run(capsys, "meta", "--resume", run_dir)
    assert "is finished" in out and "nothing was changed" in out
    assert snapshot(run_dir) == before


def test_learn_on_a_resumed_finished_run_changes_nothing(source, tmp_path):
    import shutil

    run_dir = Path(shutil.copytree(source, tmp_path / "run"))
    before = snapshot(run_dir)
    model = MultiTaskDQN.resume(run_dir)
    assert model.finished
    model.learn()
    assert snapshot(run_dir) == before
    model.learn(total_steps_per_task=STEPS + 100, evaluate=False)  # more is explicit
    assert model.finished and model.state.env_steps == STEPS + 100


def test_a_run_stopped_after_its_last_phase_is_not_finished(source, tmp_path):
    """Killed after the last checkpoint, before model.pt: a resume finishes the run."""
    import shutil

    run_dir = Path(shutil.copytree(source, tmp_path / "run"))
    (run_dir / "model.pt").unlink()
    model = MultiTaskDQN.resume(run_dir)
    assert not model.finished
    model.learn()
    assert (run_dir / "model.pt").is_file() and model.finished
