"""`conditioned`: one trunk and one head over the union of actions, told the task by an embedding.

The task embedding joins the shared features in a last hidden layer of `hidden_size` units:
`relu(W_f f + b + e_t)`.
With ``onehot`` embeddings, `e_t` is the column of the hidden layer's weight that the one-hot of
task t selects, i.e. a learned vector per task of the hidden size; with ``learned`` embeddings,
`e_t = W_e v_t` for a learned vector `v_t` of `task_embedding_dim` and a shared `W_e`. Either way
a new task adds one vector and leaves the other tasks' outputs unchanged. The head covers the
union of all tasks' actions; a task with more actions than any before adds output columns in a
new chunk. A task's missing actions are columns the agent masks out of every max and argmax.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import cast

import torch
from torch import nn

from multiq.nets.base import MultiTaskQNet
from multiq.nets.encoders import EncoderWidths
from multiq.nets.heads import dueling_combine, pad_columns
from multiq.nets.inputs import SharedInputs, sizes_of
from multiq.nets.options import TASK_EMBEDDINGS, check_choice
from multiq.tasks.spec import TaskSpec


class ConditionedQNet(MultiTaskQNet):
    """Shared trunk -> hidden layer + task embedding -> one head over the union of actions."""

    option_names = ("task_embedding", "task_embedding_dim")

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        widths: EncoderWidths | None = None,
        dueling: bool = False,
        task_embedding: str = "onehot",
        task_embedding_dim: int = 16,
    ):
        super().__init__(tasks, widths, dueling)
        hidden_size = self.hidden_size
        check_choice("task_embedding", task_embedding, TASK_EMBEDDINGS)
        self.inputs = SharedInputs(tasks[0], self.widths)
        self.body, feature_dim = self.inputs.body()
        self.hidden = nn.Linear(feature_dim, hidden_size)
        learned = task_embedding == "learned"
        self.embedding_dim = task_embedding_dim if learned else hidden_size
        self.project = nn.Linear(task_embedding_dim, hidden_size, bias=False) if learned else None
        # as nn.Linear initialises the one-hot columns of a layer with this fan-in
        self.embedding_bound = 1.0 / math.sqrt(feature_dim + len(tasks))
        self.embeddings = nn.ParameterDict()
        self.advantage = nn.ModuleList()  # chunks of output columns, in action order
        self.value = nn.Linear(hidden_size, 1) if dueling else None
        for spec in tasks:
            self.add_task(spec)

    @property
    def union_actions(self) -> int:
        return sum(cast(nn.Linear, chunk).out_features for chunk in self.advantage)

    def _add_modules(self, spec: TaskSpec) -> None:
        self.inputs.add(spec)
        vector = torch.empty(self.embedding_dim)
        if self.project is None:
            nn.init.uniform_(vector, -self.embedding_bound, self.embedding_bound)
        else:
            nn.init.normal_(vector)  # as nn.Embedding
        self.embeddings[spec.name] = nn.Parameter(vector.to(self.device))
        if spec.num_actions > self.union_actions:
            extra = spec.num_actions - self.union_actions
            self.advantage.append(nn.Linear(self.hidden_size, extra))

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        names, sizes = list(obs), sizes_of(obs)
        features = self.body(self.inputs(obs))
        task_vectors = torch.stack([self.embeddings[n] for n in names])  # [T_b, D]
        if self.project is not None:
            task_vectors = self.project(task_vectors)
        task_ids = self.task_ids(sizes)
        hidden = torch.relu(self.hidden(features) + task_vectors[task_ids])
        width = max(self.specs[n].num_actions for n in names)
        adv = torch.cat([chunk(hidden) for chunk in self.advantage], dim=1)[:, :width]
        if self.value is None:
            return adv
        # dueling: centre each task's advantages over its own actions only
        value = self.value(hidden)
        parts = zip(names, adv.split(sizes), value.split(sizes), strict=True)
        outputs = [dueling_combine(v, a[:, : self.specs[n].num_actions]) for n, a, v in parts]
        return torch.cat([pad_columns(q, width) for q in outputs])

    def adapt_state_dict(self, saved: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Maps a saved union head to this net's chunks: column a is action a of every task."""
        state = {k: v for k, v in saved.items() if not k.startswith("advantage.")}
        for part in ("weight", "bias"):
            chunks, index = [], 0
            while f"advantage.{index}.{part}" in saved:
                chunks.append(saved[f"advantage.{index}.{part}"])
                index += 1
            if not chunks:
                continue
            union, start = torch.cat(chunks), 0
            for index, chunk in enumerate(self.advantage):
                own = getattr(chunk, part).detach().clone()
                rows = max(min(union.shape[0] - start, own.shape[0]), 0)
                own[:rows] = union[start : start + rows]
                state[f"advantage.{index}.{part}"] = own
                start += own.shape[0]
        return state

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        head = [*self.hidden.parameters(), *self.advantage.parameters()]
        head += [*(self.value.parameters() if self.value else ()), *self.shared_projection()]
        groups = {"trunk": list(self.body.parameters()), **self.inputs.param_groups(), "head": head}
        return {**groups, **{f"embedding/{n}": [p] for n, p in self.embeddings.items()}}

    def shared_projection(self) -> list[nn.Parameter]:
        return list(self.project.parameters()) if self.project is not None else []
