"""Task schedules: shares by hand, sample counts, step allocation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multiq.errors import ConfigError
from multiq.mtl.schedules import (
    SCHEDULES,
    StepAllocator,
    TaskStats,
    build_schedule,
    sample_counts,
)


def stats(num_tasks=2, transitions=None, episodes=None, returns=None, weights=None) -> TaskStats:
    return TaskStats(
        env_steps=np.full(num_tasks, 1000),
        transitions=np.array(transitions or [1000] * num_tasks),
        episodes=np.array(episodes or [10] * num_tasks),
        recent_returns=returns or [[1.0] * 10] * num_tasks,
        weights=np.array(weights or [1.0] * num_tasks),
    )


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_shares_sum_to_one_and_keep_the_uniform_floor(name):
    schedule = build_schedule(name, uniform_mix=0.3)  # T = 3 comes from the stats
    returns = [[0.0], [1.0, 5.0, 2.0, 9.0], list(range(20))]
    s = stats(3, [10, 500, 900], [0, 3, 40], returns, weights=[5.0, 0.0, 1.0])
    shares = schedule.shares(s)
    assert shares.shape == (3,)
    assert shares.sum() == pytest.approx(1.0)
    assert (shares >= 0.3 / 3 - 1e-12).all()


def test_uniform_gives_equal_shares_and_batch_size_each():
    shares = build_schedule("uniform").shares(stats(5, transitions=[1, 2, 3, 4, 5]))
    np.testing.assert_allclose(shares, 0.2)
    np.testing.assert_array_equal(sample_counts(shares, 5 * 32), [32] * 5)


def test_weighted_follows_alpha_mixed_with_uniform():
    shares = build_schedule("weighted", uniform_mix=0.2).shares(stats(weights=[3.0, 1.0]))
    np.testing.assert_allclose(shares, [0.8 * 0.75 + 0.1, 0.8 * 0.25 + 0.1])


def test_resample_favours_the_task_with_fewer_episodes():
    # data (+1) equal -> ratios 1, 1; episodes + 1 = [2, 10], mean 6 -> ratios 3, 0.6
    shares = build_schedule("resample", uniform_mix=0.0).shares(stats(episodes=[1, 9]))
    np.testing.assert_allclose(shares, [0.75, 0.25])


def test_resample_favours_the_task_with_less_data():
    # transitions + 1 = [100, 300], mean 200 -> ratios 2, 2/3; episodes equal -> 1, 1
    shares = build_schedule("resample", uniform_mix=0.0).shares(stats(transitions=[99, 299]))
    np.testing.assert_allclose(shares, [2 / (2 + 1), 1 / (2 + 1)])


def test_progress_prefers_improving_and_unexplored_tasks():
    rising = [float(r) for r in range(10)]  # halves' means 2 and 7; std sqrt(8.25)
    returns = [[5.0] * 10, rising, [1.0, 2.0]]  # flat, improving, too few episodes
    schedule = build_schedule("progress", uniform_mix=0.0, window=10)
    shares = schedule.shares(stats(3, returns=returns))
    np.testing.assert_allclose(shares, [0.0, 0.5, 0.5])
    assert schedule.preferences(stats(3, returns=returns))[1] == pytest.approx(
        5.0 / (math.sqrt(8.25) + 1.0)
    )


def test_progress_looks_only_at_the_window():
    old_rise_then_flat = [float(r) for r in range(10)] + [9.0] * 10
    schedule = build_schedule("progress", uniform_mix=0.0, window=10)
    prefs = schedule.preferences(stats(returns=[old_rise_then_flat, [0.0, 1.0] * 5]))
    assert prefs[0] == 0.0 and prefs[1] > 0.0


def test_progress_with_no_episodes_anywhere_is_uniform():
    shares = build_schedule("progress", uniform_mix=0.0).shares(stats(3, returns=[[], [], []]))
    np.testing.assert_allclose(shares, 1 / 3)


def test_sample_counts_largest_remainder_by_hand():
    # one each, then 7 split as [4.9, 1.4, 0.7] -> floors [4, 1, 0], remainders to 0 and 2
    np.testing.assert_array_equal(sample_counts(np.array([0.7, 0.2, 0.1]), 10), [6, 2, 2])


def test_sample_counts_gives_every_task_a_sample():
    counts = sample_counts(np.array([1.0, 0.0, 0.0]), 8)
    np.testing.assert_array_equal(counts, [6, 1, 1])
    with pytest.raises(ValueError, match="cannot cover"):
        sample_counts(np.ones(4), 3)


def test_step_allocator_rates_follow_shares():
    allocator = StepAllocator(3)
    steps = np.sum([allocator.active(np.array([0.5, 0.25, 0.25])) for _ in range(100)], axis=0)
    np.testing.assert_array_equal(steps, [100, 50, 50])


def test_step_allocator_steps_every_task_under_equal_shares():
    allocator = StepAllocator(4)
    assert all(allocator.active(np.full(4, 0.25)).all() for _ in range(10))


def test_unknown_schedule_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'progress'"):
        build_schedule("progres")
