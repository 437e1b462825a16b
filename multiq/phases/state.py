"""Counters of a training run, saved in checkpoints as JSON; tasks keyed by name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class TrainState:
    """Where a run stands.

    The step axis (`env_steps`, the `step` column of metrics.csv) counts env steps per active
    task, summed over phases: within one phase it is the mean over the phase's tasks.

    Attributes:
        env_steps: position on the step axis.
        phase_index: the phase the run is in (== number of phases when all are done).
        phase_start: the step axis value where the current phase began.
        task_env_steps: task name -> env steps that task took over the whole run.
        phase_task_env_steps: task name -> env steps in the current phase.
        vector_steps: calls to the envs' step.
        updates: gradient steps taken.
        learning_starts_at: phase env steps per task from which updates run (later after a
            resume whose replay buffer was not saved, so the buffer refills first).
        wall_time_s: training seconds over all sessions.
        random_returns: task name -> {return_mean, return_std, episodes} of the random policy.
        last_eval: task name -> {return_mean, return_std, episodes} of the latest evaluation.
        last_eval_step: step of the latest evaluation (-1: none yet).
        phase_log: per started phase, {"start_step", "end_step", "trainable"}: its place on
            the step axis and the parameter groups that trained.
    """

    env_steps: int = 0
    phase_index: int = 0
    phase_start: int = 0
    task_env_steps: dict[str, int] = dataclasses.field(default_factory=dict)
    phase_task_env_steps: dict[str, int] = dataclasses.field(default_factory=dict)
    vector_steps: int = 0
    updates: int = 0
    learning_starts_at: int = 0
    wall_time_s: float = 0.0
    random_returns: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    last_eval: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    last_eval_step: int = -1
    phase_log: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def phase_env_steps(self) -> int:
        """Env steps per active task within the current phase."""
        return self.env_steps - self.phase_start

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
