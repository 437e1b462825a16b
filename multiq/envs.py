"""Steps every task's envs together and keeps per-task episode statistics.

Each task's envs follow Gymnasium 1.x's NEXT_STEP autoreset (the `SyncVectorEnv` default): the
step that ends an episode returns its real last observation, and the *following* step call resets
that env, ignores its action and returns the first observation of the new episode. That following
step is not a transition, so `StepResult.valid` marks it False and the trainer neither stores it
nor counts its reward. `TaskEnvs` implements this loop directly instead of using `SyncVectorEnv`:
it skips the per-step info merging and checks, which cost as much as a MinAtar step itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from multiq.errors import EnvError, NonFiniteError
from multiq.tasks.spec import TaskSpec

log = logging.getLogger(__name__)

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


def episode_seed(first_seed: int, episode: int) -> int:
    """The reset seed of an env's `episode`-th episode (0: `first_seed` itself).

    Every episode is reset with its own seed, so an env's state is given by its episode's seed
    and the actions taken since: a checkpoint can replay them (`TaskEnvs.restore`).
    """
    if episode == 0:
        return first_seed
    return int(np.random.SeedSequence([first_seed, episode]).generate_state(1)[0])


class TaskEnvs:
    """`n_envs` copies of one task's env, stepped in turn with NEXT_STEP autoreset.

    Each env's episodes are reset with `episode_seed(first_seeds[i], k)`, and the actions of the
    current episode are kept, so `record` / `restore` can rebuild the envs' states exactly where
    the env is deterministic given its seed and actions.

    Args:
        name: the task's name (for error messages).
        make_env: builds one env.
        n_envs: copies.
        restarts: how many times an env that raises is rebuilt before the error stops the run
            (0: never).
    """

    def __init__(self, name: str, make_env: Callable[[], gym.Env], n_envs: int, restarts: int = 0):
        self.name, self.make_env = name, make_env
        self.envs = [self._call(i, "building", make_env) for i in range(n_envs)]
        space = self.envs[0].observation_space
        self._obs_shape, self._obs_dtype = (n_envs, *space.shape), space.dtype
        self._needs_reset = np.zeros(n_envs, dtype=bool)
        self.first_seeds = [0] * n_envs
        self.episode_index = [0] * n_envs
        self.actions: list[list[int]] = [[] for _ in range(n_envs)]
        self.restarts_left = restarts
        self.restarted = 0

    def _call(self, i: int, what: str, fn: Callable, *args, **kwargs):
        """Calls `fn`; an exception becomes an EnvError naming the task, env and call."""
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            raise EnvError(
                f"task {self.name!r}: env {i} raised while {what}: {type(error).__name__}: {error}"
            ) from error

    def _reset_env(self, i: int) -> np.ndarray:
        seed = episode_seed(self.first_seeds[i], self.episode_index[i])
        self.actions[i] = []
        return self._call(i, "resetting", self.envs[i].reset, seed=seed)[0]

    def reset(self, seeds: list[int]) -> np.ndarray:
        """[n_envs, *obs_shape] first observations; env i's first episode is seeded `seeds[i]`."""
        obs = np.empty(self._obs_shape, dtype=self._obs_dtype)
        self.first_seeds = [int(s) for s in seeds]
        self.episode_index = [0] * len(self.envs)
        for i in range(len(self.envs)):
            obs[i] = self._reset_env(i)
        self._needs_reset[:] = False
        return obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """(obs, rewards, terminated, truncated, failed), each [n_envs, ...]; new arrays.

        `failed[i]`: env i raised and was rebuilt (its episode is lost, `obs[i]` is the first
        observation of a new one); an env that raises with no restarts left raises EnvError.
        """
        n = len(self.envs)
        obs = np.empty(self._obs_shape, dtype=self._obs_dtype)
        rewards = np.zeros(n, dtype=np.float32)
        terminated, truncated = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        failed = np.zeros(n, dtype=bool)
        for i, env in enumerate(self.envs):
            try:
                if self._needs_reset[i]:
                    self.episode_index[i] += 1
                    obs[i] = self._reset_env(i)
                    continue
                action = int(actions[i])
                step = self._call(i, "stepping", env.step, actions[i])
                obs[i], rewards[i], terminated[i], truncated[i], _ = step
                self.actions[i].append(action)
            except EnvError as error:
                obs[i] = self._restart(i, error)
                failed[i] = True
        self._needs_reset = terminated | truncated
        return obs, rewards, terminated, truncated, failed

    def _restart(self, i: int, error: EnvError) -> np.ndarray:
        """Rebuilds env i after it raised (if restarts are left) and starts a new episode."""
        if self.restarts_left <= 0:
            raise error
        self.restarts_left -= 1
        self.restarted += 1
        log.warning("%s; rebuilding the env (%d restarts left)", error, self.restarts_left)
        with contextlib.suppress(Exception):
            self.envs[i].close()
        self.envs[i] = self._call(i, "rebuilding", self.make_env)
        self.episode_index[i] += 1
        return self._reset_env(i)

    def mark(self) -> tuple:
        """What `rollback` needs to undo the records of one `step` call."""
        lengths = [(a, len(a)) for a in self.actions]
        return lengths, list(self.episode_index), self._needs_reset.copy()

    def rollback(self, mark: tuple) -> None:
        """Puts the records (not the envs) back to `mark`: the last consistent state."""
        lengths, self.episode_index, self._needs_reset = mark
        self.actions = [a[:n] for a, n in lengths]

    def record(self) -> dict[str, Any]:
        """JSON-safe state of the envs: seeds, episode indices and actions of each episode."""
        return {
            "first_seeds": list(self.first_seeds),
            "episode_index": list(self.episode_index),
            "actions": [list(a) for a in self.actions],
            "needs_reset": self._needs_reset.tolist(),
        }

    def restore(self, record: Mapping[str, Any], expected_obs: np.ndarray) -> np.ndarray:
        """Rebuilds the recorded state by resetting each env with its episode's seed and
        replaying the episode's actions; returns [n_envs, *obs_shape] current observations.

        An env whose replayed observation differs from `expected_obs` (an env that is not
        deterministic given its seed and actions) starts a new episode instead; logged.
        """
        self.first_seeds = [int(s) for s in record["first_seeds"]]
        self.episode_index = [int(k) for k in record["episode_index"]]
        needs_reset = np.array(record["needs_reset"], dtype=bool)
        obs = np.empty(self._obs_shape, dtype=self._obs_dtype)
        for i, actions in enumerate(record["actions"]):
            obs[i] = self._replay(i, actions)
            if not np.array_equal(obs[i], expected_obs[i]):
                log.warning(
                    "task %r: env %d could not be restored exactly (it is not deterministic "
                    "given its seed and actions); it starts a new episode",
                    self.name, i,
                )  # fmt: skip
                self.episode_index[i] += 1
                obs[i] = self._reset_env(i)
                needs_reset[i] = False
        self._needs_reset = needs_reset
        return obs

    def _replay(self, i: int, actions: Sequence[int]) -> np.ndarray:
        obs = self._reset_env(i)
        for action in actions:
            obs = self._call(i, "replaying", self.envs[i].step, action)[0]
        self.actions[i] = [int(a) for a in actions]
        return obs

    def close(self) -> None:
        for env in self.envs:
            with contextlib.suppress(Exception):
                env.close()


class MultiTaskEnvs:
    """`n_envs` copies of every given task's env, stepped together, keyed by task name.

    Args:
        tasks: the tasks to build envs for (each spec's `make_env`).
        n_envs: envs per task.
        seed: env i of the k-th task is seeded `seed + 10_000 k + i` at reset.
        evaluation: build the evaluation variant of each env.
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        n_envs: int,
        seed: int,
        evaluation: bool = False,
        restarts: int = 0,
    ):
        self.names = [t.name for t in tasks]
        self.n_envs = n_envs
        self.seed = seed
        self.envs = {
            t.name: TaskEnvs(t.name, partial(t.make_env, evaluation=evaluation), n_envs, restarts)
            for t in tasks
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

        Raises:
            EnvError: an env raised (with no restarts left).
            NonFiniteError: an env returned a NaN or infinite observation or reward.
            After either, the envs' records (`record`) are rolled back to before this call, so
            they describe the last consistent state.
        """
        names = self.names if names is None else list(names)
        marks, raw = {}, {}
        try:
            for name in names:
                marks[name] = self.envs[name].mark()
                raw[name] = self.envs[name].step(actions[name])
                check_finite(name, raw[name][0], raw[name][1])
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
            self._last_done[name] = np.array(task["last_done"], dtype=bool)
        return obs

    def recent_returns(self) -> dict[str, float]:
        return {name: ep.recent_mean() for name, ep in self.episodes.items()}

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
