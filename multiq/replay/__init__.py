"""Replay: one circular buffer per task name with vectorised n-step sampling (`buffers`), and
frame-stacked storage that keeps each frame once (`frames`)."""

from typing import Any

from multiq.moved import forward_attribute


def __getattr__(name: str) -> Any:
    """0.1's `multiq.replay` module lives on in `multiq.replay.buffers` (removed in 0.3)."""
    return forward_attribute(__name__, "multiq.replay.buffers", name)
