"""Encoders chosen by observation space: MLP (vectors), MinAtar conv (small grids), Nature CNN.

Each encoder is split into an *input layer* (the only part that sees the raw observation, so it can
be per-task when channel counts differ) and a *body* that every task can share. Their widths are
config keys (`EncoderWidths`): the MLP has `mlp_layers` hidden layers of `hidden_size` units (the
first is the input layer), the MinAtar conv `conv_filters` 3x3 filters before a `hidden_size`
dense layer, and the Nature CNN a `cnn_hidden_size` dense layer after its fixed conv stack.

With `dropout` > 0 each ReLU of a body (the shared trunk's hidden layers) is a `ReLUDropout`, a
parameter-free module at the same index, so the state_dict keys are those of a net without
dropout (a source pre-trained with dropout loads into a target without, and back). Its dropout
is off unless switched on (`dropout_active`): only the learner's online forward of an update
turns it on, so acting, evaluation and TD targets never see it, whatever `train()`/`eval()`
mode the net is in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from multiq.config.views import ConfigView, declared
from multiq.errors import ConfigError, TaskError


@dataclass(frozen=True)
class EncoderWidths(ConfigView):
    """The encoders' widths, named as their config keys (``multiq config mlp_layers`` and so on);
    the defaults are the keys' declared ones, which give the nets of Young & Tian 2019 (MinAtar)
    and Mnih et al. 2015 (Nature CNN).

    Attributes:
        hidden_size: units of each MLP hidden layer and of the MinAtar net's dense layer.
        mlp_layers: hidden layers of the MLP, the input layer included (1: no shared body).
        conv_filters: filters of the MinAtar net's 3x3 convolution.
        cnn_hidden_size: units of the Nature CNN's dense layer.
        dropout: dropout probability after each hidden layer of a body (0: plain ReLUs).

    Raises:
        ConfigError: a width below 1 or a dropout outside [0, 1) (widths built without a
            `Config`, which checks its keys).
    """

    hidden_size: int = declared("hidden_size")
    mlp_layers: int = declared("mlp_layers")
    conv_filters: int = declared("conv_filters")
    cnn_hidden_size: int = declared("cnn_hidden_size")
    dropout: float = declared("dropout")

    def __post_init__(self) -> None:
        small = {k: v for k, v in asdict(self).items() if k != "dropout" and v < 1}
        if small:
            raise ConfigError(f"encoder widths must be >= 1, got {small}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


class ToFloat(nn.Module):
    """Casts compact observations (bool, uint8) to float32 and scales uint8 values to [0, 1]."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float()
        return x * self.scale if self.scale != 1.0 else x


class ReLUDropout(nn.ReLU):
    """ReLU, then dropout with probability `p` while `active` (False unless `dropout_active`
    switches it on); no parameters, so it can stand where a plain ReLU stood."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.active = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        return nn.functional.dropout(x, self.p, training=True) if self.active else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _relu(widths: EncoderWidths) -> nn.Module:
    """A body's activation: ReLU, with dropout after it when `widths.dropout` > 0."""
    return ReLUDropout(widths.dropout) if widths.dropout > 0 else nn.ReLU()


@contextmanager
def dropout_active(net: nn.Module, active: bool = True) -> Iterator[None]:
    """Switches the `ReLUDropout` modules of `net` on (or off) inside the block; afterwards
    they are off again. It walks the net's modules each time, so callers skip it where the
    net was built with dropout 0."""
    modules = [m for m in net.modules() if isinstance(m, ReLUDropout)]
    for module in modules:
        module.active = active
    try:
        yield
    finally:
        for module in modules:
            module.active = False


@dataclass(frozen=True)
class EncoderFamily:
    """How to encode one kind of observation space.

    Attributes:
        name: short name shown in messages.
        matches: whether this family handles a Box space.
        input_layer: `(space, widths) -> module` mapping `[B, *obs_shape]` to the body input.
        body: `(space, widths) -> (module, feature_dim)` mapping the input layer's output to
            `[B, feature_dim]`; its input shape must not depend on the channel count, so tasks
            that differ only in channels can share it.
        body_key: what must be equal between tasks for them to share one body.
    """

    name: str
    matches: Callable[[gym.spaces.Box], bool]
    input_layer: Callable[[gym.spaces.Box, EncoderWidths], nn.Module]
    body: Callable[[gym.spaces.Box, EncoderWidths], tuple[nn.Sequential, int]]
    body_key: Callable[[gym.spaces.Box], tuple]


def _scale(space: gym.spaces.Box) -> float:
    """1 / the largest value of a uint8 space (255 for pixels, 10 for MiniGrid indices), else 1."""
    high = float(np.max(space.high))
    return 1.0 / high if space.dtype == np.uint8 and high > 1 else 1.0


def _mlp_input(space: gym.spaces.Box, widths: EncoderWidths) -> nn.Module:
    """[B, obs_dim] -> [B, hidden_size]: the MLP's first hidden layer."""
    hidden = widths.hidden_size
    return nn.Sequential(ToFloat(_scale(space)), nn.Linear(space.shape[0], hidden), nn.ReLU())


def _mlp_body(space: gym.spaces.Box, widths: EncoderWidths) -> tuple[nn.Sequential, int]:
    """[B, hidden_size] -> [B, hidden_size]: the other `mlp_layers - 1` hidden layers (none: an
    empty Sequential, the identity)."""
    hidden = widths.hidden_size
    layers = [(nn.Linear(hidden, hidden), _relu(widths)) for _ in range(widths.mlp_layers - 1)]
    return nn.Sequential(*(m for layer in layers for m in layer)), hidden


def _minatar_input(space: gym.spaces.Box, widths: EncoderWidths) -> nn.Module:
    """[B, C, H, W] -> [B, conv_filters, H - 2, W - 2]: the 3x3 convolution (Young & Tian 2019)."""
    channels = space.shape[0]
    conv = nn.Conv2d(channels, widths.conv_filters, 3)
    return nn.Sequential(ToFloat(_scale(space)), conv, nn.ReLU())


def _minatar_body(space: gym.spaces.Box, widths: EncoderWidths) -> tuple[nn.Sequential, int]:
    """[B, conv_filters, H - 2, W - 2] -> [B, hidden_size]: flatten, one dense layer."""
    _, height, width = space.shape
    flat = widths.conv_filters * (height - 2) * (width - 2)
    dense = nn.Linear(flat, widths.hidden_size)
    return nn.Sequential(nn.Flatten(), dense, _relu(widths)), widths.hidden_size


def _nature_input(space: gym.spaces.Box, widths: EncoderWidths) -> nn.Module:
    """[B, C, H, W] uint8 -> [B, 32, H', W']: the first 8x8 stride-4 convolution."""
    channels = space.shape[0]
    return nn.Sequential(ToFloat(_scale(space)), nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU())


def _nature_body(space: gym.spaces.Box, widths: EncoderWidths) -> tuple[nn.Sequential, int]:
    """[B, 32, H', W'] -> [B, cnn_hidden_size]: two more convolutions and the dense layer
    (Mnih et al. 2015)."""
    convs = nn.Sequential(
        nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten()
    )
    with torch.no_grad():
        first = nn.Conv2d(1, 32, 8, stride=4)
        flat = convs(first(torch.zeros(1, 1, *space.shape[1:]))).shape[1]
    dense = nn.Linear(flat, widths.cnn_hidden_size)
    return nn.Sequential(convs, dense, _relu(widths)), widths.cnn_hidden_size


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
