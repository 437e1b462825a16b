"""Which torch device a run uses: the config's `device`, with ``auto`` resolved."""

from __future__ import annotations

import torch

from multiq.errors import ConfigError


def resolve_device(device: str) -> torch.device:
    """`auto` picks CUDA when available, else CPU.

    Raises:
        ConfigError: a CUDA or MPS device this machine does not have.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but CUDA is not available; use --device cpu or auto")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise ConfigError(
            f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device='mps' but Apple's MPS is not available here; use cpu or auto")
    return torch.device(device)
