"""PCGrad: the projection by hand, and task-specific parameters keep their own gradients."""

from __future__ import annotations

import pytest
import torch

from multiq import make_taskset
from multiq.mtl import build_balancer, project_conflicting, shared_params
from multiq.nets import build_qnet

CLASSIC = "classic:CartPole,classic:Acrobot"


def test_conflicting_gradients_are_projected_off_each_other():
    grads = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # g1 . g2 = -1 < 0
    # g1' = g1 - (-1 / |g2|^2) g2 = (0.5, 0.5);  g2' = g2 - (-1 / |g1|^2) g1 = (0, 1)
    combined = project_conflicting(grads, orders=[[1], [0]])
    torch.testing.assert_close(combined, torch.tensor([0.5, 1.5]))


def test_projection_uses_the_running_gradient_against_the_original_ones():
    grads = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]])
    # task 0, order (1, 2): (1,0) -> (0.5,0.5) [dot -1] -> (0.5,0) [dot -0.5]
    # task 1, order (0, 2): (-1,1) -> (0,1) [dot -1] -> (0,0) [dot -1]
    # task 2, order (0, 1): (0,-1) stays [dot 0] -> (-0.5,-0.5) [dot -1]
    combined = project_conflicting(grads, orders=[[1, 2], [0, 2], [0, 1]])
    torch.testing.assert_close(combined, torch.tensor([0.0, -0.5]))


def test_agreeing_gradients_are_summed_unchanged():
    grads = torch.tensor([[1.0, 2.0, 0.0], [0.5, 0.0, 3.0], [0.0, 1.0, 1.0]])
    torch.testing.assert_close(project_conflicting(grads), grads.sum(0))


def pcgrad(net, tasks, params, shared, weights, one_backward=True):
    """A PCGrad balancer for `tasks` with loss weights alpha = `weights` (normalised, as the
    learner passes them)."""
    balancer = build_balancer("pcgrad")
    for task in tasks:
        balancer.add_task(task.name)
    balancer.set_params(params, shared, net if one_backward else None)
    total = sum(weights)
    balancer.set_task_weights({t.name: w / total for t, w in zip(tasks, weights, strict=True)})
    return balancer


def toy_task_losses(net, tasks):
    torch.manual_seed(1)
    obs = {t.name: torch.randn(8, *t.obs_shape) for t in tasks}
    q = net(obs)
    rows = net.task_ids([8] * len(tasks))
    per_row = ((q - 1.0) ** 2).mean(1) * torch.where(rows == 0, 1.0, -3.0)
    return torch.stack([per_row[rows == t].mean() for t in range(len(tasks))]), rows


@pytest.mark.parametrize("scheme", ["shared", "independent"])
def test_task_specific_parameters_get_their_own_gradient(scheme):
    tasks = make_taskset(CLASSIC)
    torch.manual_seed(0)
    net = build_qnet(scheme, tasks, hidden_size=16)
    names, params = zip(*net.named_parameters(), strict=True)
    shared = shared_params(net, tasks)
    weights = torch.tensor([1.0, 3.0])
    alpha = weights / weights.sum()
    balancer = pcgrad(net, tasks, params, shared, weights.tolist())
    losses, rows = toy_task_losses(net, tasks)
    own = [
        torch.autograd.grad(alpha[t] * losses[t], params, retain_graph=True, allow_unused=True)
        for t in range(len(tasks))
    ]
    balancer.backward(losses, rows, tasks.names)
    for i, p in enumerate(params):
        if not shared[i]:
            plain = sum(g[i] if g[i] is not None else torch.zeros_like(p) for g in own)
            torch.testing.assert_close(p.grad, plain)
    expected = [scheme == "shared" and name.startswith("body") for name in names]
    assert shared == expected  # heads and per-task input layers are task-specific


@pytest.mark.parametrize("one_backward", [True, False])
def test_shared_body_gradient_is_projected_when_tasks_conflict(one_backward):
    tasks = make_taskset(CLASSIC)
    torch.manual_seed(0)
    net = build_qnet("shared", tasks, hidden_size=16)
    params = list(net.parameters())
    shared = shared_params(net, tasks)
    balancer = pcgrad(net, tasks, params, shared, [1.0, 1.0], one_backward)
    losses, rows = toy_task_losses(net, tasks)
    body = [i for i, (n, _) in enumerate(net.named_parameters()) if n.startswith("body")]
    per_task = [torch.autograd.grad(0.5 * losses[t], params, retain_graph=True) for t in range(2)]
    flat = torch.stack([torch.cat([g[i].reshape(-1) for i in body]) for g in per_task])
    assert len(balancer.task_grads.captures) == (1 if one_backward else 0)  # the body's Linear
    balancer.backward(losses, rows, tasks.names)
    got = torch.cat([params[i].grad.reshape(-1) for i in body])
    assert flat[0] @ flat[1] < 0  # the toy losses pull the body in opposite directions
    torch.testing.assert_close(got, project_conflicting(flat, orders=[[1], [0]]))
