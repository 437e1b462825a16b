"""PopArt: statistics updates rescale the heads so unnormalised outputs stay the same."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from multiq import make_taskset
from multiq.agents.learner import Learner, LearnerSettings
from multiq.errors import ConfigError

CLASSIC = "classic:CartPole,classic:Acrobot"
close = functools.partial(torch.testing.assert_close, atol=1e-5, rtol=1e-5)


def popart_learner(scheme: str, dueling: bool = False) -> Learner:
    torch.manual_seed(0)
    settings = LearnerSettings(scheme=scheme, hidden_size=16, dueling=dueling, popart=True)
    settings.popart_beta = 0.5  # large steps, so the statistics move far
    return Learner(make_taskset(CLASSIC), settings)


def unnormalised(learner: Learner, net: torch.nn.Module, obs) -> torch.Tensor:
    """[sum B_t, A] sigma q + mu, with padding columns (not real actions) zeroed."""
    names = list(obs)
    with torch.no_grad():
        task_ids = net.task_ids([len(o) for o in obs.values()])
        q = learner.popart.unnormalise(net(learner.policy.tensors(obs)), names, task_ids)
        return q * learner.policy.valid_actions(names)[task_ids]


@pytest.mark.parametrize("scheme", ["shared", "independent"])
def test_statistics_update_leaves_unnormalised_outputs_unchanged(scheme):
    learner = popart_learner(scheme)
    popart, names = learner.popart, list(learner.specs)
    rng = np.random.default_rng(0)
    obs = {
        t.name: rng.normal(size=(5, *t.obs_shape)).astype(np.float32)
        for t in learner.specs.values()
    }
    task_ids = learner.online.task_ids([6, 4])
    for step in range(4):
        online, target = (unnormalised(learner, n, obs) for n in (learner.online, learner.target))
        targets = torch.as_tensor(rng.normal(3.0 * step, 5.0 + step, size=10), dtype=torch.float32)
        normalised = popart.update(targets, names, task_ids)
        close(unnormalised(learner, learner.online, obs), online)
        close(unnormalised(learner, learner.target, obs), target)
        valid = learner.policy.valid_actions(names)[learner.online.task_ids([5, 5])]
        close(learner.policy.q_values(obs) * valid, online)
        mean, std = popart.stats(names)
        expected = (targets - mean[task_ids]) / std[task_ids]
        torch.testing.assert_close(normalised, expected)
    mean, std = popart.stats(names)
    assert (std > 2.0).all() and (mean.abs() > 1.0).all()


def test_a_task_absent_from_the_batch_keeps_its_statistics():
    learner = popart_learner("shared")
    popart = learner.popart
    popart.update(torch.tensor([10.0, 12.0]), ["CartPole"], torch.tensor([0, 0]))
    assert popart.mean.gather(["CartPole"])[0] > 5.0
    mean, std = popart.stats(["Acrobot"])
    torch.testing.assert_close(mean[0], torch.tensor(0.0))
    torch.testing.assert_close(std[0], torch.tensor(1.0))


def test_popart_with_dueling_heads_is_refused():
    with pytest.raises(ConfigError, match="popart cannot be combined with dueling"):
        popart_learner("shared", dueling=True)
