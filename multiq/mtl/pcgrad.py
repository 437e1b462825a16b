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
    projected gradients are summed. The running g_i stays a combination `sum_k C[i, k] g_k` of
    the original gradients, so every dot product comes from the [T, T] Gram matrix and the [P]
    vectors are read only twice; all tasks take their k-th step together. Branch-free, so it
    never waits on the GPU.

    Args:
        grads: [T, P] per-task gradients.
        orders: for each task, the order in which to visit the other tasks (equal lengths;
            an entry equal to the task itself is skipped).

    Returns:
        [P] the sum of the projected gradients.
    """
    num_tasks = grads.shape[0]
    gram = grads @ grads.T
    sq_norms = gram.diagonal().clamp_min(1e-20)
    visits = torch.rand(num_tasks, num_tasks).argsort(1) if orders is None else orders
    steps = torch.as_tensor(visits, device=grads.device).view(num_tasks, -1).T  # [S, T]
    tasks = torch.arange(num_tasks, device=grads.device)
    coefs = torch.eye(num_tasks, dtype=grads.dtype, device=grads.device)  # [T, T] C
    for j in steps:  # [T]: the task each task i visits at this step
        dots = (coefs * gram[:, j].T).sum(1)  # running g_i . g_{j_i}
        coefs[tasks, j] -= dots.clamp(max=0.0) / sq_norms[j] * (j != tasks)
    return coefs.sum(0) @ grads


class PCGrad(Balancer):
    """Projects conflicting per-task gradients of the shared parameters off each other.

    Per-task gradients are those of alpha_t L_t (so without conflicts the result equals the
    `fixed` gradient), taken by `TaskGradients` alongside the
    one ordinary backward. Only shared parameters (see `shared_params`) take part in the
    surgery; task-specific ones (heads, per-task input layers) get their own task's gradient
    untouched, and frozen ones take no part. With `independent` nothing is shared and PCGrad is
    the plain sum.
    """

    takes_task_grads = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shared_list: list = []
        self.task_grads = None

    def params_changed(self) -> None:
        indices = [i for i, s in enumerate(self.shared) if s]
        self.shared_list = [self.params[i] for i in indices]
        self.task_grads = self.task_gradients(indices) if indices else None

    def backward(
        self, task_losses: torch.Tensor, task_ids: torch.Tensor, names: Sequence[str]
    ) -> torch.Tensor:
        alpha = self.alpha(names, task_losses.device)
        if self.task_grads is None:
            loss = (task_losses * alpha).sum()
            loss.backward()
            return loss.detach()
        # per-task gradients of the shared parameters only, [T, P]; the task-specific ones
        # keep the plain sum that the ordinary backward leaves in .grad
        loss, grads = self.task_grads.backward(task_losses, alpha, task_ids)
        self.last_task_grads = grads  # the conflict map's probe reads them (no copy)
        combined = project_conflicting(grads).split([p.numel() for p in self.shared_list])
        for p, g in zip(self.shared_list, combined, strict=True):
            p.grad.copy_(g.view_as(p))
        return loss.detach()
