"""`gradnorm`: gradient normalisation of task weights (Chen et al. 2018)."""

from __future__ import annotations

import torch
from torch import nn

from multiq.mtl.base import Balancer

MIN_WEIGHT = 1e-3


class GradNorm(Balancer):
    """Learns task weights w_t (sum T) that equalise the tasks' gradient norms.

    The network loss is `mean_t(w_t L_t)` with w detached. On the last shared weight matrix W
    (for `shared`: the body's last Linear), G_t = w_t ||dL_t/dW||; the weights' own loss is
    `sum_t |G_t - mean(G) r_t^alpha|` with the target held constant, where r_t is task t's loss
    relative to its first loss, over the mean of those ratios (tasks that train slower get
    larger gradients for alpha > 0). w is trained by the network's Adam and renormalised to sum
    T after every step. With no shared weight matrix (`independent`) w stays at 1.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.require_equal_alpha("gradnorm")
        self.weights = nn.Parameter(torch.ones(self.num_tasks))
        self.register_buffer("initial_losses", torch.zeros(self.num_tasks))
        self.register_buffer("grad_norms", torch.zeros(self.num_tasks), persistent=False)
        # an index, not the tensor: a Parameter attribute would register with this module
        matrices = [i for i, p in enumerate(self.params) if p.dim() >= 2 and self.shared[i]]
        self.layer_index = matrices[-1] if matrices else None

    def backward(self, task_losses: torch.Tensor) -> torch.Tensor:
        loss = (self.weights.detach() * task_losses).mean()
        if self.layer_index is not None:
            self._weights_grad(task_losses)
        loss.backward()
        return loss.detach()

    def _weights_grad(self, task_losses: torch.Tensor) -> None:
        eye = torch.eye(self.num_tasks, device=task_losses.device, dtype=task_losses.dtype)
        (grads,) = torch.autograd.grad(
            task_losses,
            self.params[self.layer_index],
            grad_outputs=eye,
            is_grads_batched=True,
            retain_graph=True,
        )
        losses = task_losses.detach()
        # the first update fixes L_t(0); a zero entry means "not yet set"
        self.initial_losses.copy_(
            torch.where(self.initial_losses > 0, self.initial_losses, losses.clamp_min(1e-12))
        )
        ratios = losses / self.initial_losses
        relative = ratios / ratios.mean().clamp_min(1e-12)
        with torch.enable_grad():
            norms = self.weights * grads.flatten(1).norm(dim=1)
            target = (norms.mean() * relative**self.gradnorm_alpha).detach()
            gradnorm_loss = (norms - target).abs().sum()
            (self.weights.grad,) = torch.autograd.grad(gradnorm_loss, self.weights)
        self.grad_norms.copy_(norms.detach())

    def after_step(self) -> None:
        with torch.no_grad():
            self.weights.clamp_(min=MIN_WEIGHT)
            self.weights.mul_(self.num_tasks / self.weights.sum())

    def metrics(self) -> dict[str, torch.Tensor]:
        return {
            "balance_weight": self.weights.detach().clone(),
            "grad_norm": self.grad_norms.clone(),
        }
