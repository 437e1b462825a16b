"""`routed`: each hidden layer of the body holds K shared modules that every task mixes its own way.

Per task and routed layer, routing weights over the K modules come from learned logits: a softmax,
or a Gumbel-softmax (Jang et al. 2017; Maddison et al. 2017) whose temperature anneals linearly
from `routing_tau_start` to `routing_tau_end` over training. With `routing_hard` the forward pass
uses the one-hot argmax and the gradient the soft weights (straight-through).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from multiq.errors import ConfigError
from multiq.nets.base import MultiTaskQNet
from multiq.nets.heads import TaskQHeads
from multiq.nets.options import ROUTINGS, check_choice
from multiq.nets.shared import apply_input_layers, shared_input_layers
from multiq.tasks.spec import TaskSet


class RoutedLinear(nn.Module):
    """K parallel copies of a Linear layer stored as one wide layer; rows mix their outputs."""

    def __init__(self, in_features: int, out_features: int, num_modules: int):
        super().__init__()
        self.num_modules, self.out_features = num_modules, out_features
        self.modules_wide = nn.Linear(in_features, num_modules * out_features)

    def forward(self, x: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        """Mixed module outputs.

        Args:
            x: [N, in_features] inputs.
            mix: [N, K] each row's weights over the modules.

        Returns:
            [N, out_features] the weighted sum of the K modules' outputs.
        """
        outputs = self.modules_wide(x).view(-1, self.num_modules, self.out_features)
        return torch.bmm(mix[:, None, :], outputs).squeeze(1)


class RoutedQNet(MultiTaskQNet):
    """Shared input layer(s), a body whose Linear layers are `RoutedLinear`, per-task heads."""

    option_names = (
        "routing",
        "routing_modules",
        "routing_tau_start",
        "routing_tau_end",
        "routing_hard",
    )

    def __init__(
        self,
        tasks: TaskSet,
        hidden_size: int = 128,
        dueling: bool = False,
        routing: str = "softmax",
        routing_modules: int = 4,
        routing_tau_start: float = 1.0,
        routing_tau_end: float = 0.1,
        routing_hard: bool = False,
    ):
        super().__init__(tasks)
        check_choice("routing", routing, ROUTINGS)
        if routing_modules < 1 or routing_tau_start <= 0 or routing_tau_end <= 0:
            raise ConfigError(
                "routing_modules must be >= 1 and routing_tau_start, routing_tau_end > 0; got "
                f"{routing_modules}, {routing_tau_start}, {routing_tau_end}"
            )
        self.routing, self.routing_hard = routing, routing_hard
        self.tau_start, self.tau_end = float(routing_tau_start), float(routing_tau_end)
        family, self.inputs = shared_input_layers(tasks, hidden_size)
        body, feature_dim = family.body(tasks[0].observation_space, hidden_size)
        self.body = nn.ModuleList(
            RoutedLinear(m.in_features, m.out_features, routing_modules)
            if isinstance(m, nn.Linear)
            else m
            for m in body
        )
        num_routed = sum(isinstance(m, RoutedLinear) for m in self.body)
        self.routing_logits = nn.Parameter(torch.zeros(num_routed, len(tasks), routing_modules))
        # A buffer, so that a saved net predicts with the temperature it had.
        self.register_buffer("tau", torch.tensor(self.tau_start))
        self.heads = TaskQHeads(feature_dim, self.num_actions, dueling)

    def set_progress(self, fraction: float) -> None:
        """Anneals the Gumbel temperature linearly: tau_start at 0, tau_end at 1 (and after)."""
        fraction = min(max(fraction, 0.0), 1.0)
        self.tau.fill_(self.tau_start + (self.tau_end - self.tau_start) * fraction)

    def routing_probs(self, sample: bool = False) -> torch.Tensor:
        """[L, T, K] soft routing weights; `sample` adds Gumbel noise (gumbel routing only)."""
        if self.routing == "softmax":
            return self.routing_logits.softmax(-1)
        logits = self.routing_logits
        if sample:
            gumbels = -torch.empty_like(logits).exponential_().log()
            logits = logits + gumbels
        return (logits / self.tau).softmax(-1)

    def routing_weights(self, sample: bool = False) -> torch.Tensor:
        """[L, T, K] weights the forward pass uses: soft, or one-hot with soft gradients."""
        soft = self.routing_probs(sample)
        if not self.routing_hard:
            return soft
        hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
        return hard - soft.detach() + soft

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """{"routing": [T, K]} noiseless soft routing weights (then "routing1", ... per layer)."""
        probs = self.routing_probs().detach()
        return {("routing" if i == 0 else f"routing{i}"): p for i, p in enumerate(probs)}

    def forward(self, obs: Sequence[torch.Tensor]) -> torch.Tensor:
        task_ids = self.task_ids([x.shape[0] for x in obs])
        # Gumbel noise only in training forwards that learn; acting and targets stay deterministic.
        weights = self.routing_weights(sample=self.training and torch.is_grad_enabled())
        x = apply_input_layers(self.inputs, obs)
        layer = 0
        for module in self.body:
            if isinstance(module, RoutedLinear):
                x = module(x, weights[layer][task_ids])
                layer += 1
            else:
                x = module(x)
        return self.heads(x, task_ids)
