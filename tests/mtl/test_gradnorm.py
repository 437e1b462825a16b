"""GradNorm pulls the tasks' gradient norms on the shared layer towards each other."""

from __future__ import annotations

import math

import pytest
import torch

from multiq.mtl import build_balancer

ROWS = 64  # per task; rows grouped by task
NAMES = ["a", "b"]


def gradnorm(params, shared, net, **kwargs):
    """A GradNorm balancer for the tasks NAMES with equal loss weights alpha = 1/2."""
    balancer = build_balancer("gradnorm", **kwargs)
    for name in NAMES:
        balancer.add_task(name)
    balancer.set_params(params, shared, net)
    balancer.set_task_weights({name: 1 / len(NAMES) for name in NAMES})
    return balancer


def weights_of(balancer) -> torch.Tensor:
    """[T] the learned task weights w, in NAMES order."""
    return torch.stack([balancer.task_weights[name] for name in NAMES])


def two_task_problem():
    """A shared trunk, one output per task, and task t's loss on its own rows.

    The targets |x w_t| are beyond the linear net, so the losses and gradients never vanish.
    """
    torch.manual_seed(0)
    x = torch.randn(2 * ROWS, 4)
    task_ids = torch.arange(2).repeat_interleave(ROWS)
    rows = torch.arange(2 * ROWS)
    y = (x @ torch.randn(4, 2))[rows, task_ids].abs()
    trunk, heads = torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)
    scale = torch.tensor([1.0, 100.0])  # task 1's loss is 100x larger: much larger gradients

    def task_losses() -> torch.Tensor:
        errors = (heads(trunk(x))[rows, task_ids] - y) ** 2
        return torch.stack([errors[task_ids == t].mean() for t in range(2)]) * scale

    return trunk, heads, task_ids, task_losses


@pytest.mark.parametrize("one_backward", [True, False])
def test_gradient_norms_move_towards_each_other(one_backward):
    trunk, heads, task_ids, task_losses = two_task_problem()
    params = [*trunk.parameters(), *heads.parameters()]
    net = torch.nn.Sequential(trunk, heads) if one_backward else None
    balancer = gradnorm(params, [True, True, False, False], net, gradnorm_alpha=0.0)
    assert balancer.task_grads.params == [trunk.weight]  # the last shared weight matrix
    assert balancer.task_grads.layers == [trunk if one_backward else None]
    optimizer = torch.optim.Adam(params + list(balancer.parameters()), lr=0.02)
    log_ratios = []
    for _ in range(300):
        optimizer.zero_grad()
        balancer.backward(task_losses(), task_ids, NAMES)
        optimizer.step()
        balancer.after_step()
        norms = balancer.metrics()["grad_norm"]
        log_ratios.append(abs(math.log(norms[0] / norms[1])))
    weights = balancer.metrics()["balance_weight"]
    assert log_ratios[0] > 3.0
    assert log_ratios[-1] < 0.25 * log_ratios[0]
    assert weights[0] > weights[1]
    assert weights.sum().item() == pytest.approx(2.0)


def test_one_backward_gives_the_batched_autograd_norms_and_weight_gradient():
    trunk, heads, task_ids, task_losses = two_task_problem()
    params = [*trunk.parameters(), *heads.parameters()]
    results = []
    for net in (torch.nn.Sequential(trunk, heads), None):
        balancer = gradnorm(params, [True, True, False, False], net)
        with torch.no_grad():
            balancer.task_weights["a"].fill_(0.5)
            balancer.task_weights["b"].fill_(1.5)
        for p in params:
            p.grad = None
        balancer.backward(task_losses(), task_ids, NAMES)
        weights_grad = torch.stack([balancer.task_weights[name].grad for name in NAMES])
        norms = balancer.metrics()["grad_norm"]
        results.append((norms, weights_grad, [p.grad for p in params]))
    (norms, weights_grad, grads), (ref_norms, ref_weights_grad, ref_grads) = results
    torch.testing.assert_close(norms, ref_norms)
    torch.testing.assert_close(weights_grad, ref_weights_grad)
    for got, expected in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, expected)


def test_without_a_shared_layer_the_weights_stay_equal():
    model = torch.nn.Linear(3, 2)
    balancer = gradnorm(list(model.parameters()), [False, False], model)
    task_ids = torch.tensor([0, 0, 1, 1, 1])
    out = model(torch.randn(5, 3))[torch.arange(5), task_ids] ** 2
    losses = torch.stack([out[:2].mean(), out[2:].mean()]) * torch.tensor([1.0, 50.0])
    balancer.backward(losses, task_ids, NAMES)
    assert all(balancer.task_weights[name].grad is None for name in NAMES)
    assert not model._forward_hooks
    torch.testing.assert_close(balancer.metrics()["balance_weight"], torch.ones(2))
