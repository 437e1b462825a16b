"""The gradient-conflict map: how the tasks' gradients on the shared parameters pull on each other.

Two tasks interfere where one's gradient on the shared weights points against the other's: a
step that lowers one loss raises the other (Yu et al. 2020 call a negative cosine a conflict).
Every `interference_freq` updates the learner measures, from each task's gradient g_t of its
weighted loss alpha_t L_t on the shared parameters (before any balancing or surgery):

- the cosine of every pair, `g_a . g_b / (||g_a|| ||g_b||)` in [-1, 1] (0 where a gradient is 0);
- each task's share of the norms, `||g_t|| / sum_k ||g_k||` (the shares sum to 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

NORM_FLOOR = 1e-12  # below this a gradient counts as zero (cosine 0, share 0)


def conflict_stats(grads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise cosines and norm shares of per-task gradients.

    Args:
        grads: [T, P] each task's gradient on the shared parameters, flattened.

    Returns:
        ([T, T] cosine of each pair (1 on the diagonal of a non-zero gradient), [T] each
        task's share of the summed gradient norms (all 0 when every gradient is 0)).
    """
    norms = torch.linalg.vector_norm(grads, dim=1)  # [T]
    nonzero = norms > NORM_FLOOR
    unit = torch.where(nonzero[:, None], grads / norms.clamp_min(NORM_FLOOR)[:, None], 0.0)
    cosines = (unit @ unit.T).clamp(-1.0, 1.0)
    shares = norms / norms.sum().clamp_min(NORM_FLOOR)
    return cosines, shares


def task_gradients(weighted: torch.Tensor, params: Sequence[nn.Parameter]) -> torch.Tensor:
    """Each task's gradient of its weighted loss on `params`, one backward pass per task.

    The graph is kept for the update's own backward; the per-parameter `.grad` is untouched.

    Args:
        weighted: [T] the weighted task losses alpha_t L_t, attached to the graph.
        params: the parameters (shared ones); one not reached by a task gets zeros.

    Returns:
        [T, P] the gradients, each row the flattened parameters one after another.
    """
    rows = []
    for loss in weighted.unbind():
        grads = torch.autograd.grad(
            loss, list(params), retain_graph=True, allow_unused=True, materialize_grads=True
        )
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def task_pairs(count: int) -> list[tuple[int, int]]:
    """Indices (i, j), i < j, of every unordered pair of `count` tasks, in task order."""
    return [(i, j) for i in range(count) for j in range(i + 1, count)]
