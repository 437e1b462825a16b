"""Per-task preallocated circular replay buffers, n-step returns and balanced sampling.

Each task's storage is laid out `[capacity_per_env, n_envs, ...]` and every env has its own
write position, so one env's transitions are consecutive in time. That makes the n-step look-ahead
a vectorised index (`i, i+1, ..., i+n-1` in the same column) with no per-sample Python.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from multiq.errors import CheckpointError, ConfigError
from multiq.runio.layout import REPLAY_FILE
from multiq.tasks.spec import TaskSpec

log = logging.getLogger(__name__)

RAM_FRACTION_ALLOWED = 0.9  # leave room for the networks, envs and the OS
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

    state_names = STATE_NAMES

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
            raise _replay_error(f"{prefix + unknown[0]!r} is not a replay array")
        for name in self.state_names:
            target, value = getattr(self, name), arrays.get(name)
            if value is None:
                raise _replay_error(f"replay array {prefix + name!r} is missing")
            if target.shape != value.shape or target.dtype != value.dtype:
                raise _replay_error(
                    f"replay array {prefix + name!r} is {value.dtype} {value.shape}, this replay "
                    f"needs {target.dtype} {target.shape}"
                )
        pos, size = arrays["pos"], arrays["size"]
        if not _positions_fit(pos, size, self.length):
            raise _replay_error(
                f"replay arrays {prefix}pos {pos.tolist()} and {prefix}size {size.tolist()} do "
                f"not fit a buffer of {self.length} rows per env"
            )

    def load_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Copies a `state()` into the buffer (after `check_state`)."""
        self.check_state(arrays)
        for name in self.state_names:
            getattr(self, name)[...] = arrays[name]


class MultiTaskReplay:
    """One TaskReplay per task name; tasks join with `add_task`.

    Args:
        tasks: the first tasks (may be empty).
        capacity_per_task: transitions per task.
        n_envs: envs per task (the buffers' columns).
        n_step: n-step return length.
        gamma: discount factor.
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        capacity_per_task: int,
        n_envs: int,
        n_step: int,
        gamma: float,
    ):
        self.capacity_per_task, self.n_envs = capacity_per_task, n_envs
        self.n_step, self.gamma = n_step, gamma
        self.buffers: dict[str, TaskReplay] = {}
        check_memory(tasks, capacity_per_task)
        for spec in tasks:
            self._make(spec)

    def add_task(self, spec: TaskSpec) -> None:
        """A new, empty buffer for a task (after checking that it fits in RAM)."""
        self.add_tasks([spec])

    def add_tasks(self, specs: Sequence[TaskSpec]) -> None:
        """New, empty buffers for tasks; all buffers together must fit in RAM.

        Raises:
            ValueError: a task already has a buffer.
            ConfigError: the buffers would not fit.
        """
        taken = [s.name for s in specs if s.name in self.buffers]
        if taken:
            raise ValueError(f"the replay already holds tasks {taken}")
        # a buffer's pages count against free RAM only once written: add what is filled
        held = sum(b.capacity_bytes() for b in self.buffers.values())
        filled = sum(b.filled_bytes() for b in self.buffers.values())
        check_memory(specs, self.capacity_per_task, held_bytes=held, filled_bytes=filled)
        for spec in specs:
            self._make(spec)

    def _make(self, spec: TaskSpec) -> None:
        self.buffers[spec.name] = replay_class(spec).for_task(
            spec, self.capacity_per_task, self.n_envs, self.n_step, self.gamma
        )

    def sample(self, counts: Mapping[str, int], rng: np.random.Generator) -> dict[str, NStepSample]:
        """`counts[name]` samples from each named task's buffer, in `counts` order."""
        return {name: self.buffers[name].sample(n, rng) for name, n in counts.items()}

    def state(self) -> dict[str, np.ndarray]:
        """All buffers' arrays keyed `<task>/<array>` (for `np.savez`)."""
        return {f"{n}/{k}": v for n, buf in self.buffers.items() for k, v in buf.state().items()}

    def load_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Loads `state()` arrays into the buffers, after checking all of them.

        A task with no array at all joined after the replay was saved: its buffer stays empty.
        Arrays of tasks this replay does not hold are ignored.

        Raises:
            CheckpointError: a task's arrays are incomplete or do not fit its buffer (nothing
                is loaded then).
        """
        found = {}
        for name, buf in self.buffers.items():
            prefix = f"{name}/"
            names = buf.state_names
            task_arrays = {k: arrays[prefix + k] for k in names if prefix + k in arrays}
            if task_arrays:
                buf.check_state(task_arrays, prefix)
                found[name] = task_arrays
        for name, task_arrays in found.items():
            self.buffers[name].load_state(task_arrays)


NEXT_DIFFERS = "next_obs_differs"  # saved instead of next_obs: [L, n_envs] bool
NEXT_ROWS = "next_obs_rows"  # and [K, *obs_shape], the next_obs of the K rows that differ


def without_successor_obs(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`MultiTaskReplay.state()` arrays for saving, each `<task>/next_obs` kept only where it
    is not the next row's `obs` (the row after it in its env's column, wrapping): within an
    episode it always is, so a saved replay holds each observation about once.

    `<task>/next_obs` [L, n_envs, *obs_shape] becomes `<task>/next_obs_differs` [L, n_envs]
    and `<task>/next_obs_rows` [K, *obs_shape] (the K rows where it differs, in row order);
    `with_successor_obs` restores it exactly. Frame-stacked buffers have no `next_obs`.
    """
    saved = dict(arrays)
    for key in [k for k in arrays if k.endswith("/next_obs")]:
        prefix = key[: -len("next_obs")]
        next_obs = saved.pop(key)
        successor = np.roll(arrays[prefix + "obs"], -1, axis=0)
        differs = (next_obs != successor).reshape(*next_obs.shape[:2], -1).any(axis=2)
        saved[prefix + NEXT_DIFFERS], saved[prefix + NEXT_ROWS] = differs, next_obs[differs]
    return saved


def with_successor_obs(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of `without_successor_obs` (arrays saved whole, by earlier versions, come
    back as they are).

    Raises:
        CheckpointError: a task's saved rows do not fit its `obs` and `next_obs_differs`.
    """
    loaded = dict(arrays)
    for key in [k for k in arrays if k.endswith("/" + NEXT_DIFFERS)]:
        prefix = key[: -len(NEXT_DIFFERS)]
        differs, rows = loaded.pop(key), loaded.pop(prefix + NEXT_ROWS, None)
        next_obs = np.roll(loaded.get(prefix + "obs", np.zeros(0)), -1, axis=0)
        if rows is None or differs.shape != next_obs.shape[:2] or differs.dtype != np.bool_:
            raise _replay_error(f"replay arrays {prefix}obs and {key} do not fit")
        if rows.shape != (int(differs.sum()), *next_obs.shape[2:]) or rows.dtype != next_obs.dtype:
            raise _replay_error(
                f"replay array {prefix + NEXT_ROWS!r} is {rows.dtype} {rows.shape}, "
                f"{prefix + NEXT_DIFFERS} needs {int(differs.sum())} rows like {prefix}obs"
            )
        next_obs[differs] = rows
        loaded[prefix + "next_obs"] = next_obs
    return loaded


def replay_class(spec: TaskSpec) -> type[TaskReplay]:
    """The buffer layout of a task: each stacked frame once for frame-stacked observations
    (`spec.frame_stack > 1`, e.g. Atari), whole observations otherwise."""
    if spec.frame_stack > 1:
        from multiq.replay.frames import FrameStackReplay  # it imports this module: no cycle

        return FrameStackReplay
    return TaskReplay


def _positions_fit(pos: np.ndarray, size: np.ndarray, length: int) -> bool:
    """Whether write positions and sizes ([n_envs] each) fit columns of `length` rows.

    A column fills from row 0, so until it is full its write position equals its size.
    """
    in_range = (pos >= 0) & (pos < length) & (size >= 0) & (size <= length)
    return bool(np.all(in_range & ((size == length) | (pos == size))))


def _replay_error(what: str) -> CheckpointError:
    return CheckpointError(
        f"{what}: {REPLAY_FILE} does not belong to this checkpoint; delete it to resume "
        "without the saved replay"
    )


def available_ram_bytes() -> int:
    """MemAvailable from /proc/meminfo, else total physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(
    tasks: Sequence[TaskSpec], capacity_per_task: int, held_bytes: int = 0, filled_bytes: int = 0
) -> int:
    """Logs the replay memory the tasks need and refuses a size that would not fit in RAM.

    Args:
        tasks: the tasks whose buffers are about to be made.
        capacity_per_task: transitions per task.
        held_bytes: size of the buffers the replay holds already; they must fit too.
        filled_bytes: the part of those already written (no longer in the OS's free memory).
    """
    needed = {t.name: replay_class(t).bytes_for_task(t, capacity_per_task) for t in tasks}
    total = sum(needed.values())
    if not needed:
        return 0
    gib = 1024**3
    parts = ", ".join(f"{n} {b / gib:.2f}" for n, b in needed.items())
    log.info("replay memory: %.2f GiB (%s GiB; %d per task)", total / gib, parts, capacity_per_task)
    available = available_ram_bytes() + filled_bytes
    total += held_bytes
    if total > RAM_FRACTION_ALLOWED * available:
        raise ConfigError(
            f"buffer_size={capacity_per_task} needs {total / gib:.1f} GiB of replay memory, but "
            f"only {available / gib:.1f} GiB of RAM is available; lower buffer_size "
            f"(at most ~{int(capacity_per_task * RAM_FRACTION_ALLOWED * available / total)})"
        )
    return total
