"""Learner: learning, target sync, task weights and state, on batches keyed by task name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multiq import make_taskset
from multiq.agents.learner import Learner, LearnerSettings, Training
from multiq.replay.buffers import NStepSample
from multiq.tasks.spec import TaskSet

HIDDEN = 32


@pytest.fixture(scope="module")
def minatar() -> TaskSet:
    return make_taskset("minatar")


def make_learner(tasks, weights=None, **settings) -> Learner:
    """A learner; `weights` (task name -> alpha) replaces the default alpha = 1 / T."""
    torch.manual_seed(0)
    defaults = {"hidden_size": HIDDEN, "learning_rate": 1e-3}
    learner = Learner(tasks, LearnerSettings(**{**defaults, **settings}))
    if weights is not None:
        learner.configure(Training(task_weights=weights))
    return learner


def random_obs(tasks, n, rng) -> dict[str, np.ndarray]:
    return {t.name: rng.random((n, *t.obs_shape)) < 0.3 for t in tasks}


def fixed_batch(tasks, n, seed=0) -> dict[str, NStepSample]:
    rng = np.random.default_rng(seed)
    samples = {}
    for t in tasks:
        shape = (n, *t.obs_shape)
        samples[t.name] = NStepSample(
            obs=rng.random(shape) < 0.3,
            actions=rng.integers(0, t.num_actions, n),
            returns=rng.normal(size=n).astype(np.float32),
            next_obs=rng.random(shape) < 0.3,
            discounts=np.where(rng.random(n) < 0.2, 0.0, 0.9**3).astype(np.float32),
        )
    return samples


def head(net, name: str) -> torch.nn.Linear:
    return net.heads.heads[name].advantage


def input_conv(net, name: str) -> torch.nn.Conv2d:
    """The conv of the input layer task `name` uses (input layers are keyed by signature)."""
    return net.inputs.layers[net.inputs.task_signature[name]][1]


@pytest.mark.parametrize("double_q", [True, False])
def test_repeated_updates_on_fixed_batch_reduce_loss(minatar, double_q):
    learner = make_learner(minatar, double_q=double_q)
    batch = fixed_batch(minatar, 8)
    first = learner.update(batch)
    assert first["task_losses"].shape == (5,) and first["q_mean"].shape == (5,)
    # equal weights: the loss is the mean of the task losses
    torch.testing.assert_close(first["loss"], first["task_losses"].mean())
    for _ in range(150):
        last = learner.update(batch)
    assert float(last["loss"]) < 0.5 * float(first["loss"])
    assert not last["loss"].requires_grad


def test_update_does_not_touch_target(minatar):
    learner = make_learner(minatar)
    before = [p.clone() for p in learner.target.parameters()]
    learner.update(fixed_batch(minatar, 4))
    for b, p in zip(before, learner.target.parameters(), strict=True):
        assert torch.equal(b, p)
    assert not any(p.requires_grad for p in learner.target.parameters())


def test_sync_target_hard_and_soft(minatar):
    learner = make_learner(minatar)
    for _ in range(3):
        learner.update(fixed_batch(minatar, 4))
    online = [head(learner.online, t.name).weight for t in minatar]
    target = [head(learner.target, t.name).weight for t in minatar]
    old_target = [w.detach().clone() for w in target]
    for o, t in zip(online, target, strict=True):
        assert not torch.equal(o, t)

    old_bias = learner.target.body[1].bias.detach().clone()
    assert not torch.equal(old_bias, learner.online.body[1].bias)

    learner.sync_target(0.5)
    for o, t, old in zip(online, target, old_target, strict=True):
        torch.testing.assert_close(t, (old + o.detach()) / 2)
    torch.testing.assert_close(
        learner.target.body[1].bias, (old_bias + learner.online.body[1].bias.detach()) / 2
    )

    learner.sync_target(1.0)
    for p, q in zip(learner.online.parameters(), learner.target.parameters(), strict=True):
        assert torch.equal(p, q)
    for o, t in zip(online, target, strict=True):
        assert t is not o


def test_zero_task_weight_freezes_that_tasks_head_and_input():
    # Breakout (4 channels, 3 actions) and Freeway (7 channels, 3 actions): separate input layers
    tasks = make_taskset("minatar:Breakout,minatar:Freeway")
    learner = make_learner(tasks, weights={"Breakout": 1.0, "Freeway": 0.0})
    net = learner.online
    assert len(net.inputs.layers) == 2
    head_w = {n: head(net, n).weight.detach().clone() for n in tasks.names}
    head_b = {n: head(net, n).bias.detach().clone() for n in tasks.names}
    inputs = {n: input_conv(net, n).weight.detach().clone() for n in tasks.names}
    body = net.body[1].weight.detach().clone()

    out = learner.update(fixed_batch(tasks, 8))
    assert out["task_losses"][1] > 0  # Freeway has a loss, it just does not count
    torch.testing.assert_close(out["loss"], out["task_losses"][0])

    frozen, trained = head(net, "Freeway"), head(net, "Breakout")
    assert torch.equal(frozen.weight, head_w["Freeway"])
    assert torch.equal(frozen.bias, head_b["Freeway"])
    assert not torch.equal(trained.weight, head_w["Breakout"])
    assert not torch.equal(trained.bias, head_b["Breakout"])
    assert torch.equal(input_conv(net, "Freeway").weight, inputs["Freeway"])
    assert not torch.equal(input_conv(net, "Breakout").weight, inputs["Breakout"])
    assert not torch.equal(net.body[1].weight, body)


def test_state_dict_round_trip(minatar):
    learner = make_learner(minatar)
    learner.update(fixed_batch(minatar, 4))
    torch.manual_seed(1)
    other = Learner(minatar, LearnerSettings(hidden_size=HIDDEN))
    obs = random_obs(minatar, 3, np.random.default_rng(0))
    assert not torch.allclose(other.policy.q_values(obs), learner.policy.q_values(obs))
    other.load_state_dict(learner.state_dict())
    torch.testing.assert_close(other.policy.q_values(obs), learner.policy.q_values(obs))
