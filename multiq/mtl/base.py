"""The interface every loss balancer implements, and which parameters the tasks share."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from multiq.errors import ConfigError
from multiq.mtl.task_grads import TaskGradients, linear_layers
from multiq.tasks.spec import TaskSet

PROBE_ROWS = 16


class Balancer(nn.Module, abc.ABC):
    """Turns per-task losses into parameter gradients.

    A balancer runs the backward pass itself: gradient surgery and GradNorm need several
    gradients per step, not one `loss.backward()`. Its own learnable values (log-variances,
    task weights) are `nn.Parameter`s, which the agent adds to its optimiser; its state is in
    `state_dict()`, so checkpoints resume exactly.

    Args:
        params: the network parameters that receive gradients.
        shared: one bool per parameter, True where several tasks' losses reach it (see
            `shared_params`).
        task_weights: [T] fixed weights alpha (normalised here to sum to one).
        gradnorm_alpha: GradNorm's asymmetry (used by `gradnorm` only).
        net: the network holding `params`. Where given, balancers that need per-task gradients
            take those of shared `nn.Linear` parameters from one backward pass (see
            `TaskGradients`); without it, from batched autograd.
    """

    def __init__(
        self,
        params: Sequence[nn.Parameter],
        shared: Sequence[bool],
        task_weights: torch.Tensor,
        gradnorm_alpha: float = 1.5,
        net: nn.Module | None = None,
    ):
        super().__init__()
        self.params = list(params)
        self.shared = list(shared)
        if len(self.shared) != len(self.params):
            raise ValueError(f"{len(self.params)} parameters but {len(self.shared)} shared flags")
        self.num_tasks = len(task_weights)
        self.gradnorm_alpha = gradnorm_alpha
        alpha = torch.as_tensor(task_weights, dtype=torch.float32)
        self.register_buffer("alpha", alpha / alpha.sum(), persistent=False)
        # a plain list, not a submodule: the net's parameters are not the balancer's
        self.layers = linear_layers(net, self.params)

    def task_gradients(self, indices: Sequence[int]) -> TaskGradients:
        """Per-task gradients of `params[i]` for i in `indices` (hooks only on their layers)."""
        return TaskGradients([self.params[i] for i in indices], [self.layers[i] for i in indices])

    @abc.abstractmethod
    def backward(self, task_losses: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Fills `.grad` of the network parameters (and the balancer's own ones).

        Args:
            task_losses: [T] per-task losses, attached to the graph; L_t depends only on the
                batch rows of task t.
            task_ids: [B] long task of each batch row, rows grouped by task in task order.

        Returns:
            the scalar combined loss, detached (for logging).
        """

    def after_step(self) -> None:
        """Called after the optimiser step (e.g. to renormalise learned weights)."""

    def metrics(self) -> dict[str, torch.Tensor]:
        """[T] detached tensors to log per task, by key."""
        return {}

    def require_equal_alpha(self, name: str) -> None:
        """Learned weights replace alpha: unequal `task_weights` would be silently ignored."""
        if not torch.allclose(self.alpha, self.alpha.mean().expand_as(self.alpha)):
            raise ConfigError(
                f"balancer {name!r} learns the task weights; it cannot be combined with unequal "
                "task_weights (remove task_weights, or use balancer 'fixed' or 'pcgrad')"
            )


def _probe_obs(space, rows: int, rng: np.random.Generator) -> np.ndarray:
    shape = (rows, *space.shape)
    if np.dtype(space.dtype) == np.bool_:
        return rng.random(shape) < 0.5
    low = np.where(np.isfinite(space.low), space.low, -1.0)
    high = np.where(np.isfinite(space.high), space.high, 1.0)
    return rng.uniform(low, high, size=shape).astype(space.dtype)


def shared_params(net: nn.Module, tasks: TaskSet) -> list[bool]:
    """Which parameters receive gradient from more than one task.

    Probes the network once with random observations of each task alone; a parameter is shared
    when at least one of its elements gets a non-zero gradient from two or more tasks. This
    works for any sharing scheme without asking it: in `shared` the body is shared, while the
    wide head (each task touches only its own rows) and per-task input layers are not; in
    `independent` nothing is.

    Returns:
        one bool per `net.parameters()` entry.
    """
    params = list(net.parameters())
    device = params[0].device
    rng = np.random.default_rng(0)
    counts = [torch.zeros(p.shape, dtype=torch.int64, device=device) for p in params]
    for t, task in enumerate(tasks):
        obs = [
            torch.as_tensor(
                _probe_obs(s.observation_space, PROBE_ROWS if i == t else 0, rng), device=device
            )
            for i, s in enumerate(tasks)
        ]
        q = net(obs)[:, : task.num_actions]
        grads = torch.autograd.grad(q.sum(), params, allow_unused=True)
        for count, g in zip(counts, grads, strict=True):
            if g is not None:
                count += g != 0
    return [bool((c >= 2).any()) for c in counts]
