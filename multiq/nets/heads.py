"""Per-task Q heads keyed by task name, and the padding of per-task outputs into one batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def action_mask_for(num_actions: Sequence[int]) -> torch.Tensor:
    """[T, A_max] bool: entry (t, a) is True when action a exists in task t."""
    mask = torch.zeros(len(num_actions), max(num_actions), dtype=torch.bool)
    for task, n in enumerate(num_actions):
        mask[task, :n] = True
    return mask


def pad_columns(q: torch.Tensor, width: int) -> torch.Tensor:
    """[B, A] -> [B, width] with zero padding on the right."""
    return q if q.shape[1] == width else F.pad(q, (0, width - q.shape[1]))


def dueling_combine(value: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """Wang et al. 2016: V(s) + A(s, a) - mean_a A(s, a) over the task's own actions.

    Args:
        value: [B, 1].
        advantage: [B, A_t], only the task's real actions.

    Returns:
        [B, A_t] Q-values.
    """
    return value + advantage - advantage.mean(1, keepdim=True)


class QHead(nn.Module):
    """One task's Q head: `A_t` outputs, optionally dueling."""

    advantage: nn.Linear
    value: nn.Linear | None

    def __init__(self, feature_dim: int, num_actions: int, dueling: bool = False):
        super().__init__()
        self.advantage = nn.Linear(feature_dim, num_actions)
        self.value = nn.Linear(feature_dim, 1) if dueling else None
        self._refresh()
        self.register_load_state_dict_post_hook(_refresh_after_load)

    def _refresh(self) -> None:
        """Keeps the parameters at hand: `q_values` then needs no module attribute lookups."""
        self._weights = (self.advantage.weight, self.advantage.bias)
        self._value_weights = None if self.value is None else (self.value.weight, self.value.bias)

    def _apply(self, fn, recurse: bool = True):
        module = super()._apply(fn, recurse)  # may put new Parameter objects in place
        self._refresh()
        return module

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[B, F] -> [B, A_t]."""
        return self.q_values(features)

    def q_values(self, features: torch.Tensor) -> torch.Tensor:
        """[B, F] -> [B, A_t], by functional calls (no module-call overhead)."""
        adv = F.linear(features, *self._weights)
        if self._value_weights is None:
            return adv
        return dueling_combine(F.linear(features, *self._value_weights), adv)


def _refresh_after_load(module: QHead, incompatible_keys) -> None:
    module._refresh()  # load_state_dict(assign=True) puts new Parameter objects in place


class TaskHeads(nn.Module):
    """One `QHead` per task name; applies each task's head to that task's rows.

    Each head is its own small matmul, so a new head never changes another task's outputs (one
    fused matmul over all heads would: a matmul's rounding depends on its width).
    """

    def __init__(self, feature_dim: int, dueling: bool = False):
        super().__init__()
        self.feature_dim, self.dueling = feature_dim, dueling
        self.heads = nn.ModuleDict()
        self._layouts: dict[tuple[str, ...], tuple[list[QHead], int]] = {}

    def add(self, name: str, num_actions: int) -> None:
        self.heads[name] = QHead(self.feature_dim, num_actions, self.dueling)
        self._layouts.clear()

    def head(self, name: str) -> QHead:
        """The head of task `name`."""
        head = self.heads[name]
        assert isinstance(head, QHead)  # `add` puts only QHeads in
        return head

    def _layout(self, names: Sequence[str]) -> tuple[list[QHead], int]:
        """The heads of `names` and their widest output (cached: batch layouts repeat)."""
        key = tuple(names)
        if key not in self._layouts:
            heads = [self.head(n) for n in names]
            self._layouts[key] = (heads, max(h.advantage.out_features for h in heads))
        return self._layouts[key]

    def forward(
        self, features: torch.Tensor, names: Sequence[str], sizes: Sequence[int]
    ) -> torch.Tensor:
        """Q-values of each row's own task.

        Args:
            features: [sum B_t, F], rows grouped by task in `names` order.
            names: the batch's tasks.
            sizes: rows per task.

        Returns:
            [sum B_t, A] with A the largest action count of the batch's tasks (zero padding).
        """
        heads, width = self._layout(names)
        if len(heads) == 1:
            return heads[0].q_values(features)
        parts = features.split(list(sizes))
        # functional calls: a head is one small matmul, and a module call costs more than it
        outputs = [head.q_values(x) for head, x in zip(heads, parts, strict=True)]
        return torch.cat([pad_columns(q, width) for q in outputs])

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {f"head/{name}": list(head.parameters()) for name, head in self.heads.items()}
