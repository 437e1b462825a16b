"""`shared`: one trunk for all tasks, a Q head per task (Caruana 1997 hard parameter sharing).

Tasks whose observations differ only in channel count (the MinAtar games) get input layers keyed
by observation signature in front of the shared body; tasks with one signature share one layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from multiq.nets.base import MultiTaskQNet
from multiq.nets.encoders import EncoderWidths
from multiq.nets.heads import TaskHeads
from multiq.nets.inputs import SharedInputs, sizes_of
from multiq.tasks.spec import TaskSpec


class SharedQNet(MultiTaskQNet):
    """Input layers by signature -> shared body (`trunk`) -> per-task heads."""

    def __init__(
        self, tasks: Sequence[TaskSpec], widths: EncoderWidths | None = None, dueling: bool = False
    ):
        super().__init__(tasks, widths, dueling)
        self.inputs = SharedInputs(tasks[0], self.widths)
        self.body, feature_dim = self.inputs.body()
        self.heads = TaskHeads(feature_dim, dueling)
        for spec in tasks:
            self.add_task(spec)

    def _add_modules(self, spec: TaskSpec) -> None:
        self.inputs.add(spec)
        self.heads.add(spec.name, spec.num_actions)

    def encode(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[sum B_t, F] shared features of every task's observations."""
        return self.body(self.inputs(obs))

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.heads(self.encode(obs), list(obs), sizes_of(obs))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "trunk": list(self.body.parameters()),
            **self.inputs.param_groups(),
            **self.heads.param_groups(),
        }
