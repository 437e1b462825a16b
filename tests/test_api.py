"""The public `MultiTaskDQN` API: persistence, prediction, errors, resume, seeding, callbacks."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tiny_config
import torch

from multiq.api import MultiTaskDQN
from multiq.errors import CheckpointError, ConfigError, TaskError
from multiq.train.callbacks import Callback
from multiq.train.checkpoint import CHECKPOINT_FILE, MODEL_FILE, load_tensors

TWO_TASKS = "gym:CartPole-v1,gym:Acrobot-v1"
TINY = tiny_config.TINY


def tiny(tasks: str = "classic:CartPole", **changes) -> dict:
    return {"tasks": tasks, **TINY, **changes}


def assert_state_dicts_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def metric_steps(run_dir) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def observations(task, count: int, seed: int = 0) -> np.ndarray:
    space = task.observation_space
    space.seed(seed)
    return np.stack([space.sample() for _ in range(count)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A two-task model after a short `learn` (with evaluation and the final save)."""
    run_dir = tmp_path_factory.mktemp("api") / "run"
    model = MultiTaskDQN(TWO_TASKS, run_dir=run_dir, **TINY)
    model.learn(total_steps_per_task=300)
    return model


# --- run folder and summary -----------------------------------------------------------------


def test_learn_writes_run_folder_and_summary(trained):
    run_dir = trained.run_dir
    for name in ("config.yaml", "metrics.csv", "checkpoint.pt", "model.pt", "summary.json"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "curves.png").stat().st_size > 0
    assert not (run_dir / "tb").exists()  # tensorboard=False
    assert not (run_dir / "replay.npz").exists()  # save_replay=False

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary == trained.summary
    assert set(summary["tasks"]) == {"CartPole", "Acrobot"}
    for result in summary["tasks"].values():
        for key in ("return_mean", "return_std", "random_return_mean"):
            assert np.isfinite(result[key]), key
        assert result["episodes"] == 2
    assert summary["tasks"]["Acrobot"]["random_return_mean"] == pytest.approx(-500.0, abs=60)
    assert summary["env_steps_per_task"] == 300
    assert summary["wall_time_s"] > 0
    assert trained.state.env_steps == 300
    # updates every train_freq=4 vector steps once learning_starts=100 steps are in the buffer
    assert trained.state.updates == (300 - 100) // 4


# --- save / load ----------------------------------------------------------------------------


def test_save_load_gives_identical_predictions(trained, tmp_path):
    path = trained.save(tmp_path / "copy.pt")
    loaded = MultiTaskDQN.load(path)

    assert loaded.config == trained.config
    assert loaded.task_names == trained.task_names
    # a loaded model starts a new run: its step axis starts at 0 (`resume` continues a run)
    assert trained.state.env_steps == 300
    assert loaded.state.env_steps == 0 and loaded.phases == []
    learner = loaded.learner
    assert_state_dicts_equal(learner.online.state_dict(), trained.learner.online.state_dict())
    assert_state_dicts_equal(learner.target.state_dict(), learner.online.state_dict())
    for index, task in enumerate(trained.task_specs):
        obs = observations(task, 64, seed=index)
        np.testing.assert_array_equal(
            loaded.predict(obs, task=task.name), trained.predict(obs, task=task.name)
        )
        # every task in the batch, the others with no rows: the width is the largest action count
        per_task = {t.name: np.zeros((0, *t.obs_shape), t.obs_dtype) for t in trained.task_specs}
        per_task[task.name] = obs
        q_loaded, q_trained = loaded.policy.q_values(per_task), trained.policy.q_values(per_task)
        assert q_loaded.shape == (64, max(t.num_actions for t in trained.task_specs))
        assert torch.equal(q_loaded, q_trained)
        # the task alone: its own action count
        alone = loaded.policy.q_values({task.name: obs})
        assert alone.shape == (64, task.num_actions)
        assert torch.equal(alone, q_trained[:, : task.num_actions])


def test_model_file_of_learn_loads(trained):
    loaded = MultiTaskDQN.load(trained.run_dir / MODEL_FILE)
    assert_state_dicts_equal(
        loaded.learner.online.state_dict(), trained.learner.online.state_dict()
    )
    assert loaded.task_names == ["CartPole", "Acrobot"]


def test_load_refuses_a_checkpoint_file(trained):
    with pytest.raises(CheckpointError, match="checkpoint"):
        MultiTaskDQN.load(trained.run_dir / CHECKPOINT_FILE)


def test_evaluate_returns_per_task_results(trained):
    results = trained.evaluate(episodes=1)
    assert set(results) == {"CartPole", "Acrobot"}
    for result in results.values():
        assert result["episodes"] == 1
        assert np.isfinite(result["return_mean"])


# --- predict --------------------------------------------------------------------------------


def test_predict_single_and_batch(trained):
    for index, task in enumerate(trained.task_specs):
        batch = observations(task, 5)
        single = trained.predict(batch[0], task=task.name)
        assert type(single) is int
        assert 0 <= single < task.num_actions
        actions = trained.predict(batch, task=task.name)
        assert isinstance(actions, np.ndarray)
        assert actions.shape == (5,)
        assert np.issubdtype(actions.dtype, np.integer)
        assert ((actions >= 0) & (actions < task.num_actions)).all()
        assert actions[0] == single
        # by index, and greedy actions are deterministic
        np.testing.assert_array_equal(trained.predict(batch, task=index), actions)


def test_predict_epsilon_one_is_random(trained):
    obs = np.repeat(observations(trained.learner.specs["Acrobot"], 1), 300, axis=0)
    actions = trained.predict(obs, task="Acrobot", epsilon=1.0)
    assert set(actions.tolist()) == {0, 1, 2}


@pytest.mark.parametrize("shape", [(3,), (5, 3), (6,), (2, 4, 1)])
def test_predict_wrong_shape(trained, shape):
    with pytest.raises(ValueError) as info:
        trained.predict(np.zeros(shape, np.float32), task="CartPole")
    message = str(info.value)
    assert "CartPole" in message
    assert str(shape) in message
    assert "(4,)" in message


def test_predict_unknown_task(trained):
    with pytest.raises(TaskError, match="Pong"):
        trained.predict(np.zeros(4, np.float32), task="Pong")


# --- construction errors --------------------------------------------------------------------


def test_bad_hyperparameter_name_suggests_the_right_one():
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        MultiTaskDQN("classic:CartPole", learning_rat=1e-3)


def test_bad_hyperparameter_value():
    with pytest.raises(ConfigError, match="batch_size"):
        MultiTaskDQN("classic:CartPole", batch_size=0)


def test_unknown_env_id():
    with pytest.raises(TaskError) as info:
        MultiTaskDQN("gym:CartPol-v1")
    assert "CartPole-v1" in str(info.value)


def test_continuous_actions_are_refused():
    with pytest.raises(TaskError, match="Discrete"):
        MultiTaskDQN("gym:Pendulum-v1")


def test_task_weights_naming_an_unknown_task():
    with pytest.raises(ConfigError) as info:
        MultiTaskDQN(TWO_TASKS, task_weights={"CartPole": 1.0, "Breakout": 2.0}, **TINY)
    assert "Breakout" in str(info.value)


def test_task_weights_are_used(tmp_path):
    tiny = {**TINY, "learning_starts": 0}  # 8 steps: the config needs room for an update
    model = MultiTaskDQN(TWO_TASKS, run_dir=tmp_path, task_weights={"Acrobot": 0.5}, **tiny)
    # a phase starts with the config's weights (1 where unnamed) normalised to sum to one,
    # alpha = [1, 0.5] / 1.5, which the balancer uses as given
    model.learn(total_steps_per_task=8, evaluate=False)
    assert model.learner.training.task_weights == pytest.approx(
        {"CartPole": 2 / 3, "Acrobot": 1 / 3}
    )
    alpha = model.learner.balancer.alpha(["CartPole", "Acrobot"], torch.device("cpu"))
    torch.testing.assert_close(alpha, torch.tensor([2 / 3, 1 / 3]))


# --- resume ---------------------------------------------------------------------------------


def test_resume_continues_the_run(tmp_path):
    run_dir = tmp_path / "run"
    first = MultiTaskDQN(run_dir=run_dir, **tiny(TWO_TASKS, checkpoint_freq=200))
    first.learn(total_steps_per_task=400)
    updates = first.state.updates
    assert updates > 0
    meta, payload = load_tensors(run_dir / CHECKPOINT_FILE, "checkpoint")
    assert meta["state"]["env_steps"] == 400

    resumed = MultiTaskDQN.resume(run_dir)

    assert resumed.run_dir == run_dir
    assert resumed.config == first.config
    assert resumed.state.env_steps == 400
    assert resumed.state.updates == updates
    assert resumed.state.random_returns == first.state.random_returns
    # no saved replay: the buffer refills for learning_starts steps before updates
    assert resumed.state.learning_starts_at == 400 + 100
    learner = resumed.learner
    assert_state_dicts_equal(learner.online.state_dict(), payload["learner"]["online"])
    assert_state_dicts_equal(learner.target.state_dict(), payload["learner"]["target"])
    assert_state_dicts_equal(learner.online.state_dict(), first.learner.online.state_dict())
    # Adam's moments come back keyed by parameter name; every parameter took every update
    moments = learner.optimizer_state()
    assert set(moments) == {f"online.{n}" for n, _ in learner.online.named_parameters()}
    assert {int(m["step"]) for m in moments.values()} == {updates}

    resumed.learn(total_steps_per_task=800)

    assert resumed.state.env_steps == 800
    assert resumed.state.updates == updates + (800 - 500) // 4
    steps = metric_steps(run_dir)
    assert max(steps) == 800
    assert any(400 < s < 800 for s in steps)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps_per_task"] == 800
    assert set(summary["tasks"]) == {"CartPole", "Acrobot"}


class _Snapshot(Callback):
    def on_training_start(self, trainer):
        self.buffers = {
            name: {k: v.copy() for k, v in buffer.state().items()}
            for name, buffer in trainer.replay.buffers.items()
        }


def test_resume_with_saved_replay_restores_the_buffers(tmp_path):
    run_dir = tmp_path / "run"
    first = MultiTaskDQN(run_dir=run_dir, **tiny(TWO_TASKS, save_replay=True))
    first.learn(total_steps_per_task=400, evaluate=False)
    assert (run_dir / "replay.npz").is_file()
    saved = {name: buffer.state() for name, buffer in first.trainer.replay.buffers.items()}
    assert list(saved) == ["CartPole", "Acrobot"]
    assert saved["CartPole"]["size"].sum() > 300  # the buffer holds the run's transitions

    resumed = MultiTaskDQN.resume(run_dir)
    assert resumed.state.learning_starts_at == 100  # the buffer is full enough already
    resumed.learn(total_steps_per_task=420, evaluate=False)

    # The buffers are made, and the saved replay loaded, when the phase starts (after
    # `on_training_start`), so the check is on the buffers after the 20 more steps: each env's
    # column still holds the saved transitions (5000 rows: nothing wrapped), then new ones.
    buffers = resumed.trainer.replay.buffers
    assert list(buffers) == list(saved)
    for name, before in saved.items():
        after = buffers[name].state()
        assert before.keys() == after.keys()
        grown = after["size"] - before["size"]
        assert (grown >= 0).all() and 0 < grown.sum() <= 20, name
        np.testing.assert_array_equal(after["pos"], after["size"])
        for key in ("obs", "next_obs", "actions", "rewards", "terminated", "done"):
            for env, rows in enumerate(before["size"]):
                np.testing.assert_array_equal(
                    after[key][:rows, env], before[key][:rows, env], err_msg=f"{name}/{key}"
                )
    # updates ran right away (no refill): 20 more steps, one update per 4
    assert resumed.state.updates == first.state.updates + 5


def test_resume_ignores_a_replay_older_than_the_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    MultiTaskDQN(run_dir=run_dir, **tiny(save_replay=True)).learn(300, evaluate=False)
    replay = (run_dir / "replay.npz").read_bytes()
    resumed = MultiTaskDQN.resume(run_dir)
    resumed.learn(400, evaluate=False)
    (run_dir / "replay.npz").write_bytes(replay)  # the replay of step 300, checkpoint of 400

    again = MultiTaskDQN.resume(run_dir)
    assert again.resumed.replay_arrays is None
    assert again.state.learning_starts_at == 400 + 100


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(CheckpointError, match="not a multiq run folder"):
        MultiTaskDQN.resume(tmp_path)


# --- seeding --------------------------------------------------------------------------------


def _final_weights(run_dir, seed: int) -> dict:
    model = MultiTaskDQN(run_dir=run_dir, **tiny(TWO_TASKS, seed=seed))
    model.learn(total_steps_per_task=300, evaluate=False)
    return model.learner.online.state_dict()


def test_same_seed_same_weights_different_seed_different_weights(tmp_path):
    a = _final_weights(tmp_path / "a", seed=3)
    b = _final_weights(tmp_path / "b", seed=3)
    c = _final_weights(tmp_path / "c", seed=4)
    assert_state_dicts_equal(a, b)
    assert any(not torch.equal(a[k], c[k]) for k in a)


# --- callbacks ------------------------------------------------------------------------------


class _Recorder(Callback):
    def __init__(self, stop_at: int | None = None):
        self.stop_at = stop_at
        self.events: list[str] = []
        self.steps: list[int] = []
        self.evaluations: list[tuple[int, dict]] = []

    def on_training_start(self, trainer):
        self.events.append("start")

    def on_step(self, trainer):
        self.steps.append(trainer.state.env_steps)
        return self.stop_at is None or trainer.state.env_steps < self.stop_at

    def on_evaluation(self, trainer, results):
        self.events.append("evaluation")
        self.evaluations.append((trainer.state.env_steps, results))

    def on_training_end(self, trainer):
        self.events.append("end")


def test_callback_stops_training_early(tmp_path):
    recorder = _Recorder(stop_at=50)
    model = MultiTaskDQN(run_dir=tmp_path / "run", **tiny())
    model.learn(total_steps_per_task=300, callbacks=recorder)

    assert model.state.env_steps == 50
    assert recorder.steps == list(range(1, 51))
    assert recorder.events == ["start", "evaluation", "end"]
    assert model.summary["env_steps_per_task"] == 50
    meta, _ = load_tensors(tmp_path / "run" / CHECKPOINT_FILE, "checkpoint")
    assert meta["state"]["env_steps"] == 50


def test_on_evaluation_receives_per_task_results(tmp_path):
    first, second = _Recorder(), _Recorder()
    model = MultiTaskDQN(run_dir=tmp_path / "run", **tiny(eval_freq=100))
    model.learn(total_steps_per_task=300, callbacks=[first, second])

    assert [step for step, _ in first.evaluations] == [100, 200, 300]
    assert first.events == ["start", "evaluation", "evaluation", "evaluation", "end"]
    assert second.events == first.events
    for _, results in first.evaluations:
        assert set(results) == {"CartPole"}
        assert set(results["CartPole"]) >= {"return_mean", "return_std", "episodes"}
        assert results["CartPole"]["episodes"] == 2
    assert (
        model.summary["tasks"]["CartPole"]["return_mean"]
        == (first.evaluations[-1][1]["CartPole"]["return_mean"])
    )


def test_learn_without_evaluation(tmp_path):
    recorder = _Recorder()
    model = MultiTaskDQN(run_dir=tmp_path / "run", **tiny())
    model.learn(total_steps_per_task=200, callbacks=recorder, evaluate=False)
    assert recorder.evaluations == []
    assert not (tmp_path / "run" / "summary.json").exists()
    assert (tmp_path / "run" / MODEL_FILE).is_file()


def test_second_learn_call_keeps_the_replay(tmp_path):
    model = MultiTaskDQN(run_dir=tmp_path / "run", **tiny())
    model.learn(total_steps_per_task=300, evaluate=False)
    saved = {k: v.copy() for k, v in model.trainer.replay.buffers["CartPole"].state().items()}
    updates = model.state.updates

    snapshot = _Snapshot()
    model.learn(total_steps_per_task=320, callbacks=snapshot, evaluate=False)

    assert model.state.env_steps == 320
    assert model.state.updates == updates + 5
    for key, value in saved.items():
        np.testing.assert_array_equal(snapshot.buffers["CartPole"][key], value, err_msg=key)
    # the 20 new steps were added to the kept transitions (less the autoreset steps)
    grown = len(model.trainer.replay.buffers["CartPole"]) - int(saved["size"].sum())
    assert 0 < grown <= 20


def test_the_file_format_names_of_the_api_module_moved_with_an_alias():
    import multiq.api
    from multiq.train import persistence
    from multiq.train.device import resolve_device

    for name in multiq.api.MOVED_NAMES:
        with pytest.warns(DeprecationWarning, match="multiq.train.persistence"):
            assert getattr(multiq.api, name) == getattr(persistence, name)
    assert multiq.api.resolve_device is resolve_device  # importable where it was
