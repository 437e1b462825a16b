"""The `minatar` suite: the five MinAtar games with channel-first bool observations.

Ids are `MinAtar/<Game>-v1` (minimal action sets) or `MinAtar/<Game>-v0` with
`full_action_set: true` (all 6 actions). MinAtar's (10, 10, C) observations are
transposed to (C, 10, 10); the dtype stays bool.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import gymnasium as gym

from multiq.tasks.gym_ids import (
    ChannelFirst,
    SeededStickyReset,
    build_spec,
    make_gym,
    register_minatar,
)
from multiq.tasks.spec import TaskSpec

GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
OPTIONS: dict[str, Any] = {"full_action_set": False, "sticky_action_prob": 0.0}
SUMMARY = "MinAtar games, 10x10 images with one bool channel per object type"


def env_id(game: str, full_action_set: bool) -> str:
    """The Gymnasium id of `game`: `MinAtar/<Game>-v0` (full action set) or `-v1` (minimal)."""
    return f"MinAtar/{game}-v{0 if full_action_set else 1}"


def make_minatar(
    game_id: str,
    name: str,
    sticky_action_prob: float,
    evaluation: bool = False,
    *,
    difficulty_ramping: bool = True,
) -> gym.Env:
    """Makes one MinAtar env with channel-first observations, whose seeded resets clear the
    sticky-action memory (`SeededStickyReset`); evaluation uses the same env.

    `difficulty_ramping` is MinAtar's own default (True); Breakout and Freeway ignore it.
    """
    register_minatar()
    kwargs = {"sticky_action_prob": sticky_action_prob, "difficulty_ramping": difficulty_ramping}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*out of date", category=DeprecationWarning)
        env = make_gym(game_id, name, kwargs)
    return ChannelFirst(SeededStickyReset(env))


def build(game: str, name: str | None, options: dict[str, Any]) -> TaskSpec:
    """Builds the task of one MinAtar game.

    Args:
        game: one of GAMES.
        name: the task name, or None for the game name.
        options: all of OPTIONS, with values.

    Returns:
        The TaskSpec (without `source`).
    """
    game_id = env_id(game, options["full_action_set"])
    name = name or game
    make_env = functools.partial(make_minatar, game_id, name, options["sticky_action_prob"])
    return build_spec(name, game_id, make_env)
