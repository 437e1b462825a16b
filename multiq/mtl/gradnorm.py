"""`gradnorm`: gradient normalisation of task weights (Chen et al. 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multiq.mtl.base import Balancer
from multiq.mtl.task_values import TaskValues

MIN_WEIGHT = 1e-3


class GradNorm(Balancer):
    """Learns task weights w_t (sum T_b over the batch's tasks) that equalise gradient norms.

    The network loss is `mean_t(w_t L_t)` with w detached. On the last shared trainable weight
    matrix W (for `shared`: the body's last Linear), G_t = w_t ||dL_t/dW||; the weights' own loss
    is `sum_t |G_t - mean(G) r_t^alpha|` with the target held constant, where r_t is task t's
    loss relative to its first loss, over the mean of those ratios (tasks that train slower get
    larger gradients for alpha > 0). w is trained by the network's Adam and renormalised to sum
    T_b after every step. With no shared weight matrix (`independent`, or a frozen trunk) w stays
    at 1. The per-task gradients of W come from `TaskGradients` alongside the one backward pass.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.task_weights = nn.ParameterDict()
        self.initial_losses = TaskValues(0.0)
        self.task_grads = None
        self._names: list[str] = []
        self._grad_norms = torch.zeros(0)

    def add_task(self, name: str) -> None:
        self.task_weights[name] = nn.Parameter(torch.ones(()))
        self.initial_losses.add(name)

    def set_task_weights(self, weights) -> None:
        super().set_task_weights(weights)
        self.require_equal_alpha("gradnorm")

    def params_changed(self) -> None:
        matrices = [i for i, p in enumerate(self.params) if p.dim() >= 2 and self.shared[i]]
        self.task_grads = self.task_gradients(matrices[-1:]) if matrices else None

    def _weights(self, names: Sequence[str]) -> torch.Tensor:
        return torch.stack([self.task_weights[n] for n in names])

    def backward(
        self, task_losses: torch.Tensor, task_ids: torch.Tensor, names: Sequence[str]
    ) -> torch.Tensor:
        self._names = list(names)
        weights = self._weights(names)
        coefs = weights.detach() / len(names)  # the loss is mean_t(w_t L_t)
        if self.task_grads is None:
            loss = (task_losses * coefs).sum()
            loss.backward()
            self._grad_norms = torch.zeros_like(coefs)
            return loss.detach()
        loss, grads = self.task_grads.backward(task_losses, coefs, task_ids)
        # grads[t] is the gradient of c_t L_t, and c_t >= MIN_WEIGHT / T > 0
        self._weights_grad(names, weights, task_losses.detach(), grads.norm(dim=1) / coefs)
        return loss.detach()

    def _weights_grad(
        self,
        names: Sequence[str],
        weights: torch.Tensor,
        losses: torch.Tensor,
        layer_norms: torch.Tensor,
    ) -> None:
        """Sets the weights' grads from the losses [T_b] and ||dL_t/dW|| ([T_b], see the class)."""
        # the first update fixes L_t(0); a zero entry means "not yet set"
        initial = self.initial_losses.gather(names)
        initial = torch.where(initial > 0, initial, losses.clamp_min(1e-12))
        self.initial_losses.write(names, initial)
        ratios = losses / initial
        relative = ratios / ratios.mean().clamp_min(1e-12)
        with torch.enable_grad():
            norms = weights * layer_norms
            target = (norms.mean() * relative**self.gradnorm_alpha).detach()
            gradnorm_loss = (norms - target).abs().sum()
            params = [self.task_weights[n] for n in names]
            grads = torch.autograd.grad(gradnorm_loss, params)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        self._grad_norms = norms.detach()

    def after_step(self) -> None:
        if not self._names:
            return
        with torch.no_grad():
            params = [self.task_weights[n] for n in self._names]
            clamped = torch.stack(params).clamp(min=MIN_WEIGHT)
            clamped *= len(params) / clamped.sum()
            torch._foreach_copy_(params, list(clamped.unbind()))

    def metrics(self) -> dict[str, torch.Tensor]:
        return {
            "balance_weight": self._weights(self._names).detach().clone(),
            "grad_norm": self._grad_norms.clone(),
        }
