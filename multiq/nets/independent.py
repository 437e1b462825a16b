"""`independent`: a separate network per task, sharing nothing (the no-transfer baseline)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from multiq.nets.base import MultiTaskQNet
from multiq.nets.encoders import encoder_for
from multiq.nets.heads import TaskQHeads
from multiq.tasks.spec import TaskSet


class IndependentQNet(MultiTaskQNet):
    """One full Q-network per task; outputs padded to `A_max` columns."""

    def __init__(self, tasks: TaskSet, hidden_size: int = 128, dueling: bool = False):
        super().__init__(tasks)
        self.nets = nn.ModuleList()
        for task in tasks:
            family = encoder_for(task.observation_space, task.name)
            body, feature_dim = family.body(task.observation_space, hidden_size)
            head = TaskQHeads(feature_dim, [task.num_actions], dueling)
            trunk = nn.Sequential(family.input_layer(task.observation_space, hidden_size), body)
            self.nets.append(nn.ModuleDict({"trunk": trunk, "head": head}))

    def forward(self, obs: Sequence[torch.Tensor]) -> torch.Tensor:
        outputs = []
        for net, x in zip(self.nets, obs, strict=True):
            features = net["trunk"](x)
            zeros = torch.zeros(x.shape[0], dtype=torch.long, device=features.device)
            q = net["head"](features, zeros)
            outputs.append(F.pad(q, (0, self.max_actions - q.shape[1])))
        return torch.cat(outputs)
