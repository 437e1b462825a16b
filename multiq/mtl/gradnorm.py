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
    T after every step. With no shared weight matrix (`independent`) w stays at 1. The per-task
    gradients of W come from `TaskGradients` alongside the network's one backward pass.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.require_equal_alpha("gradnorm")
        self.weights = nn.Parameter(torch.ones(self.num_tasks))
        self.register_buffer("initial_losses", torch.zeros(self.num_tasks))
        self.register_buffer("grad_norms", torch.zeros(self.num_tasks), persistent=False)
        matrices = [i for i, p in enumerate(self.params) if p.dim() >= 2 and self.shared[i]]
        self.task_grads = self.task_gradients(matrices[-1:]) if matrices else None

    def backward(self, task_losses: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        coefs = self.weights.detach() / self.num_tasks  # the loss is mean_t(w_t L_t)
        if self.task_grads is None:
            loss = (task_losses * coefs).sum()
            loss.backward()
            return loss.detach()
        loss, grads = self.task_grads.backward(task_losses, coefs, task_ids)
        # grads[t] is the gradient of c_t L_t, and c_t >= MIN_WEIGHT / T > 0
        self._weights_grad(task_losses.detach(), grads.norm(dim=1) / coefs)
        return loss.detach()

    def _weights_grad(self, losses: torch.Tensor, layer_norms: torch.Tensor) -> None:
        """Sets `weights.grad` from the losses [T] and ||dL_t/dW|| ([T], see the class)."""
        # the first update fixes L_t(0); a zero entry means "not yet set"
        self.initial_losses.copy_(
            torch.where(self.initial_losses > 0, self.initial_losses, losses.clamp_min(1e-12))
        )
        ratios = losses / self.initial_losses
        relative = ratios / ratios.mean().clamp_min(1e-12)
        with torch.enable_grad():
            norms = self.weights * layer_norms
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
