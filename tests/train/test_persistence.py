"""`multiq.train.persistence`: what a checkpoint records, and when a run folder holds a finished
run (save -> load round trips are in test_api and test_checkpoint_v2)."""

from __future__ import annotations

import shutil

import pytest
import tiny_config
import torch

from multiq.api import MultiTaskDQN
from multiq.errors import CheckpointError
from multiq.phases.state import TrainState
from multiq.runio.layout import CHECKPOINT_FILE, MODEL_FILE, REPLAY_FILE
from multiq.train import persistence

TINY = tiny_config.TINY_RUN | {"total_steps_per_task": 200}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("persist") / "run"
    MultiTaskDQN("gym:CartPole-v1", run_dir=run_dir, **TINY).learn(evaluate=False)
    return run_dir


@pytest.fixture
def run_copy(finished, tmp_path):
    return shutil.copytree(finished, tmp_path / "run")


def test_finished_step_is_the_checkpoints_when_model_pt_is_of_it(run_copy):
    assert persistence.finished_step(run_copy, TrainState(env_steps=200)) == 200
    assert persistence.finished_step(run_copy, TrainState(env_steps=150)) is None
    (run_copy / MODEL_FILE).write_bytes(b"not a model")
    assert persistence.finished_step(run_copy, TrainState(env_steps=200)) is None
    (run_copy / MODEL_FILE).unlink()
    assert persistence.finished_step(run_copy, TrainState(env_steps=200)) is None


def test_a_resumed_run_knows_it_is_finished_and_more_steps_reopen_it(run_copy):
    model = MultiTaskDQN.resume(run_copy)
    assert model.finished and model.finished_at == 200
    longer = MultiTaskDQN.resume(run_copy, total_steps_per_task=300)
    assert not longer.finished
    assert longer.phases[-1].steps_per_task == 300 and longer.state.phase_index == 0
    assert longer.config.total_steps_per_task == 300


def test_checkpoint_record_holds_the_collector_it_is_given(run_copy):
    model = MultiTaskDQN.resume(run_copy)
    meta, tensors = model.checkpoint_record()
    assert "collector" not in meta and "collector_obs" not in tensors
    record = ({"seed": 1, "tasks": ["CartPole"]}, {"CartPole": torch.zeros(1, 4)})
    meta, tensors = model.checkpoint_record(record)
    assert meta["collector"] == record[0] and tensors["collector_obs"] is record[1]
    assert meta["replay_saved_at"] is None  # no replay outside a trainer
    assert [p["name"] for p in meta["phases"]] == ["train"]


def test_save_checkpoint_without_a_replay_writes_none(run_copy):
    model = MultiTaskDQN.resume(run_copy, save_replay=True)
    model.save_checkpoint()
    assert (run_copy / CHECKPOINT_FILE).is_file()
    assert not (run_copy / REPLAY_FILE).exists()


def test_read_checkpoint_refuses_a_folder_without_a_config(tmp_path):
    with pytest.raises(CheckpointError, match="not a multiq run folder"):
        persistence.read_checkpoint(tmp_path)


def test_model_file_of_a_run_folder(finished):
    assert persistence.model_file(finished) == finished / MODEL_FILE
    assert persistence.model_file(finished / MODEL_FILE) == finished / MODEL_FILE
