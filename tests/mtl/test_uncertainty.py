"""Uncertainty weighting learns the larger variance for the noisier task."""

from __future__ import annotations

import torch

from multiq.mtl import build_balancer


def test_noisier_task_gets_the_larger_variance():
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    true_w = torch.randn(4, 2)
    noise = torch.randn(256, 2) * torch.tensor([0.1, 1.0])  # task 1 is ten times noisier
    y = x @ true_w + noise
    model = torch.nn.Linear(4, 2)
    params = list(model.parameters())
    balancer = build_balancer("uncertainty", params, [True, True], torch.ones(2))
    optimizer = torch.optim.Adam(params + list(balancer.parameters()), lr=0.05)
    for _ in range(400):
        task_losses = ((model(x) - y) ** 2).mean(0)
        optimizer.zero_grad()
        balancer.backward(task_losses)
        optimizer.step()
    log_variance = balancer.metrics()["log_variance"]
    # the optimum is s_t = log L_t: log(0.01) ~ -4.6 for task 0, log(1) = 0 for task 1
    assert log_variance[1] > log_variance[0] + 2.0
    torch.testing.assert_close(log_variance.exp(), task_losses.detach(), rtol=0.3, atol=0.0)
