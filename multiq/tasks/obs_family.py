"""Observation families: the kind of input a task gives, decided from its spec alone.

A family groups tasks whose good DQN settings are alike: `multiq.config.FAMILY_DEFAULTS` keeps
a row of defaults per family, as rl-zoo keeps hyperparameters per env. The families follow the
encoders (`multiq.nets.encoders`): vectors (MLP), small grids (MinAtar conv) split by what their
cells hold, and large images (Nature CNN). The first family in `OBS_FAMILIES` that matches a
spec is its family; a spec none matches is `OTHER`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from multiq.tasks.spec import TaskSpec

OTHER = "other"  # the family of a spec no entry of OBS_FAMILIES matches
ATARI_MIN_SIDE = 36  # the smallest image side the Nature CNN takes (multiq.nets.encoders)


@dataclass(frozen=True)
class ObsFamily:
    """A kind of observation.

    Attributes:
        name: the family's name (a row name of `multiq.config.FAMILY_DEFAULTS`).
        summary: which observations belong to it, for messages and docs.
        matches: whether a task's spec belongs to it.
    """

    name: str
    summary: str
    matches: Callable[[TaskSpec], bool]


def _is_vector(spec: TaskSpec) -> bool:
    return len(spec.obs_shape) == 1


def _is_image(spec: TaskSpec) -> bool:
    return len(spec.obs_shape) == 3


def _is_large_image(spec: TaskSpec) -> bool:
    return _is_image(spec) and min(spec.obs_shape[1:]) >= ATARI_MIN_SIDE


OBS_FAMILIES: tuple[ObsFamily, ...] = (
    ObsFamily("vector", "1-D vectors (classic control, any vector env)", _is_vector),
    ObsFamily(
        "atari",
        f"images with sides >= {ATARI_MIN_SIDE} (ALE's stacks of 4 84x84 frames)",
        _is_large_image,
    ),
    ObsFamily(
        "minatar",
        "small grids of bool channels (MinAtar's C x 10 x 10)",
        lambda s: _is_image(s) and s.obs_dtype == np.bool_,
    ),
    ObsFamily(
        "minigrid",
        "small grids of integer indices (MiniGrid's 3 x 7 x 7 object, colour and state)",
        lambda s: _is_image(s) and np.issubdtype(s.obs_dtype, np.integer),
    ),
)


def observation_family(spec: TaskSpec) -> str:
    """The name of the first family of `OBS_FAMILIES` that `spec` belongs to, else `OTHER`."""
    return next((f.name for f in OBS_FAMILIES if f.matches(spec)), OTHER)


def families_of(specs: Sequence[TaskSpec]) -> dict[str, tuple[str, ...]]:
    """Observation family -> the names of its tasks, families in the order tasks first show
    them."""
    grouped: dict[str, list[str]] = {}
    for spec in specs:
        grouped.setdefault(observation_family(spec), []).append(spec.name)
    return {family: tuple(names) for family, names in grouped.items()}
