"""The interface every loss balancer implements, and which parameters the tasks share."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from multiq.errors import ConfigError
from multiq.mtl.interference import task_gradients
from multiq.mtl.task_grads import TaskGradients, linear_layers
from multiq.tasks.spec import TaskSpec

PROBE_ROWS = 16


class Balancer(nn.Module, abc.ABC):
    """Turns per-task losses into parameter gradients.

    A balancer runs the backward pass itself: gradient surgery and GradNorm need several
    gradients per step, not one `loss.backward()`. Its own learnable values (log-variances,
    task weights) are per-task `nn.Parameter`s keyed by task name, which the learner adds to its
    optimiser; its state is in `state_dict()`, so checkpoints resume exactly.

    The learner tells it which parameters train (`set_params`: frozen ones are left out, so
    gradient surgery never sees them), which tasks exist (`add_task`) and the weight alpha of
    each task's loss (`set_task_weights`, used as given).

    Args:
        gradnorm_alpha: GradNorm's asymmetry (used by `gradnorm` only).
    """

    # True where `backward` takes each task's gradient of the shared parameters anyway and
    # keeps it in `last_task_grads` (`pcgrad`): the conflict probe reuses it
    takes_task_grads: ClassVar[bool] = False

    def __init__(self, gradnorm_alpha: float = 1.5):
        super().__init__()
        self.gradnorm_alpha = gradnorm_alpha
        self.params: list[nn.Parameter] = []
        self.shared: list[bool] = []
        self.layers: list[nn.Linear | None] = []
        self.weights: dict[str, float] = {}
        self._alpha: dict[tuple[str, ...], torch.Tensor] = {}
        # [T_b, P] of the latest backward, kept by a balancer that `takes_task_grads`
        self.last_task_grads: torch.Tensor | None = None

    def set_params(
        self, params: Sequence[nn.Parameter], shared: Sequence[bool], net: nn.Module | None = None
    ) -> None:
        """The trainable network parameters, whether each is shared, and the net holding them.

        Where `net` is given, balancers that need per-task gradients take those of shared
        `nn.Linear` parameters from one backward pass (see `TaskGradients`).
        """
        if len(shared) != len(params):
            raise ValueError(f"{len(params)} parameters but {len(shared)} shared flags")
        self.params, self.shared = list(params), list(shared)
        # a plain list, not a submodule: the net's parameters are not the balancer's
        self.layers = linear_layers(net, self.params)
        self.params_changed()

    def params_changed(self) -> None:
        """Called after `set_params` (e.g. to rebuild per-task gradient hooks)."""

    def add_task(self, name: str) -> None:
        """Creates a new task's learned values (none for a stateless balancer)."""

    def set_task_weights(self, weights: Mapping[str, float]) -> None:
        """alpha per task name, used as given (the learner normalises the config's weights)."""
        self.weights = {name: float(w) for name, w in weights.items()}
        self._alpha.clear()

    def alpha(self, names: Sequence[str], device: torch.device) -> torch.Tensor:
        """[T_b] alpha of the batch's tasks (cached per task list)."""
        key = tuple(names)
        if key not in self._alpha:
            missing = [n for n in names if n not in self.weights]
            if missing:
                raise ConfigError(f"no loss weight for tasks {missing}")
            values = [self.weights[n] for n in names]
            self._alpha[key] = torch.tensor(values, dtype=torch.float32, device=device)
        return self._alpha[key]

    def task_gradients(self, indices: Sequence[int]) -> TaskGradients:
        """Per-task gradients of `params[i]` for i in `indices` (hooks only on their layers)."""
        return TaskGradients([self.params[i] for i in indices], [self.layers[i] for i in indices])

    @abc.abstractmethod
    def backward(
        self, task_losses: torch.Tensor, task_ids: torch.Tensor, names: Sequence[str]
    ) -> torch.Tensor:
        """Fills `.grad` of the trainable parameters (and the balancer's own ones).

        Args:
            task_losses: [T_b] per-task losses, attached to the graph; L_t depends only on the
                batch rows of task t.
            task_ids: [B] long batch task of each row, rows grouped by task in `names` order.
            names: the batch's tasks.

        Returns:
            the scalar combined loss, detached (for logging).
        """

    def probed_backward(
        self, task_losses: torch.Tensor, task_ids: torch.Tensor, names: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`backward`, and each task's gradient of alpha_t L_t on the shared trainable
        parameters, before any balancing (for the gradient-conflict map, `interference`).

        A balancer that takes these gradients anyway (`takes_task_grads`) hands over its own;
        for the others they come from one extra backward pass per task.

        Returns:
            (the combined loss as `backward` returns it, [T_b, P] the gradients; None when
            fewer than two tasks are in the batch or no trainable parameter is shared).
        """
        shared = [p for p, s in zip(self.params, self.shared, strict=True) if s]
        if len(names) < 2 or not shared:
            return self.backward(task_losses, task_ids, names), None
        grads = None
        if not self.takes_task_grads:  # before the update's own backward frees the graph
            grads = task_gradients(task_losses * self.alpha(names, task_losses.device), shared)
        loss = self.backward(task_losses, task_ids, names)
        return loss, grads if grads is not None else self.last_task_grads

    def after_step(self) -> None:
        """Called after the optimiser step (e.g. to renormalise learned weights)."""

    def metrics(self) -> dict[str, torch.Tensor]:
        """[T_b] detached tensors to log per task of the latest batch, by key."""
        return {}

    def require_equal_alpha(self, name: str) -> None:
        """Learned weights replace alpha: unequal weights would be silently ignored."""
        values = set(self.weights.values())
        if len(values) > 1:
            raise ConfigError(
                f"balancer {name!r} learns the task weights; it cannot be combined with unequal "
                "task weights (remove task_weights, or use balancer 'fixed' or 'pcgrad'; "
                "transfer mode 'joint' needs 'fixed' or 'pcgrad' too)"
            )


def _probe_obs(space, rows: int, rng: np.random.Generator) -> np.ndarray:
    shape = (rows, *space.shape)
    if np.dtype(space.dtype) == np.bool_:
        return rng.random(shape) < 0.5
    low = np.where(np.isfinite(space.low), space.low, -1.0)
    high = np.where(np.isfinite(space.high), space.high, 1.0)
    return rng.uniform(low, high, size=shape).astype(space.dtype)


def shared_params(
    net: nn.Module, tasks: Sequence[TaskSpec], params: Sequence[nn.Parameter] | None = None
) -> list[bool]:
    """Which parameters receive gradient from more than one task.

    Probes the network with random observations of each task alone; a parameter is shared when
    at least one of its elements gets a non-zero gradient from two or more tasks. This works for
    any sharing scheme without asking it: in `shared` the body is shared, while heads and input
    layers of one task are not; in `independent` nothing is.

    Args:
        net: the network.
        tasks: the tasks it holds.
        params: the parameters to classify (default: all of the net's).

    Returns:
        one bool per parameter.
    """
    params = list(net.parameters()) if params is None else list(params)
    if not params:
        return []
    device = params[0].device
    rng = np.random.default_rng(0)
    counts = [torch.zeros(p.shape, dtype=torch.int64, device=device) for p in params]
    for task in tasks:
        x = torch.as_tensor(_probe_obs(task.observation_space, PROBE_ROWS, rng), device=device)
        q = net({task.name: x})[:, : task.num_actions]
        if not q.requires_grad:
            continue  # every parameter this task reaches is frozen
        grads = torch.autograd.grad(q.sum(), params, allow_unused=True)
        for count, g in zip(counts, grads, strict=True):
            if g is not None:
                count += g != 0
    return [bool((c >= 2).any()) for c in counts]
