"""Env backends: how each task's envs run (config keys `env_backend` and `env_workers`).

- ``inprocess``: `TaskEnvs` in the training process (the default). Best where an env step is
  cheap (MinAtar, classic control) or cores are few.
- ``subprocess``: `SubprocessTaskEnvs`, a task's envs split over `env_workers` worker processes.
  Pays where a step costs more than a message between processes (Atari, many envs per task)
  and cores are free (the GPU machine's 16).
- ``envpool``: Atari tasks on EnvPool (`EnvPoolTaskEnvs`), `env_workers` C++ threads per task;
  every other task in process. Needs ``pip install 'multiq[envpool]'``.

Every backend gives the same interface (`TaskEnvsLike`): NEXT_STEP autoreset, per-episode seeds,
the `EnvHistory` record for exact resume, restarts and EnvErrors naming the task and env.
``inprocess`` and ``subprocess`` give the same transitions for the same seeds; EnvPool seeds its
episodes its own way (see `multiq.envs.pool`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np

from multiq.envs.inprocess import EnvHistory, TaskEnvs
from multiq.envs.pool import EnvPoolTaskEnvs, envpool_task
from multiq.envs.workers import SubprocessTaskEnvs
from multiq.registry import lookup
from multiq.tasks.spec import TaskSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvSettings:
    """How a run's envs run.

    Attributes:
        backend: a name in `ENV_BACKENDS`.
        workers: processes (``subprocess``) or EnvPool threads (``envpool``) per task.
        imports: modules a worker process imports before building envs (config
            `env_imports`: the envs they register must exist there too).
    """

    backend: str = "inprocess"
    workers: int = 1
    imports: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, cfg: Any) -> EnvSettings:
        """The settings of a `Config` (`env_backend`, `env_workers`, `env_imports`)."""
        return cls(cfg.env_backend, cfg.env_workers, tuple(cfg.env_imports))


class TaskEnvsLike(Protocol):
    """What `MultiTaskEnvs` asks of one task's envs, whatever runs them (see `TaskEnvs`)."""

    history: EnvHistory
    restarted: int

    def reset(self, seeds: Sequence[int]) -> np.ndarray: ...

    def step_async(self, actions: np.ndarray) -> None: ...

    def step_wait(self) -> tuple[np.ndarray, ...]: ...

    def mark(self) -> tuple: ...

    def rollback(self, mark: tuple) -> None: ...

    def record(self) -> dict[str, Any]: ...

    def restore(self, record: Mapping[str, Any], expected_obs: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


Backend = Callable[[TaskSpec, int, bool, int, EnvSettings], TaskEnvsLike]


def _inprocess(
    spec: TaskSpec, n_envs: int, evaluation: bool, restarts: int, settings: EnvSettings
) -> TaskEnvs:
    return TaskEnvs(spec.name, partial(spec.make_env, evaluation=evaluation), n_envs, restarts)


def _subprocess(
    spec: TaskSpec, n_envs: int, evaluation: bool, restarts: int, settings: EnvSettings
) -> SubprocessTaskEnvs:
    make_env = partial(spec.make_env, evaluation=evaluation)
    return SubprocessTaskEnvs(
        spec.name, make_env, n_envs, restarts, settings.workers, settings.imports
    )


def _envpool(
    spec: TaskSpec, n_envs: int, evaluation: bool, restarts: int, settings: EnvSettings
) -> TaskEnvsLike:
    if envpool_task(spec, evaluation) is None:
        log.info("task %r has no EnvPool version; its envs run in this process", spec.name)
        return _inprocess(spec, n_envs, evaluation, restarts, settings)
    return EnvPoolTaskEnvs(spec, n_envs, evaluation, settings.workers)


ENV_BACKENDS: dict[str, Backend] = {
    "inprocess": _inprocess,
    "subprocess": _subprocess,
    "envpool": _envpool,
}
"""Config `env_backend` value -> `build(spec, n_envs, evaluation, restarts, settings)`."""


def make_task_envs(
    spec: TaskSpec,
    n_envs: int,
    evaluation: bool = False,
    restarts: int = 0,
    settings: EnvSettings | None = None,
) -> TaskEnvsLike:
    """One task's `n_envs` envs, run by the backend `settings` names (default in process).

    Raises:
        ConfigError: for an unknown backend, or ``envpool`` without the envpool package.
        EnvError: an env cannot be built.
    """
    settings = settings or EnvSettings()
    build = lookup(ENV_BACKENDS, settings.backend, "env backend", "env backends")
    return build(spec, n_envs, evaluation, restarts, settings)
