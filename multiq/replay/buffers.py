"""The replay of several tasks: one buffer per task name, sampled by counts per task.

Each task's buffer is a `TaskReplay` (`multiq.replay.task_buffer`), or a `FrameStackReplay`
(`multiq.replay.frames`) for frame-stacked observations (`replay_class`). Here also: the RAM
check of the buffers together, and the compact form of their arrays in replay.npz.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np

from multiq.errors import ConfigError
from multiq.replay.frames import FrameStackReplay
from multiq.replay.task_buffer import NStepSample as NStepSample  # re-exported: its 0.1 home
from multiq.replay.task_buffer import TaskReplay, replay_mismatch
from multiq.tasks.spec import TaskSpec

log = logging.getLogger(__name__)

RAM_FRACTION_ALLOWED = 0.9  # leave room for the networks, envs and the OS


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
            raise replay_mismatch(f"replay arrays {prefix}obs and {key} do not fit")
        if rows.shape != (int(differs.sum()), *next_obs.shape[2:]) or rows.dtype != next_obs.dtype:
            raise replay_mismatch(
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
        return FrameStackReplay
    return TaskReplay


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
