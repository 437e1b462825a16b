"""Steps every task's envs together and keeps per-task episode statistics.

Each task's envs follow Gymnasium 1.x's NEXT_STEP autoreset (the `SyncVectorEnv` default): the
step that ends an episode returns its real last observation, and the *following* step call resets
that env, ignores its action and returns the first observation of the new episode. That following
step is not a transition, so `StepResult.valid` marks it False and the trainer neither stores it
nor counts its reward. `TaskEnvs` implements this loop directly instead of using `SyncVectorEnv`:
it skips the per-step info merging and checks, which cost as much as a MinAtar step itself.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import gymnasium as gym
import numpy as np

from multiq.tasks.spec import TaskSet

RECENT_EPISODES = 20  # episodes in the running "recent return" of each task


@dataclass
class StepResult:
    """One vector step; each field holds one [n_envs, ...] array per task (None: not stepped)."""

    obs: list[np.ndarray]
    rewards: list[np.ndarray]
    terminated: list[np.ndarray]
    truncated: list[np.ndarray]
    valid: list[np.ndarray]


class EpisodeTracker:
    """Running returns of one task's envs and the returns of its finished episodes."""

    def __init__(self, n_envs: int):
        self.running = np.zeros(n_envs, dtype=np.float64)
        self.recent: deque[float] = deque(maxlen=RECENT_EPISODES)
        self.finished: list[float] = []

    def update(self, rewards: np.ndarray, done: np.ndarray, valid: np.ndarray) -> None:
        self.running += rewards * valid
        ended = done & valid
        if ended.any():
            returns = self.running[ended].tolist()
            self.recent.extend(returns)
            self.finished.extend(returns)
            self.running[ended] = 0.0

    def recent_mean(self) -> float:
        return float(np.mean(self.recent)) if self.recent else float("nan")


class TaskEnvs:
    """`n_envs` copies of one task's env, stepped in turn with NEXT_STEP autoreset."""

    def __init__(self, make_env: Callable[[], gym.Env], n_envs: int):
        self.envs = [make_env() for _ in range(n_envs)]
        space = self.envs[0].observation_space
        self._obs_shape, self._obs_dtype = (n_envs, *space.shape), space.dtype
        self._needs_reset = np.zeros(n_envs, dtype=bool)

    def reset(self, seeds: list[int]) -> np.ndarray:
        """[n_envs, *obs_shape] first observations; env i is seeded with `seeds[i]`."""
        obs = np.empty(self._obs_shape, dtype=self._obs_dtype)
        for i, (env, seed) in enumerate(zip(self.envs, seeds, strict=True)):
            obs[i] = env.reset(seed=seed)[0]
        self._needs_reset[:] = False
        return obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """(obs, rewards, terminated, truncated), each [n_envs, ...]; new arrays every call."""
        n = len(self.envs)
        obs = np.empty(self._obs_shape, dtype=self._obs_dtype)
        rewards = np.zeros(n, dtype=np.float32)
        terminated, truncated = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        for i, env in enumerate(self.envs):
            if self._needs_reset[i]:
                obs[i] = env.reset()[0]
                continue
            obs[i], rewards[i], terminated[i], truncated[i], _ = env.step(actions[i])
        self._needs_reset = terminated | truncated
        return obs, rewards, terminated, truncated

    def close(self) -> None:
        for env in self.envs:
            env.close()


class MultiTaskEnvs:
    """`n_envs` copies of every task's env, stepped together."""

    def __init__(self, tasks: TaskSet, n_envs: int, seed: int, evaluation: bool = False):
        self.tasks = tasks
        self.n_envs = n_envs
        self.seed = seed
        self.envs = [
            TaskEnvs(partial(task.make_env, evaluation=evaluation), n_envs) for task in tasks
        ]
        self.episodes = [EpisodeTracker(n_envs) for _ in tasks]
        self._last_done = [np.zeros(n_envs, dtype=bool) for _ in tasks]

    def reset(self) -> list[np.ndarray]:
        """Resets every env (seeded) and returns one [n_envs, *obs_shape] array per task."""
        obs = []
        for task_index, env in enumerate(self.envs):
            first_seed = self.seed + 10_000 * task_index
            obs.append(env.reset(list(range(first_seed, first_seed + self.n_envs))))
            self._last_done[task_index][:] = False
            self.episodes[task_index].running[:] = 0.0
        return obs

    def step(self, actions: list[np.ndarray], active: np.ndarray | None = None) -> StepResult:
        """Steps every env of the active tasks with its action ([n_envs] int array per task).

        Args:
            actions: one [n_envs] int array per task (ignored for inactive tasks).
            active: [T] bool, the tasks to step (see `multiq.mtl.schedules`); None = all.

        Returns:
            the step of every task; an inactive task's entries are None.
        """
        result = StepResult([], [], [], [], [])
        for task_index, env in enumerate(self.envs):
            if active is not None and not active[task_index]:
                for column in vars(result).values():
                    column.append(None)
                continue
            obs, rewards, terminated, truncated = env.step(actions[task_index])
            valid = ~self._last_done[task_index]
            done = terminated | truncated
            self.episodes[task_index].update(rewards, done, valid)
            self._last_done[task_index] = done
            result.obs.append(obs)
            result.rewards.append(rewards)
            result.terminated.append(terminated)
            result.truncated.append(truncated)
            result.valid.append(valid)
        return result

    def recent_returns(self) -> dict[str, float]:
        return {t.name: ep.recent_mean() for t, ep in zip(self.tasks, self.episodes, strict=True)}

    def close(self) -> None:
        for env in self.envs:
            env.close()
