"""Per-task scalar state keyed by task name, gathered into [T_b] tensors for a batch's tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn


class TaskValues(nn.Module):
    """One scalar buffer per task name; `state_dict` keys are the task names.

    Args:
        initial: the value a new task starts with.
    """

    def __init__(self, initial: float):
        super().__init__()
        self.initial = float(initial)

    def add(self, name: str, device: torch.device | str = "cpu") -> None:
        # straight into _buffers: a task name never clashes with a Module attribute
        self._buffers[name] = torch.tensor(self.initial, device=device)

    def names(self) -> list[str]:
        return list(self._buffers)

    def gather(self, names: Sequence[str]) -> torch.Tensor:
        """[T_b] the values of `names`."""
        return torch.stack(self._values(names))

    def write(self, names: Sequence[str], values: torch.Tensor) -> None:
        """Sets the values of `names` from [T_b] `values`."""
        torch._foreach_copy_(self._values(names), list(values.unbind()))

    def _values(self, names: Sequence[str]) -> list[torch.Tensor]:
        """The buffers of `names` (`add` puts tensors only, never None, in `_buffers`)."""
        return cast("list[torch.Tensor]", [self._buffers[n] for n in names])
