"""An env that breaks its declared spaces on purpose, registered for the fault tests.

`BreaksSpaces-v0` declares 4-float observations in [-1, 1] and two actions; its episodes last
`episode` steps. From each instance's `at_step`-th step it breaks one rule (`way`):

- ``shape``: (5,) observations; ``dtype``: string observations; ``reward``: a string reward;
  ``flag``: an int `terminated`; ``tuple``: Gymnasium 0.21's four-value step;
- ``bounds``: observations of 2.0, outside the Box (allowed, logged once);
- ``plain``: nothing broken, but Python lists, ints and NumPy bools where arrays, floats and
  bools are usual (allowed).

Importing this module registers the id (the async collector's child imports it through the
`gym:broken_envs:BreaksSpaces-v0` form).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

BROKEN_ID = "BreaksSpaces-v0"
WAYS = ("shape", "dtype", "reward", "flag", "tuple", "bounds", "plain")


class BreaksSpaces(gym.Env):
    """4 float32 observations in [-1, 1] that break a rule from the `at_step`-th step."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, way: str = "shape", at_step: int = 50, episode: int = 20):
        assert way in WAYS, way
        self.way, self.at_step, self.episode = way, at_step, episode
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.steps, self.t = 0, 0

    def _obs(self) -> np.ndarray:
        return self.np_random.uniform(-1, 1, 4).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.steps += 1
        self.t += 1
        result = (self._obs(), 1.0, self.t >= self.episode, False, {})
        return self._break(*result) if self.steps >= self.at_step else result

    def _break(self, obs, reward, terminated, truncated, info):
        if self.way == "shape":
            obs = np.zeros(5, np.float32)
        elif self.way == "dtype":
            obs = np.array(["a"] * 4)
        elif self.way == "reward":
            reward = "1.0"
        elif self.way == "flag":
            terminated = int(terminated)
        elif self.way == "tuple":
            return obs, reward, terminated or truncated, info
        elif self.way == "bounds":
            obs = np.full(4, 2.0, np.float32)
        elif self.way == "plain":
            obs, reward, terminated = obs.tolist(), 1, np.bool_(terminated)
        return obs, reward, terminated, truncated, info


if BROKEN_ID not in gym.registry:
    gym.register(BROKEN_ID, entry_point=BreaksSpaces)
