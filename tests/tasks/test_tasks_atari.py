"""The atari suite: preprocessing, options and the evaluation variant."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TransformReward

from multiq.errors import TaskError
from multiq.tasks import make_taskset
from multiq.tasks.atari import sign


def find_wrapper(env: gym.Env, kind: type) -> gym.Wrapper | None:
    """The outermost wrapper of type `kind` around `env`, or None."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, kind):
            return env
        env = env.env
    return None


@pytest.fixture(scope="module")
def tetris():
    return make_taskset("atari:Tetris")[0]


def test_atari_suite_members():
    tasks = make_taskset("atari")
    assert tasks.names == ["Tetris", "Pacman", "MsPacman"]
    assert [t.env_id for t in tasks] == ["ALE/Tetris-v5", "ALE/Pacman-v5", "ALE/MsPacman-v5"]


def test_tetris_observations_are_four_stacked_84x84_uint8_frames(tetris):
    assert tetris.obs_shape == (4, 84, 84) and tetris.obs_dtype == np.uint8
    env = tetris.make_env()
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert tetris.observation_space.contains(obs)
    assert isinstance(env, FrameStackObservation)
    env.close()


def test_training_env_clips_rewards_and_evaluation_env_does_not(tetris):
    train, evaluation = tetris.make_env(), tetris.make_env(evaluation=True)
    assert find_wrapper(train, TransformReward) is not None
    assert find_wrapper(evaluation, TransformReward) is None
    assert [sign(r) for r in (5.0, -0.5, 0)] == [1.0, -1.0, 0.0]


def test_life_loss_terminal_only_in_training():
    task = make_taskset([{"id": "atari:Tetris", "kwargs": {"terminal_on_life_loss": True}}])[0]
    assert find_wrapper(task.make_env(), AtariPreprocessing).terminal_on_life_loss
    assert not find_wrapper(
        task.make_env(evaluation=True), AtariPreprocessing
    ).terminal_on_life_loss


def test_ale_options_are_passed_on():
    kwargs = {
        "repeat_action_probability": 0.0, "full_action_space": True, "clip_rewards": False,
        "noop_max": 1,
    }  # fmt: skip
    task = make_taskset([{"id": "atari:Tetris", "kwargs": kwargs}])[0]
    env = task.make_env()
    assert task.num_actions == 18
    assert env.unwrapped.ale.getFloat("repeat_action_probability") == 0.0
    assert find_wrapper(env, TransformReward) is None
    assert find_wrapper(env, AtariPreprocessing).noop_max == 1
    assert task.source["kwargs"] == {**kwargs, "terminal_on_life_loss": False}


def test_a_negative_noop_max_is_refused():
    with pytest.raises(TaskError, match="noop_max must be >= 0, got -1"):
        make_taskset([{"id": "atari:Tetris", "kwargs": {"noop_max": -1}}])


def test_missing_ale_py_is_a_task_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)
    with pytest.raises(TaskError, match="Atari tasks need the ale-py package"):
        make_taskset("atari:Tetris")


def test_missing_opencv_is_a_task_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(TaskError, match=r"task 'Tetris' \(ALE/Tetris-v5\) cannot be built.*opencv"):
        make_taskset("atari:Tetris")
