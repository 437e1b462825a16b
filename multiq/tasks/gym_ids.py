"""Gymnasium plumbing shared by all suites, and the `gym:<id>` adapter.

`gym:<id>` turns any registered Gymnasium id into a task; its kwargs go to `gym.make`. A
registered id is also taken without the prefix (`CartPole-v1`, `is_bare_id`).
Ids in the `ALE/` and `MinAtar/` namespaces, and the un-namespaced `MiniGrid-*` and
`BabyAI-*` ids, are registered on demand. Gymnasium's `module:EnvId` form
(`gym:my_pkg.envs:MyEnv-v0`) imports `my_pkg.envs` first, so that it can register `MyEnv-v0`.

Observations: a Dict space with an `image` Box (MiniGrid) is reduced to that image by
`ImageOnly` (minigrid's `ImgObsWrapper`, recreatable from the env's spec), and for MiniGrid
envs the image's `high` is narrowed to the largest object/colour/state index, since the image
holds indices, not pixels. Images stored height-width-channel (last axis smaller than the
other two, e.g. `(210, 160, 3)`) are transposed to channel-first; all other observation spaces
are kept as they are and must be 1-D or 3-D Boxes. multiq's wrappers record their arguments
(Gymnasium's `RecordConstructorArgs`), so `env.spec.make()` rebuilds a task's env.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import parse_env_id
from gymnasium.utils import RecordConstructorArgs

from multiq.errors import TaskError
from multiq.tasks.spec import TaskSpec

SUPPORTED_OBS = "supported observation spaces are Box vectors (1-D) and images (3-D, channel-first)"
DICT_HINT = (
    "; a Dict space needs a wrapper that returns a Box (e.g. minigrid.wrappers.ImgObsWrapper "
    "or gymnasium.wrappers.FlattenObservation): register the wrapped env under its own id in a "
    "module and use gym:<module>:<EnvId>"
)


class ChannelFirst(gym.ObservationWrapper, RecordConstructorArgs):
    """Transposes height-width-channel image observations to channel-first, keeping the dtype."""

    def __init__(self, env: gym.Env):
        RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box):
            raise TaskError(f"ChannelFirst needs image (Box) observations, not {space}")
        self.observation_space = gym.spaces.Box(
            low=np.transpose(space.low, (2, 0, 1)),
            high=np.transpose(space.high, (2, 0, 1)),
            dtype=space.dtype,
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(observation, (2, 0, 1)))


class SeededStickyReset(gym.Wrapper, RecordConstructorArgs):
    """A MinAtar env whose seeded `reset` also clears the sticky-action memory (the last action
    becomes 0, as in a new env).

    MinAtar keeps the previous episode's last action across `reset`, so with sticky actions an
    episode's first step may repeat it, and the episode is then not determined by its seed and
    actions: a resumed run, which rebuilds each env from its episode seed and the actions
    since, could not replay it (one env in about ten at sticky 0.1). A reset without a seed
    keeps MinAtar's behaviour.
    """

    def __init__(self, env: gym.Env):
        RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            minatar_env: Any = self.env.unwrapped  # MinAtar's Gymnasium env (untyped)
            minatar_env.game.last_action = 0
        return self.env.reset(seed=seed, options=options)


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


def register_minigrid() -> None:
    """Registers the `MiniGrid-*` and `BabyAI-*` ids (importing minigrid registers them).

    Raises:
        TaskError: if minigrid is not installed.
    """
    try:
        import minigrid  # noqa: F401
    except ImportError as exc:
        raise TaskError(
            f"MiniGrid tasks need the minigrid package ({exc}): pip install minigrid"
        ) from exc


NAMESPACES: dict[str, Callable[[], None]] = {"ALE": register_ale, "MinAtar": register_minatar}
NAMESPACE_WRAPPERS: dict[str, Callable[[gym.Env], gym.Env]] = {"MinAtar": SeededStickyReset}
"""Namespace -> the wrapper its envs get first (before the observation adapters)."""
# Plugins whose ids have no namespace, by id prefix.
PREFIXES: dict[str, Callable[[], None]] = {
    "MiniGrid-": register_minigrid,
    "BabyAI-": register_minigrid,
}


def import_env_modules(modules: Sequence[str]) -> None:
    """Imports each module so that the envs it registers become known to Gymnasium.

    Args:
        modules: dotted module names, e.g. `["my_pkg.envs"]`.

    Raises:
        TaskError: naming the first module that is not a string or cannot be imported.
    """
    for module in modules:
        _import_env_module(module)


def _import_env_module(module: str) -> None:
    if not isinstance(module, str) or not module:
        raise TaskError(f"an env module must be a dotted module name, got {module!r}")
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise TaskError(
            f"cannot import env module {module!r}: {exc}; install the package that provides it "
            "(pip install <package>) or add its folder to PYTHONPATH"
        ) from exc
    except Exception as exc:  # any failure while the module's code runs
        raise TaskError(
            f"importing env module {module!r} failed: {type(exc).__name__}: {exc}; fix the "
            "module or install its dependencies (pip install ...)"
        ) from exc


def split_module(env_id: str) -> tuple[str | None, str]:
    """Splits Gymnasium's `module:EnvId` form: `pkg.envs:MyEnv-v0` -> `("pkg.envs", "MyEnv-v0")`.

    Ids without a colon give `(None, env_id)`.
    """
    module, sep, bare_id = env_id.partition(":")
    return (module, bare_id) if sep else (None, env_id)


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


def build_spec(
    name: str, env_id: str, make_env: Callable[..., gym.Env], env: gym.Env | None = None
) -> TaskSpec:
    """Builds one env to read its spaces, checks them and returns the TaskSpec.

    Args:
        name: the task name.
        env_id: the underlying Gymnasium id.
        make_env: builds the (wrapped) env; accepts `evaluation=True`.
        env: an env `make_env` built already, to read the spaces of instead (closed here).

    Returns:
        The TaskSpec, with an empty `source` (the caller fills it in).

    Raises:
        TaskError: if the action space is not Discrete or the observation space unsupported.
    """
    env = make_env() if env is None else env
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(act_space, gym.spaces.Discrete) or act_space.start != 0:
        raise TaskError(
            f"task {name!r} ({env_id}) has action space {act_space}; multiq's DQN agents need a "
            "Discrete action space (try a discretising wrapper or another env)"
        )
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) not in (1, 3):
        hint = DICT_HINT if isinstance(obs_space, gym.spaces.Dict) else ""
        raise TaskError(
            f"task {name!r} ({env_id}) has observation space {obs_space}; {SUPPORTED_OBS}{hint}"
        )
    return TaskSpec(name, env_id, make_env, obs_space, act_space)


def minigrid_index_space(space: gym.spaces.Box) -> gym.spaces.Box:
    """The (H, W, 3) MiniGrid image space with `high` set to each channel's largest index.

    The channels hold object, colour and state indices (minigrid's OBJECT_TO_IDX,
    COLOR_TO_IDX, STATE_TO_IDX), so the real maximum is 10, not 255.
    """
    from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

    maxima = [max(table.values()) for table in (OBJECT_TO_IDX, COLOR_TO_IDX, STATE_TO_IDX)]
    high = np.broadcast_to(np.array(maxima, dtype=space.dtype), space.shape)
    return gym.spaces.Box(low=np.zeros_like(high), high=high, dtype=space.dtype)


class ImageOnly(gym.ObservationWrapper, RecordConstructorArgs):
    """A Dict observation reduced to its `image` Box (minigrid's `ImgObsWrapper`, which does
    not record its arguments, so Gymnasium could not rebuild the env from its spec).

    For MiniGrid envs the image's `high` is narrowed to the largest index (see
    `minigrid_index_space`), so that encoders scale it to [0, 1].
    """

    def __init__(self, env: gym.Env):
        RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space.spaces["image"]  # type: ignore[attr-defined]
        if _is_minigrid(env) and isinstance(space, gym.spaces.Box) and space.shape[-1] == 3:
            space = minigrid_index_space(space)
        self.observation_space = space

    def observation(self, observation: dict[str, Any]) -> Any:
        return observation["image"]


def _is_minigrid(env: gym.Env) -> bool:
    try:
        from minigrid.minigrid_env import MiniGridEnv
    except ImportError:
        return False
    return isinstance(env.unwrapped, MiniGridEnv)


def image_only(env: gym.Env) -> gym.Env:
    """Reduces a Dict observation with an `image` Box to that image (`ImageOnly`).

    Raises:
        TaskError: if minigrid is not installed.
    """
    register_minigrid()
    return ImageOnly(env)


def has_image_key(space: gym.Space) -> bool:
    """Whether `space` is a Dict with an `image` Box (MiniGrid's observations)."""
    return isinstance(space, gym.spaces.Dict) and isinstance(
        space.spaces.get("image"), gym.spaces.Box
    )


def adapt_observations(env: gym.Env) -> gym.Env:
    """Reduces a Dict-with-image observation to its image and makes images channel-first."""
    if has_image_key(env.observation_space):
        env = image_only(env)
    return ChannelFirst(env) if is_channel_last(env.observation_space) else env


def is_channel_last(space: gym.Space) -> bool:
    """Whether `space` is an image Box whose last axis is smaller than the other two."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3:
        return False
    height, width, channels = space.shape
    return channels < height and channels < width


def register_namespace(env_id: str) -> None:
    """Registers the plugin envs of `env_id`: its namespace (ALE, MinAtar) or prefix (MiniGrid-).

    Raises:
        TaskError: if the plugin package is not installed.
    """
    for prefix, register in PREFIXES.items():
        if env_id.startswith(prefix):
            register()
    namespace = namespace_of(env_id)
    if namespace in NAMESPACES:
        NAMESPACES[namespace]()


def namespace_of(env_id: str) -> str | None:
    """The namespace of a Gymnasium id (`ALE` of `ALE/Pong-v5`), None without one."""
    try:
        return parse_env_id(env_id)[0]
    except gym.error.Error:
        return None


def all_ids() -> list[str]:
    """Every registered Gymnasium id, after registering the installed plugins."""
    for register in {*NAMESPACES.values(), *PREFIXES.values()}:
        with contextlib.suppress(TaskError):
            register()
    return list(gym.registry)


def is_bare_id(entry: str) -> bool:
    """Whether a task entry is a registered Gymnasium id given without `gym:` (`CartPole-v1`,
    `ALE/Pong-v5`), after registering the plugin of its namespace or prefix.

    Raises:
        TaskError: if that plugin is not installed.
    """
    if ":" in entry or not entry:
        return False
    register_namespace(entry)
    return entry in gym.registry


def check_gym_id(env_id: str, entry: str) -> None:
    """Raises a TaskError with close matches if `env_id` is not registered.

    Args:
        env_id: the id to check.
        entry: the task entry it comes from, for the message.

    `env_id` may have the form `module:EnvId`; the module is imported first.

    Raises:
        TaskError: if the module cannot be imported or the id is unknown.
    """
    module, bare_id = split_module(env_id)
    if module is not None:
        import_env_modules([module])
    register_namespace(bare_id)
    if bare_id in gym.registry:
        return
    close = difflib.get_close_matches(bare_id, all_ids(), n=3)
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    raise TaskError(
        f"unknown Gymnasium id {bare_id!r} in task entry {entry!r}; {hint}Ids come from "
        "gymnasium.registry; ALE/*, MinAtar/*, MiniGrid-* and BabyAI-* ids are registered "
        "automatically, and gym:<module>:<EnvId> imports <module> first"
    )


def default_name(env_id: str) -> str:
    """The id without module, namespace and version: `ALE/Pong-v5` -> `Pong`."""
    bare_id = split_module(env_id)[1]
    try:
        return parse_env_id(bare_id)[1]
    except gym.error.Error:
        return bare_id


def make_gym_task(
    env_id: str, name: str, kwargs: dict[str, Any], evaluation: bool = False
) -> gym.Env:
    """Makes the env of a `gym:<id>` task; the evaluation variant is the same env."""
    bare_id = split_module(env_id)[1]
    register_namespace(bare_id)
    env = make_gym(env_id, name, kwargs)
    wrap = NAMESPACE_WRAPPERS.get(namespace_of(bare_id) or "")
    return adapt_observations(wrap(env) if wrap else env)


def build_gym(env_id: str, name: str | None, kwargs: dict[str, Any]) -> TaskSpec:
    """Builds the task of the entry `gym:<env_id>`.

    Args:
        env_id: a registered Gymnasium id, or `module:EnvId`.
        name: the task name, or None for the id without module, namespace and version.
        kwargs: keyword arguments for `gym.make`.

    Returns:
        The TaskSpec (without `source`).

    Raises:
        TaskError: if the id is unknown, the kwargs are rejected or the spaces unsupported.
    """
    check_gym_id(env_id, f"gym:{env_id}")
    name = name or default_name(env_id)
    return build_spec(name, env_id, functools.partial(make_gym_task, env_id, name, dict(kwargs)))
