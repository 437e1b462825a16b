"""GradNorm pulls the tasks' gradient norms on the shared layer towards each other."""

from __future__ import annotations

import math

import pytest
import torch

from multiq.mtl import build_balancer


def test_gradient_norms_move_towards_each_other():
    torch.manual_seed(0)
    x = torch.randn(128, 4)
    y = x @ torch.randn(4, 2)
    trunk, heads = torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)
    params = [*trunk.parameters(), *heads.parameters()]
    balancer = build_balancer(
        "gradnorm", params, [True, True, False, False], torch.ones(2), gradnorm_alpha=0.0
    )
    assert balancer.params[balancer.layer_index] is trunk.weight  # the last shared weight matrix
    optimizer = torch.optim.Adam(params + list(balancer.parameters()), lr=0.02)
    scale = torch.tensor([1.0, 100.0])  # task 1's loss is 100x larger: much larger gradients
    log_ratios = []
    for _ in range(300):
        task_losses = ((heads(trunk(x)) - y) ** 2).mean(0) * scale
        optimizer.zero_grad()
        balancer.backward(task_losses)
        optimizer.step()
        balancer.after_step()
        norms = balancer.metrics()["grad_norm"]
        log_ratios.append(abs(math.log(norms[0] / norms[1])))
    weights = balancer.metrics()["balance_weight"]
    assert log_ratios[0] > 3.0
    assert log_ratios[-1] < 0.25 * log_ratios[0]
    assert weights[0] > weights[1]
    assert weights.sum().item() == pytest.approx(2.0)


def test_without_a_shared_layer_the_weights_stay_equal():
    model = torch.nn.Linear(3, 2)
    balancer = build_balancer("gradnorm", list(model.parameters()), [False, False], torch.ones(2))
    losses = (model(torch.randn(5, 3)) ** 2).mean(0) * torch.tensor([1.0, 50.0])
    balancer.backward(losses)
    assert balancer.weights.grad is None
    torch.testing.assert_close(balancer.metrics()["balance_weight"], torch.ones(2))
