"""Entry parsing, the suite registry, describe_suites and the entry errors."""

from __future__ import annotations

import pickle

import pytest

from multiq.errors import TaskError
from multiq.tasks import SUITES, Suite, TaskSet, describe_suites, make_taskset
from multiq.tasks.gym_ids import build_spec, make_gym_task


def test_registry_has_the_builtin_suites():
    assert list(SUITES) == ["minatar", "classic", "atari", "gym"]
    assert all(isinstance(suite, Suite) for suite in SUITES.values())


def test_comma_separated_string_with_spaces_and_trailing_comma():
    tasks = make_taskset(" minatar:Breakout , minatar:Freeway ,")
    assert isinstance(tasks, TaskSet)
    assert tasks.names == ["Breakout", "Freeway"]


def test_list_of_strings_and_dicts_keeps_entry_order():
    entries = ["classic:Acrobot,gym:CartPole-v1", {"id": "minatar:Asterix", "name": "ast"}]
    assert make_taskset(entries).names == ["Acrobot", "CartPole", "ast"]


def test_dict_entry_with_name_and_suite_options():
    entry = {"id": "minatar:Breakout", "name": "bo6", "kwargs": {"full_action_set": True}}
    (task,) = make_taskset(entry)
    assert (task.name, task.env_id, task.num_actions) == ("bo6", "MinAtar/Breakout-v0", 6)
    kwargs = {"full_action_set": True, "sticky_action_prob": 0.0}
    assert task.source == {"id": "minatar:Breakout", "name": "bo6", "kwargs": kwargs}


def test_suite_options_apply_to_every_task_of_a_suite_entry():
    tasks = make_taskset([{"id": "minatar", "kwargs": {"sticky_action_prob": 0.2}}])
    assert all(t.source["kwargs"]["sticky_action_prob"] == 0.2 for t in tasks)
    assert [t.source["id"] for t in tasks][:2] == ["minatar:Asterix", "minatar:Breakout"]


def test_sources_rebuild_the_same_tasks():
    entries = [
        "minatar:Seaquest",
        {"id": "gym:CartPole-v1", "name": "cp", "kwargs": {"max_episode_steps": 9}},
    ]
    tasks = make_taskset(entries)
    rebuilt = make_taskset([t.source for t in tasks])
    assert [(t.name, t.env_id, t.observation_space, t.action_space, t.source) for t in rebuilt] == [
        (t.name, t.env_id, t.observation_space, t.action_space, t.source) for t in tasks
    ]


def test_make_env_is_picklable_for_subprocess_vector_envs():
    tasks = make_taskset("minatar:Freeway,classic:CartPole,atari:Tetris,gym:Acrobot-v1")
    for task in tasks:
        env = pickle.loads(pickle.dumps(task.make_env))(evaluation=True)
        assert env.observation_space == task.observation_space
        env.close()


def test_a_new_suite_is_added_through_the_registry(monkeypatch):
    def build(member, name, options):
        make_env = lambda evaluation=False: make_gym_task("CartPole-v1", member, {})  # noqa: E731
        return build_spec(name or member, "CartPole-v1", make_env)

    monkeypatch.setitem(SUITES, "toy", Suite("toy", "toy tasks", build, ("One", "Two"), {}))
    assert make_taskset("toy").names == ["One", "Two"]
    assert "toy: toy tasks" in describe_suites()


def test_describe_suites_lists_every_suite_and_task():
    text = describe_suites()
    for suite in SUITES.values():
        assert f"{suite.name}: " in text
        assert all(member in text for member in suite.members)
    assert "MinAtar/Seaquest-v1" in text and "(10, 10, 10) bool" in text
    assert "ALE/Tetris-v5" in text and "(4, 84, 84) uint8" in text
    assert "sticky_action_prob=0.0" in text and "clip_rewards=True" in text


def test_duplicate_task_names_are_rejected():
    with pytest.raises(TaskError, match=r"unique, repeated: \['Breakout'\]"):
        make_taskset("minatar:Breakout,gym:MinAtar/Breakout-v1")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("foo", r"unknown task entry 'foo'; supported: a suite name \(minatar, classic, atari\)"),
        ("minatr", r"unknown task entry 'minatr'; did you mean 'minatar'\?"),
        ("CartPole-v9", r"did you mean 'CartPole-v1'"),  # bare registered ids are taken
        ("breakout", r"did you mean 'minatar:Breakout'\?"),
        (
            "atari:Pong",
            r"unknown member 'Pong' of suite 'atari'.*members are Tetris, Pacman, MsPacman",
        ),
        ("minatar:Brekout", r"did you mean 'Breakout'\?"),
        ("gym", r"task entry 'gym' needs an id: gym:<id>"),
        ("", r"the task set is empty"),
        (5, r"tasks must be a string or a list of entries"),
        ([3.0], r"a task entry must be a string or a dict, got 3.0"),
        ([{"name": "x"}], r"a task entry dict needs a string `id`"),
        ([{"id": "classic", "args": {}}], r"a task entry dict needs a string `id`"),
        ([{"id": "classic:CartPole", "name": ""}], r"`name` must be a non-empty string"),
        ([{"id": "classic:CartPole", "kwargs": [1]}], r"`kwargs` must be a dict"),
        (
            [{"id": "minatar", "name": "x"}],
            r"'minatar' has several tasks and cannot take one `name`",
        ),
    ],
)
def test_malformed_or_unknown_entries(entries, message):
    with pytest.raises(TaskError, match=message) as info:
        make_taskset(entries)
    assert "\n" not in str(info.value)


def test_unknown_suite_option_names_suite_option_and_valid_options():
    entry = {"id": "minatar:Breakout", "kwargs": {"sticky_prob": 0.1}}
    message = (
        r"option\(s\) sticky_prob for suite 'minatar'.*options: full_action_set, sticky_action_prob"
    )
    with pytest.raises(TaskError, match=message):
        make_taskset([entry])


@pytest.mark.parametrize(
    ("key", "value"),
    [("full_action_set", 1), ("sticky_action_prob", "0.1"), ("sticky_action_prob", True)],
)
def test_wrong_option_type(key, value):
    with pytest.raises(TaskError, match=rf"option '{key}' of suite 'minatar' must be a"):
        make_taskset([{"id": "minatar:Breakout", "kwargs": {key: value}}])


def test_int_is_accepted_for_a_float_option():
    (task,) = make_taskset([{"id": "atari:Tetris", "kwargs": {"repeat_action_probability": 0}}])
    assert task.source["kwargs"]["repeat_action_probability"] == 0
