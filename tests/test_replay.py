"""Replay buffers: n-step returns by hand, the circular layout, sampling, state and memory."""

from __future__ import annotations

import logging

import gymnasium as gym
import numpy as np
import pytest

import multiq.replay.buffers
from multiq.errors import CheckpointError, ConfigError
from multiq.replay.buffers import MultiTaskReplay, TaskReplay
from multiq.tasks.spec import TaskSet, TaskSpec


def one(x, dtype=np.float32):
    return np.array([x], dtype=dtype)


def add_step(buf, step, reward, terminated=False, truncated=False, valid=True):
    """Adds one transition to a single-env buffer; obs = step, next_obs = 100 + step."""
    buf.add(
        obs=np.array([[step]], dtype=np.float32),
        actions=one(step % 3, np.int64),
        rewards=one(reward),
        next_obs=np.array([[100 + step]], dtype=np.float32),
        terminated=one(terminated, bool),
        truncated=one(truncated, bool),
        valid=one(valid, bool),
    )


@pytest.fixture
def stream() -> TaskReplay:
    """One env, n = 3, gamma = 0.5, nine steps:

    step  0   1    2   3   4      5   6   7    8
    r     1   2    4   8   16     32  64  128  256
    end       term         trunc                  (step 8 is the newest entry)
    """
    buf = TaskReplay((1,), np.float32, capacity=20, n_envs=1, n_step=3, gamma=0.5)
    for step in range(9):
        add_step(buf, step, 2.0**step, terminated=step == 1, truncated=step == 4)
    return buf


def n_step_rows(buf, rows):
    rows = np.asarray(rows)
    newer = buf.size[0] - rows  # column not full: row r holds step r
    return buf._n_step(rows, np.zeros_like(rows), newer)


def test_n_step_terminal_inside_window(stream):
    s = n_step_rows(stream, [0, 1])
    # row 0: steps 0, 1, and the episode terminates at 1: 1 + 0.5 * 2 = 2; discount 0
    # row 1: step 1 alone (terminal): 2; discount 0
    np.testing.assert_allclose(s.returns, [2.0, 2.0])
    np.testing.assert_allclose(s.discounts, [0.0, 0.0])
    np.testing.assert_allclose(s.next_obs[:, 0], [101, 101])  # the terminal step's next_obs
    np.testing.assert_allclose(s.obs[:, 0], [0, 1])
    assert s.actions.tolist() == [0, 1]


def test_n_step_truncated_inside_window_bootstraps(stream):
    s = n_step_rows(stream, [2, 3, 4])
    # row 2: steps 2, 3, 4 (truncated at 4): 4 + 0.5 * 8 + 0.25 * 16 = 12; discount 0.5^3
    # row 3: steps 3, 4:                     8 + 0.5 * 16          = 16; discount 0.5^2
    # row 4: step 4:                         16                         ; discount 0.5
    np.testing.assert_allclose(s.returns, [12.0, 16.0, 16.0])
    np.testing.assert_allclose(s.discounts, [0.125, 0.25, 0.5])
    # all bootstrap from the truncated step's own next_obs, not from the next episode
    np.testing.assert_allclose(s.next_obs[:, 0], [104, 104, 104])


def test_n_step_full_window_and_newest_entry(stream):
    s = n_step_rows(stream, [5, 6, 7, 8])
    # row 5: steps 5, 6, 7: 32 + 0.5 * 64 + 0.25 * 128 = 96; discount 0.125; next_obs of 7
    # row 6: steps 6, 7, 8: 64 + 64 + 64 = 192;               discount 0.125; next_obs of 8
    # row 7: steps 7, 8 (8 is the newest): 128 + 128 = 256;   discount 0.25;  next_obs of 8
    # row 8: step 8 alone: 256;                               discount 0.5;   next_obs of 8
    np.testing.assert_allclose(s.returns, [96.0, 192.0, 256.0, 256.0])
    np.testing.assert_allclose(s.discounts, [0.125, 0.125, 0.25, 0.5])
    np.testing.assert_allclose(s.next_obs[:, 0], [107, 108, 108, 108])
    assert s.returns.dtype == np.float32 and s.discounts.dtype == np.float32


def test_n_step_window_ignores_stale_rows_beyond_newest():
    # a buffer refilled after load: stale data past the newest entry must not be used
    buf = TaskReplay((1,), np.float32, capacity=10, n_envs=1, n_step=3, gamma=0.5)
    buf.rewards[:] = 1000.0
    buf.done[:] = True
    add_step(buf, 0, 1.0)
    add_step(buf, 1, 2.0)
    s = n_step_rows(buf, [0])
    # 1 + 0.5 * 2 = 2, discount 0.25 (the 1000s and dones at rows >= 2 are not counted)
    np.testing.assert_allclose(s.returns, [2.0])
    np.testing.assert_allclose(s.discounts, [0.25])


# ---------------------------------------------------------------- brute-force reference


class Reference:
    """Keeps every transition per env, as Python lists, to check samples against."""

    def __init__(self, n_envs, length, n_step, gamma):
        self.streams = [[] for _ in range(n_envs)]
        self.length, self.n_step, self.gamma = length, n_step, gamma

    def add(self, env, obs_id, reward, terminated, truncated):
        self.streams[env].append((obs_id, reward, terminated, truncated))

    def stored_ids(self):
        return {t[0] for s in self.streams for t in s[-self.length :]}

    def expected(self, obs_id):
        for stream in self.streams:
            kept = stream[-self.length :]
            for i, (oid, *_) in enumerate(kept):
                if oid != obs_id:
                    continue
                ret, k, terminal, last = 0.0, 0, False, oid
                for j in range(self.n_step):
                    if i + j >= len(kept):
                        break
                    last, r, term, trunc = kept[i + j]
                    ret += self.gamma**j * r
                    k += 1
                    if term or trunc:
                        terminal = term
                        break
                return ret, 0.0 if terminal else self.gamma**k, last
        raise AssertionError(f"sampled obs {obs_id} is not among the stored transitions")


def fill_random(buf, ref, steps, n_envs, seed, valid_prob=1.0):
    rng = np.random.default_rng(seed)
    counter = 0
    for _ in range(steps):
        ids = np.arange(counter, counter + n_envs, dtype=np.float32)
        counter += n_envs
        rewards = rng.integers(-3, 4, size=n_envs).astype(np.float32)
        terminated = rng.random(n_envs) < 0.15
        truncated = ~terminated & (rng.random(n_envs) < 0.1)
        valid = rng.random(n_envs) < valid_prob
        buf.add(
            obs=ids[:, None],
            actions=ids.astype(np.int64),
            rewards=rewards,
            next_obs=ids[:, None] + 0.5,
            terminated=terminated,
            truncated=truncated,
            valid=valid,
        )
        for env in np.flatnonzero(valid):
            ref.add(env, float(ids[env]), float(rewards[env]), terminated[env], truncated[env])


def check_samples(buf, ref, batch=512, seed=0):
    s = buf.sample(batch, np.random.default_rng(seed))
    assert s.obs.shape == (batch, 1) and s.next_obs.shape == (batch, 1)
    for obs, action, ret, disc, nxt in zip(
        s.obs[:, 0], s.actions, s.returns, s.discounts, s.next_obs[:, 0], strict=True
    ):
        exp_ret, exp_disc, exp_last = ref.expected(float(obs))
        assert action == int(obs)
        assert ret == pytest.approx(exp_ret, abs=1e-5)
        assert disc == pytest.approx(exp_disc)
        assert nxt == exp_last + 0.5
    return s


def test_wraparound_overwrites_oldest():
    buf = TaskReplay((1,), np.float32, capacity=4, n_envs=1, n_step=1, gamma=0.9)
    for step in range(10):
        add_step(buf, step, 1.0)
    assert buf.length == 4
    assert buf.pos.tolist() == [10 % 4] and buf.size.tolist() == [4] and len(buf) == 4
    # physical rows hold steps 8, 9, 6, 7
    assert buf.obs[:, 0, 0].tolist() == [8, 9, 6, 7]
    s = buf.sample(400, np.random.default_rng(0))
    assert set(s.obs[:, 0].tolist()) == {6.0, 7.0, 8.0, 9.0}


def test_wraparound_n_step_matches_reference():
    # length 5, n = 3: windows cross the physical end of the array
    buf = TaskReplay((1,), np.float32, capacity=5, n_envs=1, n_step=3, gamma=0.5)
    ref = Reference(1, buf.length, 3, 0.5)
    fill_random(buf, ref, steps=23, n_envs=1, seed=1)
    assert buf.size.tolist() == [5] and buf.pos.tolist() == [23 % 5]
    s = check_samples(buf, ref)
    assert set(s.obs[:, 0].tolist()) == ref.stored_ids()  # every stored one, no older one


def test_length_is_at_least_n_step_plus_one():
    buf = TaskReplay((1,), np.float32, capacity=4, n_envs=2, n_step=3, gamma=0.5)
    assert buf.length == 4  # max(4 // 2, 3 + 1)
    assert buf.obs.shape == (4, 2, 1)


def test_invalid_rows_are_not_stored():
    buf = TaskReplay((1,), np.float32, capacity=8, n_envs=2, n_step=1, gamma=0.9)
    kwargs = dict(
        actions=np.array([3, 4]),
        rewards=np.array([1.0, 2.0], dtype=np.float32),
        terminated=np.array([False, False]),
        truncated=np.array([False, False]),
    )
    obs = np.array([[1.0], [2.0]], dtype=np.float32)
    buf.add(obs=obs, next_obs=obs + 1, valid=np.array([True, False]), **kwargs)
    assert buf.size.tolist() == [1, 0] and buf.pos.tolist() == [1, 0]
    buf.add(obs=obs, next_obs=obs + 1, valid=np.array([False, False]), **kwargs)
    assert buf.size.tolist() == [1, 0] and buf.pos.tolist() == [1, 0]
    assert buf.rewards[:, 1].tolist() == [0.0] * 4
    s = buf.sample(50, np.random.default_rng(0))
    assert (s.obs[:, 0] == 1.0).all() and (s.actions == 3).all()


def test_multiple_envs_keep_separate_columns():
    buf = TaskReplay((1,), np.float32, capacity=40, n_envs=3, n_step=3, gamma=0.9)
    ref = Reference(3, buf.length, 3, 0.9)
    fill_random(buf, ref, steps=30, n_envs=3, seed=2, valid_prob=0.8)
    # each column holds only its own env's ids, in time order (ids are step * 3 + env)
    for env in range(3):
        n = buf.size[env]
        column = (
            buf.obs[:n, env, 0] if n < buf.length else np.roll(buf.obs[:, env, 0], -buf.pos[env])
        )
        assert (column % 3 == env).all()
        assert (np.diff(column) > 0).all()
    check_samples(buf, ref)


def test_sampling_with_wraparound_and_invalid_rows_matches_reference():
    buf = TaskReplay((1,), np.float32, capacity=12, n_envs=2, n_step=4, gamma=0.7)
    ref = Reference(2, buf.length, 4, 0.7)
    fill_random(buf, ref, steps=50, n_envs=2, seed=3, valid_prob=0.7)
    assert (buf.size == buf.length).all()
    s = check_samples(buf, ref, batch=1000, seed=4)
    assert set(s.obs[:, 0].tolist()) == ref.stored_ids()


def test_sample_empty_raises():
    buf = TaskReplay((1,), np.float32, capacity=8, n_envs=1, n_step=1, gamma=0.9)
    with pytest.raises(RuntimeError, match="empty"):
        buf.sample(4, np.random.default_rng(0))


# ---------------------------------------------------------------- multi-task


def spec(name, shape, dtype, n_actions, high=1):
    space = gym.spaces.Box(0, high, shape, dtype)
    return TaskSpec(name, f"{name}-v0", None, space, gym.spaces.Discrete(n_actions))


@pytest.fixture
def two_tasks() -> TaskSet:
    return TaskSet([spec("grid", (4, 10, 10), bool, 3), spec("vec", (6,), np.float32, 2)])


def fill_multi(replay, tasks, steps, n_envs, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for t in tasks:
            buf = replay.buffers[t.name]
            shape = (n_envs, *t.obs_shape)
            buf.add(
                obs=(rng.random(shape) < 0.5).astype(t.obs_dtype),
                actions=rng.integers(0, t.num_actions, n_envs),
                rewards=rng.random(n_envs).astype(np.float32),
                next_obs=(rng.random(shape) < 0.5).astype(t.obs_dtype),
                terminated=rng.random(n_envs) < 0.1,
                truncated=np.zeros(n_envs, bool),
                valid=np.ones(n_envs, bool),
            )


def test_multitask_sample_is_balanced_with_task_shapes(two_tasks):
    replay = MultiTaskReplay(two_tasks, capacity_per_task=40, n_envs=2, n_step=3, gamma=0.9)
    fill_multi(replay, two_tasks, steps=15, n_envs=2, seed=0)
    assert list(replay.buffers) == ["grid", "vec"]
    samples = replay.sample({"grid": 16, "vec": 16}, np.random.default_rng(0))
    assert list(samples) == ["grid", "vec"]
    grid, vec = samples["grid"], samples["vec"]
    assert grid.obs.shape == (16, 4, 10, 10) and grid.obs.dtype == np.bool_
    assert grid.next_obs.shape == (16, 4, 10, 10) and grid.next_obs.dtype == np.bool_
    assert vec.obs.shape == (16, 6) and vec.obs.dtype == np.float32
    for s in samples.values():
        assert s.actions.shape == (16,) and s.actions.dtype == np.int64
        assert s.returns.shape == (16,) and s.returns.dtype == np.float32
        assert s.discounts.shape == (16,) and s.discounts.dtype == np.float32
    assert grid.actions.max() < 3 and vec.actions.max() < 2
    uneven = replay.sample({"grid": 5, "vec": 9}, np.random.default_rng(1))
    assert [len(s.actions) for s in uneven.values()] == [5, 9]
    # the counts name the tasks to sample, in the order the rows come back: a subset or another
    # order is fine (a phase samples only its tasks), a task the replay lacks is not
    reordered = replay.sample({"vec": 4, "grid": 3}, np.random.default_rng(2))
    assert list(reordered) == ["vec", "grid"]
    assert [len(s.actions) for s in reordered.values()] == [4, 3]
    assert list(replay.sample({"vec": 4}, np.random.default_rng(0))) == ["vec"]
    with pytest.raises(KeyError):
        replay.sample({"grid": 4, "pong": 4}, np.random.default_rng(0))


def test_state_round_trip(two_tasks, tmp_path):
    replay = MultiTaskReplay(two_tasks, capacity_per_task=10, n_envs=2, n_step=3, gamma=0.9)
    fill_multi(replay, two_tasks, steps=8, n_envs=2, seed=0)  # wraps (length 5)
    path = tmp_path / "replay.npz"
    np.savez(path, **replay.state())
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    assert set(arrays) == {
        f"{t}/{k}"
        for t in ("grid", "vec")
        for k in ("obs", "next_obs", "actions", "rewards", "terminated", "done", "pos", "size")
    }
    restored = MultiTaskReplay(two_tasks, capacity_per_task=10, n_envs=2, n_step=3, gamma=0.9)
    restored.load_state(arrays)
    for task, a in replay.buffers.items():
        b = restored.buffers[task]
        for name, value in a.state().items():
            np.testing.assert_array_equal(getattr(b, name), value)
    counts = {"grid": 7, "vec": 7}
    s1 = replay.sample(counts, np.random.default_rng(5))
    s2 = restored.sample(counts, np.random.default_rng(5))
    for task in counts:
        x, y = s1[task], s2[task]
        for field in ("obs", "actions", "returns", "next_obs", "discounts"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field))


def test_load_state_rejects_wrong_shape(two_tasks):
    small = MultiTaskReplay(two_tasks, capacity_per_task=10, n_envs=2, n_step=1, gamma=0.9)
    big = MultiTaskReplay(two_tasks, capacity_per_task=20, n_envs=2, n_step=1, gamma=0.9)
    with pytest.raises(CheckpointError, match="'grid/obs'.*delete it to resume"):
        big.load_state(small.state())
    assert len(big.buffers["grid"]) == 0  # nothing loaded


@pytest.mark.parametrize("missing", ["pos", "size", "obs"])
def test_load_state_refuses_a_task_with_arrays_missing(two_tasks, missing):
    saved = MultiTaskReplay(two_tasks, capacity_per_task=10, n_envs=2, n_step=1, gamma=0.9)
    fill_multi(saved, two_tasks, steps=3, n_envs=2, seed=0)
    arrays = saved.state()
    del arrays[f"vec/{missing}"]
    restored = MultiTaskReplay(two_tasks, capacity_per_task=10, n_envs=2, n_step=1, gamma=0.9)
    with pytest.raises(CheckpointError, match=f"'vec/{missing}' is missing.*replay.npz"):
        restored.load_state(arrays)
    assert len(restored.buffers["grid"]) == 0  # checked all tasks before loading any


def test_load_state_refuses_positions_outside_the_buffer(two_tasks):
    saved = MultiTaskReplay(two_tasks, capacity_per_task=10, n_envs=2, n_step=1, gamma=0.9)
    fill_multi(saved, two_tasks, steps=3, n_envs=2, seed=0)
    arrays = saved.state()
    arrays["grid/pos"] = np.array([7, 0])  # 5 rows per env
    restored = MultiTaskReplay(two_tasks, capacity_per_task=10, n_envs=2, n_step=1, gamma=0.9)
    with pytest.raises(CheckpointError, match="grid/pos"):
        restored.load_state(arrays)


def test_load_state_leaves_a_task_without_arrays_empty(two_tasks):
    saved = MultiTaskReplay(two_tasks[:1], capacity_per_task=10, n_envs=2, n_step=1, gamma=0.9)
    fill_multi(saved, two_tasks[:1], steps=3, n_envs=2, seed=0)
    restored = MultiTaskReplay(two_tasks, capacity_per_task=10, n_envs=2, n_step=1, gamma=0.9)
    restored.load_state(saved.state())  # the second task joined after the save
    assert len(restored.buffers[two_tasks[0].name]) == 6
    assert len(restored.buffers[two_tasks[1].name]) == 0


def replay_messages(caplog, level=logging.INFO) -> list[str]:
    """The messages `multiq.replay.buffers` logged at `level`."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "multiq.replay.buffers" and r.levelno == level
    ]


def test_check_memory_logs_and_returns_bytes(two_tasks, caplog):
    caplog.set_level(logging.INFO, logger="multiq.replay.buffers")
    total = multiq.replay.buffers.check_memory(two_tasks, 1000)
    # grid: 400 bool bytes per obs -> 2 * 400 + 14 = 814 per transition;
    # vec: 6 float32 = 24 bytes per obs -> 2 * 24 + 14 = 62 per transition
    assert total == 1000 * 814 + 1000 * 62
    (message,) = replay_messages(caplog)
    assert message.startswith("replay memory:")
    assert "grid" in message and "vec" in message and "1000 per task" in message


def test_check_memory_refuses_too_large_buffer(two_tasks, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="multiq.replay.buffers")
    monkeypatch.setattr(multiq.replay.buffers, "available_ram_bytes", lambda: 100_000)
    with pytest.raises(ConfigError, match="buffer_size=1000") as info:
        MultiTaskReplay(two_tasks, capacity_per_task=1000, n_envs=2, n_step=3, gamma=0.9)
    assert "lower buffer_size" in str(info.value)
    assert any(m.startswith("replay memory:") for m in replay_messages(caplog))
    # a buffer that fits passes: 100 * (814 + 62) = 87_600 <= 0.9 * 100_000
    MultiTaskReplay(two_tasks, capacity_per_task=100, n_envs=2, n_step=3, gamma=0.9)


def test_available_ram_is_positive():
    assert multiq.replay.buffers.available_ram_bytes() > 0


def _episodes(capacity: int, steps: int, n_envs: int = 2, seed: int = 0) -> TaskReplay:
    """Bool-image episodes of 3-7 steps per env as a Gymnasium vector env gives them: within
    an episode next_obs is the next step's obs, an episode's last next_obs is its terminal
    observation, and the step after it is an autoreset step (not stored) that brings the reset
    observation; `steps` vector steps into a buffer of `capacity` transitions."""
    rng = np.random.default_rng(seed)
    buf = TaskReplay((2, 3, 3), np.bool_, capacity, n_envs, n_step=2, gamma=0.9)
    obs = rng.random((n_envs, 2, 3, 3)) < 0.5
    left = rng.integers(3, 8, n_envs)
    autoreset = np.zeros(n_envs, bool)
    for _ in range(steps):
        next_obs = rng.random((n_envs, 2, 3, 3)) < 0.5  # the reset observation where autoreset
        ended = ~autoreset & (left == 1)
        buf.add(obs, rng.integers(0, 3, n_envs), rng.random(n_envs), next_obs, ended,
                np.zeros(n_envs, bool), ~autoreset)  # fmt: skip
        obs = next_obs
        left = np.where(autoreset, rng.integers(3, 8, n_envs), left - 1)
        autoreset = ended
    return buf


@pytest.mark.parametrize(("capacity", "steps"), [(40, 13), (40, 20), (40, 57), (30, 200)])
def test_a_saved_replay_keeps_next_obs_only_where_it_is_not_the_next_row(capacity, steps):
    buf = _episodes(capacity, steps)
    state = {f"a/{k}": v for k, v in buf.state().items()}
    saved = multiq.replay.buffers.without_successor_obs(state)
    assert "a/next_obs" not in saved
    differs, rows = saved["a/next_obs_differs"], saved["a/next_obs_rows"]
    assert differs.shape == buf.done.shape and rows.shape[1:] == (2, 3, 3)
    # within an episode next_obs is the next row's obs: only episode ends and each column's
    # newest row (its successor is the oldest row, or an empty one) are kept
    written = np.arange(buf.length)[:, None] < buf.size[None, :]
    newest = np.zeros_like(differs)
    newest[(buf.pos - 1) % buf.length, np.arange(buf.n_envs)] = True
    assert not np.any(differs & written & ~buf.done & ~newest)
    assert int((differs & written).sum()) <= int((buf.done & written).sum()) + buf.n_envs
    assert len(rows) == int(differs.sum())
    restored = multiq.replay.buffers.with_successor_obs(saved)
    assert sorted(restored) == sorted(state)
    for key, value in state.items():
        assert restored[key].dtype == value.dtype
        np.testing.assert_array_equal(restored[key], value)


def test_replay_arrays_saved_whole_load_as_they_are():
    state = {f"a/{k}": v for k, v in _episodes(40, 20).state().items()}
    restored = multiq.replay.buffers.with_successor_obs(state)
    for key, value in state.items():
        np.testing.assert_array_equal(restored[key], value)


def test_saved_next_obs_rows_that_do_not_fit_are_refused():
    state = {f"a/{k}": v for k, v in _episodes(40, 20).state().items()}
    saved = multiq.replay.buffers.without_successor_obs(state)
    saved["a/next_obs_rows"] = saved["a/next_obs_rows"][1:]
    with pytest.raises(CheckpointError, match="'a/next_obs_rows' is bool .* needs .* rows"):
        multiq.replay.buffers.with_successor_obs(saved)
    del saved["a/next_obs_rows"]
    with pytest.raises(CheckpointError, match="a/obs and a/next_obs_differs do not fit"):
        multiq.replay.buffers.with_successor_obs(saved)
