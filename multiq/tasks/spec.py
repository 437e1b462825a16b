"""TaskSpec and TaskSet: what the agent and the trainer know about each task."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, overload

import gymnasium as gym
import numpy as np

from multiq.errors import TaskError


@dataclass(frozen=True)
class TaskSpec:
    """One environment with a name.

    Attributes:
        name: unique short name, used in logs (`task/<name>/return`).
        env_id: the Gymnasium id behind the task.
        make_env: builds one env; `make_env(evaluation=True)` builds the evaluation variant
            (e.g. no episodic life, no reward clipping). Image observations are channel-first.
        observation_space: the Box the env's observations live in (after wrappers).
        action_space: a Discrete action space.
        source: the task entry this spec was built from (for configs and saved models).
        frame_stack: frames the env stacks along the observation's first axis, newest last,
            the first stack of an episode repeating its first frame (Gymnasium's
            `FrameStackObservation`; Atari: 4). Above 1 the replay stores each frame once.
    """

    name: str
    env_id: str
    make_env: Callable[..., gym.Env]
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Discrete
    source: dict[str, Any] = field(default_factory=dict)
    frame_stack: int = 1

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.observation_space.shape)

    @property
    def obs_dtype(self) -> np.dtype:
        return np.dtype(self.observation_space.dtype)

    @property
    def num_actions(self) -> int:
        return int(self.action_space.n)


class TaskSet(Sequence[TaskSpec]):
    """An ordered collection of tasks with unique names; index by position or name."""

    def __init__(self, tasks: Sequence[TaskSpec]):
        if not tasks:
            raise TaskError("the task set is empty: give at least one task (e.g. --tasks minatar)")
        names = [t.name for t in tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TaskError(f"task names must be unique, repeated: {dupes}; give entries a `name`")
        self._tasks = list(tasks)
        self._index = {n: i for i, n in enumerate(names)}

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self._tasks)

    @overload
    def __getitem__(self, key: int | str) -> TaskSpec: ...

    @overload
    def __getitem__(self, key: slice) -> list[TaskSpec]: ...

    def __getitem__(self, key: int | str | slice) -> TaskSpec | list[TaskSpec]:
        if isinstance(key, str):
            return self._tasks[self.index(key)]
        return self._tasks[key]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self._tasks]

    def index(self, name: str) -> int:  # type: ignore[override]
        if name not in self._index:
            raise TaskError(f"unknown task {name!r}; this set has {self.names}")
        return self._index[name]


def with_envs_from(saved: Sequence[TaskSpec], given: Sequence[TaskSpec]) -> list[TaskSpec]:
    """The saved tasks, each building its envs with the given task of its name.

    Args:
        saved: tasks read from a saved file (names, spaces, recorded entries).
        given: the same tasks built again from entries (e.g. the factories of a run whose
            config could not record them).

    Returns:
        `saved`, in order, with the given tasks' `make_env`.

    Raises:
        TaskError: a saved task has no given task of its name, or its spaces differ.
    """
    by_name = {spec.name: spec for spec in given}
    missing = [spec.name for spec in saved if spec.name not in by_name]
    if missing:
        raise TaskError(
            f"the given tasks {sorted(by_name)} lack the saved task(s) {missing}: give each "
            "saved task's entry again, with its `name`"
        )
    for spec in saved:
        new = by_name[spec.name]
        if new.obs_shape != spec.obs_shape or new.num_actions != spec.num_actions:
            raise TaskError(
                f"task {spec.name!r}: the given env has observations {new.obs_shape} and "
                f"{new.num_actions} actions, but the saved task has {spec.obs_shape} and "
                f"{spec.num_actions}"
            )
    return [replace(spec, make_env=by_name[spec.name].make_env) for spec in saved]
