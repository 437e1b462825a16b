"""Task families: seeded splits, the wrappers that set each task's parameters, entries, errors."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.acrobot import AcrobotEnv

from multiq.errors import TaskError
from multiq.tasks import describe_suites, make_taskset, task_entries
from multiq.tasks.families import FAMILIES, check_family, family_params, family_tasks

CARTPOLE_KEYS = ("length", "masspole", "masscart", "force_mag")
ACROBOT_KEYS = ("LINK_LENGTH_1", "LINK_LENGTH_2", "LINK_MASS_1", "LINK_MASS_2")
SMALL = {"pool": 10, "held_out": 3}


def trajectory(task, steps: int = 30) -> np.ndarray:
    """The observations of one episode start: reset with seed 0, then a fixed action sequence."""
    env = task.make_env()
    obs, _ = env.reset(seed=0)
    observations = [obs]
    for step in range(steps):
        obs, _, terminated, truncated, _ = env.step(step % task.num_actions)
        observations.append(obs)
        if terminated or truncated:
            break
    env.close()
    return np.array(observations)


def attributes(task, keys) -> list[float]:
    unwrapped = task.make_env().unwrapped
    return [getattr(unwrapped, key) for key in keys]


def layout(env: gym.Env) -> tuple:
    """The MiniGrid env's full grid and the agent's start."""
    unwrapped = env.unwrapped
    return unwrapped.grid.encode().tobytes(), tuple(unwrapped.agent_pos), unwrapped.agent_dir


def test_registry_has_the_families():
    assert {"cartpole-physics", "acrobot-physics", "minatar-variants", "minigrid"} <= set(FAMILIES)
    assert check_family("minigrid") is FAMILIES["minigrid"]


@pytest.mark.parametrize("family", ["cartpole-physics", "minatar-variants", "minigrid"])
def test_parameter_sets_are_reproducible_by_seed(family):
    first = family_params(family, "train", {"seed": 3})
    assert first == family_params(family, "train", {"seed": 3})
    assert first != family_params(family, "train", {"seed": 4})
    assert first != family_params(family, "train")
    assert pool_of(family, 3) != pool_of(family, 4)  # other parameters, not just another split


def pool_of(family: str, seed: int) -> set[tuple]:
    """Every parameter set of a family's pool, whatever its split."""
    splits = [family_params(family, split, {"seed": seed}) for split in ("train", "held-out")]
    return {tuple(params.values()) for split in splits for params in split}


@pytest.mark.parametrize("options", [{}, {"pool": 5, "held_out": 4, "seed": 9}])
def test_splits_are_disjoint_and_cover_the_pool(options):
    train = family_params("cartpole-physics", "train", options)
    held_out = family_params("cartpole-physics", "held-out", options)
    pool, held = options.get("pool", 64), options.get("held_out", 16)
    assert (len(train), len(held_out)) == (pool - held, held)
    sets = {tuple(p.values()) for p in train} | {tuple(p.values()) for p in held_out}
    assert len(sets) == pool  # no parameter set in both splits, none repeated


def test_fewer_tasks_are_a_prefix_of_more():
    eight = make_taskset("family:cartpole-physics:train:8")
    ten = family_tasks("cartpole-physics", "train", 10)
    assert eight.names == [t.name for t in ten][:8]
    assert [attributes(t, CARTPOLE_KEYS) for t in eight] == [
        attributes(t, CARTPOLE_KEYS) for t in ten[:8]
    ]
    (fifth,) = make_taskset("family:cartpole-physics:train@5")
    assert attributes(fifth, CARTPOLE_KEYS) == attributes(ten[5], CARTPOLE_KEYS)


@pytest.mark.parametrize("family", ["cartpole-physics", "acrobot-physics"])
def test_physics_parameters_change_the_dynamics(family):
    first, second = family_tasks(family, "train", 2)
    assert np.array_equal(trajectory(first), trajectory(first))
    one, other = trajectory(first), trajectory(second)
    assert one.shape != other.shape or not np.allclose(one, other)
    np.testing.assert_array_equal(one[0], other[0])  # the same start: only the dynamics differ


def test_cartpole_wrapper_sets_the_attributes_and_the_derived_ones():
    params = family_params("cartpole-physics", "held-out")[2]
    (task,) = make_taskset("family:cartpole-physics:held-out@2")
    env = task.make_env().unwrapped
    assert attributes(task, CARTPOLE_KEYS) == [params[k] for k in CARTPOLE_KEYS]
    assert env.total_mass == pytest.approx(params["masspole"] + params["masscart"])
    assert env.polemass_length == pytest.approx(params["masspole"] * params["length"])
    assert gym.make("CartPole-v1").unwrapped.length == 0.5


def test_acrobot_wrapper_sets_the_instance_and_centres_of_mass():
    params = family_params("acrobot-physics", "train")[0]
    env = make_taskset("family:acrobot-physics:train@0")[0].make_env().unwrapped
    assert [getattr(env, k) for k in ACROBOT_KEYS] == [params[k] for k in ACROBOT_KEYS]
    centres = [getattr(env, f"LINK_COM_POS_{link}") for link in (1, 2)]
    assert centres == [params["LINK_LENGTH_1"] / 2, params["LINK_LENGTH_2"] / 2]
    assert (AcrobotEnv.LINK_LENGTH_1, AcrobotEnv.LINK_COM_POS_2) == (1.0, 0.5)


@pytest.mark.parametrize("ramping_prob", [0.0, 1.0])
def test_minatar_variants_set_sticky_actions_and_ramping(ramping_prob):
    options = {"game": "Asterix", "ramping_prob": ramping_prob, **SMALL}
    tasks = family_tasks("minatar-variants", "train", 3, options)
    params = family_params("minatar-variants", "train", options)
    for task, drawn in zip(tasks, params, strict=False):
        game = task.make_env().unwrapped.game
        assert game.sticky_action_prob == drawn["sticky_action_prob"]
        assert game.env.ramping is drawn["difficulty_ramping"] is bool(ramping_prob)
    assert len({p["sticky_action_prob"] for p in params}) == len(params)
    assert all(0.0 <= p["sticky_action_prob"] <= 0.25 for p in params)
    assert tasks[0].env_id == "MinAtar/Asterix-v1" and tasks[0].obs_shape == (4, 10, 10)


def test_minigrid_task_is_one_fixed_layout():
    first, second = family_tasks("minigrid", "train", 2)
    env = first.make_env()
    obs, _ = env.reset(seed=1)
    start = layout(env)
    assert (first.obs_shape, first.obs_dtype) == ((3, 7, 7), np.uint8)
    draws = {}  # the reset seed reseeds the env's RNG once the layout is built
    for seed in (2, None, 1, 2):
        again, _ = env.reset(seed=seed)
        assert layout(env) == start
        np.testing.assert_array_equal(again, obs)
        draws.setdefault(seed, set()).add(env.unwrapped.np_random.random())
    assert len(draws[2]) == 1 and draws[1] != draws[2]
    other = second.make_env()
    other.reset(seed=1)
    assert layout(other) != start


def test_names_sources_and_round_trip():
    entries = [
        "family:cartpole-physics:held-out:2",
        {"id": "family:acrobot-physics:train@4", "name": "acro", "kwargs": SMALL},
        {"id": "family:minigrid:train:1", "name": "grid"},
    ]
    tasks = make_taskset(entries)
    assert tasks.names == ["cartpole-physics-h0", "cartpole-physics-h1", "acro", "grid"]
    assert tasks["acro"].source == {
        "id": "family:acrobot-physics:train@4",
        "name": "acro",
        "kwargs": {**FAMILIES["acrobot-physics"].defaults, **SMALL},
    }
    assert tasks["grid"].source["id"] == "family:minigrid:train@0"
    rebuilt = make_taskset(task_entries(tasks))
    assert [t.source for t in rebuilt] == [t.source for t in tasks]
    assert attributes(rebuilt["acro"], ACROBOT_KEYS) == attributes(tasks["acro"], ACROBOT_KEYS)
    assert [t.env_id for t in rebuilt] == ["CartPole-v1"] * 2 + ["Acrobot-v1", tasks[3].env_id]


def test_family_defaults_to_its_train_split_and_make_env_pickles():
    tasks = make_taskset([{"id": "family:cartpole-physics", "kwargs": {"length": (0.3, 0.4)}}])
    assert len(tasks) == 48 and tasks.names[-1] == "cartpole-physics-t47"
    assert tasks[0].source["kwargs"]["length"] == [0.3, 0.4]
    env = pickle.loads(pickle.dumps(tasks[0].make_env))()
    assert 0.3 <= env.unwrapped.length <= 0.4


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "family:cartpol-physics",
            r"unknown task family 'cartpol-physics'; did you mean 'cartpole-physics'.*\? "
            r"families: cartpole-physics, acrobot-physics",
        ),
        ("famly:minigrid", r"did you mean 'family'\?"),
        ("family", r"task entry 'family' does not match family:<name>"),
        ("family:minigrid:train:2:3", r"does not match family:<name>\[:<split>"),
        ("family:minigrid:test", r"unknown split 'test'.*splits: train, held-out"),
        ("family:minigrid:heldout", r"did you mean 'held-out'\?"),
        ("family:minigrid:train:0", r"task count in .* must be an integer >= 1, got '0'"),
        ("family:minigrid:train:two", r"task count in .* must be an integer >= 1, got 'two'"),
        ("family:minigrid:train@-1", r"task index in .* must be an integer >= 0, got '-1'"),
        (
            "family:cartpole-physics:train:49",
            r"needs 49 task\(s\) of the train split of family 'cartpole-physics', which holds 48 "
            r"\(pool=64, held_out=16\); raise the option `pool`",
        ),
        (
            "family:minigrid:held-out@16",
            r"needs 17 task\(s\) of the held-out split .* holds 16 .*raise the option `held_out`",
        ),
        (
            {"id": "family:minigrid:train:2", "name": "x"},
            r"has several tasks and cannot take one `name`",
        ),
    ],
)
def test_bad_entries(entry, message):
    with pytest.raises(TaskError, match=message) as info:
        make_taskset([entry])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("family", "kwargs", "message"),
    [
        (
            "cartpole-physics",
            {"length": [0, 1]},
            r"option 'length' of family 'cartpole-physics' is \[0, 1\]: 0 is outside the "
            r"allowed bounds \(0.0, 5.0\]",
        ),
        ("cartpole-physics", {"length": [2, 1]}, r"'length' .* is \[2, 1\]: a range needs low"),
        ("cartpole-physics", {"force_mag": [50, 150]}, r"150 is outside .* \(0.0, 100.0\]"),
        ("acrobot-physics", {"LINK_MASS_2": [1, 11]}, r"'LINK_MASS_2' .* 11 is outside"),
        ("minatar-variants", {"sticky_action_prob": [-0.1, 0.5]}, r"outside .* \[0.0, 1.0\]"),
        ("cartpole-physics", {"length": [1]}, r"'length' .* must be a \[low, high\] list"),
        ("cartpole-physics", {"length": "0.5"}, r"must be a \[low, high\] list of two numbers"),
        ("cartpole-physics", {"lenght": [1, 2]}, r"unknown option\(s\) lenght .*'length'\?"),
        ("minigrid", {"pool": True}, r"option 'pool' of family 'minigrid' must be a int"),
        ("minigrid", {"pool": 1, "held_out": 1}, r"'pool' .* must be >= 2 so that neither"),
        ("minigrid", {"held_out": 64}, r"'held_out' .* must be in \[1, pool - 1\] = \[1, 63\]"),
        ("minigrid", {"held_out": 0}, r"'held_out' .* so that neither split is empty, got 0"),
        ("minigrid", {"seed": -1}, r"'seed' of family 'minigrid' must be >= 0"),
        ("minatar-variants", {"game": "Breakot"}, r"did you mean 'Breakout'\? it must be one"),
        ("minigrid", {"env_id": "MiniGrid-Nope-v0"}, r"unknown Gymnasium id 'MiniGrid-Nope-v0'"),
    ],
)
def test_bad_options(family, kwargs, message):
    with pytest.raises(TaskError, match=message):
        make_taskset([{"id": f"family:{family}:train:1", "kwargs": kwargs}])


def test_helpers_check_family_and_split():
    with pytest.raises(TaskError, match=r"unknown task family 'grid'.*families: "):
        family_params("grid", "train")
    with pytest.raises(TaskError, match=r"unknown split 'valid'"):
        family_params("minigrid", "valid")
    with pytest.raises(TaskError, match=r"needs 4 task\(s\) of the held-out split"):
        family_tasks("minigrid", "held-out", 4, SMALL)


def test_describe_suites_lists_the_families_and_their_options():
    text = describe_suites()
    assert "family:<name>[:<split>[:<n> | @<i>]]" in text
    for name in FAMILIES:
        assert f"  {name}: " in text
    assert "held_out=16" in text and "length=[0.25, 1.0]" in text
    assert "env_id=MiniGrid-DoorKey-6x6-v0" in text
