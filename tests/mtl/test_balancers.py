"""Every balancer, with PopArt off and on, trains end to end and saves / loads / resumes exactly."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from multiq import MultiTaskDQN
from multiq.errors import ConfigError
from multiq.mtl import BALANCERS

CLASSIC = "classic:CartPole,classic:Acrobot"
TINY = {
    "hidden_size": 16,
    "batch_size": 16,
    "buffer_size": 1_000,
    "learning_starts": 100,
    "train_freq": 1,
    "target_update_interval": 100,
    "learning_rate": 1e-3,
    "eval_freq": 0,
    "eval_episodes": 1,
    "log_interval": 100,
    "tensorboard": False,
    "progress_bar": False,
    "device": "cpu",
}
# each balancer's per-task metric, logged as task/<name>/<key>
LOGGED = {"fixed": "loss", "uncertainty": "log_variance", "gradnorm": "balance_weight"}


def flat(state: dict) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in flat(value).items()})
        elif isinstance(value, torch.Tensor):
            out[key] = value
    return out


@pytest.mark.parametrize("popart", [False, True])
@pytest.mark.parametrize("balancer", sorted(BALANCERS))
def test_trains_and_saves_loads_identically(tmp_path, balancer, popart):
    model = MultiTaskDQN(CLASSIC, run_dir=tmp_path, balancer=balancer, popart=popart, **TINY)
    model.learn(total_steps_per_task=300, evaluate=False)
    assert model.state.updates > 100

    loaded = MultiTaskDQN.load(tmp_path / "model.pt")
    rng = np.random.default_rng(0)
    for t, task in enumerate(model.task_specs):
        obs = rng.normal(size=(32, *task.obs_shape)).astype(np.float32)
        one_task = {task.name: obs}  # a batch of one task's rows
        torch.testing.assert_close(
            loaded.policy.q_values(one_task), model.policy.q_values(one_task)
        )
        np.testing.assert_array_equal(loaded.predict(obs, t), model.predict(obs, t))

    resumed = MultiTaskDQN.resume(tmp_path)
    expected, got = flat(model.learner.state_dict()), flat(resumed.learner.state_dict())
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, msg=key)

    with open(tmp_path / "metrics.csv", newline="") as f:
        logged = {row["key"] for row in csv.DictReader(f)}
    key = "popart_std" if popart else LOGGED.get(balancer, "loss")
    assert {f"task/CartPole/{key}", f"task/Acrobot/{key}", "train/loss"} <= logged


def test_unknown_balancer_suggests_the_closest_name(tmp_path):
    with pytest.raises(
        ConfigError, match="balancer must be one of .*got 'pcgard'; did you mean 'pcgrad'"
    ):
        MultiTaskDQN(CLASSIC, run_dir=tmp_path, balancer="pcgard", **TINY)


@pytest.mark.parametrize("balancer", ["uncertainty", "gradnorm"])
def test_learned_weights_refuse_unequal_task_weights(tmp_path, balancer):
    # refused when the model is built, never silently ignored
    with pytest.raises(ConfigError, match=f"balancer '{balancer}' learns the task weights"):
        MultiTaskDQN(
            CLASSIC, run_dir=tmp_path, balancer=balancer, task_weights={"CartPole": 2.0}, **TINY
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"gradnorm_alpha": -0.5}, "gradnorm_alpha must be >= 0"),
     ({"popart_beta": 0.0}, "popart_beta must be in \\(0, 1\\]"),
     ({"popart": "yes"}, "popart: expected a bool")],
)  # fmt: skip
def test_config_validates_the_balancing_keys(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        MultiTaskDQN(CLASSIC, run_dir=tmp_path, **TINY, **changes)
