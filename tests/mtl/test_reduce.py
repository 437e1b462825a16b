"""Per-task reductions checked against numbers worked out by hand."""

from __future__ import annotations

import torch

from multiq.mtl.reduce import per_task_mean


def test_per_task_mean_unequal_counts_and_empty_task():
    values = torch.tensor([1.0, 2.0, 6.0, 10.0, 20.0])
    task_ids = torch.tensor([0, 0, 0, 2, 2])
    # task 0: (1 + 2 + 6) / 3 = 3; task 1: no rows -> 0; task 2: (10 + 20) / 2 = 15;
    # task 3 (beyond the last id present): 0
    means = per_task_mean(values, task_ids, num_tasks=4)
    torch.testing.assert_close(means, torch.tensor([3.0, 0.0, 15.0, 0.0]))


def test_per_task_mean_rows_not_grouped():
    values = torch.tensor([4.0, 1.0, 8.0, 3.0])
    task_ids = torch.tensor([1, 0, 1, 0])
    # task 0: (1 + 3) / 2 = 2; task 1: (4 + 8) / 2 = 6
    torch.testing.assert_close(per_task_mean(values, task_ids, 2), torch.tensor([2.0, 6.0]))
