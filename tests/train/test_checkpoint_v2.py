"""Checkpoint format 2: tasks by name, loading without envs or by name, format 1, resume."""

from __future__ import annotations

import logging

import gymnasium
import numpy as np
import pytest
import tiny_config
import torch

from multiq.api import MultiTaskDQN
from multiq.errors import CheckpointError
from multiq.phases.phase import Phase
from multiq.train.callbacks import Callback

TINY = tiny_config.TINY_RUN
TASKS = "classic:CartPole,classic:Acrobot"


def perturbed_model(tmp_path, tasks=TASKS, **overrides) -> MultiTaskDQN:
    """A model whose weights differ from any fresh initialisation (as after training)."""
    model = MultiTaskDQN(tasks, run_dir=tmp_path / "src", **{**TINY, **overrides})
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.learner.online.parameters():
            p.add_(torch.randn(p.shape, generator=gen))
    model.learner.sync_target(1.0)
    return model


def probe(model, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        s.name: rng.uniform(-1, 1, (7, *s.obs_shape)).astype(s.obs_dtype) for s in model.task_specs
    }


def q_values(model, obs) -> dict[str, torch.Tensor]:
    return {name: model.policy.q_values({name: x}).clone() for name, x in obs.items()}


def spec_facts(spec) -> tuple:
    space = spec.observation_space
    return (
        spec.name,
        spec.env_id,
        spec.obs_shape,
        spec.obs_dtype,
        spec.num_actions,
        spec.source,
        np.array(space.low).tolist(),
        np.array(space.high).tolist(),
    )


def test_save_load_round_trip_keeps_q_values_and_task_specs(tmp_path):
    model = perturbed_model(tmp_path)
    path = model.save(tmp_path / "model.pt")

    loaded = MultiTaskDQN.load(path)

    assert loaded.task_names == ["CartPole", "Acrobot"]
    assert [spec_facts(s) for s in loaded.task_specs] == [spec_facts(s) for s in model.task_specs]
    assert [s.obs_dtype for s in loaded.task_specs] == [np.dtype(np.float32)] * 2
    assert loaded.learner.online.num_actions == {"CartPole": 2, "Acrobot": 3}
    obs = probe(model)
    before, after = q_values(model, obs), q_values(loaded, obs)
    assert all(torch.equal(after[n], before[n]) for n in before)
    saved, own = model.learner.online.state_dict(), loaded.learner.online.state_dict()
    assert saved.keys() == own.keys()
    assert all(torch.equal(saved[k], own[k]) for k in saved)
    for p, q in zip(
        loaded.learner.online.parameters(), loaded.learner.target.parameters(), strict=True
    ):
        assert torch.equal(p, q)  # the target net starts as the loaded online net
    assert loaded.config == model.config


def test_load_builds_no_env_and_predicts(tmp_path, monkeypatch):
    model = perturbed_model(tmp_path)
    path = model.save(tmp_path / "model.pt")
    obs = probe(model, seed=5)
    expected = {n: model.predict(x, n) for n, x in obs.items()}
    made = []

    def refuse(*args, **kwargs):
        made.append(args)
        raise AssertionError(f"gymnasium.make{args} called while loading")

    monkeypatch.setattr(gymnasium, "make", refuse)

    loaded = MultiTaskDQN.load(path, run_dir=tmp_path / "loaded")

    assert made == []
    for name, x in obs.items():
        assert np.array_equal(loaded.predict(x, name), expected[name])
        assert isinstance(loaded.predict(x[0], name), int)
    # the guard works: an evaluation does need envs
    with pytest.raises(Exception, match="called while loading"):
        loaded.evaluate(episodes=1, tasks=["CartPole"])
    assert made


def test_load_by_name_into_another_task_set(tmp_path, caplog):
    model = perturbed_model(tmp_path)
    path = model.save(tmp_path / "model.pt")
    saved = model.learner.online.state_dict()
    fresh = MultiTaskDQN(
        "classic:CartPole,classic:MountainCar", run_dir=tmp_path / "fresh", **TINY
    ).learner.online.state_dict()
    caplog.set_level(logging.INFO, logger="multiq")

    loaded = MultiTaskDQN.load(path, tasks="classic:CartPole,classic:MountainCar")

    assert loaded.task_names == ["CartPole", "MountainCar"]
    own = loaded.learner.online.state_dict()
    by_group = {
        "head/CartPole": "heads.heads.CartPole.",
        "inputs/4_float32": "inputs.layers.4_float32.",
        "trunk": "body.",
        "head/MountainCar": "heads.heads.MountainCar.",
        "inputs/2_float32": "inputs.layers.2_float32.",
    }
    for group, prefix in by_group.items():
        keys = [k for k in own if k.startswith(prefix)]
        assert keys, group
        for key in keys:
            if group in ("head/MountainCar", "inputs/2_float32"):  # new: fresh initialisation
                assert key not in saved
                assert torch.equal(own[key], fresh[key]), key
            else:  # held by the file: copied
                assert torch.equal(own[key], saved[key]), key
                assert not torch.equal(own[key], fresh[key]), key
    assert not any("Acrobot" in k or "6_float32" in k for k in own)
    assert set(own) == set(fresh)
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(left_out) == 1 and "Acrobot" in left_out[0], caplog.text
    assert "CartPole" not in left_out[0]
    target = loaded.learner.target.state_dict()
    assert all(torch.equal(target[k], own[k]) for k in own)


def test_load_with_run_dir_then_learn_writes_there(tmp_path):
    path = perturbed_model(tmp_path).save(tmp_path / "model.pt")
    run_dir = tmp_path / "continued"

    loaded = MultiTaskDQN.load(path, run_dir=run_dir)

    assert loaded.run_dir == run_dir
    loaded.learn(150, evaluate=False)
    assert (run_dir / "model.pt").is_file()
    assert loaded.state.task_env_steps == {"CartPole": 150, "Acrobot": 150}


def test_a_format_1_file_says_what_it_is_and_what_to_do(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"format": "multiq", "version": 1, "kind": "model", "meta_json": "{}"}, path)

    with pytest.raises(CheckpointError) as info:
        MultiTaskDQN.load(path)

    message = str(info.value)
    assert "format 1" in message
    assert "Train the run again" in message and "multiq==0.1.0" in message
    assert str(path) in message


class StopAt(Callback):
    def __init__(self, env_steps: int):
        self.env_steps = env_steps

    def on_step(self, trainer) -> bool:
        return trainer.state.env_steps < self.env_steps


def test_resume_of_a_stopped_run_continues_in_the_right_phase(tmp_path):
    run_dir = tmp_path / "run"
    model = MultiTaskDQN(TASKS, run_dir=run_dir, **{**TINY, "checkpoint_freq": 50})
    model.learn(300, evaluate=False)  # phase 0: both tasks, steps 0-300
    model.add_phase(Phase("cartpole", ("CartPole",), 400))
    model.learn(400, callbacks=StopAt(550), evaluate=False)  # phase 1 stopped at step 550
    assert model.state.env_steps == 550 and model.state.phase_index == 1
    # an update every 4 env steps per task once past learning_starts (100 in each phase):
    # phase 0 at 104, 108, ..., 300 (50); phase 1 at phase steps 104, ..., 248 (37)
    updates = model.state.updates
    assert updates == 50 + 37

    resumed = MultiTaskDQN.resume(run_dir)

    state = resumed.state
    assert state.phase_index == 1
    assert [p.name for p in resumed.phases] == ["train", "cartpole"]
    assert resumed.phases[1] == Phase("cartpole", ("CartPole",), 400)
    assert (state.env_steps, state.phase_start, state.phase_env_steps) == (550, 300, 250)
    assert state.task_env_steps == {"CartPole": 550, "Acrobot": 300}
    assert state.phase_task_env_steps == {"CartPole": 250}
    assert state.updates == updates
    assert state.learning_starts_at == 250 + 100  # no saved replay: refill before updating

    resumed.learn(evaluate=False)

    state = resumed.state
    assert state.phase_index == 2
    assert state.env_steps == 700
    assert state.task_env_steps == {"CartPole": 700, "Acrobot": 300}
    assert list(resumed.trainer.replay.buffers) == ["CartPole"]
    assert [(p["start_step"], p["end_step"]) for p in state.phase_log] == [(0, 300), (300, 700)]
    # phase 1 resumed at 250 of its 400 steps and updates again after 100 more: 352, ..., 400
    assert state.updates == updates + 13


@pytest.mark.parametrize(
    "scheme", ["shared", "independent", "conditioned", "shared-private", "routed"]
)
@pytest.mark.parametrize(
    "tasks",
    ["classic:Acrobot,classic:CartPole", "classic:Acrobot"],
    ids=["reordered", "subset"],
)
def test_load_by_name_keeps_the_q_values_of_every_kept_task(tmp_path, scheme, tasks):
    """Loading by name keys every weight by task, so kept tasks answer as before, any order."""
    model = perturbed_model(tmp_path, scheme=scheme)
    path = model.save(tmp_path / "model.pt")
    obs = probe(model, seed=3)

    loaded = MultiTaskDQN.load(path, tasks=tasks)

    kept = [n for n in loaded.task_names if n in obs]
    assert kept == [t.partition(":")[2] for t in tasks.split(",")]
    before = q_values(model, {n: obs[n] for n in kept})
    after = q_values(loaded, {n: obs[n] for n in kept})
    for name in kept:
        if scheme == "conditioned":
            # its head over the union of actions is laid out anew for the new task order (one
            # matmul where the saved net had two chunks): the same weights, equal to rounding
            torch.testing.assert_close(after[name], before[name], rtol=1e-6, atol=1e-6)
        else:
            assert torch.equal(after[name], before[name]), f"{scheme}: {name}'s Q-values changed"


class Killed(BaseException):
    """SIGKILL in the middle of training: nothing after it runs (a BaseException, which the
    trainer does not catch, unlike an Exception, after which it saves a checkpoint)."""


class KillAt(Callback):
    """Stands in for a kill: raises in the loop, so no final checkpoint is written."""

    def __init__(self, env_steps: int):
        self.env_steps = env_steps

    def on_step(self, trainer) -> bool:
        if trainer.state.env_steps >= self.env_steps:
            raise Killed
        return True


def test_resume_of_a_killed_run_starts_from_the_last_periodic_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    model = MultiTaskDQN(TASKS, run_dir=run_dir, **{**TINY, "checkpoint_freq": 50})
    model.learn(300, evaluate=False)
    model.add_phase(Phase("cartpole", ("CartPole",), 400))
    with pytest.raises(Killed):
        model.learn(400, callbacks=KillAt(530), evaluate=False)

    resumed = MultiTaskDQN.resume(run_dir)

    state = resumed.state
    assert (state.phase_index, state.env_steps) == (1, 500)  # the checkpoint at step 500
    assert state.task_env_steps == {"CartPole": 500, "Acrobot": 300}
    resumed.learn(evaluate=False)
    assert resumed.state.task_env_steps == {"CartPole": 700, "Acrobot": 300}
    assert [(p["start_step"], p["end_step"]) for p in resumed.state.phase_log] == [
        (0, 300),
        (300, 700),
    ]
