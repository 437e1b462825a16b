"""`fixed`: the weighted sum of task losses with the phase's weights alpha."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multiq.mtl.base import Balancer


class FixedWeights(Balancer):
    """Loss `sum_t alpha_t L_t` (the default alpha: the config's weights normalised to sum 1)."""

    def backward(
        self, task_losses: torch.Tensor, task_ids: torch.Tensor, names: Sequence[str]
    ) -> torch.Tensor:
        loss = (task_losses * self.alpha(names, task_losses.device)).sum()
        loss.backward()
        return loss.detach()
