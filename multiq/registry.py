"""Name -> class registries (schemes, balancers, schedules): one lookup with a helpful error."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeVar

from multiq.errors import ConfigError

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, kind: str, plural: str) -> T:
    """`registry[name]`.

    Args:
        registry: names to entries.
        name: the requested name.
        kind: what the name is, for the message (e.g. ``"balancer"``, ``"task_schedule"``).
        plural: what the registry holds, for the message (e.g. ``"balancers"``).

    Raises:
        ConfigError: for an unknown name, naming the closest valid one and all of them.
    """
    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(name, list(registry), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"unknown {kind} {name!r}; {hint}available {plural}: {sorted(registry)}")
