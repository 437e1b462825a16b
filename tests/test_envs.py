"""MultiTaskEnvs: shapes, the invalid autoreset step and episode returns."""

from __future__ import annotations

import numpy as np
import pytest

from multiq import make_taskset
from multiq.envs import EpisodeTracker, MultiTaskEnvs


@pytest.fixture(scope="module")
def short_tasks():
    """CartPole cut to 5 steps (it cannot fall that fast) and a plain Acrobot."""
    return make_taskset(
        [
            {"id": "gym:CartPole-v1", "name": "cp5", "kwargs": {"max_episode_steps": 5}},
            "gym:Acrobot-v1",
        ]
    )


def zero_actions(n_envs, n_tasks=2):
    return [np.zeros(n_envs, dtype=np.int64) for _ in range(n_tasks)]


def test_reset_shapes(short_tasks):
    envs = MultiTaskEnvs(short_tasks, n_envs=2, seed=0)
    try:
        obs = envs.reset()
        assert [o.shape for o in obs] == [(2, 4), (2, 6)]
        assert [o.dtype for o in obs] == [np.float32, np.float32]
        # seeded per env: the two copies start differently, and a second reset repeats them
        assert not np.array_equal(obs[0][0], obs[0][1])
        again = envs.reset()
        for a, b in zip(obs, again, strict=True):
            np.testing.assert_array_equal(a, b)
    finally:
        envs.close()


def test_step_after_episode_end_is_invalid_and_return_is_recorded(short_tasks):
    envs = MultiTaskEnvs(short_tasks, n_envs=2, seed=0)
    try:
        envs.reset()
        actions = [np.array([0, 1]), np.array([0, 2])]
        for step in range(1, 6):
            result = envs.step(actions)
            assert [o.shape for o in result.obs] == [(2, 4), (2, 6)]
            assert result.valid[0].all() and result.valid[1].all()
            assert result.rewards[0].tolist() == [1.0, 1.0]
            ended = result.truncated[0]
            assert ended.all() == (step == 5)
            assert not result.terminated[0].any()
        # both CartPole episodes ended at step 5 with return 5; nothing for Acrobot yet
        assert envs.episodes[0].finished == [5.0, 5.0]
        assert envs.episodes[1].finished == []
        assert envs.recent_returns()["cp5"] == 5.0
        assert np.isnan(envs.recent_returns()["Acrobot"])

        result = envs.step(actions)  # the autoreset step
        assert result.valid[0].tolist() == [False, False]
        assert result.valid[1].tolist() == [True, True]
        assert not result.truncated[0].any() and not result.terminated[0].any()
        assert envs.episodes[0].running.tolist() == [0.0, 0.0]  # the reset step adds nothing

        result = envs.step(actions)  # first real step of the new episodes
        assert result.valid[0].tolist() == [True, True]
        assert envs.episodes[0].running.tolist() == [1.0, 1.0]
        assert envs.episodes[1].running.tolist() == [-7.0, -7.0]  # Acrobot: -1 per step
        for _ in range(4):
            envs.step(actions)
        assert envs.episodes[0].finished == [5.0] * 4
    finally:
        envs.close()


def test_valid_follows_done_per_env_and_returns_sum_rewards():
    # full-length CartPole with random actions: the envs end at different steps
    tasks = make_taskset([{"id": "gym:CartPole-v1", "name": "a"}, {"id": "gym:CartPole-v1"}])
    envs = MultiTaskEnvs(tasks, n_envs=2, seed=3)
    rng = np.random.default_rng(0)
    try:
        envs.reset()
        prev_done = [np.zeros(2, bool), np.zeros(2, bool)]
        running = [np.zeros(2), np.zeros(2)]
        expected = [[], []]
        saw_mixed = False
        for _ in range(120):
            result = envs.step([rng.integers(0, 2, 2), rng.integers(0, 2, 2)])
            for t in range(2):
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
        for t in range(2):
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
