"""The run context the trainer is built from, the recorded config (the budget lives in the
phases), and how the trainer explains an error once."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_config
import yaml

from multiq.api import MultiTaskDQN
from multiq.config import Config
from multiq.errors import MultiqError
from multiq.phases.phase import Phase
from multiq.phases.state import TrainState
from multiq.runio.layout import CHECKPOINT_FILE, CONFIG_FILE
from multiq.train.callbacks import Callback
from multiq.train.context import Resumed, RunContext, recorded_config
from multiq.train.loop import Trainer

TINY = tiny_config.TINY_RUN


def test_recorded_config_takes_the_last_phase_budget():
    cfg = Config(total_steps_per_task=1000, learning_starts=10)
    assert recorded_config(cfg, []) is cfg
    assert recorded_config(cfg, [Phase("a", ("A",), 1000)]) is cfg
    phases = [Phase("a", ("A",), 1000), Phase("b", ("B",), 300)]
    assert recorded_config(cfg, phases).total_steps_per_task == 300
    assert cfg.total_steps_per_task == 1000  # nothing written back


def context_of(model: MultiTaskDQN, calls: list) -> RunContext:
    return RunContext(
        config=model.config, learner=model.learner, run_dir=model.run_dir, state=TrainState(),
        rng=np.random.default_rng(0), phases=[Phase("train", tuple(model.task_names), 200)],
        save_checkpoint=calls.append, on_phase_end=lambda action, trainer: None,
    )  # fmt: skip


def test_the_context_builds_the_replay_from_the_config(tmp_path):
    model = MultiTaskDQN("gym:CartPole-v1", run_dir=tmp_path, **TINY)
    context = context_of(model, [])
    assert context.replay.buffers == {}
    assert context.replay.capacity_per_task == model.config.buffer_size
    assert context.resumed == Resumed()
    trainer = Trainer(context)
    assert trainer.replay is context.replay and trainer.state is context.state


def test_renew_takes_the_models_config_phases_and_callbacks(tmp_path):
    model = MultiTaskDQN("gym:CartPole-v1", run_dir=tmp_path, **TINY)
    trainer = Trainer(context_of(model, []))
    replay = trainer.replay
    cfg = model.config.replace(eval_episodes=3)
    phases = [Phase("train", ("CartPole",), 400)]
    callback = Callback()
    trainer.renew(cfg, phases, callback)
    assert trainer.cfg is cfg and trainer.context.config is cfg
    assert trainer.phases is phases and trainer.context.phases is phases
    assert trainer.callback.callbacks == [callback]
    assert trainer.replay is replay  # the buffers are kept


def test_the_trainer_hands_its_collector_record_to_the_checkpoint(tmp_path):
    calls: list = []
    model = MultiTaskDQN("gym:CartPole-v1", run_dir=tmp_path, **TINY)
    trainer = Trainer(context_of(model, calls))
    trainer.checkpoint()
    assert calls == [None]  # between phases: no collector
    assert trainer.checkpoint_step == 0
    assert trainer.checkpointed_config["total_steps_per_task"] == 200  # the phase's budget


def test_the_budget_lives_in_the_phase_and_the_files_record_it(tmp_path):
    model = MultiTaskDQN("gym:CartPole-v1", run_dir=tmp_path, **{**TINY, "checkpoint_freq": 0})
    model.learn(200, evaluate=False)
    assert model._config.total_steps_per_task == 300  # the value given, not written back
    assert model.phases[-1].steps_per_task == 200
    assert model.config.total_steps_per_task == 200  # read from the phase
    saved = yaml.safe_load((tmp_path / CONFIG_FILE).read_text())
    assert saved["total_steps_per_task"] == 200
    assert MultiTaskDQN.load(tmp_path).config.total_steps_per_task == 200
    resumed = MultiTaskDQN.resume(tmp_path)
    assert resumed.config == model.config


class Boom(Callback):
    def __init__(self, error: Exception):
        self.error = error

    def on_step(self, trainer) -> bool:
        raise self.error


@pytest.mark.parametrize("error", [MultiqError("bad input"), RuntimeError("boom")])
def test_an_error_while_training_is_explained_once_with_a_checkpoint(tmp_path, error):
    model = MultiTaskDQN("gym:CartPole-v1", run_dir=tmp_path, **TINY)
    with pytest.raises(type(error)) as raised:
        model.learn(200, callbacks=Boom(error), evaluate=False)
    message = str(raised.value)
    if isinstance(error, MultiqError):
        assert message.startswith("bad input; a checkpoint of env step")
        assert message.count("a checkpoint of") == 1  # explained by the steps, not again
        assert raised.value.__cause__ is error
    else:
        assert raised.value is error
    assert (tmp_path / CHECKPOINT_FILE).is_file()
    assert not hasattr(raised.value, "handled")
