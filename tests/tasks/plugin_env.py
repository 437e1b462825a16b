"""A tiny env module for the plugin tests: importing it registers two ids.

`MultiqPluginTest-v0` has Box observations; `MultiqPluginDict-v0` has a Dict space without
an `image` key, which multiq must refuse.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

EPISODE_STEPS = 5


class CountingEnv(gym.Env):
    """Observes the step count; every episode lasts EPISODE_STEPS steps."""

    observation_space = gym.spaces.Box(0.0, EPISODE_STEPS, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.steps = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        self.steps += 1
        return self._obs(), float(action), self.steps >= EPISODE_STEPS, False, {}

    def _obs(self) -> Any:
        return np.array([self.steps], dtype=np.float32)


class DictEnv(CountingEnv):
    """The same env with its observation inside a Dict."""

    observation_space = gym.spaces.Dict({"position": CountingEnv.observation_space})

    def _obs(self) -> Any:
        return {"position": super()._obs()}


gym.register("MultiqPluginTest-v0", entry_point=CountingEnv)
gym.register("MultiqPluginDict-v0", entry_point=DictEnv)
