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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import gymnasium as gym
import numpy as np

from multiq.tasks.spec import TaskSpec

RECENT_EPISODES = 20  # episodes in the running "recent return" of each task


@dataclass
class StepResult:
    """One vector step; each field maps a stepped task's name to its [n_envs, ...] array."""

    obs: dict[str, np.ndarray]
    rewards: dict[str, np.ndarray]
    terminated: dict[str, np.ndarray]
    truncated: dict[str, np.ndarray]
    valid: dict[str, np.ndarray]


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
    """`n_envs` copies of every given task's env, stepped together, keyed by task name.

    Args:
        tasks: the tasks to build envs for (each spec's `make_env`).
        n_envs: envs per task.
        seed: env i of the k-th task is seeded `seed + 10_000 k + i` at reset.
        evaluation: build the evaluation variant of each env.
    """

    def __init__(self, tasks: Sequence[TaskSpec], n_envs: int, seed: int, evaluation: bool = False):
        self.names = [t.name for t in tasks]
        self.n_envs = n_envs
        self.seed = seed
        self.envs = {
            t.name: TaskEnvs(partial(t.make_env, evaluation=evaluation), n_envs) for t in tasks
        }
        self.episodes = {name: EpisodeTracker(n_envs) for name in self.names}
        self._last_done = {name: np.zeros(n_envs, dtype=bool) for name in self.names}

    def reset(self) -> dict[str, np.ndarray]:
        """Resets every env (seeded) and returns task name -> [n_envs, *obs_shape]."""
        obs = {}
        for index, (name, env) in enumerate(self.envs.items()):
            first_seed = self.seed + 10_000 * index
            obs[name] = env.reset(list(range(first_seed, first_seed + self.n_envs)))
            self._last_done[name][:] = False
            self.episodes[name].running[:] = 0.0
        return obs

    def step(self, actions: Mapping[str, np.ndarray], names: Iterable[str] | None = None):
        """Steps every env of the tasks `names` (default all) with its action.

        Args:
            actions: task name -> [n_envs] int actions (other tasks' entries are ignored).
            names: the tasks to step (see `multiq.mtl.schedules`); None = all.

        Returns:
            a StepResult with an entry for each stepped task.
        """
        result = StepResult({}, {}, {}, {}, {})
        for name in self.names if names is None else names:
            obs, rewards, terminated, truncated = self.envs[name].step(actions[name])
            valid = ~self._last_done[name]
            done = terminated | truncated
            self.episodes[name].update(rewards, done, valid)
            self._last_done[name] = done
            result.obs[name] = obs
            result.rewards[name] = rewards
            result.terminated[name] = terminated
            result.truncated[name] = truncated
            result.valid[name] = valid
        return result

    def recent_returns(self) -> dict[str, float]:
        return {name: ep.recent_mean() for name, ep in self.episodes.items()}

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
