"""One task's circular replay buffer with n-step sampling, and the sample it returns.

A task's storage is laid out `[capacity_per_env, n_envs, ...]` and every env has its own write
position, so one env's transitions are consecutive in time. That makes the n-step look-ahead a
vectorised index (`i, i+1, ..., i+n-1` in the same column) with no per-sample Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from multiq.errors import CheckpointError
from multiq.runio.layout import REPLAY_FILE
from multiq.tasks.spec import TaskSpec

STATE_NAMES = ("obs", "next_obs", "actions", "rewards", "terminated", "done", "pos", "size")


@dataclass
class NStepSample:
    """A sample from one task's buffer (numpy, B rows).

    Attributes:
        obs: [B, *obs_shape] observations s_t.
        actions: [B] int64.
        returns: [B] float32, `sum_{j<k} gamma^j r_{t+j}`.
        next_obs: [B, *obs_shape] the bootstrap state s_{t+k}.
        discounts: [B] float32, `gamma^k`, or 0 if the episode terminated within k steps.
    """

    obs: np.ndarray
    actions: np.ndarray
    returns: np.ndarray
    next_obs: np.ndarray
    discounts: np.ndarray


class TaskReplay:
    """Circular storage of one task's transitions, with n-step sampling.

    Observations are stored whole, `obs` and `next_obs` of every transition
    (`multiq.replay.frames.FrameStackReplay` stores stacked frames once instead).
    """

    state_names: tuple[str, ...] = STATE_NAMES

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        capacity: int,
        n_envs: int,
        n_step: int = 1,
        gamma: float = 0.99,
    ):
        self.n_envs = n_envs
        self.length = max(capacity // n_envs, n_step + 1)
        self.n_step = n_step
        self.gamma = gamma
        shape = (self.length, n_envs)
        self._make_obs_storage(tuple(obs_shape), np.dtype(obs_dtype))
        self.actions = np.zeros(shape, dtype=np.int64)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=bool)
        self.done = np.zeros(shape, dtype=bool)
        self.pos = np.zeros(n_envs, dtype=np.int64)
        self.size = np.zeros(n_envs, dtype=np.int64)
        self._discount_powers = gamma ** np.arange(n_step + 1, dtype=np.float64)

    def _make_obs_storage(self, obs_shape: tuple[int, ...], obs_dtype: np.dtype) -> None:
        self.obs = np.zeros((self.length, self.n_envs, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros_like(self.obs)

    @staticmethod
    def bytes_needed(obs_shape, obs_dtype, capacity: int) -> int:
        """Bytes a buffer of `capacity` transitions takes (two observations + scalars each)."""
        per_obs = int(np.prod(obs_shape)) * np.dtype(obs_dtype).itemsize
        return capacity * (2 * per_obs + 8 + 4 + 1 + 1)

    @classmethod
    def for_task(cls, spec: TaskSpec, capacity: int, n_envs: int, n_step: int, gamma: float):
        """The buffer of a task's observations."""
        return cls(spec.obs_shape, spec.obs_dtype, capacity, n_envs, n_step, gamma)

    @classmethod
    def bytes_for_task(cls, spec: TaskSpec, capacity: int) -> int:
        """Bytes the buffer of a task with `capacity` transitions takes."""
        return cls.bytes_needed(spec.obs_shape, spec.obs_dtype, capacity)

    def __len__(self) -> int:
        return int(self.size.sum())

    def capacity_bytes(self) -> int:
        """Bytes of all the buffer's arrays."""
        return sum(a.nbytes for a in self.state().values())

    def filled_bytes(self) -> int:
        """Bytes of the rows written so far (the pages the OS has handed out)."""
        return self.capacity_bytes() * len(self) // (self.length * self.n_envs)

    def add(self, obs, actions, rewards, next_obs, terminated, truncated, valid) -> None:
        """Stores one vector step; rows where `valid` is False (autoreset steps) are skipped.

        Args:
            obs, next_obs: [n_envs, *obs_shape]. `next_obs` is the real last observation
                of an episode that ended at this step.
            actions, rewards, terminated, truncated, valid: [n_envs].
        """
        envs = np.flatnonzero(valid)
        if envs.size == 0:
            return
        rows = self.pos[envs]
        self._write_obs(rows, envs, obs, next_obs, np.logical_or(terminated, truncated))
        self.actions[rows, envs] = actions[envs]
        self.rewards[rows, envs] = rewards[envs]
        self.terminated[rows, envs] = terminated[envs]
        self.done[rows, envs] = np.logical_or(terminated, truncated)[envs]
        self.pos[envs] = (rows + 1) % self.length
        self.size[envs] = np.minimum(self.size[envs] + 1, self.length)

    def _write_obs(self, rows, envs, obs, next_obs, done) -> None:
        """Stores the observations of one vector step's valid envs `envs` at `rows`."""
        self.obs[rows, envs] = obs[envs]
        self.next_obs[rows, envs] = next_obs[envs]

    def _obs_at(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """[B, *obs_shape] the observations of transitions (rows, envs)."""
        return self.obs[rows, envs]

    def _next_obs_at(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """[B, *obs_shape] the next observations of transitions (rows, envs)."""
        return self.next_obs[rows, envs]

    def _sampleable(self) -> tuple[np.ndarray, np.ndarray]:
        """([n_envs] oldest entries per env that cannot be sampled, [n_envs] entries that can)."""
        return np.zeros_like(self.size), self.size

    def sample(self, batch_size: int, rng: np.random.Generator) -> NStepSample:
        """Uniformly samples stored transitions and builds their n-step returns."""
        skip, count = self._sampleable()
        total = int(count.sum())
        if total == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        flat = rng.integers(0, total, size=batch_size)
        bounds = np.cumsum(count)
        envs = np.searchsorted(bounds, flat, side="right")
        offset = flat - (bounds[envs] - count[envs]) + skip[envs]
        full = self.size[envs] == self.length
        # Oldest entry sits at `pos` once the column is full, at 0 before.
        rows = np.where(full, (self.pos[envs] + offset) % self.length, offset)
        return self._n_step(rows, envs, newer=self.size[envs] - offset)

    def _n_step(self, rows: np.ndarray, envs: np.ndarray, newer: np.ndarray) -> NStepSample:
        """n-step returns from rows `rows` of columns `envs`; `newer`: [B] entries from row on."""
        steps = np.arange(self.n_step)
        idx = (rows[:, None] + steps) % self.length  # [B, n]
        cols = envs[:, None]
        done = self.done[idx, cols]
        # Step j counts if it was written and no episode ended at an earlier step.
        ended_before = np.cumsum(done, axis=1) - done > 0
        used = (steps < newer[:, None]) & ~ended_before
        k = used.sum(axis=1)
        returns = (self.rewards[idx, cols] * used * self._discount_powers[:-1]).sum(axis=1)
        last = idx[np.arange(len(rows)), k - 1]
        terminal = self.terminated[last, envs]
        discounts = np.where(terminal, 0.0, self._discount_powers[k])
        return NStepSample(
            obs=self._obs_at(rows, envs),
            actions=self.actions[rows, envs],
            returns=returns.astype(np.float32),
            next_obs=self._next_obs_at(last, envs),
            discounts=discounts.astype(np.float32),
        )

    def state(self) -> dict[str, np.ndarray]:
        """All arrays (`state_names`), for saving with `np.savez` (no pickled objects)."""
        return {name: getattr(self, name) for name in self.state_names}

    def check_state(self, arrays: Mapping[str, np.ndarray], prefix: str = "") -> None:
        """Checks that `arrays` is a `state()` of a buffer shaped like this one.

        Args:
            arrays: name -> array, the names of `STATE_NAMES`.
            prefix: put before the names in messages (e.g. `Breakout/`).

        Raises:
            CheckpointError: an array is missing, unknown, of another shape or dtype, or the
                write positions and sizes do not fit the buffer.
        """
        unknown = sorted(set(arrays) - set(self.state_names))
        if unknown:
            raise replay_mismatch(f"{prefix + unknown[0]!r} is not a replay array")
        for name in self.state_names:
            target, value = getattr(self, name), arrays.get(name)
            if value is None:
                raise replay_mismatch(f"replay array {prefix + name!r} is missing")
            if target.shape != value.shape or target.dtype != value.dtype:
                raise replay_mismatch(
                    f"replay array {prefix + name!r} is {value.dtype} {value.shape}, this replay "
                    f"needs {target.dtype} {target.shape}"
                )
        pos, size = arrays["pos"], arrays["size"]
        if not _positions_fit(pos, size, self.length):
            raise replay_mismatch(
                f"replay arrays {prefix}pos {pos.tolist()} and {prefix}size {size.tolist()} do "
                f"not fit a buffer of {self.length} rows per env"
            )

    def load_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Copies a `state()` into the buffer (after `check_state`)."""
        self.check_state(arrays)
        for name in self.state_names:
            getattr(self, name)[...] = arrays[name]


def _positions_fit(pos: np.ndarray, size: np.ndarray, length: int) -> bool:
    """Whether write positions and sizes ([n_envs] each) fit columns of `length` rows.

    A column fills from row 0, so until it is full its write position equals its size.
    """
    in_range = (pos >= 0) & (pos < length) & (size >= 0) & (size <= length)
    return bool(np.all(in_range & ((size == length) | (pos == size))))


def replay_mismatch(what: str) -> CheckpointError:
    """The error for saved replay arrays that do not fit the buffers (`what` says how)."""
    return CheckpointError(
        f"{what}: {REPLAY_FILE} does not belong to this checkpoint; delete it to resume "
        "without the saved replay"
    )
