"""What an env returns, checked against its declared spaces: cheap enough for every step.

An env that breaks its declared spaces would otherwise fail deep inside multiq's copying
(``could not broadcast input array from shape (5,) into shape (4,)``) or, worse, be stored cast
without a word. `StepCheck` tells what is wrong with one env's step or reset; `TaskEnvs` turns
that into the EnvError an env that raises gets (task, env, what; the collector adds the step and
writes a checkpoint), so every backend that steps envs through `TaskEnvs` (in process, the
subprocess workers, the async collector's child) checks the same way. EnvPool's Atari envs
(`multiq.envs.pool`) return arrays EnvPool itself shapes; only the bounds watch, which
`MultiTaskEnvs` runs for every backend, applies to them.

Rules (when all is well, one chain of type, shape and dtype comparisons: a few hundred
nanoseconds per env step on a quiet core):

- **Observation**: an array (or what `np.asarray` makes one) of exactly the declared shape,
  whose dtype stores as the declared one without changing kind: bool anywhere, integers as
  integers or floats, floats as floats (float64 -> float32 is fine; float -> uint8 is not).
- **Reward**: a real number (Python or NumPy int/float, or a 0-d numeric array).
- **terminated / truncated**: bools (Python or NumPy, or a 0-d bool array).
- **Bounds**: values outside a Box's `low`/`high` stay accepted (many real envs step past
  them) and are logged once per task (`BoundsWatch`, which looks at every 8th vector step).
"""

from __future__ import annotations

import logging
import numbers
from typing import Any

import gymnasium as gym
import numpy as np

log = logging.getLogger(__name__)

# dtype kind stored -> the dtype kinds of values it takes without changing their kind
STORABLE_KINDS = {"b": "b", "u": "biu", "i": "biu", "f": "biuf"}
FAST_REWARDS = frozenset({float, int, np.float32, np.float64, np.int64, np.int32})
FLAGS = frozenset({bool, np.bool_})
BOUNDS_EVERY = 8  # vector steps per comparison of observations with their Box bounds


def _kind_fits(value: np.dtype, declared: np.dtype) -> bool:
    return value.kind in STORABLE_KINDS.get(declared.kind, declared.kind)


class StepCheck:
    """Checks one env's observations, rewards and flags against its declared observation space.

    Each method returns None when all is well, else what is wrong, as a phrase for a message
    ("its observation has shape (5,) ...").

    Args:
        space: the env's declared observation space (its `shape` and `dtype` are used).
    """

    def __init__(self, space: gym.Space):
        self.shape = tuple(space.shape or ())
        self.dtype = np.dtype(space.dtype)
        self._fits = {self.dtype}  # dtypes seen that store as the declared one

    def observation(self, obs: Any) -> str | None:
        """What is wrong with one observation (None: nothing)."""
        if type(obs) is np.ndarray and obs.shape == self.shape and obs.dtype in self._fits:
            return None
        return self._observation_problem(obs)

    def step(self, result: Any) -> str | None:
        """What is wrong with what one `env.step` returned (None: nothing)."""
        if type(result) is tuple and len(result) == 5:  # the usual case, in one test
            obs, reward, terminated, truncated, _ = result
            if (
                type(reward) in FAST_REWARDS
                and type(terminated) in FLAGS
                and type(truncated) in FLAGS
                and type(obs) is np.ndarray
                and obs.shape == self.shape
                and obs.dtype in self._fits
            ):
                return None
        return self._step_problem(result)

    def _step_problem(self, result: Any) -> str | None:
        if not isinstance(result, (tuple, list)) or len(result) != 5:
            returned = (
                f"{len(result)} values"
                if isinstance(result, (tuple, list))
                else f"a {type(result).__name__}"
            )
            return (
                f"its step returned {returned}, not Gymnasium's five (observation, reward, "
                "terminated, truncated, info)"
            )
        obs, reward, terminated, truncated, _ = result
        if not is_real(reward):
            return f"its reward {reward!r} ({type(reward).__name__}) is not a real number"
        for what, flag in (("terminated", terminated), ("truncated", truncated)):
            if not is_bool(flag):
                return f"its {what} flag {flag!r} ({type(flag).__name__}) is not a bool"
        return self.observation(obs)

    def _observation_problem(self, obs: Any) -> str | None:
        try:
            array = np.asarray(obs)
        except Exception as error:  # a ragged sequence, an object numpy cannot take
            return f"its observation ({type(obs).__name__}) is not an array: {error}"
        if array.shape != self.shape:
            return (
                f"its observation has shape {array.shape}, but its observation space declares "
                f"{self.shape}"
            )
        if not _kind_fits(array.dtype, self.dtype):
            return (
                f"its observation has dtype {array.dtype}, which its observation space's "
                f"{self.dtype} cannot hold"
            )
        if type(obs) is np.ndarray:
            self._fits.add(obs.dtype)
        return None


def is_real(value: Any) -> bool:
    """Whether `value` is a real number: a Python or NumPy int/float, or a 0-d numeric array."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "biuf"
    return isinstance(value, numbers.Real)


def is_bool(value: Any) -> bool:
    """Whether `value` is a bool: Python's, NumPy's, or a 0-d bool array."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind == "b"
    return isinstance(value, (bool, np.bool_))


class BoundsWatch:
    """Logs, once per task and process, observations outside the task's declared Box bounds.

    The log is advice, not a check: every `BOUNDS_EVERY`-th vector step is compared (the first
    one included; a comparison costs what several env steps' checks do), so a value outside
    the bounds for one step only may go unnoticed. Bounds a value of the space's dtype cannot
    leave (a bool Box, uint8 in [0, 255], floats in [-inf, inf]) are never compared; after
    the first warning the task is not watched.

    Args:
        task: the task's name (for the message).
        space: its declared observation space; a space other than a Box is not watched.
    """

    logged: set[str] = set()  # tasks warned about in this process (once per task)

    def __init__(self, task: str, space: gym.Space):
        self.task = task
        self.steps = 0
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None
        if isinstance(space, gym.spaces.Box) and not _covers_dtype(space):
            self.low, self.high = space.low, space.high

    def check(self, obs: np.ndarray) -> None:
        """Logs the first out-of-bounds value of `obs` [n_envs, *obs_shape] for this task."""
        self.steps += 1
        if self.steps % BOUNDS_EVERY != 1 or self.low is None or self.high is None:
            return
        if self.task in BoundsWatch.logged:
            self.low = self.high = None
            return
        below, above = obs < self.low, obs > self.high
        if not (below.any() or above.any()):
            return
        BoundsWatch.logged.add(self.task)
        env, *entry = (int(k) for k in np.argwhere(below | above)[0])
        log.warning(
            "task %r: env %d returned an observation outside its Box bounds (entry %s: %s, "
            "bounds [%s, %s]); multiq takes it as it is (logged once per task)",
            self.task, env, tuple(entry), obs[env][tuple(entry)],
            self.low[tuple(entry)], self.high[tuple(entry)],
        )  # fmt: skip
        self.low = self.high = None


def _covers_dtype(space: gym.spaces.Box) -> bool:
    """Whether every value of the Box's dtype lies within its bounds (nothing to watch)."""
    dtype = np.dtype(space.dtype)
    if dtype.kind == "b":
        return True
    limits: Any = np.iinfo if dtype.kind in "iu" else np.finfo
    info = limits(dtype)
    return bool(np.all(space.low <= info.min) and np.all(space.high >= info.max))
