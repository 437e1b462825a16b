"""`predict` as Stable-Baselines3 users call it: `deterministic`, and no task for a one-task
agent; the multiq calls (`task`, `epsilon`) keep working."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_config

from multiq.api import MultiTaskDQN
from multiq.errors import TaskError

TINY = tiny_config.TINY


def model(tmp_path, tasks: str = "classic:CartPole", **changes) -> MultiTaskDQN:
    return MultiTaskDQN(tasks, run_dir=tmp_path / "run", **{**TINY, **changes})


def same_obs(agent: MultiTaskDQN, count: int = 300, task: int = 0) -> np.ndarray:
    space = agent.task_specs[task].observation_space
    space.seed(0)
    return np.repeat(space.sample()[None], count, axis=0)


def test_sb3_call_on_a_one_task_agent_is_greedy(tmp_path):
    agent = model(tmp_path, exploration_final_eps=1.0)
    obs = same_obs(agent)
    greedy = agent.predict(obs, "CartPole")
    actions = agent.predict(obs, deterministic=True)  # SB3: model.predict(obs, deterministic=True)
    assert len(set(greedy.tolist())) == 1
    np.testing.assert_array_equal(actions, greedy)
    single = agent.predict(obs[0], deterministic=True)
    assert type(single) is int and single == greedy[0]


@pytest.mark.parametrize(("final_eps", "random"), [(1.0, True), (0.0, False)])
def test_not_deterministic_explores_with_the_final_exploration_rate(tmp_path, final_eps, random):
    agent = model(tmp_path, exploration_final_eps=final_eps)
    actions = agent.predict(same_obs(agent), deterministic=False)
    assert (set(actions.tolist()) == {0, 1}) is random


def test_not_deterministic_with_an_epsilon_uses_that_epsilon(tmp_path):
    agent = model(tmp_path, exploration_final_eps=1.0)
    actions = agent.predict(same_obs(agent), epsilon=0.0, deterministic=False)
    assert len(set(actions.tolist())) == 1


def test_deterministic_with_a_positive_epsilon_is_refused(tmp_path):
    agent = model(tmp_path)
    with pytest.raises(ValueError, match="deterministic=True and epsilon=0.5"):
        agent.predict(same_obs(agent, 1)[0], epsilon=0.5, deterministic=True)


def test_multiq_calls_keep_working(tmp_path):
    agent = model(tmp_path, exploration_final_eps=1.0)
    obs = same_obs(agent)
    greedy = agent.predict(obs, "CartPole")
    np.testing.assert_array_equal(agent.predict(obs, 0), greedy)
    np.testing.assert_array_equal(agent.predict(obs, task="CartPole", epsilon=0.0), greedy)
    np.testing.assert_array_equal(agent.predict(obs), greedy)  # default: greedy, as before
    assert set(agent.predict(obs, task="CartPole", epsilon=1.0).tolist()) == {0, 1}


def test_leaving_out_the_task_of_a_several_task_agent_names_its_tasks(tmp_path):
    agent = model(tmp_path, "classic:CartPole,classic:Acrobot")
    with pytest.raises(TaskError) as info:
        agent.predict(same_obs(agent, 1)[0], deterministic=True)
    message = str(info.value)
    assert "2 tasks ['CartPole', 'Acrobot']" in message and "task=" in message
    assert agent.predict(same_obs(agent, 1, task=1)[0], "Acrobot", deterministic=True) in (0, 1, 2)
