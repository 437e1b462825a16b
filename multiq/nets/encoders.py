"""Encoders chosen by observation space: MLP (vectors), MinAtar conv (small grids), Nature CNN.

Each encoder is split into an *input layer* (the only part that sees the raw observation, so it can
be per-task when channel counts differ) and a *body* that every task can share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from multiq.errors import TaskError

NATURE_HIDDEN_SIZE = 512  # Mnih et al. 2015 use 512 units after the conv stack.


class ToFloat(nn.Module):
    """Casts compact observations (bool, uint8) to float32 and scales uint8 values to [0, 1]."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float()
        return x * self.scale if self.scale != 1.0 else x


@dataclass(frozen=True)
class EncoderFamily:
    """How to encode one kind of observation space.

    Attributes:
        name: short name shown in messages.
        matches: whether this family handles a Box space.
        input_layer: `(space, hidden_size) -> module` mapping `[B, *obs_shape]` to the body input.
        body: `(space, hidden_size) -> (module, feature_dim)`; its input shape must not depend on
            the channel count, so tasks that differ only in channels can share it.
        body_key: what must be equal between tasks for them to share one body.
    """

    name: str
    matches: Callable[[gym.spaces.Box], bool]
    input_layer: Callable[[gym.spaces.Box, int], nn.Module]
    body: Callable[[gym.spaces.Box, int], tuple[nn.Sequential, int]]
    body_key: Callable[[gym.spaces.Box], tuple]


def _scale(space: gym.spaces.Box) -> float:
    """1 / the largest value of a uint8 space (255 for pixels, 10 for MiniGrid indices), else 1."""
    high = float(np.max(space.high))
    return 1.0 / high if space.dtype == np.uint8 and high > 1 else 1.0


def _mlp_input(space: gym.spaces.Box, hidden: int) -> nn.Module:
    return nn.Sequential(ToFloat(_scale(space)), nn.Linear(space.shape[0], hidden), nn.ReLU())


def _mlp_body(space: gym.spaces.Box, hidden: int) -> tuple[nn.Sequential, int]:
    return nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU()), hidden


def _minatar_input(space: gym.spaces.Box, hidden: int) -> nn.Module:
    channels = space.shape[0]
    return nn.Sequential(ToFloat(_scale(space)), nn.Conv2d(channels, 16, 3), nn.ReLU())


def _minatar_body(space: gym.spaces.Box, hidden: int) -> tuple[nn.Sequential, int]:
    _, height, width = space.shape
    flat = 16 * (height - 2) * (width - 2)
    return nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU()), hidden


def _nature_input(space: gym.spaces.Box, hidden: int) -> nn.Module:
    channels = space.shape[0]
    return nn.Sequential(ToFloat(_scale(space)), nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU())


def _nature_body(space: gym.spaces.Box, hidden: int) -> tuple[nn.Sequential, int]:
    convs = nn.Sequential(
        nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten()
    )
    with torch.no_grad():
        first = nn.Conv2d(1, 32, 8, stride=4)
        flat = convs(first(torch.zeros(1, 1, *space.shape[1:]))).shape[1]
    body = nn.Sequential(convs, nn.Linear(flat, NATURE_HIDDEN_SIZE), nn.ReLU())
    return body, NATURE_HIDDEN_SIZE


def _is_image(space: gym.spaces.Box, min_side: int, max_side: int) -> bool:
    sides = space.shape[1:]
    return len(space.shape) == 3 and min_side <= min(sides) and max(sides) <= max_side


def _is_vector(space: gym.spaces.Box) -> bool:
    return len(space.shape) == 1


def _no_key(space: gym.spaces.Box) -> tuple:
    return ()


def _image_key(space: gym.spaces.Box) -> tuple:
    return tuple(space.shape[1:])


# module-level functions and partials, not lambdas: a network pickles (e.g. to a child process)
ENCODERS: dict[str, EncoderFamily] = {
    "mlp": EncoderFamily("mlp", _is_vector, _mlp_input, _mlp_body, _no_key),
    "minatar": EncoderFamily(
        "minatar",
        partial(_is_image, min_side=3, max_side=32),
        _minatar_input,
        _minatar_body,
        _image_key,
    ),
    "nature": EncoderFamily(
        "nature",
        partial(_is_image, min_side=36, max_side=10_000),
        _nature_input,
        _nature_body,
        _image_key,
    ),
}

SUPPORTED = (
    "1-D Box vectors (MLP), channel-first images (C, H, W) with 3 <= H, W <= 32 (MinAtar conv) "
    "and with H, W >= 36 (Nature CNN, e.g. 84x84 Atari frames)"
)


def encoder_for(space: gym.spaces.Space, task_name: str) -> EncoderFamily:
    """Returns the encoder family for a task's observation space, or raises TaskError."""
    if isinstance(space, gym.spaces.Box):
        for family in ENCODERS.values():
            if family.matches(space):
                return family
    raise TaskError(
        f"task {task_name!r} has observation space {space}, which no encoder handles; "
        f"supported: {SUPPORTED}"
    )
