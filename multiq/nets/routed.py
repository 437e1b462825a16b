"""`routed`: each hidden layer of the body holds K shared modules that every task mixes its own way.

Per task and routed layer, routing weights over the K modules come from the task's own learned
logits (`routing/<task>`): a softmax,
or a Gumbel-softmax (Jang et al. 2017; Maddison et al. 2017) whose temperature anneals linearly
from `routing_tau_start` to `routing_tau_end` over training. With `routing_hard` the forward pass
uses the one-hot argmax and the gradient the soft weights (straight-through).

The routed layers are the dense layers of the encoder's shared body, at its configured widths:
the MLP's `mlp_layers - 1` layers after the input layer, the MinAtar net's and the Nature CNN's
dense layer; convolutions and the input layers stay plain shared modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from multiq.errors import ConfigError
from multiq.nets.base import MultiTaskQNet
from multiq.nets.encoders import EncoderWidths
from multiq.nets.heads import TaskHeads
from multiq.nets.inputs import SharedInputs, sizes_of
from multiq.nets.options import ROUTINGS, check_choice
from multiq.tasks.spec import TaskSpec


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
    """Input layers by signature, a body of `RoutedLinear` layers (`trunk`), per-task heads.

    Task t's routing logits are its own [L, K] parameter (`routing/<task>`).
    """

    tau: torch.Tensor  # a buffer
    option_names = (
        "routing",
        "routing_modules",
        "routing_tau_start",
        "routing_tau_end",
        "routing_hard",
    )

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        widths: EncoderWidths | None = None,
        dueling: bool = False,
        routing: str = "softmax",
        routing_modules: int = 4,
        routing_tau_start: float = 1.0,
        routing_tau_end: float = 0.1,
        routing_hard: bool = False,
    ):
        super().__init__(tasks, widths, dueling)
        check_choice("routing", routing, ROUTINGS)
        if routing_modules < 1 or routing_tau_start <= 0 or routing_tau_end <= 0:
            raise ConfigError(
                "routing_modules must be >= 1 and routing_tau_start, routing_tau_end > 0; got "
                f"{routing_modules}, {routing_tau_start}, {routing_tau_end}"
            )
        self.routing, self.routing_hard = routing, routing_hard
        self.num_modules = routing_modules
        self.tau_start, self.tau_end = float(routing_tau_start), float(routing_tau_end)
        self.inputs = SharedInputs(tasks[0], self.widths)
        body, feature_dim = self.inputs.body()
        self.body = nn.ModuleList(
            RoutedLinear(m.in_features, m.out_features, routing_modules)
            if isinstance(m, nn.Linear)
            else m
            for m in body
        )
        self.num_routed = sum(isinstance(m, RoutedLinear) for m in self.body)
        if self.num_routed == 0:
            raise ConfigError(
                "scheme 'routed' routes the shared body's dense layers, and with mlp_layers=1 the "
                "MLP has none: set mlp_layers >= 2"
            )
        self.routing_logits = nn.ParameterDict()
        # A buffer, so that a saved net predicts with the temperature it had.
        self.register_buffer("tau", torch.tensor(self.tau_start))
        self.heads = TaskHeads(feature_dim, dueling)
        for spec in tasks:
            self.add_task(spec)

    def _add_modules(self, spec: TaskSpec) -> None:
        self.inputs.add(spec)
        logits = torch.zeros(self.num_routed, self.num_modules, device=self.device)
        self.routing_logits[spec.name] = nn.Parameter(logits)
        self.heads.add(spec.name, spec.num_actions)

    def set_progress(self, fraction: float) -> None:
        """Anneals the Gumbel temperature linearly: tau_start at 0, tau_end at 1 (and after)."""
        fraction = min(max(fraction, 0.0), 1.0)
        self.tau.fill_(self.tau_start + (self.tau_end - self.tau_start) * fraction)

    def routing_probs(self, names: Sequence[str], sample: bool = False) -> torch.Tensor:
        """[L, T_b, K] soft routing weights of the tasks `names`; `sample` adds Gumbel noise."""
        logits = torch.stack([self.routing_logits[n] for n in names], dim=1)
        if self.routing == "softmax":
            return logits.softmax(-1)
        if sample:
            gumbels = -torch.empty_like(logits).exponential_().log()
            logits = logits + gumbels
        return (logits / self.tau).softmax(-1)

    def routing_weights(self, names: Sequence[str], sample: bool = False) -> torch.Tensor:
        """[L, T_b, K] weights the forward pass uses: soft, or one-hot with soft gradients."""
        soft = self.routing_probs(names, sample)
        if not self.routing_hard:
            return soft
        hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
        return hard - soft.detach() + soft

    def diagnostics(self) -> dict[str, dict[str, torch.Tensor]]:
        """{"routing": {task: [K]}} noiseless soft routing weights ("routing1", ... per layer)."""
        names = list(self.specs)
        probs = self.routing_probs(names).detach()
        return {
            ("routing" if i == 0 else f"routing{i}"): dict(zip(names, layer, strict=True))
            for i, layer in enumerate(probs)
        }

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        names, sizes = list(obs), sizes_of(obs)
        task_ids = self.task_ids(sizes)
        # Gumbel noise only in training forwards that learn; acting and targets stay deterministic.
        weights = self.routing_weights(names, sample=self.training and torch.is_grad_enabled())
        x = self.inputs(obs)
        layer = 0
        for module in self.body:
            if isinstance(module, RoutedLinear):
                x = module(x, weights[layer][task_ids])
                layer += 1
            else:
                x = module(x)
        return self.heads(x, names, sizes)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        routing = {f"routing/{n}": [p] for n, p in self.routing_logits.items()}
        groups = {"trunk": list(self.body.parameters()), **self.inputs.param_groups()}
        return {**groups, **routing, **self.heads.param_groups()}
