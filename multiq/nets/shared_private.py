"""`shared-private`: shared features plus each task's private features, then per-task heads.

The hierarchical "task-specific + shared features" design: every task has its own full encoder
beside the shared trunk, and the two feature vectors are summed or concatenated.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multiq.nets.base import MultiTaskQNet
from multiq.nets.heads import TaskQHeads
from multiq.nets.options import PRIVATE_MERGES, check_choice
from multiq.nets.shared import apply_input_layers, shared_input_layers
from multiq.tasks.spec import TaskSet


class SharedPrivateQNet(MultiTaskQNet):
    """Shared trunk + a private trunk per task, merged by `private_merge`, + per-task heads."""

    option_names = ("private_merge",)

    def __init__(
        self,
        tasks: TaskSet,
        hidden_size: int = 128,
        dueling: bool = False,
        private_merge: str = "sum",
    ):
        super().__init__(tasks)
        check_choice("private_merge", private_merge, PRIVATE_MERGES)
        self.private_merge = private_merge
        family, self.inputs = shared_input_layers(tasks, hidden_size)
        self.body, shared_dim = family.body(tasks[0].observation_space, hidden_size)
        self.private = nn.ModuleList()
        for task in tasks:
            body, private_dim = family.body(task.observation_space, hidden_size)
            self.private.append(
                nn.Sequential(family.input_layer(task.observation_space, hidden_size), body)
            )
        self.feature_dim = shared_dim + private_dim if private_merge == "concat" else shared_dim
        self.heads = TaskQHeads(self.feature_dim, self.num_actions, dueling)

    def encode(self, obs: Sequence[torch.Tensor]) -> torch.Tensor:
        """[sum B_t, feature_dim] merged shared and private features."""
        shared = self.body(apply_input_layers(self.inputs, obs))
        private = torch.cat([net(x) for net, x in zip(self.private, obs, strict=True)])
        if self.private_merge == "concat":
            return torch.cat([shared, private], dim=1)
        return shared + private

    def forward(self, obs: Sequence[torch.Tensor]) -> torch.Tensor:
        task_ids = self.task_ids([x.shape[0] for x in obs])
        return self.heads(self.encode(obs), task_ids)
