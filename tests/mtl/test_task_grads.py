"""Per-task gradients from one backward pass equal those of T backward passes (batched autograd)."""

from __future__ import annotations

import copy
import gc

import pytest
import torch
from torch import nn

from multiq import make_taskset
from multiq.mtl import build_balancer, project_conflicting
from multiq.mtl.reduce import per_task_mean
from multiq.mtl.task_grads import TaskGradients, linear_layers
from multiq.nets import SchemeOptions, build_qnet

SIZES = [3, 7, 5]  # unequal rows per task, grouped by task
COEFS = torch.tensor([0.2, 0.5, 0.3])
CLASSIC3 = "classic:CartPole,classic:Acrobot,classic:MountainCar"
NAMES = ["t0", "t1", "t2"]  # the ToyNet's tasks


def balancer_for(name: str, params, shared, net) -> torch.nn.Module:
    """A balancer for the ToyNet's tasks with loss weights alpha = COEFS (they sum to one)."""
    balancer = build_balancer(name)
    for task in NAMES:
        balancer.add_task(task)
    balancer.set_params(params, shared, net)
    balancer.set_task_weights(dict(zip(NAMES, COEFS.tolist(), strict=True)))
    return balancer


class ToyNet(nn.Module):
    """Per-task input layers, a shared body, a shared elementwise scale, one wide head.

    The input layers see only their task's rows and the scale is no Linear: both need batched
    autograd. With `reuse` the body's last Linear runs twice, which must fall back too.
    """

    def __init__(self, reuse: bool = False):
        super().__init__()
        self.reuse = reuse
        self.inputs = nn.ModuleList(nn.Linear(3 + t, 6) for t in range(len(SIZES)))
        self.body = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 5))
        self.scale = nn.Parameter(1.0 + 0.1 * torch.randn(5))
        self.heads = nn.Linear(5, 2 * len(SIZES))

    def forward(self, obs: list[torch.Tensor], task_ids: torch.Tensor) -> torch.Tensor:
        h = self.body(torch.cat([layer(x) for layer, x in zip(self.inputs, obs, strict=True)]))
        if self.reuse:
            h = self.body[2](torch.tanh(h))
        q = self.heads(torch.tanh(h) * self.scale).view(len(h), len(SIZES), 2)
        return q[torch.arange(len(h)), task_ids]


def toy_losses(net: ToyNet) -> tuple[torch.Tensor, torch.Tensor]:
    """[T] task losses (task 1's pulls the other way) and the [B] task ids."""
    task_ids = torch.arange(len(SIZES)).repeat_interleave(torch.tensor(SIZES))
    obs = [torch.randn(n, 3 + t, dtype=torch.float64) for t, n in enumerate(SIZES)]
    per_row = ((net(obs, task_ids) - 1.0) ** 2).sum(1)
    sign = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    return per_task_mean(per_row, task_ids, len(SIZES)) * sign, task_ids


def scheme_losses(net: nn.Module, tasks) -> tuple[torch.Tensor, torch.Tensor]:
    obs = {t.name: torch.randn(n, *t.obs_shape) for t, n in zip(tasks, SIZES, strict=True)}
    task_ids = net.task_ids(SIZES)
    per_row = ((net(obs) - 1.0) ** 2).mean(1) * torch.tensor([1.0, -2.0, 0.5])[task_ids]
    return per_task_mean(per_row, task_ids, len(SIZES)), task_ids


def one_backward_and_reference(net, params, losses_fn):
    """Per parameter [T, *p.shape] gradients from `TaskGradients` and from batched autograd."""
    task_grads = TaskGradients(params, linear_layers(net, params))
    losses, task_ids = losses_fn()
    coefs = COEFS.to(losses.dtype)
    eye = torch.eye(len(SIZES), dtype=losses.dtype)
    reference = torch.autograd.grad(losses * coefs, params, grad_outputs=eye,
                                    is_grads_batched=True, retain_graph=True,
                                    materialize_grads=True)  # fmt: skip
    captured = {m for m, c in task_grads.captures.items() if c.inputs is not None}
    _, grads = task_grads.backward(losses, coefs, task_ids)
    assert grads.shape == (len(SIZES), sum(p.numel() for p in params))
    per_param = grads.split([p.numel() for p in params], dim=1)
    return (
        [g.view(-1, *p.shape) for g, p in zip(per_param, params, strict=True)],
        reference,
        captured,
    )


@pytest.mark.parametrize("reuse", [False, True])
def test_one_backward_matches_batched_autograd(reuse):
    torch.manual_seed(0)
    net = ToyNet(reuse).double()
    params = list(net.parameters())
    grads, reference, captured = one_backward_and_reference(net, params, lambda: toy_losses(net))
    for p, got, expected in zip(params, grads, reference, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got.sum(0), p.grad, rtol=1e-12, atol=1e-12)
    # recorded once per forward; the input layers' x (one task's rows) fails the row check later
    once = {*net.inputs, net.body[0], net.heads} | (set() if reuse else {net.body[2]})
    assert captured == once


@pytest.mark.parametrize(
    ("scheme", "options"),
    [("independent", {}), ("shared", {}), ("conditioned", {"task_embedding": "learned"}),
     ("shared-private", {}), ("routed", {"routing": "gumbel"})],
)  # fmt: skip
def test_every_scheme_gets_the_batched_autograd_gradients(scheme, options):
    tasks = make_taskset(CLASSIC3)
    torch.manual_seed(0)
    net = build_qnet(scheme, tasks, hidden_size=16, options=SchemeOptions(**options))
    params = list(net.parameters())
    grads, reference, _ = one_backward_and_reference(net, params, lambda: scheme_losses(net, tasks))
    for got, expected in zip(grads, reference, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_pcgrad_combines_the_same_gradient_with_one_backward():
    results = []
    for net_given in (True, False):
        torch.manual_seed(0)
        net = ToyNet().double()
        params = list(net.parameters())
        shared = [name.startswith(("body", "scale")) for name, _ in net.named_parameters()]
        balancer = balancer_for("pcgrad", params, shared, net if net_given else None)
        losses, task_ids = toy_losses(net)
        torch.manual_seed(1)  # the same random projection orders
        balancer.backward(losses, task_ids, NAMES)
        results.append([p.grad for p in params])
    for got, expected in zip(*results, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def sequential_projection(grads: torch.Tensor, orders: list[list[int]]) -> torch.Tensor:
    """PCGrad as in Yu et al.'s pseudo-code, one [P] vector at a time."""
    projected = grads.clone()
    for i, order in enumerate(orders):
        for j in order:
            dot = projected[i] @ grads[j]
            if dot < 0:
                projected[i] -= dot / (grads[j] @ grads[j]) * grads[j]
    return projected.sum(0)


def test_gram_projection_matches_the_sequential_one():
    torch.manual_seed(0)
    grads = torch.randn(5, 40, dtype=torch.float64)
    grads[1] = -0.7 * grads[0] + 0.3 * grads[1]  # make sure some pairs conflict
    orders = [[j for j in torch.randperm(5).tolist() if j != i] for i in range(5)]
    torch.testing.assert_close(
        project_conflicting(grads, orders), sequential_projection(grads, orders)
    )


def test_hooks_capture_only_grad_forwards_of_their_own_layers_and_go_away():
    torch.manual_seed(0)
    net = ToyNet().double()
    params = list(net.parameters())
    task_grads = TaskGradients(params, linear_layers(net, params))
    with torch.no_grad():
        toy_losses(net)
    with torch.inference_mode():
        toy_losses(net)
    copy.deepcopy(net)(  # a target-net copy carries the hooks, but records nothing here
        [torch.randn(1, 3 + t, dtype=torch.float64) for t in range(len(SIZES))],
        torch.arange(len(SIZES)),
    )
    assert not task_grads.captures
    losses, task_ids = toy_losses(net)
    assert set(task_grads.captures) == {*net.inputs, net.body[0], net.body[2], net.heads}
    task_grads.backward(losses, COEFS.double(), task_ids)
    assert not task_grads.captures  # nothing kept between updates
    del task_grads
    gc.collect()
    assert not any(m._forward_hooks for m in net.modules())


@pytest.mark.parametrize("name", ["fixed", "uncertainty"])
def test_balancers_without_per_task_gradients_add_no_hooks(name):
    net = ToyNet()
    params = list(net.parameters())
    balancer = build_balancer(name)
    for task in NAMES:
        balancer.add_task(task)
    balancer.set_params(params, [True] * len(params), net)
    balancer.set_task_weights({task: 1 / len(NAMES) for task in NAMES})
    assert not any(m._forward_hooks for m in net.modules())
