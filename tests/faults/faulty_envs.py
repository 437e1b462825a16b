"""Envs that fail on purpose, registered as Gymnasium ids for the fault-injection tests.

`FaultyCartPole-v0` is CartPole-v1 that, from its `at_step`-th step (counted over the whole
process, every instance together), returns a NaN observation (`fault="nan_obs"`), a NaN reward
(`"nan_reward"`) or raises (`"raise"`), `times` times in all (then it behaves). Importing this
module registers the id; subprocess tests import it before calling `multiq.cli.main`.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

FAULTY_ID = "FaultyCartPole-v0"
_steps_taken = {"count": 0, "faults": 0}


class FaultyCartPole(gym.Wrapper):
    """CartPole-v1 with an injected fault (see the module docstring)."""

    def __init__(self, fault: str = "raise", at_step: int = 100, times: int = 1, **kwargs):
        super().__init__(gym.make("CartPole-v1", **kwargs))
        self.fault, self.at_step, self.times = fault, at_step, times

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        _steps_taken["count"] += 1
        due = _steps_taken["count"] >= self.at_step and _steps_taken["faults"] < self.times
        if not due:
            return obs, reward, terminated, truncated, info
        _steps_taken["faults"] += 1
        if self.fault == "raise":
            raise RuntimeError("injected env failure")
        if self.fault == "nan_obs":
            obs = np.full_like(obs, np.nan)
        elif self.fault == "nan_reward":
            reward = float("nan")
        return obs, reward, terminated, truncated, info


def reset_counts() -> None:
    """Starts the process-wide step and fault counts again (between in-process tests)."""
    _steps_taken.update(count=0, faults=0)


if FAULTY_ID not in gym.registry:
    gym.register(FAULTY_ID, entry_point=FaultyCartPole)
