"""Replay of frame-stacked observations (Atari) that keeps each frame once.

An env wrapped in Gymnasium's `FrameStackObservation(K)` returns [K, H, W] stacks, newest frame
last, and the first stack of an episode repeats its first frame. Consecutive stacks of one
episode share K - 1 frames, so storing `obs` and `next_obs` whole keeps each frame 2K times
(100k Atari transitions: 5.3 GiB). Here each env (a column) has a ring of frames in time order:

- at an episode's first transition, its first stack: one frame when the stack repeats it (the
  wrapper's padding), all K otherwise (e.g. a buffer that starts in the middle of an episode);
- at every transition, the newest frame of its next observation (the real last observation of
  an episode that ended too).

A transition keeps `frame_at`, the ring position (counted since the start, not wrapped) of its
observation's newest frame, and `depth`, how many frames of its episode precede that one
(capped at K - 1). Its observation is the frames `frame_at - min(j, depth)`, j = K-1, ..., 0,
and its next observation the same one frame on: exactly what the env returned (a stack that
does not match the ring is taken as a new episode's first, so nothing is rebuilt wrongly).

The ring holds `length + length // 16 + K` frames per env, so episodes of 16 steps or more
never overwrite a frame a stored transition needs; transitions whose frames were overwritten
(the oldest ones, after many short episodes) are left out of sampling (`_sampleable`).
"""

from __future__ import annotations

import bisect

import numpy as np

from multiq.replay.task_buffer import TaskReplay

SCALARS = ("actions", "rewards", "terminated", "done", "pos", "size")
FRAME_STATE = ("frames", "frame_at", "depth", "written", "open_at", "open_depth")
SLACK_DIVISOR = 16  # the ring's frames beyond one per transition: length // 16 (+ K)


class FrameStackReplay(TaskReplay):
    """A task's replay of [K, H, W] frame stacks, each frame stored once (see the module).

    Args:
        obs_shape: (K, H, W).
        obs_dtype, capacity, n_envs, n_step, gamma: as `TaskReplay`.
    """

    state_names = (*FRAME_STATE, *SCALARS)

    def _make_obs_storage(self, obs_shape: tuple[int, ...], obs_dtype: np.dtype) -> None:
        self.stack = obs_shape[0]
        self.ring = ring_length(self.length, self.stack)
        self.frames = np.zeros((self.ring, self.n_envs, *obs_shape[1:]), dtype=obs_dtype)
        self.frame_at = np.zeros((self.length, self.n_envs), dtype=np.int64)
        self.depth = np.zeros((self.length, self.n_envs), dtype=np.uint8)
        self.written = np.zeros(self.n_envs, dtype=np.int64)  # frames pushed per env, ever
        self.open_at = np.full(self.n_envs, -1, dtype=np.int64)  # current obs's newest frame
        self.open_depth = np.zeros(self.n_envs, dtype=np.int64)
        self._back = np.arange(self.stack - 1, -1, -1)  # [K] j: frames before the newest

    @staticmethod
    def bytes_needed(obs_shape, obs_dtype, capacity: int) -> int:
        """Bytes of `capacity` transitions (one env): the frame ring and 23 bytes per row."""
        frame = int(np.prod(obs_shape[1:])) * np.dtype(obs_dtype).itemsize
        return ring_length(capacity, obs_shape[0]) * frame + capacity * (8 + 1 + 8 + 4 + 1 + 1)

    # --- writing --------------------------------------------------------------------------------

    def _write_obs(self, rows, envs, obs, next_obs, done) -> None:
        for row, env in zip(rows.tolist(), envs.tolist(), strict=True):
            if not self._continues(env, obs[env]):
                self._start_episode(env, obs[env])
            self.frame_at[row, env] = self.open_at[env]
            self.depth[row, env] = self.open_depth[env]
            self._push(env, next_obs[env][-1])
            self.open_depth[env] = min(self.open_depth[env] + 1, self.stack - 1)
            if done[env]:
                self.open_at[env] = -1

    def _continues(self, env: int, stack: np.ndarray) -> bool:
        """Whether `stack` is the env's current observation as the ring holds it."""
        if self.open_at[env] < 0:
            return False
        at, depth = self.open_at[env : env + 1], self.open_depth[env : env + 1]
        return bool(np.array_equal(self._stacks(at, depth, np.array([env]))[0], stack))

    def _start_episode(self, env: int, stack: np.ndarray) -> None:
        """Pushes an episode's first stack: once when it repeats one frame, else all K."""
        padded = bool((stack == stack[-1]).all())
        for frame in stack[-1:] if padded else stack:
            self._push(env, frame)
        self.open_depth[env] = 0 if padded else self.stack - 1

    def _push(self, env: int, frame: np.ndarray) -> None:
        self.frames[self.written[env] % self.ring, env] = frame
        self.open_at[env] = self.written[env]
        self.written[env] += 1

    # --- reading --------------------------------------------------------------------------------

    def _stacks(self, at: np.ndarray, depth: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """[B, K, H, W] the stacks whose newest frames are at `at` ([B]) with `depth` ([B])."""
        positions = at[:, None] - np.minimum(self._back[None, :], depth[:, None])  # [B, K]
        return self.frames[positions % self.ring, envs[:, None]]

    def _obs_at(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        depth = self.depth[rows, envs].astype(np.int64)
        return self._stacks(self.frame_at[rows, envs], depth, envs)

    def _next_obs_at(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        depth = np.minimum(self.depth[rows, envs].astype(np.int64) + 1, self.stack - 1)
        return self._stacks(self.frame_at[rows, envs] + 1, depth, envs)

    def _sampleable(self) -> tuple[np.ndarray, np.ndarray]:
        """Per env, the oldest transitions whose first frame the ring has overwritten are
        skipped (their first frames only grow with age, so a binary search finds them)."""
        skip = np.zeros_like(self.size)
        for env in np.flatnonzero(self.size).tolist():
            skip[env] = self._overwritten(env)
        return skip, self.size - skip

    def _overwritten(self, env: int) -> int:
        size, kept_from = int(self.size[env]), int(self.written[env]) - self.ring
        start = int(self.pos[env]) if size == self.length else 0

        def needed_kept(offset: int) -> bool:
            row = (start + offset) % self.length
            return int(self.frame_at[row, env]) - int(self.depth[row, env]) >= kept_from

        return bisect.bisect_left(range(size), True, key=needed_kept)


def ring_length(length: int, stack: int) -> int:
    """Frames a ring keeps per env for `length` transitions of `stack`-frame observations."""
    return length + length // SLACK_DIVISOR + stack
