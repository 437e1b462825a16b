"""The `atari` suite: ALE games with the standard DQN preprocessing.

Each env is `ALE/<Game>-v5` made with `frameskip=1`, then `AtariPreprocessing` (up to
`noop_max` no-op starts, default 30; frame skip 4, 84x84 grayscale, uint8) and
`FrameStackObservation(4)`, giving
(4, 84, 84) uint8 observations. Training envs clip rewards to their sign (option
`clip_rewards`) and may end episodes on life loss (option `terminal_on_life_loss`); the
evaluation variant does neither.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TransformReward

from multiq.errors import TaskError
from multiq.tasks.gym_ids import build_spec, make_gym, register_ale
from multiq.tasks.spec import TaskSpec

GAMES = ("Tetris", "Pacman", "MsPacman")
OPTIONS: dict[str, Any] = {
    "repeat_action_probability": 0.25,
    "terminal_on_life_loss": False,
    "clip_rewards": True,
    "full_action_space": False,
    "noop_max": 30,
}
FRAME_STACK = 4
SUMMARY = "ALE Atari games, 4 stacked 84x84 grayscale uint8 frames"


def sign(reward: SupportsFloat) -> float:
    """The sign of `reward` as a float: -1.0, 0.0 or 1.0."""
    return float(np.sign(float(reward)))


def make_atari(
    game_id: str, name: str, options: dict[str, Any], evaluation: bool = False
) -> gym.Env:
    """Makes one preprocessed Atari env.

    Args:
        game_id: an `ALE/<Game>-v5` id.
        name: the task name, for messages.
        options: all of OPTIONS, with values.
        evaluation: no life-loss terminal and no reward clipping when True.

    Returns:
        The wrapped env.
    """
    if options["noop_max"] < 0:
        raise TaskError(
            f"task {name!r}: the atari option noop_max must be >= 0, got {options['noop_max']}"
        )
    register_ale()
    ale_kwargs = {
        "frameskip": 1,
        "repeat_action_probability": options["repeat_action_probability"],
        "full_action_space": options["full_action_space"],
    }
    env = make_gym(game_id, name, ale_kwargs)
    try:
        env = AtariPreprocessing(
            env,
            noop_max=options["noop_max"],
            frame_skip=4,
            screen_size=84,
            grayscale_obs=True,
            terminal_on_life_loss=options["terminal_on_life_loss"] and not evaluation,
            scale_obs=False,
        )
    except gym.error.DependencyNotInstalled as exc:
        env.close()
        raise TaskError(f"task {name!r} ({game_id}) cannot be built: {exc}") from exc
    if options["clip_rewards"] and not evaluation:
        env = TransformReward(env, sign)
    return FrameStackObservation(env, stack_size=FRAME_STACK)  # padding: the first frame


def build(game: str, name: str | None, options: dict[str, Any]) -> TaskSpec:
    """Builds the task of one Atari game.

    Args:
        game: one of GAMES.
        name: the task name, or None for the game name.
        options: all of OPTIONS, with values.

    Returns:
        The TaskSpec (without `source`).
    """
    game_id = f"ALE/{game}-v5"
    name = name or game
    spec = build_spec(name, game_id, functools.partial(make_atari, game_id, name, dict(options)))
    return dataclasses.replace(spec, frame_stack=FRAME_STACK)
