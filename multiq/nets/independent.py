"""`independent`: a separate network per task, sharing nothing (the no-transfer baseline)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from multiq.nets.base import MultiTaskQNet
from multiq.nets.encoders import EncoderWidths, encoder_for
from multiq.nets.heads import TaskHeads, pad_columns
from multiq.nets.inputs import sizes_of
from multiq.tasks.spec import TaskSpec


class IndependentQNet(MultiTaskQNet):
    """One full Q-network per task: `private/<task>` encoder + `head/<task>`; no trunk."""

    def __init__(
        self, tasks: Sequence[TaskSpec], widths: EncoderWidths | None = None, dueling: bool = False
    ):
        super().__init__(tasks, widths, dueling)
        self.private = nn.ModuleDict()
        self.heads = TaskHeads(0, dueling)  # feature_dim: set by each task as it joins
        for spec in tasks:
            self.add_task(spec)

    def _add_modules(self, spec: TaskSpec) -> None:
        family = encoder_for(spec.observation_space, spec.name)
        body, feature_dim = family.body(spec.observation_space, self.widths)
        input_layer = family.input_layer(spec.observation_space, self.widths)
        self.private[spec.name] = nn.Sequential(input_layer, body)
        # tasks of other observation kinds have other feature sizes: heads are built to fit
        self.heads.feature_dim = feature_dim
        self.heads.add(spec.name, spec.num_actions)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        features = [self.private[name](x) for name, x in obs.items()]
        if len({f.shape[1] for f in features}) == 1:
            return self.heads(torch.cat(features), list(obs), sizes_of(obs))
        outputs = [self.heads(f, [n], [f.shape[0]]) for n, f in zip(obs, features, strict=True)]
        width = max(q.shape[1] for q in outputs)
        return torch.cat([pad_columns(q, width) for q in outputs])

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {f"private/{n}": list(m.parameters()) for n, m in self.private.items()}
        return {**groups, **self.heads.param_groups()}
