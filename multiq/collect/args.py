"""What every collector is built from: the phase's tasks, their envs' seed, where transitions go
and what acts (`CollectorArgs`); each kind adds its own settings beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from multiq.agents.policy import Policy
from multiq.replay.buffers import MultiTaskReplay
from multiq.tasks.spec import TaskSpec


@dataclass
class CollectorArgs:
    """The arguments common to the in-process, child-process and Ray collectors.

    Attributes:
        tasks: the phase's active tasks.
        n_envs: envs per task.
        seed: seed of the envs' first reset.
        replay: holds a buffer for each active task.
        policy: the learner's live policy (what acts, or what snapshots are taken of).
        rng: exploration noise (or the seed of a child's or actors' noise).
        restarts: envs rebuilt per task after raising before an env error stops the run.
        record: a saved `record()` to continue from instead of resetting the envs.
    """

    tasks: Sequence[TaskSpec]
    n_envs: int
    seed: int
    replay: MultiTaskReplay
    policy: Policy
    rng: np.random.Generator
    restarts: int = 0
    record: Mapping[str, Any] | None = None

    def start_seed(self) -> int:
        """The envs' seed: the record's when continuing one, else `seed`."""
        return int(self.record["seed"]) if self.record is not None else self.seed
