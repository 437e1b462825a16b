"""Continual recipes: tasks learned one after another, one phase each, with a method that keeps
old skills (or not).

The agent holds every task of the sequence from the start (so a task not yet trained can be
evaluated: the evaluation matrix R[i, j] is the return on task j at the end of phase i), and a
phase trains one task. Every held task is evaluated at the start of the first phase, every
`eval_freq` steps and at the end of every phase.

Methods (`METHODS`):
- ``finetune``: only the current task steps and learns (the forgetting baseline).
- ``rehearsal``: the earlier tasks' stored replay is sampled beside the current task's
  (`rehearsal_share` of each update), their envs do not step.
- ``ewc``: online EWC (Kirkpatrick et al. 2017; Schwarz et al. 2018) on the shared parameters: at
  the end of each phase a diagonal Fisher is estimated on the finished task's replay and
  consolidated; later phases add `ewc_lambda * 1/2 sum_i F_i (theta_i - theta*_i)^2`.
- ``distill``: the agent at the end of each phase becomes a frozen teacher; later phases add
  `distill_weight * KL(teacher || student)` on the earlier tasks' stored states (their TD loss
  is off).
- ``progressive``: scheme ``progressive`` (Rusu et al. 2016): each task has its own column with
  adapters from the earlier tasks' columns, which freeze when their phase ends, so nothing is
  forgotten; `cycles` must be 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiq.agents.ewc import fisher_diagonal
from multiq.errors import ConfigError, TaskError
from multiq.nets.progressive import column_groups
from multiq.phases.phase import Phase
from multiq.registry import lookup
from multiq.runio.layout import claim_run_dir
from multiq.tasks import make_taskset, task_entries

PREVIOUS_TEACHER = "previous"  # the agent at the end of the last phase (method distill)


@dataclass
class SequenceSetup:
    """What a method is given: the sequence (task names, cycles repeated) and the config."""

    names: list[str]
    steps_per_task: int
    config: Any

    def earlier(self, index: int) -> tuple[str, ...]:
        """Tasks trained before phase `index`, other than its own, in first-trained order."""
        current = self.names[index]
        return tuple(dict.fromkeys(n for n in self.names[:index] if n != current))


def _finetune(setup: SequenceSetup, index: int) -> dict[str, Any]:
    return {}


def _rehearsal(setup: SequenceSetup, index: int) -> dict[str, Any]:
    return {"rehearse": setup.earlier(index), "rehearsal_share": setup.config.rehearsal_share}


def _ewc(setup: SequenceSetup, index: int) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "end_actions": ({"kind": "ewc", "tasks": [setup.names[index]]},),
    }
    if setup.earlier(index):
        fields["terms"] = ({"kind": "ewc", "weight": setup.config.ewc_lambda},)
    return fields


def _distill(setup: SequenceSetup, index: int) -> dict[str, Any]:
    cfg, earlier = setup.config, setup.earlier(index)
    fields: dict[str, Any] = {"end_actions": ({"kind": "teacher", "id": PREVIOUS_TEACHER},)}
    if earlier:
        term = {
            "kind": "distill",
            "teachers": {name: PREVIOUS_TEACHER for name in earlier},
            "weight": cfg.distill_weight,
            "temperature": cfg.distill_temperature,
        }
        fields.update(
            rehearse=earlier, rehearsal_share=cfg.rehearsal_share,
            td_tasks=(setup.names[index],), terms=(term,),
        )  # fmt: skip
    return fields


def _progressive(setup: SequenceSetup, index: int) -> dict[str, Any]:
    return {"frozen": column_groups(setup.earlier(index))}


Method = Callable[[SequenceSetup, int], Mapping[str, Any]]
METHODS: dict[str, Method] = {
    "finetune": _finetune,
    "rehearsal": _rehearsal,
    "ewc": _ewc,
    "distill": _distill,
    "progressive": _progressive,
}
METHOD_SCHEMES = {"progressive": "progressive"}  # methods that need a scheme (set for them)


def sequence_phases(setup: SequenceSetup, method: str) -> list[Phase]:
    """One phase per entry of the sequence, shaped by `method` (see `METHODS`)."""
    recipe = lookup(METHODS, method, "continual method", "continual methods")
    phases = []
    for index, name in enumerate(setup.names):
        fields = dict(recipe(setup, index))
        phases.append(
            Phase(
                name=f"{index + 1}-{name}",
                tasks=(name,),
                steps_per_task=setup.steps_per_task,
                eval_at_start=index == 0,
                **fields,
            )
        )
    return phases


def prepare_sequence(
    cls,
    sequence: str | Sequence[Any],
    method: str,
    cycles: int = 1,
    run_dir: str | Path | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
):
    """A model holding every task of `sequence`, with one phase per task (times `cycles`).

    Args:
        cls: the model class (`MultiTaskDQN`).
        sequence: task entries in order (a suite expands to its tasks in order).
        method: a name in `METHODS`.
        cycles: how many times the sequence repeats (>= 1).
        run_dir: the run folder (default runs/<date-time>-continual-<method>).
        hyperparameters: config keys (`total_steps_per_task` is each phase's budget).

    Raises:
        ConfigError: an unknown method, fewer than two distinct tasks, a task twice in the
            sequence, or cycles < 1.
    """
    lookup(METHODS, method, "continual method", "continual methods")
    if cycles < 1:
        raise ConfigError(f"cycles must be >= 1, got {cycles}")
    settings = _method_scheme(method, cycles, dict(hyperparameters or {}))
    try:
        specs = list(make_taskset(sequence))
    except TaskError as error:
        if "repeated" not in str(error):
            raise
        raise ConfigError(
            f"a task appears twice in the sequence ({error}); repeat the whole sequence with "
            "--cycles, or give the second entry another name ({id: ..., name: ...})"
        ) from error
    names = [s.name for s in specs]
    if len(names) < 2:
        raise ConfigError(
            f"a sequence needs at least two tasks, got {names}; to train one task use "
            "`multiq train`"
        )
    run_dir = run_dir if run_dir is not None else claim_run_dir(f"continual-{method}")
    entries = task_entries(specs)
    model = cls(entries, task_specs=specs, run_dir=run_dir, **settings)
    setup = SequenceSetup(names * cycles, model.config.total_steps_per_task, model.config)
    for phase in sequence_phases(setup, method):
        model.add_phase(phase)
    model.run_info["continual"] = {
        "method": method,
        "sequence": names,
        "cycles": cycles,
        "steps_per_task": setup.steps_per_task,
    }
    if method == "progressive":
        model.run_info["progressive"] = {
            "column_parameters": model.learner.online.column_parameters()
        }
    return model


def _method_scheme(method: str, cycles: int, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters with the scheme a method needs (`METHOD_SCHEMES`).

    Raises:
        ConfigError: another scheme given, or method progressive with cycles > 1 (a column
            trained again would change every later column's Q-values).
    """
    scheme = METHOD_SCHEMES.get(method)
    if scheme is None:
        return hyperparameters
    given = hyperparameters.get("scheme", scheme)
    if given != scheme:
        raise ConfigError(
            f"continual method {method!r} needs scheme {scheme!r}, got scheme={given!r}; "
            "drop the scheme key (the method sets it)"
        )
    if method == "progressive" and cycles > 1:
        raise ConfigError(
            "continual method 'progressive' trains each task's column once (its later columns "
            f"read it); cycles must be 1, got {cycles}"
        )
    return {**hyperparameters, "scheme": scheme}


# --- what a phase does when it ends (`Phase.end_actions`), run by the model -------------------


def _snapshot_teacher(model, action: Mapping[str, Any], trainer) -> None:
    """The agent as it is becomes the frozen teacher `action["id"]` (continual distillation)."""
    model.add_teacher(action["id"], model)


def _consolidate_ewc(model, action: Mapping[str, Any], trainer) -> None:
    """Online EWC: a diagonal Fisher of the shared parameters on each finished task's stored
    states (`ewc_fisher_states` of them), added to the decayed sum; anchors = the weights now."""
    learner, cfg = model.learner, model.config
    params = learner.shared_parameter_names()
    total: dict[str, torch.Tensor] = {}
    for task in action["tasks"]:
        obs = trainer.sample({task: cfg.ewc_fisher_states})[task].obs
        batches = np.array_split(obs, max(1, len(obs) // FISHER_BATCH))
        fisher = fisher_diagonal(learner.online, batches, task, params=params)
        for name, value in fisher.items():
            total[name] = total.get(name, 0) + value
    anchors = {n: p.detach() for n, p in learner.online.named_parameters() if n in total}
    learner.ewc.consolidate(total, anchors, cfg.ewc_decay)


PHASE_END_ACTIONS = {"teacher": _snapshot_teacher, "ewc": _consolidate_ewc}
FISHER_BATCH = 256  # states per forward when the Fisher is estimated
