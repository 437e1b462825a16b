"""The classic suite: three classic-control tasks with float32 vector observations."""

from __future__ import annotations

import numpy as np
import pytest

from multiq.errors import TaskError
from multiq.tasks import make_taskset


def test_classic_suite_spaces():
    tasks = make_taskset("classic")
    assert tasks.names == ["CartPole", "Acrobot", "MountainCar"]
    assert [t.env_id for t in tasks] == ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"]
    assert [t.obs_shape for t in tasks] == [(4,), (6,), (2,)]
    assert [t.num_actions for t in tasks] == [2, 3, 3]
    assert all(t.obs_dtype == np.float32 for t in tasks)


def test_member_selection_is_case_insensitive():
    (task,) = make_taskset("classic:mountaincar")
    assert task.name == "MountainCar"
    assert task.source == {"id": "classic:MountainCar", "name": "MountainCar", "kwargs": {}}


def test_classic_suite_has_no_options():
    with pytest.raises(TaskError, match=r"max_steps for suite 'classic'.*valid options: none"):
        make_taskset([{"id": "classic", "kwargs": {"max_steps": 10}}])
