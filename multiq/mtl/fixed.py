"""`fixed`: the weighted sum of task losses with the config's weights alpha."""

from __future__ import annotations

import torch

from multiq.agents.losses import weighted_sum
from multiq.mtl.base import Balancer


class FixedWeights(Balancer):
    """Loss `sum_t alpha_t L_t` with alpha normalised to sum to one (equal alpha: the mean)."""

    def backward(self, task_losses: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        loss = weighted_sum(task_losses, self.alpha)
        loss.backward()
        return loss.detach()
