"""PopArt: per-task normalisation of the Q targets that preserves the outputs.

van Hasselt et al. 2016, "Learning values across many orders of magnitude"; Hessel et al. 2019,
"Multi-task deep reinforcement learning with PopArt". The network predicts normalised values
q_t; the unnormalised Q = sigma_t q_t + mu_t is what acting and the TD targets use.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multiq.errors import ConfigError
from multiq.mtl.reduce import per_task_mean
from multiq.mtl.task_values import TaskValues
from multiq.nets.heads import TaskHeads

MIN_STD, MAX_STD = 1e-4, 1e6


def task_heads(net: nn.Module) -> TaskHeads:
    """The net's per-task heads.

    Raises:
        ConfigError: unless the net's outputs are plain (non-dueling) per-task heads (as in
            `shared` or `independent`).
    """
    heads = getattr(net, "heads", None)
    if not isinstance(heads, TaskHeads):
        raise ConfigError(
            "popart needs per-task Q heads (e.g. schemes 'shared' or 'independent'); "
            f"the {type(net).__name__} network has none"
        )
    if heads.dueling:
        raise ConfigError("popart cannot be combined with dueling=true (it needs plain Q heads)")
    return heads


class PopArt(nn.Module):
    """Running per-task mean and std of the TD targets, and the output-preserving rescale.

    Statistics are keyed by task name (`add_task`); a batch's tasks are gathered by name.

    Args:
        nets: the networks whose heads are rescaled together (online and target), so that
            neither network's unnormalised outputs change when the statistics move.
        beta: step size of the running first and second moments, in (0, 1].
    """

    def __init__(self, nets: Sequence[nn.Module], beta: float):
        super().__init__()
        self.beta = beta
        self.heads = [task_heads(net) for net in nets]  # plain list: the nets own them
        self.mean = TaskValues(0.0)
        self.mean_sq = TaskValues(1.0)

    def add_task(self, name: str, device: torch.device | str = "cpu") -> None:
        self.mean.add(name, device)
        self.mean_sq.add(name, device)

    def stats(self, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """([T_b] mu, [T_b] sigma) of the tasks `names`; sigma within [MIN_STD, MAX_STD]."""
        mean = self.mean.gather(names)
        return mean, std_of(mean, self.mean_sq.gather(names))

    def unnormalise(
        self, q: torch.Tensor, names: Sequence[str], task_ids: torch.Tensor
    ) -> torch.Tensor:
        """[B, A] sigma q + mu for normalised Q-values q ([B, A]) of rows of tasks task_ids."""
        mean, std = self.stats(names)
        return q * std[task_ids, None] + mean[task_ids, None]

    @torch.no_grad()
    def update(
        self, targets: torch.Tensor, names: Sequence[str], task_ids: torch.Tensor
    ) -> torch.Tensor:
        """Moves the statistics towards the batch, rescales the heads, normalises the targets.

        Args:
            targets: [B] unnormalised TD targets.
            names: the batch's tasks (each has rows).
            task_ids: [B] long batch task of each row.

        Returns:
            [B] targets normalised with the new statistics.
        """
        num_tasks = len(names)
        old_mean, old_std = self.stats(names)
        batch_mean = per_task_mean(targets, task_ids, num_tasks)
        batch_sq = per_task_mean(targets * targets, task_ids, num_tasks)
        # a task named in the batch without rows keeps its statistics
        present = torch.bincount(task_ids, minlength=num_tasks) > 0
        old_sq = self.mean_sq.gather(names)
        new_mean = torch.where(present, old_mean.lerp(batch_mean, self.beta), old_mean)
        new_sq = torch.where(present, old_sq.lerp(batch_sq, self.beta), old_sq)
        self.mean.write(names, new_mean)
        self.mean_sq.write(names, new_sq)
        new_std = std_of(new_mean, new_sq)
        # ART: W' = W sigma / sigma', b' = (sigma b + mu - mu') / sigma' keeps sigma q + mu fixed
        scale, shift = old_std / new_std, (old_mean - new_mean) / new_std
        for heads in self.heads:
            for t, name in enumerate(names):
                layer = heads.head(name).advantage
                layer.weight.mul_(scale[t])
                layer.bias.mul_(scale[t]).add_(shift[t])
        return (targets - new_mean[task_ids]) / new_std[task_ids]

    def metrics(self, names: Sequence[str]) -> dict[str, torch.Tensor]:
        mean, std = self.stats(names)
        return {"popart_mean": mean, "popart_std": std}


def std_of(mean: torch.Tensor, mean_sq: torch.Tensor) -> torch.Tensor:
    """sigma from the first and second moments, kept within [MIN_STD, MAX_STD]."""
    var = (mean_sq - mean**2).clamp_min(MIN_STD**2)
    return var.sqrt().clamp_max(MAX_STD)
