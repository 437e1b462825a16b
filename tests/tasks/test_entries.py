"""Task entries as Stable-Baselines3 and Gymnasium users write them: a registered id without
`gym:`, an env factory, an env class with kwargs, and an env instance."""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control import CartPoleEnv
from tiny_config import TINY_RUN

from multiq import MultiTaskDQN
from multiq.config import Config
from multiq.errors import ConfigError, EnvError, TaskError
from multiq.tasks import make_taskset, task_entries

RUN = TINY_RUN | {"n_envs": 2, "total_steps_per_task": 200}


def make_acrobot() -> gym.Env:
    """A module-level factory: importable, so a run's config can rebuild it."""
    return gym.make("Acrobot-v1")


def make_plain_cartpole() -> gym.Env:
    """A factory of an env without a spec (its class called directly)."""
    return CartPoleEnv()


def first_obs(spec, seed: int = 3) -> np.ndarray:
    env = spec.make_env()
    obs, _ = env.reset(seed=seed)
    env.close()
    return obs


# --- bare ids ------------------------------------------------------------------------------


def test_a_registered_id_without_prefix_is_the_gym_entry():
    bare, prefixed = make_taskset("CartPole-v1,Acrobot-v1"), make_taskset("gym:CartPole-v1")
    assert bare.names == ["CartPole", "Acrobot"]
    assert task_entries(bare)[0] == task_entries(prefixed)[0]
    assert task_entries(bare)[0]["id"] == "gym:CartPole-v1"
    np.testing.assert_array_equal(first_obs(bare[0]), first_obs(prefixed[0]))


def test_an_unknown_bare_id_suggests_the_registered_one():
    with pytest.raises(TaskError, match=r"unknown task entry 'CartPole-v9'; did you mean "
                       r"'CartPole-v1'") as info:  # fmt: skip
        make_taskset("CartPole-v9")
    assert "a registered Gymnasium id" in str(info.value)


def test_a_suite_name_still_wins_over_a_gym_id():
    assert make_taskset("classic:CartPole").names == ["CartPole"]
    assert task_entries(make_taskset("classic:CartPole"))[0]["id"] == "classic:CartPole"


# --- factories and classes -----------------------------------------------------------------


def test_a_factory_is_named_after_its_envs_spec_and_recorded_by_import_path():
    tasks = make_taskset(make_acrobot)
    assert tasks.names == ["Acrobot"] and tasks[0].env_id == "Acrobot-v1"
    assert task_entries(tasks) == [
        {"id": "factory:test_entries:make_acrobot", "name": "Acrobot", "kwargs": {}}
    ]
    assert tasks[0].num_actions == 3 and tasks[0].obs_shape == (6,)


def test_a_class_with_kwargs_gets_them_and_its_class_name():
    entry = {"id": CartPoleEnv, "kwargs": {"sutton_barto_reward": True}}
    (spec,) = make_taskset([entry])
    assert spec.name == "CartPoleEnv" and spec.env_id.endswith("cartpole:CartPoleEnv")
    assert spec.make_env().unwrapped._sutton_barto_reward is True
    assert spec.source == {
        "id": "factory:gymnasium.envs.classic_control.cartpole:CartPoleEnv",
        "name": "CartPoleEnv",
        "kwargs": {"sutton_barto_reward": True},
    }


def test_name_rules_given_spec_function_class():
    tasks = make_taskset(
        [
            {"id": make_acrobot, "name": "mine"},  # given
            lambda: gym.make("MountainCar-v0"),  # the spec's short id
            make_plain_cartpole,  # no spec: the function's name
            {"id": lambda: CartPoleEnv(), "name": None},  # a lambda: the env's class
        ]
    )
    assert tasks.names == ["mine", "MountainCar", "make_plain_cartpole", "CartPoleEnv"]


def test_a_partial_is_recorded_as_its_function_with_the_merged_kwargs():
    factory = functools.partial(CartPoleEnv, sutton_barto_reward=True)
    (spec,) = make_taskset([{"id": factory, "name": "sb"}])
    assert spec.source["id"].endswith("cartpole:CartPoleEnv")
    assert spec.source["kwargs"] == {"sutton_barto_reward": True}


def test_a_factory_that_is_not_importable_is_recorded_as_python():
    def local_factory() -> gym.Env:
        return gym.make("CartPole-v1")

    tasks = make_taskset([local_factory, {"id": lambda: CartPoleEnv(), "name": "lam"}])
    ids = [entry["id"] for entry in task_entries(tasks)]
    assert ids[0].startswith("python:test_entries:") and ids[0].endswith("local_factory")
    assert ids[1] == "python:test_entries:test_a_factory_that_is_not_importable_is_recorded_" \
        "as_python.<locals>.<lambda>"  # fmt: skip
    with pytest.raises(TaskError, match=r"cannot rebuild .* pass the same factory again"):
        make_taskset(task_entries(tasks)[1:])


def test_a_factory_entry_string_rebuilds_and_bad_ones_say_why():
    (spec,) = make_taskset("factory:test_entries:make_acrobot")
    assert spec.name == "Acrobot" and spec.source["id"] == "factory:test_entries:make_acrobot"
    with pytest.raises(TaskError, match=r"needs factory:<module>:<name>"):
        make_taskset("factory:test_entries")
    with pytest.raises(TaskError, match=r"module 'test_entries' has no 'nope'"):
        make_taskset("factory:test_entries:nope")


def test_a_factory_that_fails_or_returns_no_env_is_a_task_error():
    with pytest.raises(TaskError, match=r"returned int, not a gymnasium.Env"):
        make_taskset(lambda: 3)
    with pytest.raises(TaskError, match=r"factory .*CartPoleEnv raised TypeError"):
        make_taskset([{"id": CartPoleEnv, "kwargs": {"no_such_kwarg": 1}}])


def test_a_config_refuses_python_objects_and_says_where_they_go():
    for tasks in (make_acrobot, [make_acrobot], [{"id": CartPoleEnv}]):
        with pytest.raises(ConfigError, match=r"a config cannot hold: pass it to MultiTaskDQN"):
            Config(tasks=tasks)


# --- env instances -------------------------------------------------------------------------


def test_an_instance_made_by_gym_make_becomes_its_gym_entry():
    env = gym.make("CartPole-v1", max_episode_steps=50, render_mode="rgb_array")
    (spec,) = make_taskset(env)
    assert spec.source == {
        "id": "gym:CartPole-v1",
        "name": "CartPole",
        "kwargs": {"max_episode_steps": 50},
    }  # render_mode dropped: multiq's envs do not render
    built = spec.make_env()
    assert built.spec.max_episode_steps == 50 and built.render_mode is None
    assert env.spec.max_episode_steps == 50  # the instance itself is left as it was


def test_an_instance_with_recreatable_wrappers_is_rebuilt_from_its_spec():
    env = gym.wrappers.TransformReward(gym.make("CartPole-v1"), lambda r: 2 * r)
    (spec,) = make_taskset([{"id": env, "name": "double"}])
    built = spec.make_env()
    built.reset(seed=0)
    assert built.step(0)[1] == 2.0
    assert spec.source["id"].startswith("python:gymnasium.make(<spec of CartPole-v1 wrapped")


class PlainWrapper(gym.Wrapper):
    """A wrapper Gymnasium cannot recreate (no RecordConstructorArgs)."""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (CartPoleEnv(), r"it has no `spec`.*pass the id 'CartPole-v1', the class \(\{'id': "
         r"CartPoleEnv, 'kwargs': \{\.\.\.\}\}\) or a factory such as `lambda: gymnasium.make"),
        (PlainWrapper(gym.make("CartPole-v1")), r"PlainWrapper do not inherit from "
         r"gymnasium.utils.RecordConstructorArgs; pass the id 'CartPole-v1'"),
        (gym.make_vec("CartPole-v1", num_envs=2), r"is a vector env; multiq builds its own"),
    ],
)  # fmt: skip
def test_an_instance_that_cannot_be_recreated_is_refused_with_what_to_pass(env, message):
    with pytest.raises(TaskError, match=message):
        MultiTaskDQN(env, device="cpu")


def test_an_instance_takes_no_kwargs():
    with pytest.raises(TaskError, match=r"pass its class with them instead"):
        make_taskset([{"id": gym.make("CartPole-v1"), "kwargs": {"sutton_barto_reward": True}}])


# --- training and saved runs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tasks", "names"),
    [
        (make_acrobot, ["Acrobot"]),
        ([{"id": CartPoleEnv, "kwargs": {"sutton_barto_reward": True}, "name": "sb"}], ["sb"]),
        (["CartPole-v1"], ["CartPole"]),
    ],
    ids=["factory", "class", "bare-id"],
)
def test_a_factory_a_class_and_a_bare_id_train(tmp_path, tasks, names):
    model = MultiTaskDQN(tasks, run_dir=tmp_path, **RUN).learn()
    assert model.task_names == names and model.state.env_steps >= 200 * len(names)
    saved = Config.from_yaml(tmp_path / "config.yaml")
    assert make_taskset(saved.tasks).names == names  # config.yaml rebuilds the tasks
    loaded = MultiTaskDQN.load(tmp_path)
    assert set(loaded.evaluate(episodes=1)) == set(names)


def test_a_lambda_run_loads_and_needs_its_factory_again_for_envs(tmp_path):
    factory = lambda: gym.make("CartPole-v1")  # noqa: E731 (the case under test)
    MultiTaskDQN([{"id": factory, "name": "cp"}], run_dir=tmp_path, **RUN).learn()
    assert Config.from_yaml(tmp_path / "config.yaml").tasks == [
        {"id": "python:test_entries:test_a_lambda_run_loads_and_needs_its_factory_again_for_"
         "envs.<locals>.<lambda>", "name": "cp"}
    ]  # fmt: skip
    loaded = MultiTaskDQN.load(tmp_path)
    assert loaded.predict(np.zeros(4, np.float32), task="cp") in (0, 1)  # no env needed
    with pytest.raises((TaskError, EnvError), match=r"pass the same factory again"):
        loaded.evaluate(episodes=1)
    again = MultiTaskDQN.load(tmp_path, tasks=[{"id": factory, "name": "cp"}])
    assert set(again.evaluate(episodes=1)) == {"cp"}
    with pytest.raises(TaskError, match=r"resume from Python with the same factories"):
        MultiTaskDQN.resume(tmp_path)  # refused before anything trains
    resumed = MultiTaskDQN.resume(tmp_path, tasks=[{"id": factory, "name": "cp"}])
    resumed.learn(total_steps_per_task=300, evaluate=False)
    assert resumed.state.env_steps >= 300
    with pytest.raises(TaskError, match=r"lack the saved task\(s\) \['cp'\]"):
        MultiTaskDQN.resume(tmp_path, tasks=[factory])
