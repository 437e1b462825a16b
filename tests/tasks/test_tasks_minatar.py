"""The minatar suite: names, channel-first bool observations, action sets, options."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

from multiq.tasks import make_taskset
from multiq.tasks.gym_ids import register_minatar

NAMES = ["Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"]
SHAPES = [(4, 10, 10), (4, 10, 10), (7, 10, 10), (10, 10, 10), (6, 10, 10)]
ACTIONS = [5, 3, 3, 6, 4]


def test_suite_has_five_games_with_minimal_action_sets(minatar_tasks):
    assert minatar_tasks.names == NAMES
    assert [t.obs_shape for t in minatar_tasks] == SHAPES
    assert [t.num_actions for t in minatar_tasks] == ACTIONS
    assert all(t.obs_dtype == np.bool_ for t in minatar_tasks)
    assert [t.env_id for t in minatar_tasks] == [f"MinAtar/{n}-v1" for n in NAMES]


def test_full_action_set_gives_six_actions_without_deprecation_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tasks = make_taskset([{"id": "minatar", "kwargs": {"full_action_set": True}}])
        tasks[0].make_env().close()
    assert [t.num_actions for t in tasks] == [6] * 5
    assert [t.env_id for t in tasks] == [f"MinAtar/{n}-v0" for n in NAMES]
    assert not [w for w in caught if "out of date" in str(w.message)]


def test_envs_return_channel_first_transposes_of_the_game_state(minatar_tasks):
    rng = np.random.default_rng(0)
    for task in minatar_tasks:
        env = task.make_env()
        obs, _ = env.reset(seed=0)
        for _ in range(5):
            assert obs.shape == task.obs_shape and obs.dtype == np.bool_
            assert task.observation_space.contains(obs)
            state = env.unwrapped.game.state()
            np.testing.assert_array_equal(obs, np.transpose(state, (2, 0, 1)))
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(task.num_actions)))
            if terminated or truncated:
                obs, _ = env.reset()
        env.close()


def test_sticky_action_prob_defaults_to_zero_and_is_passed_on():
    default = make_taskset("minatar:Breakout")[0].make_env()
    sticky = make_taskset([{"id": "minatar:Breakout", "kwargs": {"sticky_action_prob": 0.3}}])
    assert default.unwrapped.game.sticky_action_prob == 0.0
    assert sticky[0].make_env().unwrapped.game.sticky_action_prob == 0.3


def test_evaluation_variant_has_the_same_spaces(minatar_tasks):
    task = minatar_tasks["Seaquest"]
    env = task.make_env(evaluation=True)
    assert env.observation_space == task.observation_space
    assert env.action_space == task.action_space
    env.close()


def _episode(env, seed: int, steps: int = 12) -> list[np.ndarray]:
    """The observations of a seeded episode's first `steps` no-op steps."""
    frames = [env.reset(seed=seed)[0]]
    frames += [env.step(0)[0] for _ in range(steps)]
    return frames


def _after_moving_right(env):
    """`env` after an episode that ended its steps with the paddle moving right."""
    env.reset(seed=100)
    for _ in range(15):
        env.step(2)
    return env


def _differs(used, fresh, seed: int) -> bool:
    pairs = zip(_episode(used, seed), _episode(fresh, seed), strict=True)
    return any(not np.array_equal(a, b) for a, b in pairs)


@pytest.mark.parametrize("entry", ["minatar:Breakout", "gym:MinAtar/Breakout-v1"])
def test_a_seeded_episode_is_the_same_after_another_with_sticky_actions(entry):
    spec = make_taskset([{"id": entry, "kwargs": {"sticky_action_prob": 0.5}}])[0]
    seeds = range(8)
    # a used env (last action: right) and a new one play each seeded episode alike, so a
    # resume can rebuild an env from its episode seed and actions
    assert not any(_differs(_after_moving_right(spec.make_env()), spec.make_env(), s)
                   for s in seeds)  # fmt: skip
    # MinAtar itself carries the last action into the next episode's sticky steps
    register_minatar()
    raw = [gym.make("MinAtar/Breakout-v1", sticky_action_prob=0.5) for _ in range(2)]
    assert any(_differs(_after_moving_right(raw[0]), raw[1], s) for s in seeds)
