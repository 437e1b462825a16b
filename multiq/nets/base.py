"""The interface every sharing scheme implements."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import torch
from torch import nn

from multiq.nets.heads import action_mask_for
from multiq.tasks.spec import TaskSet


def task_ids_for(sizes: Sequence[int], device: torch.device) -> torch.Tensor:
    """[sum(sizes)] long: row r belongs to task t when rows are grouped task by task."""
    counts = torch.as_tensor(list(sizes), device=device)
    return torch.repeat_interleave(torch.arange(len(sizes), device=device), counts)


class MultiTaskQNet(nn.Module, abc.ABC):
    """Maps each task's observations to that task's Q-values.

    Subclasses implement `forward(obs)`; `action_mask` ([T, A_max] bool) says which of the
    `A_max` output columns are real actions of each task. `option_names` lists the
    `SchemeOptions` fields a scheme takes as keyword arguments.
    """

    option_names: tuple[str, ...] = ()

    def __init__(self, tasks: TaskSet):
        super().__init__()
        self.num_actions = [t.num_actions for t in tasks]
        self.max_actions = max(self.num_actions)
        self.register_buffer("action_mask", action_mask_for(self.num_actions), persistent=False)
        self._task_ids: dict[tuple, torch.Tensor] = {}

    def task_ids(self, sizes: Sequence[int]) -> torch.Tensor:
        """`task_ids_for(sizes)` on the net's device, cached: batch layouts repeat every step."""
        key = tuple(sizes)
        if key not in self._task_ids:
            if len(self._task_ids) > 64:
                self._task_ids.clear()
            self._task_ids[key] = task_ids_for(key, self.action_mask.device)
        return self._task_ids[key]

    def set_progress(self, fraction: float) -> None:
        """Tells the net how far training has come (0 = start, 1 = end), e.g. for annealing."""

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Name -> detached [T, K] per-task values worth logging (e.g. routing weights)."""
        return {}

    @abc.abstractmethod
    def forward(self, obs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Q-values for a batch grouped by task.

        Args:
            obs: one tensor per task, `[B_t, *obs_shape_t]` (B_t may be 0).

        Returns:
            [sum B_t, A_max] Q-values, rows in task order.
        """
