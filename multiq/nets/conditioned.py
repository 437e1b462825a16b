"""`conditioned`: one trunk and one head over the union of actions, told the task by an embedding.

The task embedding joins the shared features before a last hidden layer, so every parameter is
shared; a task's missing actions are output columns the agent masks out of every max and argmax.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multiq.nets.base import MultiTaskQNet
from multiq.nets.options import TASK_EMBEDDINGS, check_choice
from multiq.nets.shared import apply_input_layers, shared_input_layers
from multiq.tasks.spec import TaskSet


class ConditionedQNet(MultiTaskQNet):
    """Shared trunk -> concat(features, task embedding) -> hidden layer -> one `A_max` head."""

    option_names = ("task_embedding", "task_embedding_dim")

    def __init__(
        self,
        tasks: TaskSet,
        hidden_size: int = 128,
        dueling: bool = False,
        task_embedding: str = "onehot",
        task_embedding_dim: int = 16,
    ):
        super().__init__(tasks)
        check_choice("task_embedding", task_embedding, TASK_EMBEDDINGS)
        family, self.inputs = shared_input_layers(tasks, hidden_size)
        self.body, feature_dim = family.body(tasks[0].observation_space, hidden_size)
        # One-hot rows live in a buffer, not a frozen parameter: every parameter is trainable.
        self.register_buffer("onehot", torch.eye(len(tasks)), persistent=False)
        learned = task_embedding == "learned"
        self.embedding = nn.Embedding(len(tasks), task_embedding_dim) if learned else None
        embedding_dim = task_embedding_dim if learned else len(tasks)
        self.hidden = nn.Sequential(nn.Linear(feature_dim + embedding_dim, hidden_size), nn.ReLU())
        self.advantage = nn.Linear(hidden_size, self.max_actions)
        self.value = nn.Linear(hidden_size, 1) if dueling else None

    def forward(self, obs: Sequence[torch.Tensor]) -> torch.Tensor:
        features = self.body(apply_input_layers(self.inputs, obs))
        task_ids = self.task_ids([x.shape[0] for x in obs])
        task = self.onehot[task_ids] if self.embedding is None else self.embedding(task_ids)
        hidden = self.hidden(torch.cat([features, task], dim=1))
        adv = self.advantage(hidden)
        if self.value is None:
            return adv
        # Dueling (Wang et al. 2016): centre the advantages over the task's real actions only.
        mask = self.action_mask[task_ids]
        adv_mean = (adv * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True)
        return self.value(hidden) + adv - adv_mean
