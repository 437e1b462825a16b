"""One task's envs in this process, with NEXT_STEP autoreset and a history for exact resume.

Gymnasium 1.x's NEXT_STEP autoreset (the `SyncVectorEnv` default): the step that ends an
episode returns its real last observation, and the *following* step call resets that env,
ignores its action and returns the first observation of the new episode. `TaskEnvs` runs this
loop directly instead of using `SyncVectorEnv`: it skips the per-step info merging and checks,
which cost as much as a MinAtar step itself.

Every episode is reset with its own seed (`episode_seed`), and `EnvHistory` keeps the actions
of each env's current episode, so a checkpoint can rebuild the envs' states by replaying them.
What each env returns is held to its declared spaces (`multiq.envs.checks`): a break is the
EnvError an env that raises gets. The subprocess backend's workers run `TaskEnvs` too.
The other env backends (`multiq.envs.backends`) keep the same history and the same semantics.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from multiq.envs.checks import StepCheck
from multiq.errors import EnvError

log = logging.getLogger(__name__)

RESTART_MESSAGE = "%s; rebuilding the env (%d restarts left)"  # logged with the error, budget


def episode_seed(first_seed: int, episode: int) -> int:
    """The reset seed of an env's `episode`-th episode (0: `first_seed` itself).

    Every episode is reset with its own seed, so an env's state is given by its episode's seed
    and the actions taken since: a checkpoint can replay them (`TaskEnvs.restore`).
    """
    if episode == 0:
        return first_seed
    return int(np.random.SeedSequence([first_seed, episode]).generate_state(1)[0])


def started_actions(actions: np.ndarray | None) -> np.ndarray:
    """The actions a `step_async` kept, for the `step_wait` that finishes the step.

    Raises:
        RuntimeError: `step_wait` came without a `step_async` before it.
    """
    if actions is None:
        raise RuntimeError("step_wait without a step_async before it")
    return actions


class EnvHistory:
    """What rebuilds `n_envs` envs' states: each env's first seed, the index of its current
    episode, that episode's actions, and whether its next step resets it (NEXT_STEP autoreset).
    """

    def __init__(self, n_envs: int):
        self.first_seeds = [0] * n_envs
        self.episode_index = [0] * n_envs
        self.actions: list[list[int]] = [[] for _ in range(n_envs)]
        self.needs_reset = np.zeros(n_envs, dtype=bool)

    def start(self, seeds: Sequence[int]) -> None:
        """Every env starts its first episode, env i seeded `seeds[i]`."""
        self.first_seeds = [int(s) for s in seeds]
        self.episode_index = [0] * len(self.first_seeds)
        self.actions = [[] for _ in self.first_seeds]
        self.needs_reset = np.zeros(len(self.first_seeds), dtype=bool)

    def seed(self, i: int, ahead: int = 0) -> int:
        """The reset seed of env i's episode `ahead` episodes after its current one."""
        return episode_seed(self.first_seeds[i], self.episode_index[i] + ahead)

    def advance(self, actions: np.ndarray, done: np.ndarray, failed: np.ndarray) -> None:
        """Records one vector step (see `TaskEnvs.step` for what each env did).

        Args:
            actions: [n_envs] the actions sent.
            done: [n_envs] terminated | truncated.
            failed: [n_envs] the env raised and was rebuilt into a new episode (one more when
                it raised while being reset).
        """
        for i, episode in enumerate(self.actions):
            if failed[i]:
                self.episode_index[i] += 1 + int(self.needs_reset[i])
                self.actions[i] = []
            elif self.needs_reset[i]:
                self.episode_index[i] += 1
                self.actions[i] = []
            else:
                episode.append(int(actions[i]))
        self.needs_reset = np.array(done, dtype=bool)

    def new_episode(self, i: int) -> None:
        """Env i leaves its episode for the next one (reset with that episode's seed)."""
        self.episode_index[i] += 1
        self.actions[i] = []
        self.needs_reset[i] = False

    def mark(self) -> tuple:
        """What `rollback` needs to undo the `advance` calls after it."""
        lengths = [(a, len(a)) for a in self.actions]
        return lengths, list(self.episode_index), self.needs_reset.copy()

    def rollback(self, mark: tuple) -> None:
        """Puts the history back to `mark`: the last consistent state."""
        lengths, episode_index, needs_reset = mark
        self.actions = [a[:n] for a, n in lengths]
        self.episode_index, self.needs_reset = list(episode_index), needs_reset.copy()

    def to_dict(self, start: int = 0, stop: int | None = None) -> dict[str, Any]:
        """JSON-safe history of envs [start, stop) (default all)."""
        envs = slice(start, stop)
        return {
            "first_seeds": list(self.first_seeds[envs]),
            "episode_index": list(self.episode_index[envs]),
            "actions": [list(a) for a in self.actions[envs]],
            "needs_reset": self.needs_reset[envs].tolist(),
        }

    def load(self, record: Mapping[str, Any]) -> None:
        """Takes the history of a `to_dict`."""
        self.first_seeds = [int(s) for s in record["first_seeds"]]
        self.episode_index = [int(k) for k in record["episode_index"]]
        self.actions = [[int(a) for a in episode] for episode in record["actions"]]
        self.needs_reset = np.array(record["needs_reset"], dtype=bool)


class TaskEnvs:
    """`n_envs` copies of one task's env, stepped in turn with NEXT_STEP autoreset.

    Each env's episodes are reset with `episode_seed(first_seeds[i], k)`, and the actions of the
    current episode are kept (`history`), so `record` / `restore` can rebuild the envs' states
    exactly where the env is deterministic given its seed and actions.

    Args:
        name: the task's name (for error messages).
        make_env: builds one env.
        n_envs: copies.
        restarts: how many times an env that raises is rebuilt before the error stops the run
            (0: never).
        first_env: the index messages give this object's env 0 (a worker process holding a
            slice of a task's envs names them as the whole task does).
    """

    def __init__(
        self,
        name: str,
        make_env: Callable[[], gym.Env],
        n_envs: int,
        restarts: int = 0,
        first_env: int = 0,
    ):
        self.name, self.make_env, self.first_env = name, make_env, first_env
        self.envs = [self._call(i, "building", make_env) for i in range(n_envs)]
        space = self.envs[0].observation_space
        self.obs_shape, self.obs_dtype = tuple(space.shape), np.dtype(space.dtype)
        self.check = StepCheck(space)
        self.history = EnvHistory(n_envs)
        self.restarts_left = restarts
        self.restarted = 0
        self.restart_errors: list[str] = []  # the errors that rebuilt an env, in order
        self.log_restarts = True  # a worker process leaves it to its parent (the whole budget)
        self._actions: np.ndarray | None = None

    def _call(self, i: int, what: str, fn: Callable, *args, **kwargs):
        """Calls `fn`; an exception becomes an EnvError naming the task, env and call."""
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            raise EnvError(
                f"task {self.name!r}: env {self.first_env + i} raised while {what}: "
                f"{type(error).__name__}: {error}"
            ) from error

    def _broke(self, i: int, what: str, problem: str | None) -> None:
        """Raises the EnvError of an env whose results break its declared spaces."""
        if problem is not None:
            raise EnvError(
                f"task {self.name!r}: env {self.first_env + i} broke its declared spaces while "
                f"{what}: {problem}; fix the env or the spaces it declares"
            )

    def _reset_env(self, i: int, seed: int) -> np.ndarray:
        obs = self._call(i, "resetting", self.envs[i].reset, seed=seed)[0]
        self._broke(i, "resetting", self.check.observation(obs))
        return obs

    def _new_obs(self) -> np.ndarray:
        return np.empty((len(self.envs), *self.obs_shape), dtype=self.obs_dtype)

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """[n_envs, *obs_shape] first observations; env i's first episode is seeded `seeds[i]`."""
        self.history.start(seeds)
        obs = self._new_obs()
        for i in range(len(self.envs)):
            obs[i] = self._reset_env(i, self.history.seed(i))
        return obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """(obs, rewards, terminated, truncated, failed), each [n_envs, ...]; new arrays.

        `failed[i]`: env i raised and was rebuilt (its episode is lost, `obs[i]` is the first
        observation of a new one); an env that raises, or returns what breaks its declared
        spaces (`multiq.envs.checks`), with no restarts left raises EnvError.
        """
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: np.ndarray) -> None:
        """Starts a `step` (here: keeps the actions for `step_wait`, which steps)."""
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, ...]:
        """Finishes the step `step_async` started; returns what `step` returns."""
        actions, self._actions = started_actions(self._actions), None
        n = len(self.envs)
        obs = self._new_obs()
        rewards = np.zeros(n, dtype=np.float32)
        terminated, truncated = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        failed = np.zeros(n, dtype=bool)
        needs_reset = self.history.needs_reset
        for i, env in enumerate(self.envs):
            try:
                if needs_reset[i]:
                    obs[i] = self._reset_env(i, self.history.seed(i, ahead=1))
                    continue
                step = self._call(i, "stepping", env.step, actions[i])
                problem = self.check.step(step)
                if problem is not None:
                    self._broke(i, "stepping", problem)
                obs[i], rewards[i], terminated[i], truncated[i], _ = step
            except EnvError as error:
                obs[i] = self._restart(i, error, self.history.seed(i, ahead=1 + needs_reset[i]))
                failed[i] = True
        self.history.advance(actions, terminated | truncated, failed)
        return obs, rewards, terminated, truncated, failed

    def _restart(self, i: int, error: EnvError, seed: int) -> np.ndarray:
        """Rebuilds env i after it raised (if restarts are left) and resets it with `seed`."""
        if self.restarts_left <= 0:
            raise error
        self.restarts_left -= 1
        self.restarted += 1
        self.restart_errors.append(str(error))
        if self.log_restarts:
            log.warning(RESTART_MESSAGE, error, self.restarts_left)
        with contextlib.suppress(Exception):
            self.envs[i].close()
        self.envs[i] = self._call(i, "rebuilding", self.make_env)
        return self._reset_env(i, seed)

    def mark(self) -> tuple:
        """What `rollback` needs to undo the records of one `step` call."""
        return self.history.mark()

    def rollback(self, mark: tuple) -> None:
        """Puts the records (not the envs) back to `mark`: the last consistent state."""
        self._actions = None
        self.history.rollback(mark)

    def record(self) -> dict[str, Any]:
        """JSON-safe state of the envs: seeds, episode indices and actions of each episode."""
        return self.history.to_dict()

    def restore(self, record: Mapping[str, Any], expected_obs: np.ndarray) -> np.ndarray:
        """Rebuilds the recorded state by resetting each env with its episode's seed and
        replaying the episode's actions; returns [n_envs, *obs_shape] current observations.

        An env whose replayed observation differs from `expected_obs` (an env that is not
        deterministic given its seed and actions) starts a new episode instead; logged.
        """
        self.history.load(record)
        obs = self._new_obs()
        for i, actions in enumerate(self.history.actions):
            obs[i] = self._replay(i, actions)
            if not np.array_equal(obs[i], expected_obs[i]):
                log.warning(
                    "task %r: env %d could not be restored exactly (it is not deterministic "
                    "given its seed and actions); it starts a new episode",
                    self.name, self.first_env + i,
                )  # fmt: skip
                self.history.new_episode(i)
                obs[i] = self._reset_env(i, self.history.seed(i))
        return obs

    def _replay(self, i: int, actions: Sequence[int]) -> np.ndarray:
        obs = self._reset_env(i, self.history.seed(i))
        for action in actions:
            obs = self._call(i, "replaying", self.envs[i].step, action)[0]
        self._broke(i, "replaying", self.check.observation(obs))
        return obs

    def close(self) -> None:
        for env in self.envs:
            with contextlib.suppress(Exception):
                env.close()
