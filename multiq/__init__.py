"""multiq: multi-task, transfer and meta reinforcement learning with DQN-family agents.

The public API is flat: `from multiq import MultiTaskDQN, Config, make_taskset, Callback`.
Names load lazily, so `import multiq.report` never pulls in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from multiq import moved

__version__ = "0.2.0"

_EXPORTS = {
    "MultiTaskDQN": "multiq.api",
    "Config": "multiq.config",
    "Callback": "multiq.train.callbacks",
    "CallbackList": "multiq.train.callbacks",
    "make_taskset": "multiq.tasks",
    "describe_suites": "multiq.tasks",
    "TaskSet": "multiq.tasks",
    "TaskSpec": "multiq.tasks",
    "MultiqError": "multiq.errors",
    "ConfigError": "multiq.errors",
    "TaskError": "multiq.errors",
    "CheckpointError": "multiq.errors",
}

__all__ = ["__version__", *_EXPORTS]

moved.install()


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'multiq' has no attribute {name!r}")
