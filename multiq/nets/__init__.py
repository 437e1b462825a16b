"""Q-networks for many tasks: encoders, sharing schemes, heads; schemes chosen by name."""

from __future__ import annotations

import difflib

from multiq.errors import ConfigError
from multiq.nets.base import MultiTaskQNet, task_ids_for
from multiq.nets.independent import IndependentQNet
from multiq.nets.shared import SharedQNet
from multiq.tasks.spec import TaskSet

SCHEMES: dict[str, type[MultiTaskQNet]] = {
    "independent": IndependentQNet,
    "shared": SharedQNet,
}


def build_qnet(
    scheme: str, tasks: TaskSet, hidden_size: int = 128, dueling: bool = False
) -> MultiTaskQNet:
    """Builds the Q-network of a sharing scheme from the registry."""
    if scheme not in SCHEMES:
        close = difflib.get_close_matches(scheme, list(SCHEMES), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown scheme {scheme!r}; {hint}available schemes: {sorted(SCHEMES)}")
    return SCHEMES[scheme](tasks, hidden_size=hidden_size, dueling=dueling)


__all__ = ["SCHEMES", "MultiTaskQNet", "build_qnet", "task_ids_for"]
