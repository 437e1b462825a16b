"""Uncertainty weighting learns the larger variance for the noisier task."""

from __future__ import annotations

import torch

from multiq.mtl import build_balancer


def test_noisier_task_gets_the_larger_variance():
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    task_ids = torch.arange(2).repeat_interleave(128)  # rows grouped by task
    true_w = torch.randn(4, 2)
    noise = torch.randn(256) * torch.tensor([0.1, 1.0])[task_ids]  # task 1 is ten times noisier
    rows = torch.arange(256)
    y = (x @ true_w)[rows, task_ids] + noise
    model = torch.nn.Linear(4, 2)  # output t predicts task t
    params = list(model.parameters())
    names = ["precise", "noisy"]
    balancer = build_balancer("uncertainty")
    for name in names:
        balancer.add_task(name)
    balancer.set_params(params, [True, True], model)
    balancer.set_task_weights({name: 0.5 for name in names})
    optimizer = torch.optim.Adam(params + list(balancer.parameters()), lr=0.05)
    for _ in range(400):
        errors = (model(x)[rows, task_ids] - y) ** 2
        task_losses = torch.stack([errors[task_ids == t].mean() for t in range(2)])
        optimizer.zero_grad()
        balancer.backward(task_losses, task_ids, names)
        optimizer.step()
    log_variance = balancer.metrics()["log_variance"]
    # the optimum is s_t = log L_t: log(0.01) ~ -4.6 for task 0, log(1) = 0 for task 1
    assert log_variance[1] > log_variance[0] + 2.0
    torch.testing.assert_close(log_variance.exp(), task_losses.detach(), rtol=0.3, atol=0.0)
    assert not model._forward_hooks  # only balancers that split gradients by task hook layers
