"""`pcgrad`: gradient surgery (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning")."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multiq.mtl.base import Balancer


def project_conflicting(
    grads: torch.Tensor, orders: Sequence[Sequence[int]] | None = None
) -> torch.Tensor:
    """PCGrad's combined gradient.

    For each task i, in the given (else random) order over the other tasks j, the running g_i
    is projected onto the normal plane of the original g_j whenever g_i . g_j < 0; the
    projected gradients are summed. Branch-free, so it never waits on the GPU.

    Args:
        grads: [T, P] per-task gradients.
        orders: for each task, the order in which to visit the other tasks.

    Returns:
        [P] the sum of the projected gradients.
    """
    num_tasks = grads.shape[0]
    sq_norms = (grads * grads).sum(1).clamp_min(1e-20)
    projected = grads.clone()
    for i in range(num_tasks):
        order = orders[i] if orders is not None else torch.randperm(num_tasks).tolist()
        for j in order:
            if j == i:
                continue
            dot = projected[i] @ grads[j]
            projected[i] -= dot.clamp(max=0.0) / sq_norms[j] * grads[j]
    return projected.sum(0)


class PCGrad(Balancer):
    """Projects conflicting per-task gradients of the shared parameters off each other.

    Per-task gradients are those of alpha_t L_t (alpha normalised to sum to one, so without
    conflicts the result equals the `fixed` gradient). Only shared parameters (see
    `shared_params`) take part in the surgery; task-specific ones (heads, per-task input
    layers) get their own task's gradient untouched. With `independent` nothing is shared and
    PCGrad is the plain sum.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shared_list = [p for p, s in zip(self.params, self.shared, strict=True) if s]

    def backward(self, task_losses: torch.Tensor) -> torch.Tensor:
        weighted = task_losses * self.alpha
        loss = weighted.sum()
        if not self.shared_list:
            loss.backward()
            return loss.detach()
        eye = torch.eye(self.num_tasks, device=task_losses.device, dtype=task_losses.dtype)
        # per-task gradients of the shared parameters only, in one vectorised backward:
        # [T, *p.shape] per parameter; the task-specific ones need just the plain sum below
        grads = torch.autograd.grad(
            weighted,
            self.shared_list,
            grad_outputs=eye,
            is_grads_batched=True,
            retain_graph=True,
            materialize_grads=True,
        )
        combined = project_conflicting(torch.cat([g.flatten(1) for g in grads], dim=1))
        loss.backward()
        offset = 0
        for p in self.shared_list:
            p.grad.copy_(combined[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        return loss.detach()
