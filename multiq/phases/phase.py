"""A phase: which tasks step and learn, for how long, what trains, and with which loss terms.

A run is a list of phases. Multi-task training is one phase over every task; transfer is a phase
on the target tasks of an agent loaded from a source; a continual sequence is one phase per task.
Tasks outside a phase neither step nor get replay samples, and need no envs. Phases are plain
data (JSON in checkpoints and summary.json), so a killed run resumes in the right phase.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multiq.errors import ConfigError

TERM_KINDS = ("distill", "ewc", "l2_init")  # the names of multiq.agents.terms.TERMS
END_ACTIONS = ("teacher", "ewc")  # what a phase may do when it ends (see `Phase.end_actions`)


@dataclass(frozen=True)
class Phase:
    """One phase of a run.

    Attributes:
        name: shown in logs and summary.json.
        tasks: the active tasks: their envs step and their replay is sampled.
        steps_per_task: the phase's budget in env steps per active task.
        task_weights: loss weight alpha per active task, used as given (None: the config's
            `task_weights` normalised to sum to one over the active tasks).
        td_tasks: the tasks whose TD loss counts (None: every active task).
        frozen: glob patterns of parameter groups that do not train (e.g. ``trunk``).
        lr_scales: glob pattern of parameter groups -> learning-rate multiplier.
        terms: extra loss terms, e.g. ``{"kind": "distill", "teachers": {task: teacher_id},
            "weight": 1.0, "temperature": 1.0}``.
        eval_at_start: evaluate every task once before the phase's first step (for jumpstart
            and the source tasks' return before transfer).
        rehearse: tasks whose stored replay is sampled beside the active tasks' (their envs do
            not step): continual rehearsal.
        rehearsal_share: the share of each update's samples that goes to `rehearse` tasks.
        end_actions: what happens when the phase ends, each ``{"kind": ...}``: ``teacher``
            (``{"kind": "teacher", "id": ...}``: the agent as it is becomes a frozen teacher)
            or ``ewc`` (``{"kind": "ewc", "tasks": [...]}``: consolidate EWC's Fisher and
            anchors on those tasks' replay).
        initial_eps: epsilon at the start of the phase's exploration schedule, which decays
            linearly to `exploration_final_eps` over `exploration_fraction` of the phase's
            budget; the phase also acts at it (not at 1) until learning starts. None: the
            config's schedule (`exploration_initial_eps`, a random warm-up). Transfer targets
            take `transfer_initial_eps`.
        prefill_steps: env steps per active task at the start of the phase that act with the
            agent's current policy at `exploration_final_eps` to fill the replay, without
            updates (learning starts at `max(learning_starts, prefill_steps)`); they count
            against `steps_per_task`. Transfer targets take `transfer_prefill_steps`.
    """

    name: str
    tasks: tuple[str, ...]
    steps_per_task: int
    task_weights: Mapping[str, float] | None = None
    td_tasks: tuple[str, ...] | None = None
    frozen: tuple[str, ...] = ()
    lr_scales: Mapping[str, float] = field(default_factory=dict)
    terms: tuple[Mapping[str, Any], ...] = ()
    eval_at_start: bool = False
    rehearse: tuple[str, ...] = ()
    rehearsal_share: float = 0.5
    end_actions: tuple[Mapping[str, Any], ...] = ()
    initial_eps: float | None = None
    prefill_steps: int = 0

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ConfigError(f"phase {self.name!r} has no tasks")
        if self.steps_per_task < 1:
            raise ConfigError(f"phase {self.name!r}: steps_per_task must be >= 1")
        for term in self.terms:
            if term.get("kind") not in TERM_KINDS:
                raise ConfigError(f"unknown loss term {term.get('kind')!r}; known: {TERM_KINDS}")
        for action in self.end_actions:
            if action.get("kind") not in END_ACTIONS:
                raise ConfigError(
                    f"unknown end-of-phase action {action.get('kind')!r}; known: {END_ACTIONS}"
                )
        if set(self.rehearse) & set(self.tasks):
            raise ConfigError(f"phase {self.name!r}: a task is both active and rehearsed")
        if not 0 < self.rehearsal_share < 1:
            raise ConfigError(f"phase {self.name!r}: rehearsal_share must be in (0, 1)")
        if self.initial_eps is not None and not 0 <= self.initial_eps <= 1:
            raise ConfigError(
                f"phase {self.name!r}: initial_eps must be null or in [0, 1], got "
                f"{self.initial_eps} (set transfer_initial_eps in [0, 1])"
            )
        if not 0 <= self.prefill_steps < self.steps_per_task:
            raise ConfigError(
                f"phase {self.name!r}: prefill_steps ({self.prefill_steps}) must be >= 0 and "
                f"below the phase's budget ({self.steps_per_task} env steps per task), so that "
                "it trains; lower transfer_prefill_steps or raise total_steps_per_task"
            )

    @property
    def learned_tasks(self) -> tuple[str, ...]:
        """The tasks whose samples enter the updates: the active ones, then the rehearsed."""
        return (*self.tasks, *self.rehearse)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["tasks"] = list(self.tasks)
        data["td_tasks"] = None if self.td_tasks is None else list(self.td_tasks)
        data["frozen"], data["terms"] = list(self.frozen), [dict(t) for t in self.terms]
        data["rehearse"] = list(self.rehearse)
        data["end_actions"] = [dict(a) for a in self.end_actions]
        data["task_weights"] = None if self.task_weights is None else dict(self.task_weights)
        data["lr_scales"] = dict(self.lr_scales)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Phase:
        values = dict(data)
        for key in ("tasks", "frozen", "terms", "rehearse", "end_actions"):
            values[key] = tuple(values.get(key) or ())
        if values.get("td_tasks") is not None:
            values["td_tasks"] = tuple(values["td_tasks"])
        return cls(**values)

    def with_budget(self, steps_per_task: int) -> Phase:
        return dataclasses.replace(self, steps_per_task=steps_per_task)
