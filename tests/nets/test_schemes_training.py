"""Each new sharing scheme trains under `MultiTaskDQN`, saves and loads; routed runs log routing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tiny_config
import torch

from multiq.agents.learner import LearnerSettings
from multiq.api import MultiTaskDQN
from multiq.config import Config
from multiq.errors import ConfigError
from multiq.nets import SchemeOptions
from multiq.report import ROUTING_FILE, read_metrics, routing_weights

TWO_TASKS = "classic:CartPole,classic:Acrobot"
TINY = tiny_config.TINY | {"hidden_size": 32, "buffer_size": 1000, "eval_episodes": 1}
SCHEME_RUNS = {
    "conditioned-onehot": dict(scheme="conditioned"),
    "conditioned-learned": dict(scheme="conditioned", task_embedding="learned", dueling=True),
    "shared-private-sum": dict(scheme="shared-private"),
    "shared-private-concat": dict(scheme="shared-private", private_merge="concat"),
    "routed-softmax": dict(scheme="routed"),
    "routed-gumbel-hard": dict(scheme="routed", routing="gumbel", routing_hard=True),
}
OPTIONS_REACH_THE_NET = issubclass(LearnerSettings, SchemeOptions)


def observations(task, count: int, seed: int = 0) -> np.ndarray:
    space = task.observation_space
    space.seed(seed)
    return np.stack([space.sample() for _ in range(count)])


@pytest.mark.parametrize("run", list(SCHEME_RUNS))
def test_scheme_trains_saves_and_loads(tmp_path, run):
    model = MultiTaskDQN(TWO_TASKS, run_dir=tmp_path / "run", **TINY, **SCHEME_RUNS[run])
    model.learn(total_steps_per_task=300)
    assert model.state.updates > 0
    loaded = MultiTaskDQN.load(model.save(tmp_path / "model.pt"))
    obs = {task.name: observations(task, 16) for task in model.task_specs}
    assert torch.equal(model.policy.q_values(obs), loaded.policy.q_values(obs))
    for task in model.task_specs:
        np.testing.assert_array_equal(
            model.predict(obs[task.name], task.name), loaded.predict(obs[task.name], task.name)
        )
    assert (tmp_path / "run" / ROUTING_FILE).is_file() == run.startswith("routed")


def test_routed_run_logs_weights_per_task_and_anneals(tmp_path):
    run_dir = tmp_path / "run"
    model = MultiTaskDQN(
        TWO_TASKS, run_dir=run_dir, scheme="routed", routing="gumbel", **TINY
    ).learn(total_steps_per_task=300)
    weights = routing_weights(read_metrics(run_dir))
    assert list(weights) == ["CartPole", "Acrobot"]
    assert all(
        len(row) == 4 and sum(row) == pytest.approx(1.0, abs=1e-5) for row in weights.values()
    )
    assert (run_dir / ROUTING_FILE).stat().st_size > 0
    tau_end = SchemeOptions().routing_tau_end
    for net in (model.learner.online, model.learner.target):  # the last update saw progress ~1
        assert net.tau.item() == pytest.approx(tau_end, abs=0.01)


@pytest.mark.parametrize(
    "change",
    [
        dict(task_embedding="random"),
        dict(task_embedding_dim=0),
        dict(private_merge="max"),
        dict(routing="hard"),
        dict(routing_modules=0),
        dict(routing_tau_start=0.0),
        dict(routing_tau_end=-1.0),
        dict(routing_hard="yes"),
    ],
)
def test_bad_scheme_option_values_raise(change):
    with pytest.raises(ConfigError, match=next(iter(change))):
        Config(**change)
    with pytest.raises(ConfigError, match=next(iter(change))):
        MultiTaskDQN(TWO_TASKS, scheme="routed", **TINY, **change)


def test_config_keys_match_scheme_options():
    defaults = Config()
    for field in dataclasses.fields(SchemeOptions):
        assert getattr(defaults, field.name) == field.default


@pytest.mark.skipif(not OPTIONS_REACH_THE_NET, reason="LearnerSettings does not carry them yet")
def test_config_options_reach_the_network():
    conditioned = MultiTaskDQN(
        TWO_TASKS, scheme="conditioned", task_embedding="learned", task_embedding_dim=5, **TINY
    )
    embedded = conditioned.learner.online
    assert [e.shape for e in embedded.embeddings.values()] == [(5,), (5,)]
    assert embedded.project.in_features == 5
    private = MultiTaskDQN(TWO_TASKS, scheme="shared-private", private_merge="concat", **TINY)
    assert private.learner.online.feature_dim == 64
    routed = MultiTaskDQN(
        TWO_TASKS, scheme="routed", routing="gumbel", routing_modules=3, routing_hard=True,
        routing_tau_start=2.0, **TINY,
    )  # fmt: skip
    net = routed.learner.online
    assert list(net.routing_logits) == ["CartPole", "Acrobot"]
    assert all(p.shape == (1, 3) for p in net.routing_logits.values())
    assert (net.routing, net.routing_hard, net.tau.item()) == ("gumbel", True, 2.0)
