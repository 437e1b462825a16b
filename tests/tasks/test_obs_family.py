"""`multiq.tasks.obs_family`: each kind of task gets its observation family from its spec."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from multiq.config import FAMILY_DEFAULTS
from multiq.tasks import make_taskset
from multiq.tasks.obs_family import (
    OBS_FAMILIES,
    OTHER,
    families_of,
    observation_family,
)
from multiq.tasks.spec import TaskSpec


def spec_of(shape: tuple[int, ...], dtype=np.float32, name: str = "t") -> TaskSpec:
    """A spec with an observation Box of `shape` and `dtype` (no env behind it)."""
    space = gym.spaces.Box(0, 1, shape=shape, dtype=dtype)
    return TaskSpec(name, "none", lambda evaluation=False: None, space, gym.spaces.Discrete(2))


@pytest.mark.parametrize(
    ("entry", "family"),
    [
        ("classic:CartPole", "vector"),
        ("classic", "vector"),
        ("gym:CartPole-v1", "vector"),
        ("gym:Acrobot-v1", "vector"),
        ("family:cartpole-physics:train:2", "vector"),
        ("minatar", "minatar"),
        ("minatar:Breakout", "minatar"),
        ("family:minatar-variants:train:2", "minatar"),
        ("gym:MiniGrid-Empty-5x5-v0", "minigrid"),
        ("family:minigrid:train:1", "minigrid"),
    ],
)
def test_each_task_kind_has_its_family(entry, family):
    specs = list(make_taskset(entry))
    assert {observation_family(s) for s in specs} == {family}
    assert families_of(specs) == {family: tuple(s.name for s in specs)}


def test_atari_frame_stacks_are_the_atari_family():
    pytest.importorskip("ale_py")
    (tetris,) = make_taskset("atari:Tetris")
    assert tetris.obs_shape == (4, 84, 84)
    assert observation_family(tetris) == "atari"


@pytest.mark.parametrize(
    ("shape", "dtype", "family"),
    [
        ((8,), np.float32, "vector"),
        ((8,), np.uint8, "vector"),
        ((4, 84, 84), np.uint8, "atari"),
        ((3, 64, 64), np.float32, "atari"),  # any large image: the Nature CNN's inputs
        ((7, 10, 10), np.bool_, "minatar"),
        ((3, 7, 7), np.uint8, "minigrid"),
        ((3, 7, 7), np.float32, OTHER),  # a small image of floats: neither grid
    ],
)
def test_families_follow_shape_and_dtype(shape, dtype, family):
    assert observation_family(spec_of(shape, dtype)) == family


def test_tasks_of_several_families_are_grouped_in_order():
    specs = [
        spec_of((7, 10, 10), np.bool_, "Breakout"),
        spec_of((4,), name="CartPole"),
        spec_of((6,), name="Acrobot"),
    ]
    assert families_of(specs) == {"minatar": ("Breakout",), "vector": ("CartPole", "Acrobot")}


def test_every_row_of_the_defaults_names_a_family():
    names = {f.name for f in OBS_FAMILIES}
    assert set(FAMILY_DEFAULTS) <= names
    assert len(names) == len(OBS_FAMILIES)
