"""The `classic` suite: Gymnasium's classic-control tasks with discrete actions.

Observations are float32 vectors, unchanged. The suite has no options.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym

from multiq.tasks.gym_ids import build_spec, make_gym
from multiq.tasks.spec import TaskSpec

ENV_IDS = {"CartPole": "CartPole-v1", "Acrobot": "Acrobot-v1", "MountainCar": "MountainCar-v0"}
OPTIONS: dict[str, Any] = {}
SUMMARY = "Gymnasium classic control, float32 vector observations"


def make_classic(env_id: str, name: str, evaluation: bool = False) -> gym.Env:
    """Makes one classic-control env; evaluation uses the same env."""
    return make_gym(env_id, name, {})


def build(member: str, name: str | None, options: dict[str, Any]) -> TaskSpec:
    """Builds the task of one classic-control env.

    Args:
        member: one of the keys of ENV_IDS.
        name: the task name, or None for `member`.
        options: ignored (the suite has no options).

    Returns:
        The TaskSpec (without `source`).
    """
    name = name or member
    env_id = ENV_IDS[member]
    return build_spec(name, env_id, functools.partial(make_classic, env_id, name))
