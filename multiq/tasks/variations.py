"""The envs behind the task families: parameters drawn per task, and the wrappers that set them.

Each family here has a `sample_*(rng, options) -> params` that draws one task's parameters
and a `build_*(params, name, options) -> TaskSpec`; `multiq.tasks.families` puts them in its
registry. Every `make_env` is a `functools.partial` of module-level functions, so it pickles
for subprocess vector envs.

- Physics (`cartpole-physics`, `acrobot-physics`): `Physics` sets the drawn attributes on the
  unwrapped env's instance (class constants stay untouched) and recomputes the derived ones:
  CartPole's `total_mass` and `polemass_length`; Acrobot's centres of mass, put at the middle
  of each link (uniform rods; Acrobot's dynamics read `LINK_LENGTH_1` but not
  `LINK_LENGTH_2`, which acts only through `LINK_COM_POS_2`).
- MinAtar variants: `sticky_action_prob` and `difficulty_ramping` go to MinAtar's env
  (Breakout and Freeway ignore ramping, so the default game is Asterix).
- MiniGrid layouts: `FixedLayout` resets the env with the task's layout seed every time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import RecordConstructorArgs, seeding

from multiq.errors import TaskError
from multiq.tasks import minatar
from multiq.tasks.gym_ids import build_spec, check_gym_id, make_gym, make_gym_task
from multiq.tasks.spec import TaskSpec

if TYPE_CHECKING:
    from gymnasium.envs.classic_control import AcrobotEnv, CartPoleEnv

# Uniform ranges of the physics families: attribute of the unwrapped env -> [low, high].
CARTPOLE_RANGES: dict[str, list[float]] = {
    "length": [0.25, 1.0],  # gymnasium's `length` is half the pole's length (default 0.5)
    "masspole": [0.05, 0.5],
    "masscart": [0.5, 2.0],
    "force_mag": [5.0, 15.0],
}
ACROBOT_RANGES: dict[str, list[float]] = {
    "LINK_LENGTH_1": [0.5, 1.5],
    "LINK_LENGTH_2": [0.5, 1.5],
    "LINK_MASS_1": [0.5, 1.5],
    "LINK_MASS_2": [0.5, 1.5],
}
MINATAR_OPTIONS: dict[str, Any] = {
    "game": "Asterix",
    "full_action_set": False,
    "sticky_action_prob": [0.0, 0.25],
    "ramping_prob": 0.5,  # the chance that a task has difficulty ramping on
}
MINIGRID_OPTIONS: dict[str, Any] = {"env_id": "MiniGrid-DoorKey-6x6-v0"}
LAYOUT_SEEDS = 2**31  # layout seeds are drawn from [0, LAYOUT_SEEDS)


class Physics(gym.Wrapper, RecordConstructorArgs):
    """Sets physical parameters on the unwrapped env's instance, then recomputes derived ones.

    Records its arguments (Gymnasium's `RecordConstructorArgs`), so `env.spec.make()` rebuilds
    the same task.
    """

    def __init__(self, env: gym.Env, params: Mapping[str, float], derive: Callable[[Any], None]):
        RecordConstructorArgs.__init__(self, params=dict(params), derive=derive)
        gym.Wrapper.__init__(self, env)
        for key, value in params.items():
            if not hasattr(env.unwrapped, key):
                raise TaskError(f"{type(env.unwrapped).__name__} has no parameter {key!r}")
            setattr(env.unwrapped, key, value)
        derive(env.unwrapped)


def derive_cartpole(env: CartPoleEnv) -> None:
    """Recomputes CartPole's attributes that its constructor derives from the masses and length."""
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length


def derive_acrobot(env: AcrobotEnv) -> None:
    """Puts each Acrobot link's centre of mass at its middle."""
    env.LINK_COM_POS_1 = env.LINK_LENGTH_1 / 2
    env.LINK_COM_POS_2 = env.LINK_LENGTH_2 / 2


def sample_uniform(keys: Sequence[str], rng: np.random.Generator, options: Mapping) -> dict:
    """One value per key, uniform in the key's `[low, high]` option, drawn in `keys` order."""
    return {key: float(rng.uniform(*options[key])) for key in keys}


def make_physics_env(
    env_id: str,
    name: str,
    params: Mapping[str, float],
    derive: Callable[[Any], None],
    evaluation: bool = False,
) -> gym.Env:
    """Makes `env_id` with `params` set by `Physics`; evaluation uses the same env."""
    return Physics(make_gym(env_id, name, {}), params, derive)


def build_physics(
    env_id: str,
    derive: Callable[[Any], None],
    params: dict[str, Any],
    name: str,
    options: Mapping[str, Any],
) -> TaskSpec:
    """The task of `env_id` with physical parameters `params` (a family's `build`)."""
    make_env = functools.partial(make_physics_env, env_id, name, dict(params), derive)
    return build_spec(name, env_id, make_env)


def sample_minatar(rng: np.random.Generator, options: Mapping[str, Any]) -> dict[str, Any]:
    """A sticky-action probability in its range and difficulty ramping on or off."""
    return {
        "sticky_action_prob": float(rng.uniform(*options["sticky_action_prob"])),
        "difficulty_ramping": bool(rng.random() < options["ramping_prob"]),
    }


def build_minatar(params: dict[str, Any], name: str, options: Mapping[str, Any]) -> TaskSpec:
    """The MinAtar game of `options["game"]` with the task's sticky actions and ramping."""
    game_id = minatar.env_id(options["game"], options["full_action_set"])
    make_env = functools.partial(
        minatar.make_minatar,
        game_id,
        name,
        params["sticky_action_prob"],
        difficulty_ramping=params["difficulty_ramping"],
    )
    return build_spec(name, game_id, make_env)


class FixedLayout(gym.Wrapper, RecordConstructorArgs):
    """Makes every episode start from one layout.

    Rule: each reset calls the env's reset with `layout_seed`, whatever seed is passed in; a
    seed passed in then reseeds the env's RNG, which only matters for envs that draw random
    numbers during an episode. Records its arguments (`RecordConstructorArgs`), so
    `env.spec.make()` rebuilds the same task.
    """

    def __init__(self, env: gym.Env, layout_seed: int):
        RecordConstructorArgs.__init__(self, layout_seed=layout_seed)
        gym.Wrapper.__init__(self, env)
        self.layout_seed = layout_seed

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=self.layout_seed, options=options)
        if seed is not None:
            self.env.unwrapped.np_random = seeding.np_random(seed)[0]
        return obs, info


def sample_layout(rng: np.random.Generator, options: Mapping[str, Any]) -> dict[str, Any]:
    """One layout seed."""
    return {"layout_seed": int(rng.integers(LAYOUT_SEEDS))}


def make_layout_env(env_id: str, name: str, layout_seed: int, evaluation: bool = False) -> gym.Env:
    """Makes `env_id` (as `gym:<env_id>` would) fixed to one layout; evaluation is the same."""
    return FixedLayout(make_gym_task(env_id, name, {}), layout_seed)


def build_layout(params: dict[str, Any], name: str, options: Mapping[str, Any]) -> TaskSpec:
    """The env of `options["env_id"]` fixed to the layout of `params["layout_seed"]`."""
    env_id = options["env_id"]
    check_gym_id(env_id, "family:minigrid")
    make_env = functools.partial(make_layout_env, env_id, name, params["layout_seed"])
    return build_spec(name, env_id, make_env)
