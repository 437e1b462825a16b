"""Which keys differ between a run's saved config and the config it resumes with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multiq.config.keys import KEYS

KEYS_A_RESUME_CHANGES = tuple(name for name, key in KEYS.items() if key.resume_may_change)
"""How a run is executed, not what it learns (device, threads, collectors, the budget, ...)."""


def config_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Keys whose values differ between two `Config.to_dict()`s, leaving out those a resume
    may change (`KEYS_A_RESUME_CHANGES`)."""
    return sorted(
        key
        for key in set(saved) | set(current)
        if key not in KEYS_A_RESUME_CHANGES and saved.get(key) != current.get(key)
    )
