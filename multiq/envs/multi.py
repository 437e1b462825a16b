"""Steps every task's envs together and keeps per-task episode statistics.

Each task's envs follow Gymnasium 1.x's NEXT_STEP autoreset (the `SyncVectorEnv` default): the
step that ends an episode returns its real last observation, and the *following* step call resets
that env, ignores its action and returns the first observation of the new episode. That following
step is not a transition, so `StepResult.valid` marks it False and the trainer neither stores it
nor counts its reward. How each task's envs run (in this process, in worker processes, on
EnvPool) is the env backend's business (`multiq.envs.backends`); all of them step the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from multiq.envs.backends import EnvSettings, make_task_envs
from multiq.envs.checks import BoundsWatch
from multiq.errors import EnvError, NonFiniteError
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

    def record(self) -> dict[str, list[float]]:
        """JSON-safe state (floats round-trip exactly through JSON)."""
        return {
            "running": self.running.tolist(),
            "recent": list(self.recent),
            "finished": list(self.finished),
        }

    def restore(self, record: Mapping[str, list[float]]) -> None:
        self.running = np.array(record["running"], dtype=np.float64)
        self.recent = deque(record["recent"], maxlen=RECENT_EPISODES)
        self.finished = list(record["finished"])


def check_finite(task: str, obs: np.ndarray, rewards: np.ndarray) -> None:
    """Raises NonFiniteError naming the task and env of a NaN/inf observation or reward.

    Args:
        obs: [n_envs, *obs_shape] (integer and bool observations are always finite).
        rewards: [n_envs].
    """
    checks = {"reward": rewards}
    if obs.dtype.kind == "f":
        checks["observation"] = obs.reshape(len(obs), -1)
    for what, values in checks.items():
        finite = np.isfinite(values)
        if finite.all():
            continue
        rows = finite if finite.ndim == 1 else finite.all(axis=1)
        env = int(np.flatnonzero(~rows)[0])
        shown = values[env] if values.ndim == 1 else "entries " + str(values[env][~finite[env]][:3])
        raise NonFiniteError(f"task {task!r}: env {env} returned a non-finite {what} ({shown})")


class MultiTaskEnvs:
    """`n_envs` copies of every given task's env, stepped together, keyed by task name.

    Args:
        tasks: the tasks to build envs for (each spec's `make_env`).
        n_envs: envs per task.
        seed: env i of the k-th task is seeded `seed + 10_000 k + i` at reset.
        evaluation: build the evaluation variant of each env.
        restarts: envs rebuilt per task after raising before an env error stops the run.
        settings: how the envs run (`env_backend`, `env_workers`); default in this process.
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        n_envs: int,
        seed: int,
        evaluation: bool = False,
        restarts: int = 0,
        settings: EnvSettings | None = None,
    ):
        self.names = [t.name for t in tasks]
        self.n_envs = n_envs
        self.seed = seed
        self.envs: dict[str, Any] = {}
        try:
            for task in tasks:
                self.envs[task.name] = make_task_envs(
                    task, n_envs, evaluation, restarts, settings or EnvSettings()
                )
        except BaseException:
            self.close()  # the worker processes of the tasks built so far
            raise
        self.episodes = {name: EpisodeTracker(n_envs) for name in self.names}
        self.bounds = {t.name: BoundsWatch(t.name, t.observation_space) for t in tasks}
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

        Raises:
            EnvError: an env raised, or returned what breaks its declared spaces (with no
                restarts left; see `multiq.envs.checks`).
            NonFiniteError: an env returned a NaN or infinite observation or reward.
            After either, the envs' records (`record`) are rolled back to before this call, so
            they describe the last consistent state.
        """
        names = self.names if names is None else list(names)
        marks = {name: self.envs[name].mark() for name in names}
        raw = {}
        try:
            # Every task's envs start stepping before any is waited for: worker processes and
            # EnvPool threads of different tasks run side by side.
            for name in names:
                self.envs[name].step_async(actions[name])
            for name in names:
                raw[name] = self.envs[name].step_wait()
                check_finite(name, raw[name][0], raw[name][1])
                self.bounds[name].check(raw[name][0])
        except (EnvError, NonFiniteError):
            for name, mark in marks.items():
                self.envs[name].rollback(mark)
            raise
        result = StepResult({}, {}, {}, {}, {})
        for name, (obs, rewards, terminated, truncated, failed) in raw.items():
            valid = ~self._last_done[name] & ~failed
            done = terminated | truncated
            self.episodes[name].update(rewards, done, valid)
            self.episodes[name].running[failed] = 0.0  # a rebuilt env's episode is lost
            self._last_done[name] = done
            result.obs[name] = obs
            result.rewards[name] = rewards
            result.terminated[name] = terminated
            result.truncated[name] = truncated
            result.valid[name] = valid
        return result

    def restarts(self) -> dict[str, int]:
        """Task name -> envs rebuilt after raising."""
        return {name: env.restarted for name, env in self.envs.items()}

    def record(self) -> dict[str, Any]:
        """JSON-safe state of every task's envs and episode statistics (see `restore`)."""
        return {
            name: {
                "envs": self.envs[name].record(),
                "episodes": self.episodes[name].record(),
                "last_done": self._last_done[name].tolist(),
            }
            for name in self.names
        }

    def restore(
        self, record: Mapping[str, Any], expected_obs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Brings the envs to a recorded state; returns task name -> current observations."""
        obs = {}
        for name in self.names:
            task = record[name]
            obs[name] = self.envs[name].restore(task["envs"], expected_obs[name])
            self.episodes[name].restore(task["episodes"])
            # an env that could not be restored started a new episode: its next step is real
            last_done = np.array(task["last_done"], dtype=bool)
            self._last_done[name] = last_done & self.envs[name].history.needs_reset
        return obs

    def recent_returns(self) -> dict[str, float]:
        return {name: ep.recent_mean() for name, ep in self.episodes.items()}

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
