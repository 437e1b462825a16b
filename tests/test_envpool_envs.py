"""The envpool env backend: EnvPool's Atari envs against the ALE path of `multiq.tasks.atari`."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from multiq import make_taskset
from multiq.envs.backends import EnvSettings
from multiq.envs.inprocess import TaskEnvs
from multiq.envs.multi import MultiTaskEnvs
from multiq.envs.pool import EnvPoolTaskEnvs, envpool_task
from multiq.errors import EnvError

pytest.importorskip("envpool")

DETERMINISTIC = {"noop_max": 1, "repeat_action_probability": 0.0}
SEEDS = [11, 12]


def atari(game: str, **options):
    return make_taskset({"id": f"atari:{game}", "kwargs": options})[0]


def ale_and_envpool(spec, n_envs: int = 2, evaluation: bool = False):
    ale = TaskEnvs(spec.name, partial(spec.make_env, evaluation=evaluation), n_envs)
    return ale, EnvPoolTaskEnvs(spec, n_envs, evaluation, threads=2)


@pytest.mark.parametrize("game", ["Tetris", "MsPacman"])
def test_envpool_gives_the_ale_frames_where_the_episode_is_deterministic(game):
    """With one no-op start and no sticky actions an episode depends on its actions only, so the
    two backends can be compared frame for frame: every observation, reward and flag is the
    same through the first episode's end and into the next, except the observation of the very
    step that ends a game (the ALE path's frame-skip loop stops at the game's end and max-pools
    the frames it had; EnvPool's does not)."""
    spec = atari(game, **DETERMINISTIC)
    ale, pool = ale_and_envpool(spec)
    rng = np.random.default_rng(0)
    try:
        first, first_pool = ale.reset(SEEDS), pool.reset(SEEDS)
        assert first_pool.shape == (2, 4, 84, 84) and first_pool.dtype == np.uint8
        np.testing.assert_array_equal(first, first_pool)
        steps_after_end = 0
        while steps_after_end < 30:
            actions = rng.integers(0, spec.num_actions, 2)
            got, got_pool = ale.step(actions), pool.step(actions)
            for a, b in zip(got[1:], got_pool[1:], strict=True):  # rewards and flags
                np.testing.assert_array_equal(a, b)
            ends = got[2] | got[3]
            np.testing.assert_array_equal(got[0][~ends], got_pool[0][~ends])
            steps_after_end += bool(max(ale.history.episode_index))
        assert ale.history.episode_index == pool.history.episode_index
        assert ale.history.actions == pool.history.actions
    finally:
        ale.close()
        pool.close()


def test_pacman_frames_differ_but_look_alike():
    """EnvPool's ALE build renders Pac-Man's ROM (the same file, same md5) with other gray
    levels, so only the form of the observations is the same."""
    ale, pool = ale_and_envpool(atari("Pacman", **DETERMINISTIC))
    try:
        obs, obs_pool = ale.reset(SEEDS), pool.reset(SEEDS)
        assert obs.shape == obs_pool.shape and obs.dtype == obs_pool.dtype
        assert not np.array_equal(obs, obs_pool)
        assert obs_pool.max() > 0 and np.array_equal(obs_pool[:, 0], obs_pool[:, 3])  # stacked
    finally:
        ale.close()
        pool.close()


def test_the_step_after_an_episode_end_resets_and_is_not_a_transition():
    tasks = make_taskset([{"id": "atari:Tetris", "kwargs": DETERMINISTIC}])
    envs = MultiTaskEnvs(tasks, 2, 0, settings=EnvSettings("envpool", 2))
    rng = np.random.default_rng(1)
    try:
        envs.reset()
        ended = None
        for _ in range(2_000):
            result = envs.step({"Tetris": rng.integers(0, 5, 2)})
            if ended is not None:
                assert not result.valid["Tetris"][ended]
                assert result.rewards["Tetris"][ended] == 0.0
                assert not result.terminated["Tetris"][ended]
                break
            done = result.terminated["Tetris"] | result.truncated["Tetris"]
            ended = int(np.flatnonzero(done)[0]) if done.any() else None
        assert ended is not None
        assert len(envs.episodes["Tetris"].finished) >= 1
    finally:
        envs.close()


def test_training_envs_clip_rewards_and_evaluation_envs_do_not():
    spec = atari("MsPacman")
    assert envpool_task(spec)[1]["reward_clip"] and not envpool_task(spec, True)[1]["reward_clip"]
    rng = np.random.default_rng(2)
    for evaluation, top in ((False, 1.0), (True, 10.0)):
        pool = EnvPoolTaskEnvs(spec, 2, evaluation)
        pool.reset(SEEDS)
        rewards = [pool.step(rng.integers(0, spec.num_actions, 2))[1] for _ in range(100)]
        pool.close()
        assert np.max(rewards) >= top and (evaluation or np.max(rewards) == 1.0)


def test_a_restore_starts_new_episodes_and_says_so(caplog):
    spec = atari("Tetris")
    pool = EnvPoolTaskEnvs(spec, 2)
    try:
        obs = pool.reset(SEEDS)
        for _ in range(5):
            obs = pool.step(np.array([1, 2]))[0]
        record = pool.record()
        assert record["actions"] == [[1] * 5, [2] * 5]
        with caplog.at_level("WARNING", logger="multiq"):
            new = pool.restore(record, obs)
        assert "EnvPool cannot replay the recorded episodes" in caplog.text
        assert new.shape == obs.shape and pool.history.episode_index == [1, 1]
        assert not pool.history.needs_reset.any() and pool.history.actions == [[], []]
    finally:
        pool.close()


def test_only_suite_tasks_have_an_envpool_version_and_noop_max_0_is_refused():
    assert envpool_task(make_taskset("minatar:Breakout")[0]) is None
    task_id, kwargs = envpool_task(atari("Tetris"))
    assert task_id == "Tetris-v5" and kwargs["noop_max"] == 30 and not kwargs["use_fire_reset"]
    with pytest.raises(EnvError, match="EnvPool crashes with noop_max 0"):
        EnvPoolTaskEnvs(atari("Tetris", noop_max=0), 1)
