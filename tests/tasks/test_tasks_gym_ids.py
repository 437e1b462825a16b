"""The `gym:<id>` adapter: any Gymnasium id, kwargs to gym.make, clear errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from multiq.errors import TaskError
from multiq.tasks import make_taskset
from multiq.tasks.gym_ids import ChannelFirst, is_channel_last


def test_gym_id_default_name_and_source():
    (task,) = make_taskset("gym:CartPole-v1")
    assert (task.name, task.env_id, task.obs_shape, task.num_actions) == (
        "CartPole",
        "CartPole-v1",
        (4,),
        2,
    )
    assert task.source == {"id": "gym:CartPole-v1", "name": "CartPole", "kwargs": {}}


def test_kwargs_go_to_gym_make_and_max_episode_steps_truncates_at_50():
    entry = {"id": "gym:CartPole-v1", "name": "short", "kwargs": {"max_episode_steps": 50}}
    (task,) = make_taskset([entry])
    assert task.name == "short"
    env = task.make_env()
    obs, _ = env.reset(seed=0)
    for step in range(1, 51):
        obs, _, terminated, truncated, _ = env.step(int(obs[2] + obs[3] > 0))
        assert not terminated
        assert truncated == (step == 50)


def test_namespaced_ids_are_registered_and_images_made_channel_first():
    pong, breakout = make_taskset("gym:ALE/Pong-v5,gym:MinAtar/Breakout-v1")
    assert (pong.name, pong.obs_shape, pong.obs_dtype) == ("Pong", (3, 210, 160), np.uint8)
    assert (breakout.name, breakout.obs_shape) == ("Breakout", (4, 10, 10))
    env = breakout.make_env()
    assert isinstance(env, ChannelFirst)
    assert env.reset(seed=0)[0].shape == (4, 10, 10)


def test_is_channel_last():
    assert is_channel_last(gym.spaces.Box(0, 1, (10, 10, 4)))
    assert not is_channel_last(gym.spaces.Box(0, 1, (4, 84, 84)))
    assert not is_channel_last(gym.spaces.Box(0, 1, (4,)))
    assert not is_channel_last(gym.spaces.Discrete(3))


def test_unknown_gym_id_suggests_close_matches():
    message = r"unknown Gymnasium id 'CartPol-v1' in task entry 'gym:CartPol-v1'; did you mean"
    with pytest.raises(TaskError, match=message + r" 'CartPole-v1'"):
        make_taskset("gym:CartPol-v1")


def test_continuous_action_space_is_rejected():
    message = (
        r"task 'Pendulum' \(Pendulum-v1\) has action space Box\(.*need a Discrete action space"
    )
    with pytest.raises(TaskError, match=message):
        make_taskset("gym:Pendulum-v1")


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "Blackjack-v1"])
def test_non_box_observation_space_is_rejected(env_id):
    message = (
        r"observation space .*; supported observation spaces are Box vectors \(1-D\) and images"
    )
    with pytest.raises(TaskError, match=message):
        make_taskset(f"gym:{env_id}")


def test_bad_kwarg_name_is_a_task_error():
    entry = {"id": "gym:CartPole-v1", "kwargs": {"pole_length": 2.0}}
    with pytest.raises(
        TaskError, match=r"task 'CartPole' \(CartPole-v1\): bad kwargs .*pole_length"
    ):
        make_taskset([entry])


def test_failing_env_constructor_is_a_one_line_task_error():
    entry = {"id": "gym:FrozenLake-v1", "kwargs": {"map_name": "9x9"}}
    message = r"task 'FrozenLake' \(FrozenLake-v1\) cannot be built: KeyError: '9x9'"
    with pytest.raises(TaskError, match=message) as info:
        make_taskset([entry])
    assert "\n" not in str(info.value)
