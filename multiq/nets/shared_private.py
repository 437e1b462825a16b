"""`shared-private`: shared features plus each task's private features, then per-task heads.

The hierarchical "task-specific + shared features" design: every task has its own full encoder
(`private/<task>`) beside the shared trunk, and the two feature vectors are summed or
concatenated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from multiq.nets.base import MultiTaskQNet
from multiq.nets.encoders import EncoderWidths
from multiq.nets.heads import TaskHeads
from multiq.nets.inputs import SharedInputs, sizes_of
from multiq.nets.options import PRIVATE_MERGES, check_choice
from multiq.tasks.spec import TaskSpec


class SharedPrivateQNet(MultiTaskQNet):
    """Shared trunk + a private trunk per task, merged by `private_merge`, + per-task heads."""

    option_names = ("private_merge",)

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        widths: EncoderWidths | None = None,
        dueling: bool = False,
        private_merge: str = "sum",
    ):
        super().__init__(tasks, widths, dueling)
        check_choice("private_merge", private_merge, PRIVATE_MERGES)
        self.private_merge = private_merge
        self.inputs = SharedInputs(tasks[0], self.widths)
        self.body, shared_dim = self.inputs.body()
        concat = private_merge == "concat"
        self.feature_dim = 2 * shared_dim if concat else shared_dim
        self.private = nn.ModuleDict()
        self.heads = TaskHeads(self.feature_dim, dueling)
        for spec in tasks:
            self.add_task(spec)

    def _add_modules(self, spec: TaskSpec) -> None:
        self.inputs.add(spec)
        family = self.inputs.family
        body, _ = family.body(spec.observation_space, self.widths)
        input_layer = family.input_layer(spec.observation_space, self.widths)
        self.private[spec.name] = nn.Sequential(input_layer, body)
        self.heads.add(spec.name, spec.num_actions)

    def encode(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[sum B_t, feature_dim] merged shared and private features."""
        shared = self.body(self.inputs(obs))
        private = torch.cat([self.private[name](x) for name, x in obs.items()])
        if self.private_merge == "concat":
            return torch.cat([shared, private], dim=1)
        return shared + private

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.heads(self.encode(obs), list(obs), sizes_of(obs))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        private = {f"private/{n}": list(m.parameters()) for n, m in self.private.items()}
        groups = {"trunk": list(self.body.parameters()), **self.inputs.param_groups()}
        return {**groups, **private, **self.heads.param_groups()}
