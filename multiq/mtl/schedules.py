"""Task schedules: which tasks get env steps and replay samples.

A schedule turns per-task statistics into shares p_t (summing to one). The trainer gives task t
a fraction p_t of each update's samples (`sample_counts`) and steps its envs at a rate
proportional to p_t (`StepAllocator`: the task with the largest share steps every vector step).
Every share is mixed with the uniform one, `p = (1 - mix) p' + mix / T`, so no task starves.

Schedules (`SCHEDULES`):
- ``uniform``: every task the same share (the default; every task steps every vector step).
- ``weighted``: shares proportional to the task weights alpha.
- ``resample``: tasks with less data or fewer finished episodes than the average are
  over-sampled in proportion to their deficit: `p'_t ~ max(mean(n) / n_t, mean(e) / e_t)` with n
  the stored transitions and e the finished episodes (each + 1).
- ``progress``: more to tasks whose return is still changing (absolute learning progress,
  Matiisen et al. 2017): `p'_t ~ |mean(newer half) - mean(older half)| / (std + 1)` of the task's
  last `window` episode returns; a task with fewer than 4 finished episodes gets the largest
  progress of the others (it is still unexplored).

The module is pure numpy: schedules never see the networks or the envs.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from multiq.registry import lookup

MIN_EPISODES_FOR_PROGRESS = 4


@dataclass
class TaskStats:
    """What a schedule may look at, one entry per active task (the phase's tasks, in order).

    Attributes:
        env_steps: [T] env steps taken so far.
        transitions: [T] transitions stored in the replay buffer.
        episodes: [T] finished training episodes.
        recent_returns: per task, the returns of its latest finished episodes, oldest first.
        weights: [T] task weights alpha (>= 0).
    """

    env_steps: np.ndarray
    transitions: np.ndarray
    episodes: np.ndarray
    recent_returns: list[list[float]]
    weights: np.ndarray


class TaskSchedule(abc.ABC):
    """Maps task statistics to shares of env steps and replay samples.

    The number of tasks T is that of the statistics, so a schedule serves any phase.

    Args:
        uniform_mix: weight of the uniform share in [0, 1] (1 = always uniform).
        window: episodes per task the ``progress`` schedule looks at (>= 4).
    """

    def __init__(self, uniform_mix: float = 0.2, window: int = 20):
        self.uniform_mix = uniform_mix
        self.window = window

    @abc.abstractmethod
    def preferences(self, stats: TaskStats) -> np.ndarray:
        """[T] non-negative preferences; only their ratios matter."""

    def shares(self, stats: TaskStats) -> np.ndarray:
        """[T] shares, summing to one, each at least `uniform_mix / T`."""
        raw = np.asarray(self.preferences(stats), dtype=np.float64)
        total = raw.sum()
        uniform = np.full(len(raw), 1.0 / len(raw))
        preferred = raw / total if total > 0 and np.isfinite(total) else uniform
        return (1.0 - self.uniform_mix) * preferred + self.uniform_mix * uniform


class UniformSchedule(TaskSchedule):
    """Every task the same share."""

    def preferences(self, stats: TaskStats) -> np.ndarray:
        return np.ones(len(stats.weights))


class WeightedSchedule(TaskSchedule):
    """Shares proportional to the task weights alpha."""

    def preferences(self, stats: TaskStats) -> np.ndarray:
        return np.asarray(stats.weights, dtype=np.float64)


class ResampleSchedule(TaskSchedule):
    """Over-samples tasks with fewer transitions or fewer finished episodes than average."""

    def preferences(self, stats: TaskStats) -> np.ndarray:
        data = np.asarray(stats.transitions, dtype=np.float64) + 1.0
        episodes = np.asarray(stats.episodes, dtype=np.float64) + 1.0
        return np.maximum(data.mean() / data, episodes.mean() / episodes)


class ProgressSchedule(TaskSchedule):
    """More to tasks whose recent returns are still changing (absolute learning progress)."""

    def preferences(self, stats: TaskStats) -> np.ndarray:
        progress = np.array([self._progress(r[-self.window :]) for r in stats.recent_returns])
        unknown = np.isnan(progress)
        if unknown.all():
            return np.ones(len(progress))
        known_max = progress[~unknown].max()
        return np.where(unknown, known_max if known_max > 0 else 1.0, progress)

    @staticmethod
    def _progress(returns: list[float]) -> float:
        """|mean(newer half) - mean(older half)| / (std + 1); NaN with too few episodes."""
        if len(returns) < MIN_EPISODES_FOR_PROGRESS:
            return float("nan")
        values = np.asarray(returns, dtype=np.float64)
        half = len(values) // 2
        change = values[half:].mean() - values[:half].mean()
        return float(abs(change) / (values.std() + 1.0))


SCHEDULES: dict[str, type[TaskSchedule]] = {
    "uniform": UniformSchedule,
    "weighted": WeightedSchedule,
    "resample": ResampleSchedule,
    "progress": ProgressSchedule,
}


def build_schedule(name: str, uniform_mix: float = 0.2, window: int = 20) -> TaskSchedule:
    """Builds a task schedule from the registry (arguments: see `TaskSchedule`).

    Raises:
        ConfigError: for an unknown name (with the closest valid one).
    """
    cls = lookup(SCHEDULES, name, "task_schedule", "schedules")
    return cls(uniform_mix, window)


def sample_counts(shares: np.ndarray, total: int) -> np.ndarray:
    """[T] integer sample counts summing to `total`, proportional to `shares`, each >= 1.

    Largest-remainder rounding after giving every task one sample (each task needs at least one
    row for its loss).

    Raises:
        ValueError: if `total` is smaller than the number of tasks.
    """
    num_tasks = len(shares)
    if total < num_tasks:
        raise ValueError(f"{total} samples cannot cover {num_tasks} tasks")
    exact = np.asarray(shares, dtype=np.float64) / np.sum(shares) * (total - num_tasks)
    counts = np.floor(exact).astype(np.int64)
    leftover = total - num_tasks - counts.sum()
    counts[np.argsort(counts - exact, kind="stable")[:leftover]] += 1
    return counts + 1


class StepAllocator:
    """Decides which tasks' envs step at each vector step, at rates proportional to shares.

    Task t steps at rate `p_t / max(p)`: the largest share steps every vector step, and the
    others are spread evenly in time by accumulated credit (deterministic, no sampling noise).
    With equal shares every task steps every time.
    """

    def __init__(self, num_tasks: int):
        self.credit = np.zeros(num_tasks)

    def active(self, shares: np.ndarray) -> np.ndarray:
        """[T] bool, True for the tasks whose envs step now."""
        rates = np.asarray(shares, dtype=np.float64) / np.max(shares)
        self.credit += rates
        active = self.credit >= 1.0 - 1e-9
        self.credit[active] -= 1.0
        return active
