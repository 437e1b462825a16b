"""Gymnasium plumbing shared by all suites, and the `gym:<id>` adapter.

`gym:<id>` turns any registered Gymnasium id into a task; its kwargs go to `gym.make`.
Ids in the `ALE/` and `MinAtar/` namespaces are registered on demand. Image observations
stored height-width-channel (last axis smaller than the other two, e.g. `(210, 160, 3)`)
are transposed to channel-first; all other observation spaces are kept as they are and
must be 1-D or 3-D Boxes.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import parse_env_id

from multiq.errors import TaskError
from multiq.tasks.spec import TaskSpec

SUPPORTED_OBS = "supported observation spaces are Box vectors (1-D) and images (3-D, channel-first)"


class ChannelFirst(gym.ObservationWrapper):
    """Transposes height-width-channel image observations to channel-first, keeping the dtype."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(
            low=np.transpose(space.low, (2, 0, 1)),
            high=np.transpose(space.high, (2, 0, 1)),
            dtype=space.dtype,
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(observation, (2, 0, 1)))


def register_minatar() -> None:
    """Registers the `MinAtar/*` ids once.

    Raises:
        TaskError: if MinAtar is not installed.
    """
    if "MinAtar/Breakout-v1" in gym.registry:
        return
    try:
        import minatar.gym
    except ImportError as exc:
        raise TaskError(
            f"MinAtar tasks need the minatar package ({exc}): pip install minatar"
        ) from exc
    minatar.gym.register_envs()


def register_ale() -> None:
    """Registers the `ALE/*` ids (idempotent).

    Raises:
        TaskError: if ale-py is not installed.
    """
    try:
        import ale_py
    except ImportError as exc:
        raise TaskError(f"Atari tasks need the ale-py package ({exc}): pip install ale-py") from exc
    gym.register_envs(ale_py)


NAMESPACES: dict[str, Callable[[], None]] = {"ALE": register_ale, "MinAtar": register_minatar}


def make_gym(env_id: str, name: str, kwargs: dict[str, Any]) -> gym.Env:
    """Calls `gym.make`, turning its errors into one-line TaskErrors.

    Args:
        env_id: a registered Gymnasium id.
        name: the task name, for messages.
        kwargs: keyword arguments for `gym.make`.

    Returns:
        The new env.

    Raises:
        TaskError: if gym.make rejects the kwargs or fails in any other way (a missing
            dependency, a bad kwarg value).
    """
    try:
        return gym.make(env_id, **kwargs)
    except TypeError as exc:
        raise TaskError(f"task {name!r} ({env_id}): bad kwargs for gym.make: {exc}") from exc
    except Exception as exc:  # any failure inside a third-party env constructor
        raise TaskError(
            f"task {name!r} ({env_id}) cannot be built: {type(exc).__name__}: {exc}"
        ) from exc


def build_spec(name: str, env_id: str, make_env: Callable[..., gym.Env]) -> TaskSpec:
    """Builds one env to read its spaces, checks them and returns the TaskSpec.

    Args:
        name: the task name.
        env_id: the underlying Gymnasium id.
        make_env: builds the (wrapped) env; accepts `evaluation=True`.

    Returns:
        The TaskSpec, with an empty `source` (the caller fills it in).

    Raises:
        TaskError: if the action space is not Discrete or the observation space unsupported.
    """
    env = make_env()
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(act_space, gym.spaces.Discrete) or act_space.start != 0:
        raise TaskError(
            f"task {name!r} ({env_id}) has action space {act_space}; multiq's DQN agents need a "
            "Discrete action space (try a discretising wrapper or another env)"
        )
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) not in (1, 3):
        raise TaskError(
            f"task {name!r} ({env_id}) has observation space {obs_space}; {SUPPORTED_OBS}"
        )
    return TaskSpec(name, env_id, make_env, obs_space, act_space)


def is_channel_last(space: gym.Space) -> bool:
    """Whether `space` is an image Box whose last axis is smaller than the other two."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3:
        return False
    height, width, channels = space.shape
    return channels < height and channels < width


def register_namespace(env_id: str) -> None:
    """Registers the plugin envs of `env_id`'s namespace (ALE, MinAtar), if it has one."""
    try:
        namespace = parse_env_id(env_id)[0]
    except gym.error.Error:
        return
    if namespace in NAMESPACES:
        NAMESPACES[namespace]()


def all_ids() -> list[str]:
    """Every registered Gymnasium id, after registering the installed plugin namespaces."""
    for register in NAMESPACES.values():
        with contextlib.suppress(TaskError):
            register()
    return list(gym.registry)


def check_gym_id(env_id: str, entry: str) -> None:
    """Raises a TaskError with close matches if `env_id` is not registered.

    Args:
        env_id: the id to check.
        entry: the task entry it comes from, for the message.

    Raises:
        TaskError: if the id is unknown.
    """
    register_namespace(env_id)
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, all_ids(), n=3)
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    raise TaskError(
        f"unknown Gymnasium id {env_id!r} in task entry {entry!r}; {hint}Ids come from "
        "gymnasium.registry; ALE/* and MinAtar/* ids are registered automatically"
    )


def default_name(env_id: str) -> str:
    """The id without namespace and version: `ALE/Pong-v5` -> `Pong`."""
    try:
        return parse_env_id(env_id)[1]
    except gym.error.Error:
        return env_id


def make_gym_task(
    env_id: str, name: str, kwargs: dict[str, Any], evaluation: bool = False
) -> gym.Env:
    """Makes the env of a `gym:<id>` task; the evaluation variant is the same env."""
    env = make_gym(env_id, name, kwargs)
    return ChannelFirst(env) if is_channel_last(env.observation_space) else env


def build_gym(env_id: str, name: str | None, kwargs: dict[str, Any]) -> TaskSpec:
    """Builds the task of the entry `gym:<env_id>`.

    Args:
        env_id: a registered Gymnasium id.
        name: the task name, or None for the id without namespace and version.
        kwargs: keyword arguments for `gym.make`.

    Returns:
        The TaskSpec (without `source`).

    Raises:
        TaskError: if the id is unknown, the kwargs are rejected or the spaces unsupported.
    """
    check_gym_id(env_id, f"gym:{env_id}")
    name = name or default_name(env_id)
    return build_spec(name, env_id, functools.partial(make_gym_task, env_id, name, dict(kwargs)))
