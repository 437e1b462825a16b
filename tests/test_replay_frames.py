"""Frame-stacked replay: each frame once, the same transitions as storing whole observations."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from multiq.errors import CheckpointError
from multiq.replay.buffers import MultiTaskReplay, TaskReplay, replay_class
from multiq.replay.frames import FrameStackReplay
from multiq.tasks.spec import TaskSpec

K, H, W = 4, 3, 2
SHAPE = (K, H, W)


class StackedEnvs:
    """`n_envs` fake envs with FrameStackObservation's stacks (the first repeats the reset
    frame) and next-step autoreset: after an episode ends, the env's next step is not valid."""

    def __init__(self, n_envs: int, seed: int, max_len: int, first_padded: bool = True):
        self.rng = np.random.default_rng(seed)
        self.n_envs, self.max_len = n_envs, max_len
        self.stacks = np.stack([self._reset(padded=first_padded) for _ in range(n_envs)])
        self.left = self.rng.integers(1, max_len + 1, size=n_envs)
        self.resetting = np.zeros(n_envs, dtype=bool)

    def _frame(self) -> np.ndarray:
        return self.rng.integers(0, 255, size=(H, W), dtype=np.uint8)

    def _reset(self, padded: bool = True) -> np.ndarray:
        if padded:
            return np.repeat(self._frame()[None], K, axis=0)
        return np.stack([self._frame() for _ in range(K)])

    def step(self):
        """(obs, actions, rewards, next_obs, terminated, truncated, valid), one vector step."""
        obs = self.stacks.copy()
        next_obs = np.empty_like(obs)
        terminated = np.zeros(self.n_envs, dtype=bool)
        truncated = np.zeros(self.n_envs, dtype=bool)
        valid = ~self.resetting
        for env in range(self.n_envs):
            if self.resetting[env]:
                next_obs[env] = self._reset()
                self.left[env] = self.rng.integers(1, self.max_len + 1)
            else:
                next_obs[env] = np.concatenate([obs[env][1:], self._frame()[None]])
                self.left[env] -= 1
                if self.left[env] == 0:
                    terminated[env] = self.rng.random() < 0.5
                    truncated[env] = not terminated[env]
        self.resetting = terminated | truncated
        self.stacks = next_obs
        actions = self.rng.integers(0, 4, size=self.n_envs)
        rewards = self.rng.normal(size=self.n_envs).astype(np.float32)
        return obs, actions, rewards, next_obs, terminated, truncated, valid


def fill(steps: int, capacity: int, n_envs: int = 2, max_len: int = 30, **stream):
    """The same stream into a whole-observation replay and a frame replay."""
    whole = TaskReplay(SHAPE, np.uint8, capacity, n_envs, n_step=3, gamma=0.9)
    frames = FrameStackReplay(SHAPE, np.uint8, capacity, n_envs, n_step=3, gamma=0.9)
    envs = StackedEnvs(n_envs, seed=1, max_len=max_len, **stream)
    for _ in range(steps):
        step = envs.step()
        whole.add(*step)
        frames.add(*step)
    return whole, frames


def sampleable(buf: FrameStackReplay):
    """Every (row, env, newer) the frame replay may sample."""
    skip, count = buf._sampleable()
    rows, envs, newer = [], [], []
    for env in range(buf.n_envs):
        full = buf.size[env] == buf.length
        for offset in range(int(skip[env]), int(skip[env] + count[env])):
            rows.append((buf.pos[env] + offset) % buf.length if full else offset)
            envs.append(env)
            newer.append(buf.size[env] - offset)
    return np.array(rows), np.array(envs), np.array(newer)


def assert_same_transitions(whole: TaskReplay, frames: FrameStackReplay) -> int:
    rows, envs, newer = sampleable(frames)
    a, b = whole._n_step(rows, envs, newer), frames._n_step(rows, envs, newer)
    for field in ("obs", "actions", "returns", "next_obs", "discounts"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    return len(rows)


def test_before_the_buffer_wraps_samples_equal_those_of_whole_observations():
    whole, frames = fill(steps=150, capacity=400)
    assert len(whole) == len(frames) > 100
    assert assert_same_transitions(whole, frames) == len(frames)
    a = whole.sample(64, np.random.default_rng(5))
    b = frames.sample(64, np.random.default_rng(5))
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.next_obs, b.next_obs)
    np.testing.assert_array_equal(a.returns, b.returns)


def test_after_wrapping_every_sampleable_transition_is_exact():
    whole, frames = fill(steps=1000, capacity=160)
    assert (frames.size == frames.length).all()
    assert assert_same_transitions(whole, frames) > 0.9 * len(frames)


def test_one_step_episodes_overwrite_frames_and_those_transitions_are_never_sampled():
    whole, frames = fill(steps=600, capacity=160, max_len=1)  # 2 frames per transition
    skip, count = frames._sampleable()
    assert (skip > 0).all()  # the oldest transitions lost their first frames
    assert assert_same_transitions(whole, frames) == count.sum()


def test_a_stream_that_starts_mid_episode_is_rebuilt_exactly():
    whole, frames = fill(steps=60, capacity=400, first_padded=False)
    assert assert_same_transitions(whole, frames) == len(frames)


def test_the_state_round_trips_and_a_whole_observation_state_is_refused():
    _, frames = fill(steps=300, capacity=160)
    copy = FrameStackReplay(SHAPE, np.uint8, 160, 2, n_step=3, gamma=0.9)
    copy.load_state(frames.state())
    a = frames.sample(32, np.random.default_rng(0))
    b = copy.sample(32, np.random.default_rng(0))
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.next_obs, b.next_obs)
    whole = TaskReplay(SHAPE, np.uint8, 160, 2, n_step=3, gamma=0.9)
    with pytest.raises(CheckpointError, match="'next_obs' is not a replay array"):
        copy.load_state(whole.state())


def atari_spec(name: str, frame_stack: int) -> TaskSpec:
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    return TaskSpec(name, "ALE/Pong-v5", lambda **_: None, space, gym.spaces.Discrete(6), {},
                    frame_stack)  # fmt: skip


def test_two_atari_tasks_of_100k_transitions_fit_in_1_5_gib():
    gib = 1024**3
    frames = [atari_spec(n, 4) for n in ("Tetris", "Pacman")]
    whole = [atari_spec(n, 1) for n in ("Tetris", "Pacman")]
    assert replay_class(frames[0]) is FrameStackReplay and replay_class(whole[0]) is TaskReplay
    needed = sum(replay_class(s).bytes_for_task(s, 100_000) for s in frames)
    assert needed <= 1.5 * gib
    assert sum(replay_class(s).bytes_for_task(s, 100_000) for s in whole) > 10 * gib
    replay = MultiTaskReplay(frames[:1], 2_000, n_envs=1, n_step=1, gamma=0.99)
    buffer = replay.buffers["Tetris"]
    assert isinstance(buffer, FrameStackReplay)
    assert buffer.capacity_bytes() == pytest.approx(
        FrameStackReplay.bytes_needed((4, 84, 84), np.uint8, 2_000), rel=0.01
    )


def test_real_atari_stacks_are_rebuilt_exactly():
    from multiq.tasks import make_taskset

    spec = make_taskset("atari:Tetris")[0]
    assert spec.frame_stack == 4 and replay_class(spec) is FrameStackReplay
    whole = TaskReplay(spec.obs_shape, spec.obs_dtype, 500, 1, n_step=3, gamma=0.99)
    frames = FrameStackReplay(spec.obs_shape, spec.obs_dtype, 500, 1, n_step=3, gamma=0.99)
    env = spec.make_env()
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(300):
        action = int(rng.integers(spec.num_actions))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        step = (obs[None], np.array([action]), np.array([reward], np.float32), next_obs[None],
                np.array([terminated]), np.array([truncated]), np.array([True]))  # fmt: skip
        whole.add(*step)
        frames.add(*step)
        obs = env.reset()[0] if terminated or truncated else next_obs
    env.close()
    assert assert_same_transitions(whole, frames) == 300
    assert frames.written[0] < 310  # one frame per step (and the reset frames)
