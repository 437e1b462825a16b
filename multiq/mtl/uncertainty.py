"""`uncertainty`: homoscedastic-uncertainty task weighting (Kendall, Gal & Cipolla 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multiq.mtl.base import Balancer


class UncertaintyWeighting(Balancer):
    """Learns a log-variance s_t per task; loss `mean_t(exp(-s_t) L_t + s_t)`.

    This is Kendall et al.'s regression form `L / (2 sigma^2) + log sigma` with s = log sigma^2,
    multiplied by 2 and averaged over the batch's tasks, so that at s = 0 it equals the `fixed`
    loss with equal weights. The optimum is s_t = log L_t: a noisier task (larger irreducible
    loss) gets a larger variance and a smaller weight exp(-s_t). s_t is trained by the network's
    Adam.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_variance = nn.ParameterDict()

    def add_task(self, name: str) -> None:
        self.log_variance[name] = nn.Parameter(torch.zeros(()))

    def set_task_weights(self, weights) -> None:
        super().set_task_weights(weights)
        self.require_equal_alpha("uncertainty")

    def backward(
        self, task_losses: torch.Tensor, task_ids: torch.Tensor, names: Sequence[str]
    ) -> torch.Tensor:
        s = torch.stack([self.log_variance[n] for n in names])
        loss = (torch.exp(-s) * task_losses + s).mean()
        loss.backward()
        self._names = list(names)
        return loss.detach()

    def metrics(self) -> dict[str, torch.Tensor]:
        names = getattr(self, "_names", list(self.log_variance))
        return {"log_variance": torch.stack([self.log_variance[n].detach() for n in names])}
