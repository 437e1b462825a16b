"""Each task's gradient of some shared parameters, from one ordinary backward pass.

PCGrad and GradNorm need every task's own gradient of shared parameters, not only their sum.
Asking autograd for T gradients (`is_grads_batched`) runs T full-batch backward passes through
the shared layers, although task t's loss depends only on task t's rows of the batch.

For a parameter of an `nn.Linear` layer `y = x W^T + b` there is a cheaper exact way. A forward
hook keeps the layer's input x [B, in], a tensor hook on its output keeps delta [B, out], the
gradient of `sum_t c_t L_t` with respect to y, during the one ordinary backward. When L_t depends
only on task t's rows, delta on those rows is c_t dL_t/dy, so task t's gradient of c_t L_t is
`delta[rows_t]^T x[rows_t]` for W and `delta[rows_t].sum(0)` for b.

This assumes no interaction between rows (no batch norm, no loss mixing rows of several tasks)
and that the layer is called once per forward and its parameters are used only through it. Other
shared parameters (convolutions, routing logits, embeddings), and layers called twice or with
inputs whose first dimension is not the batch, fall back to batched autograd.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Sequence

import torch
from torch import nn


def linear_layers(net: nn.Module | None, params: Sequence[nn.Parameter]) -> list[nn.Linear | None]:
    """For each parameter, the `nn.Linear` it is the weight or bias of (None: another owner).

    A parameter registered in more than one module (tied weights) gets None, as does every
    parameter when `net` is None.
    """
    owners: dict[int, list[nn.Module]] = {}
    for module in net.modules() if net is not None else ():
        for p in module.parameters(recurse=False):
            owners.setdefault(id(p), []).append(module)
    found = [owners.get(id(p), []) for p in params]
    return [o[0] if len(o) == 1 and type(o[0]) is nn.Linear else None for o in found]


class _Capture:
    """One layer call: its input x [B, *, in] and, after the backward, delta [B, *, out]."""

    def __init__(self, inputs: torch.Tensor | None):
        self.inputs = inputs
        self.output_grad: torch.Tensor | None = None

    def keep_output_grad(self, grad: torch.Tensor) -> None:
        self.output_grad = grad


_AMBIGUOUS = _Capture(None)  # the layer ran more than once since the last backward


def _on_forward(owner: weakref.ref, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
    """Forward hook: hands grad-enabled calls to the `TaskGradients` (if it still exists)."""
    task_grads = owner()
    if task_grads is not None and torch.is_grad_enabled() and output.requires_grad:
        task_grads.record(module, args, output)


def _remove_hooks(handles: list) -> None:
    for handle in handles:
        handle.remove()


class TaskGradients:
    """Runs the backward pass of `sum_t c_t L_t` and returns each task's gradient of c_t L_t.

    Hooks sit only on the Linear layers owning `params` (none for other balancers); each keeps at
    most one call's tensors, dropped after every `backward`.

    Args:
        params: the parameters whose per-task gradients are wanted.
        layers: per parameter, its `nn.Linear` (see `linear_layers`) for the one-backward path,
            or None for batched autograd.
    """

    def __init__(self, params: Sequence[nn.Parameter], layers: Sequence[nn.Linear | None]):
        self.params = list(params)
        self.layers = list(layers)
        self.captures: dict[nn.Module, _Capture] = {}
        hooked = {id(m): m for m in self.layers if m is not None}
        self.hooked_ids = set(hooked)
        # a weak reference, so that a net outliving this object keeps no capturing hooks
        hook = functools.partial(_on_forward, weakref.ref(self))
        handles = [m.register_forward_hook(hook) for m in hooked.values()]
        weakref.finalize(self, _remove_hooks, handles)

    def record(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        """Keeps a layer call's input x and asks for delta (grad-enabled forwards only)."""
        if id(module) not in self.hooked_ids:
            return  # a deep copy of the layer (e.g. a target net) carries the hook along
        if module in self.captures or not args:
            self.captures[module] = _AMBIGUOUS
            return
        capture = _Capture(args[0].detach())
        output.register_hook(capture.keep_output_grad)
        self.captures[module] = capture

    def backward(
        self, task_losses: torch.Tensor, coefs: torch.Tensor, task_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fills `.grad` of everything `sum_t c_t L_t` reaches and splits it by task for `params`.

        Args:
            task_losses: [T] per-task losses, attached to the graph of the latest forward.
            coefs: [T] detached weights c of the task losses.
            task_ids: [B] long task of each batch row, rows grouped by task in task order.

        Returns:
            the scalar `sum_t c_t L_t` (attached), and [T, P] the gradients of c_t L_t, each row
            the flattened parameters one after another (P: their total size).
        """
        weighted = task_losses * coefs
        loss = weighted.sum()
        fast = [self._usable_capture(m, task_ids.shape[0]) for m in self.layers]
        slow = [p for p, c in zip(self.params, fast, strict=True) if c is None]
        # before the ordinary backward: its output-grad hooks must fire last
        slow_grads = iter(self._batched_grads(weighted, slow))
        loss.backward()
        counts = []
        if len(slow) < len(self.params):  # one host sync on GPUs: split sizes must be known
            counts = torch.bincount(task_ids, minlength=len(task_losses)).tolist()
        # one buffer written in place: separate [T, *p.shape] tensors cost more to join than
        # the matrix products cost to compute
        grads = weighted.new_empty(len(task_losses), sum(p.numel() for p in self.params))
        columns = grads.split([p.numel() for p in self.params], dim=1)  # [T, p.numel()] each
        for p, c, out in zip(self.params, fast, columns, strict=True):
            if c is None:
                out.copy_(next(slow_grads).flatten(1))
            else:
                self._linear_grad(p, c, counts, out)
        self.captures.clear()
        return loss, grads

    def _usable_capture(self, layer: nn.Linear | None, batch_rows: int) -> _Capture | None:
        capture = self.captures.get(layer) if layer is not None else None
        if capture is None or capture.inputs is None:
            return None
        x = capture.inputs
        return capture if x.dim() >= 2 and x.shape[0] == batch_rows else None

    def _batched_grads(
        self, weighted: torch.Tensor, params: list[nn.Parameter]
    ) -> tuple[torch.Tensor, ...]:
        """Per parameter [T, *p.shape]: T backward passes, vectorised by autograd."""
        if not params:
            return ()
        eye = torch.eye(len(weighted), device=weighted.device, dtype=weighted.dtype)
        return torch.autograd.grad(
            weighted,
            params,
            grad_outputs=eye,
            is_grads_batched=True,
            retain_graph=True,
            materialize_grads=True,
        )

    @staticmethod
    def _linear_grad(
        p: nn.Parameter, capture: _Capture, counts: list[int], out: torch.Tensor
    ) -> None:
        """Writes [T, p.numel()] from delta and x split into each task's rows ([T] `counts`)."""
        if capture.output_grad is None:  # the layer's output did not reach the loss
            out.zero_()
            return
        assert capture.inputs is not None  # `_usable_capture` passes only captures with inputs
        deltas = [d.flatten(0, -2) for d in capture.output_grad.split(counts)]
        inputs = [x.flatten(0, -2) for x in capture.inputs.split(counts)]
        for row, d, x in zip(out, deltas, inputs, strict=True):
            if p.dim() == 1:  # the bias
                torch.sum(d, 0, out=row)
            else:
                torch.mm(d.T, x, out=row.view(p.shape))
