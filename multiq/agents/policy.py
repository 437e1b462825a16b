"""Acting: epsilon-greedy actions from a Q-network's weights, apart from any learning.

A `Policy` reads a network (and PopArt statistics, which turn its outputs into Q-values); it
never changes them. `Policy(learner.online, learner.popart)` acts from the learner's live
weights (the sequential loop); `Policy.snapshot(...)` from a frozen copy, which can live in
another thread or process, or serve as a distillation teacher.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from multiq.agents.losses import masked_argmax
from multiq.nets.base import MultiTaskQNet
from multiq.nets.heads import action_mask_for


class Policy:
    """Epsilon-greedy acting for every task a network holds.

    Args:
        net: the Q-network.
        popart: the PopArt statistics of a net trained with PopArt (None: raw outputs are Q).
    """

    def __init__(self, net: MultiTaskQNet, popart=None):
        self.net, self.popart = net, popart
        self._masks: dict[tuple[str, ...], torch.Tensor] = {}
        self._counts: dict[tuple[str, ...], np.ndarray] = {}

    @classmethod
    def snapshot(cls, net: MultiTaskQNet, popart=None) -> Policy:
        """A policy over frozen copies of the net and its statistics."""
        net, popart = copy.deepcopy((net, popart))
        net.eval().requires_grad_(False)
        return cls(net, popart)

    @property
    def device(self) -> torch.device:
        return self.net.device

    @property
    def task_names(self) -> list[str]:
        return list(self.net.specs)

    def valid_actions(self, names: Sequence[str]) -> torch.Tensor:
        """[T_b, A] bool: which output columns are real actions of each of the tasks `names`."""
        key = tuple(names)
        if key not in self._masks:
            counts = [self.net.specs[n].num_actions for n in names]
            self._masks[key] = action_mask_for(counts).to(self.device)
        return self._masks[key]

    def tensors(self, obs: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: torch.as_tensor(x, device=self.device) for name, x in obs.items()}

    def q_values(self, obs: Mapping[str, np.ndarray | torch.Tensor]) -> torch.Tensor:
        """[sum B_t, A] Q-values (unnormalised under PopArt); obs: task -> [B_t, *obs_shape]."""
        with torch.inference_mode():
            q = self.net(self.tensors(obs))
            if self.popart is not None:
                task_ids = self.net.task_ids([len(x) for x in obs.values()])
                q = self.popart.unnormalise(q, list(obs), task_ids)
            return q

    def act(
        self, obs: Mapping[str, np.ndarray], epsilon: float, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Epsilon-greedy actions for every env of the given tasks, from one batched forward.

        Args:
            obs: task name -> [n_t, *obs_shape_t].
            epsilon: probability of a uniformly random action.
            rng: source of the exploration noise.

        Returns:
            task name -> [n_t] int64 actions.
        """
        names = tuple(obs)
        sizes = [len(o) for o in obs.values()]
        if names not in self._counts:
            self._counts[names] = np.array([self.net.specs[n].num_actions for n in names])
        per_row_actions = np.repeat(self._counts[names], sizes)
        actions = (rng.random(len(per_row_actions)) * per_row_actions).astype(np.int64)
        explore = rng.random(len(actions)) < epsilon
        if not explore.all():
            q = self.q_values(obs)
            valid = self.valid_actions(names)[self.net.task_ids(sizes)]
            greedy = masked_argmax(q, valid).cpu().numpy()
            actions = np.where(explore, actions, greedy)
        return dict(zip(names, np.split(actions, np.cumsum(sizes)[:-1]), strict=True))
