"""PopArt: statistics updates rescale the heads so unnormalised outputs stay the same."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from multiq import make_taskset
from multiq.agents.dqn import DQNAgent, LearnerSettings
from multiq.errors import ConfigError

CLASSIC = "classic:CartPole,classic:Acrobot"
close = functools.partial(torch.testing.assert_close, atol=1e-5, rtol=1e-5)


def popart_agent(scheme: str, dueling: bool = False) -> DQNAgent:
    torch.manual_seed(0)
    settings = LearnerSettings(scheme=scheme, hidden_size=16, dueling=dueling, popart=True)
    settings.popart_beta = 0.5  # large steps, so the statistics move far
    return DQNAgent(make_taskset(CLASSIC), settings)


def unnormalised(agent: DQNAgent, net: torch.nn.Module, obs) -> torch.Tensor:
    """[sum B_t, A_max] sigma q + mu, with padding columns (not real actions) zeroed."""
    with torch.no_grad():
        task_ids = net.task_ids([len(o) for o in obs])
        q = agent.popart.unnormalise(net(agent._tensors(obs)), task_ids)
        return q * net.action_mask[task_ids]


@pytest.mark.parametrize("scheme", ["shared", "independent"])
def test_statistics_update_leaves_unnormalised_outputs_unchanged(scheme):
    agent = popart_agent(scheme)
    rng = np.random.default_rng(0)
    obs = [rng.normal(size=(5, *t.obs_shape)).astype(np.float32) for t in agent.tasks]
    task_ids = agent.online.task_ids([6, 4])
    for step in range(4):
        online, target = (unnormalised(agent, n, obs) for n in (agent.online, agent.target))
        targets = torch.as_tensor(rng.normal(3.0 * step, 5.0 + step, size=10), dtype=torch.float32)
        normalised = agent.popart.update(targets, task_ids)
        close(unnormalised(agent, agent.online, obs), online)
        close(unnormalised(agent, agent.target, obs), target)
        valid = agent.online.action_mask[agent.online.task_ids([5, 5])]
        close(agent.q_values(obs) * valid, online)
        expected = (targets - agent.popart.mean[task_ids]) / agent.popart.std[task_ids]
        torch.testing.assert_close(normalised, expected)
    assert (agent.popart.std > 2.0).all() and (agent.popart.mean.abs() > 1.0).all()


def test_a_task_absent_from_the_batch_keeps_its_statistics():
    agent = popart_agent("shared")
    agent.popart.update(torch.tensor([10.0, 12.0]), torch.tensor([0, 0]))
    assert agent.popart.mean[0] > 5.0
    torch.testing.assert_close(agent.popart.mean[1], torch.tensor(0.0))
    torch.testing.assert_close(agent.popart.std[1], torch.tensor(1.0))


def test_popart_with_dueling_heads_is_refused():
    with pytest.raises(ConfigError, match="popart cannot be combined with dueling"):
        popart_agent("shared", dueling=True)
