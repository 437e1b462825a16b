"""PopArt: per-task normalisation of the Q targets that preserves the outputs.

van Hasselt et al. 2016, "Learning values across many orders of magnitude"; Hessel et al. 2019,
"Multi-task deep reinforcement learning with PopArt". The network predicts normalised values
q_t; the unnormalised Q = sigma_t q_t + mu_t is what acting and the TD targets use.
"""

from __future__ import annotations

import torch
from torch import nn

from multiq.agents.losses import per_task_mean
from multiq.errors import ConfigError
from multiq.nets.heads import TaskQHeads
from multiq.nets.independent import IndependentQNet

MIN_STD, MAX_STD = 1e-4, 1e6


def task_head_rows(net: nn.Module, num_tasks: int) -> list[tuple[nn.Linear, torch.Tensor]]:
    """Each output layer of the net with the task of each of its rows.

    Raises:
        ConfigError: unless the net's outputs are plain (non-dueling) per-task head rows: a
            `heads` TaskQHeads layer with one head per task whose output is the net's (as in
            `shared`), or `independent` (one head per task).
    """
    if isinstance(net, IndependentQNet):
        heads = [(n["head"], torch.full((n["head"].advantage.out_features,), t)) for t, n in
                 enumerate(net.nets)]  # fmt: skip
    elif isinstance(getattr(net, "heads", None), TaskQHeads) and net.heads.num_tasks == num_tasks:
        rows = torch.arange(num_tasks).repeat_interleave(net.heads.max_actions)
        heads = [(net.heads, rows)]
    else:
        raise ConfigError(
            "popart needs per-task Q heads (e.g. schemes 'shared' or 'independent'); "
            f"the {type(net).__name__} network has none"
        )
    if any(h.dueling for h, _ in heads):
        raise ConfigError("popart cannot be combined with dueling=true (it needs plain Q heads)")
    device = heads[0][0].advantage.weight.device
    return [(h.advantage, rows.to(device)) for h, rows in heads]


class PopArt(nn.Module):
    """Running per-task mean and std of the TD targets, and the output-preserving rescale.

    Args:
        nets: the networks whose heads are rescaled together (online and target), so that
            neither network's unnormalised outputs change when the statistics move.
        num_tasks: T.
        beta: step size of the running first and second moments, in (0, 1].
    """

    def __init__(self, nets: list[nn.Module], num_tasks: int, beta: float):
        super().__init__()
        self.num_tasks = num_tasks
        self.beta = beta
        self.heads = [row for net in nets for row in task_head_rows(net, num_tasks)]
        device = self.heads[0][0].weight.device
        self.register_buffer("mean", torch.zeros(num_tasks, device=device))
        self.register_buffer("mean_sq", torch.ones(num_tasks, device=device))

    @property
    def std(self) -> torch.Tensor:
        """[T] sigma_t, kept within [MIN_STD, MAX_STD]."""
        var = (self.mean_sq - self.mean**2).clamp_min(MIN_STD**2)
        return var.sqrt().clamp_max(MAX_STD)

    def unnormalise(self, q: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """[B, A] sigma q + mu for normalised Q-values q ([B, A]) of tasks task_ids ([B])."""
        return q * self.std[task_ids, None] + self.mean[task_ids, None]

    @torch.no_grad()
    def update(self, targets: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Moves the statistics towards the batch, rescales the heads, normalises the targets.

        Args:
            targets: [B] unnormalised TD targets.
            task_ids: [B] long task of each row.

        Returns:
            [B] targets normalised with the new statistics.
        """
        present = torch.bincount(task_ids, minlength=self.num_tasks) > 0
        batch_mean = per_task_mean(targets, task_ids, self.num_tasks)
        batch_sq = per_task_mean(targets * targets, task_ids, self.num_tasks)
        old_mean, old_std = self.mean.clone(), self.std
        self.mean.copy_(torch.where(present, self.mean.lerp(batch_mean, self.beta), self.mean))
        self.mean_sq.copy_(
            torch.where(present, self.mean_sq.lerp(batch_sq, self.beta), self.mean_sq)
        )
        new_mean, new_std = self.mean, self.std
        # ART: W' = W sigma / sigma', b' = (sigma b + mu - mu') / sigma' keeps sigma q + mu fixed
        for layer, rows in self.heads:
            scale = (old_std / new_std)[rows]
            layer.weight.mul_(scale[:, None])
            layer.bias.mul_(old_std[rows]).add_(old_mean[rows] - new_mean[rows]).div_(new_std[rows])
        return (targets - new_mean[task_ids]) / new_std[task_ids]

    def metrics(self) -> dict[str, torch.Tensor]:
        return {"popart_mean": self.mean.clone(), "popart_std": self.std}
