"""Input layers keyed by observation signature: tasks whose observations look alike share one.

The shared body after them needs observations of one kind (one encoder family, one body key);
`SharedInputs` checks that for every task it takes, including tasks added later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from multiq.errors import TaskError
from multiq.nets.encoders import EncoderFamily, EncoderWidths, encoder_for
from multiq.tasks.spec import TaskSpec


def signature(spec: TaskSpec) -> str:
    """The input-layer key of a task: observation shape and dtype, e.g. ``4x10x10_bool``."""
    return "x".join(str(n) for n in spec.obs_shape) + "_" + spec.obs_dtype.name


class SharedInputs(nn.Module):
    """Input layers keyed by `signature`, in front of one body that every task shares.

    Args:
        first: the task that fixes the encoder family and body key.
        widths: the widths of the input layers and the body.
    """

    def __init__(self, first: TaskSpec, widths: EncoderWidths):
        super().__init__()
        self.family: EncoderFamily = encoder_for(first.observation_space, first.name)
        self.body_key = self.family.body_key(first.observation_space)
        self.first_space, self.first_name = first.observation_space, first.name
        self.widths = widths
        self.layers = nn.ModuleDict()
        self.task_signature: dict[str, str] = {}
        self._layouts: dict[tuple[str, ...], list[nn.Module]] = {}

    def add(self, spec: TaskSpec) -> None:
        """Registers a task; makes its input layer unless its signature already has one.

        Raises:
            TaskError: the task's observations cannot feed the shared body.
        """
        self.check(spec)
        key = signature(spec)
        if key not in self.layers:
            self.layers[key] = self.family.input_layer(spec.observation_space, self.widths)
        self.task_signature[spec.name] = key
        self._layouts.clear()

    def check(self, spec: TaskSpec) -> None:
        """Raises TaskError unless the task's observations can feed the shared body."""
        family = encoder_for(spec.observation_space, spec.name)
        if family.name != self.family.name or family.body_key(spec.observation_space) != (
            self.body_key
        ):
            raise TaskError(
                f"task {spec.name!r} (observations {spec.obs_shape}) cannot share this trunk, "
                f"which takes {self.family.name} observations like task {self.first_name!r}'s "
                f"{tuple(self.first_space.shape)} "
                "(a shared trunk needs observations of one kind that differ at most in channel "
                "count); use scheme 'independent', or wrap the env to a common shape"
            )

    def body(self) -> tuple[nn.Sequential, int]:
        """A new shared body for these inputs, and its feature size."""
        return self.family.body(self.first_space, self.widths)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[sum B_t, ...] body inputs, rows in `obs` order."""
        layers = self._layout(tuple(obs))
        if len(layers) == 1:  # one signature: one layer call over all rows
            return layers[0](torch.cat(list(obs.values())))
        return torch.cat([layer(x) for layer, x in zip(layers, obs.values(), strict=True)])

    def _layout(self, names: tuple[str, ...]) -> list[nn.Module]:
        """Each task's input layer, or the one layer of them all (cached per task list)."""
        if names not in self._layouts:
            keys = [self.task_signature[name] for name in names]
            unique = len(set(keys)) == 1
            self._layouts[names] = [self.layers[k] for k in (keys[:1] if unique else keys)]
        return self._layouts[names]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {f"inputs/{key}": list(layer.parameters()) for key, layer in self.layers.items()}


def sizes_of(obs: Mapping[str, torch.Tensor]) -> list[int]:
    """Rows per task of a batch."""
    return [x.shape[0] for x in obs.values()]


def check_shareable(tasks: Sequence[TaskSpec]) -> None:
    """Raises TaskError unless all tasks can feed one shared body (builds no layer)."""
    inputs = SharedInputs(tasks[0], EncoderWidths())
    for spec in tasks:
        inputs.check(spec)
