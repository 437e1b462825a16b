"""Every sharing scheme x balancer x PopArt combination trains briefly and saves / loads exactly.

Combinations PopArt does not support (`conditioned` has no per-task heads) must be refused with a
ConfigError at construction, never silently run without PopArt.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multiq import MultiTaskDQN
from multiq.errors import ConfigError
from multiq.mtl import BALANCERS
from multiq.nets import SCHEMES

TINY = {
    "hidden_size": 16,
    "batch_size": 8,
    "buffer_size": 500,
    "learning_starts": 50,
    "train_freq": 1,
    "target_update_interval": 50,
    "eval_freq": 0,
    "log_interval": 100,
    "tensorboard": False,
    "progress_bar": False,
    "device": "cpu",
}
POPART_UNSUPPORTED = {"conditioned"}


@pytest.mark.parametrize("popart", [False, True])
@pytest.mark.parametrize("balancer", sorted(BALANCERS))
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_combination_trains_and_round_trips(tmp_path, scheme, balancer, popart):
    settings = {"scheme": scheme, "balancer": balancer, "popart": popart, **TINY}
    if popart and scheme in POPART_UNSUPPORTED:
        with pytest.raises(ConfigError, match="(?i)popart"):
            MultiTaskDQN("classic:CartPole,classic:Acrobot", run_dir=tmp_path, **settings)
        return
    model = MultiTaskDQN("classic:CartPole,classic:Acrobot", run_dir=tmp_path, **settings)
    model.learn(total_steps_per_task=150, evaluate=False)
    assert model.state.updates == 100

    loaded = MultiTaskDQN.load(tmp_path / "model.pt")
    rng = np.random.default_rng(0)
    for task in model.task_specs:
        # a batch of one task's rows
        one_task = {task.name: rng.normal(size=(16, *task.obs_shape)).astype(np.float32)}
        torch.testing.assert_close(
            loaded.policy.q_values(one_task), model.policy.q_values(one_task)
        )
