"""Counters of a training run, saved in checkpoints as JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class TrainState:
    """Where a run stands. Step counts are env steps per task.

    Attributes:
        env_steps: env steps per task done so far (the mean over tasks when a task schedule
            steps them unequally).
        task_env_steps: env steps done by each task, in task order (empty until training
            starts).
        vector_steps: calls to the envs' step (each advances every env of every task once).
        updates: gradient steps taken.
        learning_starts_at: env step from which updates run (later after a resume whose replay
            buffer was not saved, so the buffer refills first).
        wall_time_s: training seconds over all sessions.
        random_returns: task name -> {return_mean, return_std, episodes} of the random policy.
        last_eval: task name -> {return_mean, return_std, episodes} of the latest evaluation.
        last_eval_step: env step of the latest evaluation (-1: none yet).
    """

    env_steps: int = 0
    task_env_steps: list[int] = dataclasses.field(default_factory=list)
    vector_steps: int = 0
    updates: int = 0
    learning_starts_at: int = 0
    wall_time_s: float = 0.0
    random_returns: dict[str, dict[str, Any]] | None = None
    last_eval: dict[str, dict[str, Any]] | None = None
    last_eval_step: int = -1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        return cls(**data)
