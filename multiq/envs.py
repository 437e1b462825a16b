"""Steps every task's envs together and keeps per-task episode statistics.

Each task gets a Gymnasium `SyncVectorEnv` in NEXT_STEP autoreset mode (the Gymnasium 1.x
default): the step that ends an episode returns its real last observation, and the *following*
step call resets that env, ignores its action and returns the first observation of the new
episode. That following step is not a transition, so `StepResult.valid` marks it False and the
trainer neither stores it nor counts its reward.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import partial

import gymnasium as gym
import numpy as np

from multiq.tasks.spec import TaskSet

RECENT_EPISODES = 20  # episodes in the running "recent return" of each task


@dataclass
class StepResult:
    """One vector step of every task; each field holds one [n_envs, ...] array per task."""

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


class MultiTaskEnvs:
    """`n_envs` copies of every task's env, stepped together."""

    def __init__(self, tasks: TaskSet, n_envs: int, seed: int, evaluation: bool = False):
        self.tasks = tasks
        self.n_envs = n_envs
        self.seed = seed
        self.envs = [
            gym.vector.SyncVectorEnv(
                [partial(task.make_env, evaluation=evaluation)] * n_envs,
                autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
            )
            for task in tasks
        ]
        self.episodes = [EpisodeTracker(n_envs) for _ in tasks]
        self._last_done = [np.zeros(n_envs, dtype=bool) for _ in tasks]

    def reset(self) -> list[np.ndarray]:
        """Resets every env (seeded) and returns one [n_envs, *obs_shape] array per task."""
        obs = []
        for task_index, env in enumerate(self.envs):
            first_seed = self.seed + 10_000 * task_index
            obs.append(env.reset(seed=list(range(first_seed, first_seed + self.n_envs)))[0])
            self._last_done[task_index][:] = False
            self.episodes[task_index].running[:] = 0.0
        return obs

    def step(self, actions: list[np.ndarray]) -> StepResult:
        """Steps every env of every task with its action ([n_envs] int array per task)."""
        result = StepResult([], [], [], [], [])
        for task_index, env in enumerate(self.envs):
            obs, rewards, terminated, truncated, _ = env.step(actions[task_index])
            valid = ~self._last_done[task_index]
            done = terminated | truncated
            self.episodes[task_index].update(rewards, done, valid)
            self._last_done[task_index] = done
            result.obs.append(obs)
            result.rewards.append(rewards.astype(np.float32))
            result.terminated.append(terminated)
            result.truncated.append(truncated)
            result.valid.append(valid)
        return result

    def recent_returns(self) -> dict[str, float]:
        return {t.name: ep.recent_mean() for t, ep in zip(self.tasks, self.episodes, strict=True)}

    def close(self) -> None:
        for env in self.envs:
            env.close()
