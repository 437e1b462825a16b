"""DQNAgent: acting within each task's actions, learning, target sync and task weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multiq import make_taskset
from multiq.agents.dqn import DQNAgent, LearnerSettings
from multiq.replay import NStepSample
from multiq.tasks.spec import TaskSet

HIDDEN = 32


@pytest.fixture(scope="module")
def minatar() -> TaskSet:
    return make_taskset("minatar")


def make_agent(tasks, weights=None, **settings) -> DQNAgent:
    torch.manual_seed(0)
    defaults = {"hidden_size": HIDDEN, "learning_rate": 1e-3}
    return DQNAgent(tasks, LearnerSettings(**{**defaults, **settings}), task_weights=weights)


def random_obs(tasks, n, rng):
    return [rng.random((n, *t.obs_shape)) < 0.3 for t in tasks]


def fixed_batch(tasks, n, seed=0) -> list[NStepSample]:
    rng = np.random.default_rng(seed)
    samples = []
    for t in tasks:
        shape = (n, *t.obs_shape)
        samples.append(
            NStepSample(
                obs=rng.random(shape) < 0.3,
                actions=rng.integers(0, t.num_actions, n),
                returns=rng.normal(size=n).astype(np.float32),
                next_obs=rng.random(shape) < 0.3,
                discounts=np.where(rng.random(n) < 0.2, 0.0, 0.9**3).astype(np.float32),
            )
        )
    return samples


@pytest.mark.parametrize("epsilon", [0.0, 1.0])
def test_actions_stay_within_each_tasks_action_count(minatar, epsilon):
    agent = make_agent(minatar)
    # make the padding columns the most attractive ones, so only the mask keeps them out
    with torch.no_grad():
        agent.online.heads.advantage.bias.view(5, 6)[~agent.online.action_mask] = 1e3
    rng = np.random.default_rng(0)
    seen = [set() for _ in minatar]
    for _ in range(20):
        actions = agent.act(random_obs(minatar, 16, rng), epsilon, rng)
        assert [a.shape for a in actions] == [(16,)] * 5
        for t, (task, a) in enumerate(zip(minatar, actions, strict=True)):
            assert a.dtype == np.int64
            assert a.min() >= 0 and a.max() < task.num_actions
            seen[t] |= set(a.tolist())
    if epsilon == 1.0:  # uniform exploration reaches every real action
        assert [len(s) for s in seen] == [t.num_actions for t in minatar]


def test_greedy_actions_are_argmax_over_valid_columns(minatar):
    agent = make_agent(minatar)
    with torch.no_grad():
        agent.online.heads.advantage.bias.view(5, 6)[~agent.online.action_mask] = 1e3
    rng = np.random.default_rng(1)
    sizes = [4, 1, 3, 2, 5]
    obs = [rng.random((n, *t.obs_shape)) < 0.3 for t, n in zip(minatar, sizes, strict=True)]
    actions = agent.act(obs, 0.0, rng)
    q = agent.q_values(obs).numpy()
    assert q.shape == (sum(sizes), 6)
    start = 0
    for task, n, a in zip(minatar, sizes, actions, strict=True):
        rows = q[start : start + n]
        np.testing.assert_array_equal(a, rows[:, : task.num_actions].argmax(1))
        start += n
    # greedy acting is deterministic
    for a, b in zip(actions, agent.act(obs, 0.0, rng), strict=True):
        np.testing.assert_array_equal(a, b)


def test_act_with_empty_task_batch(minatar):
    agent = make_agent(minatar)
    rng = np.random.default_rng(0)
    obs = [
        rng.random((n, *t.obs_shape)) < 0.3 for t, n in zip(minatar, [2, 0, 1, 0, 3], strict=True)
    ]
    actions = agent.act(obs, 0.0, rng)
    assert [len(a) for a in actions] == [2, 0, 1, 0, 3]


@pytest.mark.parametrize("double_q", [True, False])
def test_repeated_updates_on_fixed_batch_reduce_loss(minatar, double_q):
    agent = make_agent(minatar, double_q=double_q)
    batch = fixed_batch(minatar, 8)
    first = agent.update(batch)
    assert first["task_losses"].shape == (5,) and first["q_mean"].shape == (5,)
    # equal weights: the loss is the mean of the task losses
    torch.testing.assert_close(first["loss"], first["task_losses"].mean())
    for _ in range(150):
        last = agent.update(batch)
    assert float(last["loss"]) < 0.5 * float(first["loss"])
    assert not last["loss"].requires_grad


def test_update_does_not_touch_target(minatar):
    agent = make_agent(minatar)
    before = [p.clone() for p in agent.target.parameters()]
    agent.update(fixed_batch(minatar, 4))
    for b, p in zip(before, agent.target.parameters(), strict=True):
        assert torch.equal(b, p)
    assert not any(p.requires_grad for p in agent.target.parameters())


def test_sync_target_hard_and_soft(minatar):
    agent = make_agent(minatar)
    for _ in range(3):
        agent.update(fixed_batch(minatar, 4))
    online = agent.online.heads.advantage.weight
    target = agent.target.heads.advantage.weight
    old_target = target.detach().clone()
    assert not torch.equal(online, target)

    old_bias = agent.target.body[1].bias.detach().clone()
    assert not torch.equal(old_bias, agent.online.body[1].bias)

    agent.sync_target(0.5)
    torch.testing.assert_close(target, (old_target + online.detach()) / 2)
    torch.testing.assert_close(
        agent.target.body[1].bias, (old_bias + agent.online.body[1].bias.detach()) / 2
    )

    agent.sync_target(1.0)
    for p, q in zip(agent.online.parameters(), agent.target.parameters(), strict=True):
        assert torch.equal(p, q)
    assert agent.target.heads.advantage.weight is not agent.online.heads.advantage.weight


def test_zero_task_weight_freezes_that_tasks_head_and_input():
    # Breakout (4 channels, 3 actions) and Freeway (7 channels, 3 actions): separate input layers
    tasks = make_taskset("minatar:Breakout,minatar:Freeway")
    agent = make_agent(tasks, weights=[1.0, 0.0])
    net = agent.online
    assert len(net.inputs) == 2
    head_w = net.heads.advantage.weight.detach().clone().view(2, 3, HIDDEN)
    head_b = net.heads.advantage.bias.detach().clone().view(2, 3)
    inputs = [layer[1].weight.detach().clone() for layer in net.inputs]
    body = net.body[1].weight.detach().clone()

    out = agent.update(fixed_batch(tasks, 8))
    assert out["task_losses"][1] > 0  # task 1 has a loss, it just does not count
    torch.testing.assert_close(out["loss"], out["task_losses"][0])

    new_w = net.heads.advantage.weight.detach().view(2, 3, HIDDEN)
    new_b = net.heads.advantage.bias.detach().view(2, 3)
    assert torch.equal(new_w[1], head_w[1]) and torch.equal(new_b[1], head_b[1])
    assert not torch.equal(new_w[0], head_w[0]) and not torch.equal(new_b[0], head_b[0])
    assert torch.equal(net.inputs[1][1].weight, inputs[1])
    assert not torch.equal(net.inputs[0][1].weight, inputs[0])
    assert not torch.equal(net.body[1].weight, body)


def test_state_dict_round_trip(minatar):
    agent = make_agent(minatar)
    agent.update(fixed_batch(minatar, 4))
    torch.manual_seed(1)
    other = DQNAgent(minatar, LearnerSettings(hidden_size=HIDDEN))
    obs = random_obs(minatar, 3, np.random.default_rng(0))
    assert not torch.allclose(other.q_values(obs), agent.q_values(obs))
    other.load_state_dict(agent.state_dict())
    torch.testing.assert_close(other.q_values(obs), agent.q_values(obs))
