"""`shared`: one trunk for all tasks, a Q head per task.

Tasks whose observations differ only in channel count (the MinAtar games) get a per-task input
layer in front of the shared body; tasks with identical observation spaces share that layer too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multiq.errors import TaskError
from multiq.nets.base import MultiTaskQNet
from multiq.nets.encoders import EncoderFamily, encoder_for
from multiq.nets.heads import TaskQHeads
from multiq.tasks.spec import TaskSet


def check_shareable(tasks: TaskSet) -> None:
    """Raises TaskError unless all tasks can feed one shared body."""
    families = {t.name: encoder_for(t.observation_space, t.name) for t in tasks}
    keys = {(f.name, f.body_key(tasks[n].observation_space)) for n, f in families.items()}
    if len(keys) > 1:
        shapes = ", ".join(f"{t.name}: {t.obs_shape}" for t in tasks)
        raise TaskError(
            "a shared trunk needs observations of one kind that differ at most in channel count; "
            f"got {shapes}. Use scheme 'independent', or wrap the envs to a common shape."
        )


def shared_input_layers(tasks: TaskSet, hidden_size: int) -> tuple[EncoderFamily, nn.ModuleList]:
    """The encoder family of shareable tasks and their input layers.

    One input layer when all tasks' observations have the same shape and dtype, else one per task.
    """
    check_shareable(tasks)
    family = encoder_for(tasks[0].observation_space, tasks[0].name)
    same_input = len({(t.obs_shape, t.obs_dtype.str) for t in tasks}) == 1
    spaces = [tasks[0].observation_space] if same_input else [t.observation_space for t in tasks]
    return family, nn.ModuleList(family.input_layer(s, hidden_size) for s in spaces)


def apply_input_layers(inputs: nn.ModuleList, obs: Sequence[torch.Tensor]) -> torch.Tensor:
    """[sum B_t, ...] body inputs, rows in task order (see `shared_input_layers`)."""
    if len(inputs) == 1:
        return inputs[0](torch.cat(list(obs)))
    return torch.cat([layer(x) for layer, x in zip(inputs, obs, strict=True)])


class SharedQNet(MultiTaskQNet):
    """Shared trunk + per-task heads (Caruana 1997 hard parameter sharing)."""

    def __init__(self, tasks: TaskSet, hidden_size: int = 128, dueling: bool = False):
        super().__init__(tasks)
        family, self.inputs = shared_input_layers(tasks, hidden_size)
        self.body, feature_dim = family.body(tasks[0].observation_space, hidden_size)
        self.heads = TaskQHeads(feature_dim, self.num_actions, dueling)

    def encode(self, obs: Sequence[torch.Tensor]) -> torch.Tensor:
        """[sum B_t, F] shared features of every task's observations."""
        return self.body(apply_input_layers(self.inputs, obs))

    def forward(self, obs: Sequence[torch.Tensor]) -> torch.Tensor:
        features = self.encode(obs)
        task_ids = self.task_ids([x.shape[0] for x in obs])
        return self.heads(features, task_ids)
