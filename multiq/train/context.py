"""The run context: everything a `Trainer` is built from, in one object.

The model (`multiq.api.MultiTaskDQN`) assembles it once per run session: the config, the
learner holding every task, the phases, the counters and RNG, the replay, what a resumed
checkpoint handed over, and the hooks through which the trainer asks the model to write a
checkpoint or to run a phase's end actions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multiq.agents.learner import Learner
from multiq.agents.policy import Policy
from multiq.config import Config
from multiq.phases.phase import Phase
from multiq.phases.state import TrainState
from multiq.replay.buffers import MultiTaskReplay
from multiq.train.callbacks import Callback

CollectorRecord = tuple[dict[str, Any], dict[str, Any]]
"""(JSON meta, tensors) of a live collector and the task schedule's shares."""


@dataclass
class Resumed:
    """What a checkpoint hands the next session of its run (all None for a new run).

    Attributes:
        replay_arrays: the saved replay, to load into the buffers before the first update.
        collector_record: the envs' saved state: the current phase's envs continue from it.
        checkpointed_config: the config of the checkpoint in the run folder.
    """

    replay_arrays: dict[str, np.ndarray] | None = None
    collector_record: dict[str, Any] | None = None
    checkpointed_config: dict[str, Any] | None = None


@dataclass
class RunContext:
    """One run session's parts, from which the trainer is built.

    Attributes:
        config: the run's config as the user gave it (the budget lives in the phases).
        learner: the learner (it holds every task of the run).
        run_dir: the run folder.
        state: counters (resumed or new).
        rng: numpy generator for exploration and replay sampling.
        phases: the run's phases (the model's list: phases it plans later are seen).
        save_checkpoint: writes a checkpoint of the whole run, given the live collector's
            record (None between phases).
        on_phase_end: runs one of a finished phase's `end_actions` (the model knows how).
        replay: the per-task buffers (grow as phases add tasks).
        teachers: teacher id -> policy, for distillation terms (the model's: it adds more).
        callbacks: SB3-style callbacks.
        summary_extra: more summary.json sections (e.g. ``transfer``), read when it is written.
        resumed: what the checkpoint of a resumed run handed over.
    """

    config: Config
    learner: Learner
    run_dir: Path
    state: TrainState
    rng: np.random.Generator
    phases: list[Phase]
    save_checkpoint: Callable[[CollectorRecord | None], None]
    on_phase_end: Callable[[Mapping[str, Any], Any], None]
    replay: MultiTaskReplay = field(init=False)
    teachers: Mapping[str, Policy] = field(default_factory=dict)
    callbacks: Callback | Sequence[Callback] | None = None
    summary_extra: Mapping[str, Any] = field(default_factory=dict)
    resumed: Resumed = field(default_factory=Resumed)

    def __post_init__(self) -> None:
        cfg = self.config
        self.replay = MultiTaskReplay([], cfg.buffer_size, cfg.n_envs, cfg.n_step, cfg.gamma)

    def recorded_config(self) -> Config:
        """The config as the run folder records it (`recorded_config`)."""
        return recorded_config(self.config, self.phases)


def recorded_config(config: Config, phases: Sequence[Phase]) -> Config:
    """The config a run folder records (config.yaml, model.pt, checkpoint.pt): `config` with
    `total_steps_per_task` the last phase's budget, so that a model loaded from the folder (a
    transfer's source, a resumed run) plans the budget the run last trained with."""
    if not phases or phases[-1].steps_per_task == config.total_steps_per_task:
        return config
    return config.replace(total_steps_per_task=phases[-1].steps_per_task)
