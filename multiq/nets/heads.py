"""Per-task Q heads stored as one wide layer, so all tasks' heads run in a single matmul."""

from __future__ import annotations

import torch
from torch import nn


def action_mask_for(num_actions: list[int]) -> torch.Tensor:
    """[T, A_max] bool: entry (t, a) is True when action a exists in task t."""
    mask = torch.zeros(len(num_actions), max(num_actions), dtype=torch.bool)
    for task, n in enumerate(num_actions):
        mask[task, :n] = True
    return mask


class TaskQHeads(nn.Module):
    """One Q head per task, optionally dueling (Wang et al. 2016).

    Task t's head has `A_max` outputs of which the first `num_actions[t]` are real; the rest are
    padding that the agent masks out of every max and argmax.
    """

    def __init__(self, feature_dim: int, num_actions: list[int], dueling: bool = False):
        super().__init__()
        self.num_tasks = len(num_actions)
        self.max_actions = max(num_actions)
        self.dueling = dueling
        self.advantage = nn.Linear(feature_dim, self.num_tasks * self.max_actions)
        self.value = nn.Linear(feature_dim, self.num_tasks) if dueling else None
        self.register_buffer("action_mask", action_mask_for(num_actions), persistent=False)

    def forward(self, features: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Q-values of each sample's own task.

        Args:
            features: [B, F] trunk output.
            task_ids: [B] long, the task of each row.

        Returns:
            [B, A_max] Q-values; columns beyond the task's action count are meaningless.
        """
        rows = torch.arange(features.shape[0], device=features.device)
        adv = self.advantage(features).view(-1, self.num_tasks, self.max_actions)[rows, task_ids]
        if self.value is None:
            return adv
        mask = self.action_mask[task_ids]
        adv_mean = (adv * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True)
        value = self.value(features).gather(1, task_ids[:, None])
        return value + adv - adv_mean
