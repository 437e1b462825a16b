"""The `routed` scheme: softmax and Gumbel-softmax routing, temperature, straight-through."""

from __future__ import annotations

import pytest
import torch

from multiq import make_taskset
from multiq.nets import SchemeOptions, build_qnet
from multiq.nets.routed import RoutedLinear

HIDDEN = 32


@pytest.fixture(scope="module")
def classic():
    return make_taskset("classic:CartPole,classic:Acrobot")


def routed(tasks, **options):
    return build_qnet("routed", tasks, HIDDEN, options=SchemeOptions(**options))


def random_obs(tasks, sizes, seed=0) -> dict[str, torch.Tensor]:
    """Task name -> [n, *obs_shape]; the dict's order (the tasks' order) is the row order."""
    gen = torch.Generator().manual_seed(seed)
    return {
        t.name: torch.rand((n, *t.obs_shape), generator=gen)
        for t, n in zip(tasks, sizes, strict=True)
    }


def all_logits(net) -> torch.Tensor:
    """[L, T, K] every task's routing logits, in task order."""
    return torch.stack(list(net.routing_logits.values()), dim=1)


def set_logits(net, logits) -> None:
    """Sets the tasks' [L, K] routing logits from [L, T, K] `logits`, in task order."""
    with torch.no_grad():
        for t, param in enumerate(net.routing_logits.values()):
            param.copy_(torch.as_tensor(logits)[:, t])


def randomise_logits(net, seed=0):
    shape = all_logits(net).shape
    set_logits(net, torch.randn(shape, generator=torch.Generator().manual_seed(seed)))


def logits_grad(net) -> torch.Tensor:
    """[L, T, K] the gradient of every task's logits (zeros where a task got none)."""
    grads = [
        p.grad if p.grad is not None else torch.zeros_like(p) for p in net.routing_logits.values()
    ]
    return torch.stack(grads, dim=1)


def test_body_linear_layers_become_k_modules():
    minatar = make_taskset("minatar")
    net = routed(minatar, routing_modules=3)
    layers = [m for m in net.body if isinstance(m, RoutedLinear)]
    assert len(layers) == 1 and layers[0].num_modules == 3
    assert layers[0].modules_wide.in_features == 16 * 8 * 8
    # per-task [L, K] logits; [L, T, K] when stacked in task order
    assert list(net.routing_logits) == minatar.names
    assert all(p.shape == (1, 3) for p in net.routing_logits.values())
    assert all_logits(net).shape == (1, 5, 3)
    routing = net.diagnostics()["routing"]
    assert list(routing) == minatar.names
    assert torch.stack(list(routing.values())).shape == (5, 3)


def test_softmax_weights_sum_to_one_and_have_no_noise(classic):
    net = routed(classic, routing="softmax", routing_modules=5)
    randomise_logits(net)
    weights = net.routing_weights(classic.names, sample=True)
    assert torch.allclose(weights.sum(-1), torch.ones(1, 2))
    assert torch.allclose(weights, all_logits(net).softmax(-1))


@pytest.mark.parametrize("hard", [False, True])
def test_gumbel_weights_sum_to_one(classic, hard):
    net = routed(classic, routing="gumbel", routing_hard=hard)
    randomise_logits(net)
    for _ in range(20):
        weights = net.routing_weights(classic.names, sample=True)
        assert torch.allclose(weights.sum(-1), torch.ones(1, 2))
        assert (weights >= 0).all()


def test_gumbel_gradients_reach_the_logits(classic):
    net = routed(classic, routing="gumbel")
    net(random_obs(classic, [8, 8])).pow(2).sum().backward()
    assert all(p.grad is not None for p in net.routing_logits.values())
    assert logits_grad(net).abs().sum() > 0


def test_gumbel_temperature_follows_its_schedule(classic):
    net = routed(classic, routing="gumbel", routing_tau_start=2.0, routing_tau_end=0.5)
    assert net.tau.item() == pytest.approx(2.0)
    net.set_progress(0.5)
    assert net.tau.item() == pytest.approx(1.25)
    net.set_progress(1.0)
    assert net.tau.item() == pytest.approx(0.5)
    net.set_progress(1.7)  # training past its planned end keeps the final temperature
    assert net.tau.item() == pytest.approx(0.5)
    net.set_progress(0.0)
    assert net.tau.item() == pytest.approx(2.0)
    assert "tau" in net.state_dict()  # a saved net keeps its temperature


def test_lower_temperature_sharpens_the_weights(classic):
    net = routed(classic, routing="gumbel", routing_tau_start=1.0, routing_tau_end=0.1)
    randomise_logits(net)
    warm = torch.stack(list(net.diagnostics()["routing"].values())).max(-1).values
    net.set_progress(1.0)
    cold = torch.stack(list(net.diagnostics()["routing"].values())).max(-1).values
    assert (cold > warm).all()


def test_gumbel_hard_is_one_hot_forward_with_straight_through_gradient(classic):
    net = routed(classic, routing="gumbel", routing_hard=True, routing_modules=4)
    randomise_logits(net)
    weights = net.routing_weights(classic.names, sample=True)
    assert ((weights == 0) | (weights == 1)).all()
    assert (weights.sum(-1) == 1).all()
    net(random_obs(classic, [8, 8])).pow(2).sum().backward()
    assert logits_grad(net).abs().sum() > 0


def test_hard_forward_uses_only_the_chosen_module(classic):
    net = routed(classic, routing="gumbel", routing_hard=True, routing_modules=3)
    with torch.no_grad():
        set_logits(net, [[[5.0, 0, 0], [0, 0, 5.0]]])
        q = net(random_obs(classic, [3, 3]))
        set_logits(net, [[[50.0, 0, 0], [0, 0, 50.0]]])
        assert torch.allclose(q, net(random_obs(classic, [3, 3])))


def test_gumbel_noise_only_in_learning_forwards(classic):
    net = routed(classic, routing="gumbel")
    obs = random_obs(classic, [4, 4])
    with torch.no_grad():
        assert torch.equal(net(obs), net(obs))
    with torch.inference_mode():
        assert torch.equal(net(obs), net(obs))
    torch.manual_seed(0)
    assert not torch.equal(net(obs), net(obs))
