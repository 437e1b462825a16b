"""Callbacks, as in Stable-Baselines3: hooks the trainer calls at fixed points of the loop.

A hook sees the trainer through `TrainerView` (a Protocol): where the run stands, its folder, and a
way to evaluate the current policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from multiq.phases.state import TrainState


class TrainerView(Protocol):
    """What a callback may read of the trainer that calls it."""

    state: TrainState
    run_dir: Path

    def evaluate(self, episodes: int, epsilon: float) -> dict[str, dict[str, Any]]:
        """Task name -> {return_mean, return_std, episodes} of the current policy."""
        ...


class Callback:
    """Override any hook. `on_step` runs after every vector step; return False to stop early."""

    def on_training_start(self, trainer: TrainerView) -> None:
        """Called once before the first step."""

    def on_step(self, trainer: TrainerView) -> bool:
        """Called after every vector step; `trainer.state.env_steps` counts steps per task."""
        return True

    def on_evaluation(self, trainer: TrainerView, results: dict[str, dict[str, Any]]) -> None:
        """Called after each evaluation with task name -> {return_mean, return_std, episodes}."""

    def on_training_end(self, trainer: TrainerView) -> None:
        """Called once after the last step (also after an early stop)."""


class CallbackList(Callback):
    """Runs several callbacks in order; stops when any `on_step` returns False."""

    def __init__(self, callbacks: Iterable[Callback] = ()):
        self.callbacks = list(callbacks)

    def on_training_start(self, trainer: TrainerView) -> None:
        for callback in self.callbacks:
            callback.on_training_start(trainer)

    def on_step(self, trainer: TrainerView) -> bool:
        return all([callback.on_step(trainer) for callback in self.callbacks])

    def on_evaluation(self, trainer: TrainerView, results: dict[str, dict[str, Any]]) -> None:
        for callback in self.callbacks:
            callback.on_evaluation(trainer, results)

    def on_training_end(self, trainer: TrainerView) -> None:
        for callback in self.callbacks:
            callback.on_training_end(trainer)


def as_callback(callbacks: Callback | Iterable[Callback] | None) -> CallbackList:
    """Accepts one callback, a list of them, or None."""
    if callbacks is None:
        return CallbackList()
    if isinstance(callbacks, Callback):
        return CallbackList([callbacks])
    return CallbackList(callbacks)
