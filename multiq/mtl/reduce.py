"""Reductions over the rows of each task in a batch (shared by the TD losses and PopArt)."""

from __future__ import annotations

import torch


def per_task_mean(values: torch.Tensor, task_ids: torch.Tensor, num_tasks: int) -> torch.Tensor:
    """[T] mean of `values` ([B]) over the rows of each task (0 for a task with no rows)."""
    sums = torch.zeros(num_tasks, dtype=values.dtype, device=values.device)
    sums = sums.index_add(0, task_ids, values)
    counts = torch.bincount(task_ids, minlength=num_tasks).clamp_min(1)
    return sums / counts
