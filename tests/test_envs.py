"""MultiTaskEnvs: shapes, the invalid autoreset step and episode returns."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from multiq import make_taskset
from multiq.envs.inprocess import TaskEnvs
from multiq.envs.multi import EpisodeTracker, MultiTaskEnvs


@pytest.fixture(scope="module")
def short_tasks():
    """CartPole cut to 5 steps (it cannot fall that fast) and a plain Acrobot."""
    return make_taskset(
        [
            {"id": "gym:CartPole-v1", "name": "cp5", "kwargs": {"max_episode_steps": 5}},
            "gym:Acrobot-v1",
        ]
    )


def test_reset_shapes(short_tasks):
    envs = MultiTaskEnvs(short_tasks, n_envs=2, seed=0)
    try:
        assert envs.names == ["cp5", "Acrobot"]
        obs = envs.reset()
        assert list(obs) == ["cp5", "Acrobot"]
        assert [o.shape for o in obs.values()] == [(2, 4), (2, 6)]
        assert [o.dtype for o in obs.values()] == [np.float32, np.float32]
        # seeded per env: the two copies start differently, and a second reset repeats them
        assert not np.array_equal(obs["cp5"][0], obs["cp5"][1])
        again = envs.reset()
        assert list(again) == list(obs)
        for name, a in obs.items():
            np.testing.assert_array_equal(a, again[name])
    finally:
        envs.close()


def test_step_after_episode_end_is_invalid_and_return_is_recorded(short_tasks):
    envs = MultiTaskEnvs(short_tasks, n_envs=2, seed=0)
    try:
        envs.reset()
        actions = {"cp5": np.array([0, 1]), "Acrobot": np.array([0, 2])}
        for step in range(1, 6):
            result = envs.step(actions)
            assert [o.shape for o in result.obs.values()] == [(2, 4), (2, 6)]
            assert result.valid["cp5"].all() and result.valid["Acrobot"].all()
            assert result.rewards["cp5"].tolist() == [1.0, 1.0]
            ended = result.truncated["cp5"]
            assert ended.all() == (step == 5)
            assert not result.terminated["cp5"].any()
        # both CartPole episodes ended at step 5 with return 5; nothing for Acrobot yet
        assert envs.episodes["cp5"].finished == [5.0, 5.0]
        assert envs.episodes["Acrobot"].finished == []
        assert envs.recent_returns()["cp5"] == 5.0
        assert np.isnan(envs.recent_returns()["Acrobot"])

        result = envs.step(actions)  # the autoreset step
        assert result.valid["cp5"].tolist() == [False, False]
        assert result.valid["Acrobot"].tolist() == [True, True]
        assert not result.truncated["cp5"].any() and not result.terminated["cp5"].any()
        assert envs.episodes["cp5"].running.tolist() == [0.0, 0.0]  # the reset step adds nothing

        result = envs.step(actions)  # first real step of the new episodes
        assert result.valid["cp5"].tolist() == [True, True]
        assert envs.episodes["cp5"].running.tolist() == [1.0, 1.0]
        assert envs.episodes["Acrobot"].running.tolist() == [-7.0, -7.0]  # Acrobot: -1 per step
        for _ in range(4):
            envs.step(actions)
        assert envs.episodes["cp5"].finished == [5.0] * 4
    finally:
        envs.close()


def test_valid_follows_done_per_env_and_returns_sum_rewards():
    # full-length CartPole with random actions: the envs end at different steps
    tasks = make_taskset([{"id": "gym:CartPole-v1", "name": "a"}, {"id": "gym:CartPole-v1"}])
    envs = MultiTaskEnvs(tasks, n_envs=2, seed=3)
    rng = np.random.default_rng(0)
    try:
        envs.reset()
        names = envs.names
        assert names == ["a", "CartPole"]
        prev_done = {t: np.zeros(2, bool) for t in names}
        running = {t: np.zeros(2) for t in names}
        expected = {t: [] for t in names}
        saw_mixed = False
        for _ in range(120):
            result = envs.step({"a": rng.integers(0, 2, 2), "CartPole": rng.integers(0, 2, 2)})
            for t in names:
                np.testing.assert_array_equal(result.valid[t], ~prev_done[t])
                saw_mixed |= result.valid[t].any() and not result.valid[t].all()
                done = result.terminated[t] | result.truncated[t]
                for e in range(2):
                    if result.valid[t][e]:
                        running[t][e] += result.rewards[t][e]
                        if done[e]:
                            expected[t].append(running[t][e])
                            running[t][e] = 0.0
                    else:
                        assert result.rewards[t][e] == 0.0 and not done[e]
                prev_done[t] = done
        assert saw_mixed  # some step had one env resetting while the other kept going
        for t in names:
            assert len(expected[t]) >= 2
            assert envs.episodes[t].finished == expected[t]
            np.testing.assert_array_equal(envs.episodes[t].running, running[t])
    finally:
        envs.close()


def test_episode_tracker_ignores_rewards_of_invalid_steps():
    tracker = EpisodeTracker(2)
    tracker.update(np.array([1.0, 2.0]), np.array([False, False]), np.array([True, True]))
    tracker.update(np.array([3.0, 4.0]), np.array([True, False]), np.array([True, True]))
    # env 0 ended with 1 + 3 = 4; env 1 is still running at 2 + 4 = 6
    assert tracker.finished == [4.0] and tracker.running.tolist() == [0.0, 6.0]
    # the reset step of env 0 carries a reward (and a stale done): neither counts
    tracker.update(np.array([7.0, 1.0]), np.array([True, True]), np.array([False, True]))
    assert tracker.finished == [4.0, 7.0]  # only env 1's episode (6 + 1) finished
    assert tracker.running.tolist() == [0.0, 0.0]
    assert tracker.recent_mean() == 5.5
    assert np.isnan(EpisodeTracker(1).recent_mean())


STICKY_BREAKOUT = [{"id": "minatar:Breakout", "kwargs": {"sticky_action_prob": 0.5}}]


@pytest.mark.parametrize(
    ("entry", "n_envs"),
    [("classic:MountainCar", 2), ("minatar:Seaquest", 2), ("atari:Pacman", 2),
     (STICKY_BREAKOUT, 8)],  # MinAtar's sticky actions outlive a reset: SeededStickyReset
)  # fmt: skip
def test_recorded_envs_are_restored_exactly_and_continue_identically(entry, n_envs):
    spec = list(make_taskset(entry))[0]
    make = partial(spec.make_env, evaluation=False)
    envs, rng = TaskEnvs(spec.name, make, n_envs), np.random.default_rng(0)
    obs = envs.reset(list(range(5, 5 + n_envs)))
    for _ in range(400):
        obs = envs.step(rng.integers(0, spec.num_actions, n_envs))[0]
    record = envs.record()
    restored = TaskEnvs(spec.name, make, n_envs)
    restored.reset([0] * n_envs)
    assert np.array_equal(restored.restore(record, obs), obs)
    for actions in rng.integers(0, spec.num_actions, (300, n_envs)):
        expected, got = envs.step(actions), restored.step(actions)
        for a, b in zip(expected, got, strict=True):
            assert np.array_equal(a, b)
    assert max(restored.history.episode_index) >= 1  # episodes ended and were reseeded


def test_an_env_that_cannot_be_restored_starts_a_new_episode(caplog):
    spec = list(make_taskset("classic:CartPole"))[0]
    envs = TaskEnvs(spec.name, partial(spec.make_env, evaluation=False), 1)
    obs = envs.reset([1])
    obs = envs.step(np.array([0]))[0]
    record = envs.record()
    restored = TaskEnvs(spec.name, partial(spec.make_env, evaluation=False), 1)
    with caplog.at_level("WARNING", logger="multiq"):
        got = restored.restore(record, obs + 1.0)  # not what the replay gives
    assert "could not be restored exactly" in caplog.text
    assert restored.history.episode_index == [1] and restored.history.actions == [[]]
    assert got.shape == obs.shape
