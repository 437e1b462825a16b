"""The interface every sharing scheme implements: tasks keyed by name, growing with `add_task`.

A scheme holds a module per task (heads, private encoders, routing logits, embeddings) in
name-keyed containers, and input layers keyed by observation signature. Adding a task only adds
modules: every existing task's Q-values stay bit-identical.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from multiq.errors import TaskError
from multiq.nets.encoders import EncoderWidths
from multiq.tasks.spec import TaskSpec


def task_ids_for(sizes: Sequence[int], device: torch.device) -> torch.Tensor:
    """[sum(sizes)] long: row r belongs to batch task t when rows are grouped task by task."""
    counts = torch.as_tensor(list(sizes), device=device)
    return torch.repeat_interleave(torch.arange(len(sizes), device=device), counts)


class MultiTaskQNet(nn.Module, abc.ABC):
    """Maps each task's observations to that task's Q-values.

    Subclasses build their shared modules in `__init__`, a task's own modules in `_add_modules`,
    and implement `forward` and `param_groups`. `option_names` lists the `SchemeOptions` fields
    a scheme takes as keyword arguments.

    Args:
        tasks: the first tasks (at least one); more come with `add_task`.
        widths: the encoders' widths (`hidden_size`, `mlp_layers`, `conv_filters`,
            `cnn_hidden_size`); None: the keys' declared defaults.
        dueling: dueling Q heads.
    """

    option_names: tuple[str, ...] = ()
    _anchor: torch.Tensor  # a buffer

    def __init__(self, tasks: Sequence[TaskSpec], widths: EncoderWidths | None, dueling: bool):
        super().__init__()
        if not tasks:
            raise TaskError("a Q-network needs at least one task")
        self.widths = widths if widths is not None else EncoderWidths()
        self.dueling = dueling
        self.specs: dict[str, TaskSpec] = {}
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)  # the net's device
        self._task_ids: dict[tuple, torch.Tensor] = {}

    @property
    def hidden_size(self) -> int:
        """Units of the MLP and MinAtar hidden layers (and of the scheme's own hidden layers)."""
        return self.widths.hidden_size

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def num_actions(self) -> dict[str, int]:
        """Task name -> action count, for every task the net holds."""
        return {name: spec.num_actions for name, spec in self.specs.items()}

    def add_task(self, spec: TaskSpec) -> None:
        """Adds a task's own modules (on the net's device); other tasks' outputs are unchanged.

        Raises:
            TaskError: the name is taken, or the task cannot share this net's trunk.
        """
        if spec.name in self.specs:
            raise TaskError(f"the network already holds a task named {spec.name!r}")
        if "." in spec.name or not spec.name or hasattr(nn.ModuleDict(), spec.name):
            raise TaskError(
                f"task name {spec.name!r} cannot key a network module (no '.', not empty, not a "
                "torch Module attribute such as 'training'); give the task entry another `name`"
            )
        self._add_modules(spec)
        self.specs[spec.name] = spec
        self.to(self.device)

    def adapt_state_dict(self, saved: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A saved state dict rewritten to this net's layout where it differs (load by name).

        Name-keyed modules need nothing; a scheme whose shared modules' shapes depend on the
        task set (e.g. a head over the union of actions) maps them here.
        """
        return dict(saved)

    def task_ids(self, sizes: Sequence[int]) -> torch.Tensor:
        """`task_ids_for(sizes)` on the net's device, cached: batch layouts repeat every step."""
        key = tuple(sizes)
        if key not in self._task_ids:
            if len(self._task_ids) > 64:
                self._task_ids.clear()
            self._task_ids[key] = task_ids_for(key, self.device)
        return self._task_ids[key]

    def inherit_head(self, name: str, held: Sequence[str]) -> bool:
        """`head_init: mean` for task `name`, just added: its head starts as the mean of the
        held tasks' heads of the same shapes (`mean_head_init`); False (head left random) when
        none has. A scheme whose new task copies one earlier task's modules overrides this."""
        return mean_head_init(self, name, held)

    def set_progress(self, fraction: float) -> None:
        """Tells the net how far training has come (0 = start, 1 = end), e.g. for annealing."""

    def diagnostics(self) -> dict[str, dict[str, torch.Tensor]]:
        """Diagnostic -> task name -> detached [K] values worth logging (e.g. routing)."""
        return {}

    @abc.abstractmethod
    def _add_modules(self, spec: TaskSpec) -> None:
        """Creates the task's own modules (called before `spec` joins `self.specs`)."""

    @abc.abstractmethod
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Group name -> parameters; every parameter is in exactly one group.

        Names: ``trunk`` (shared body), ``inputs/<signature>`` (input layers), ``head/<task>``,
        plus what a scheme adds (``private/<task>``, ``routing/<task>``, ``embedding/<task>``,
        ``head`` for a head shared by all tasks).
        """

    @abc.abstractmethod
    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Q-values for a batch grouped by task.

        Args:
            obs: task name -> `[B_t, *obs_shape_t]` (B_t may be 0); the batch's rows are the
                tasks' rows in this order.

        Returns:
            [sum B_t, A] Q-values, A the largest action count among the batch's tasks; columns
            beyond a task's own action count are padding.
        """


def mean_head_init(net: MultiTaskQNet, name: str, held: Sequence[str]) -> bool:
    """Sets the group ``head/<name>`` to the mean of the held tasks' head groups whose tensors
    have the same shapes; returns False (head left as it is) when none has.

    Args:
        net: a network with `param_groups()`.
        name: the new task.
        held: the tasks whose heads are averaged (those of another shape are skipped).
    """
    groups = net.param_groups()
    new = groups.get(f"head/{name}")
    if not new:
        return False
    shapes = [p.shape for p in new]
    sources = [groups[f"head/{t}"] for t in held if f"head/{t}" in groups]
    sources = [ps for ps in sources if [p.shape for p in ps] == shapes]
    if not sources:
        return False
    with torch.no_grad():
        for i, param in enumerate(new):
            param.copy_(torch.stack([ps[i] for ps in sources]).mean(0))
    return True
