"""Typed, validated run configuration: every key declared once, in its section.

- `keys`: the declarations (type, default, allowed values, section, meaning, defaults per
  observation family) on the fields of `ConfigKeys`, and `FAMILY_DEFAULTS` derived from them;
- `model`: `Config`, which validates them and builds configs from mappings, YAML and
  overrides;
- `declare`: how a key is declared; `names`: the registry names text keys may take;
  `convert`: type checks; `rules`: rules between keys; `changes`: the keys a resume may
  change; `overrides`: ``--set key=value``; `yaml_io`: the hardened YAML reader; `limits`:
  upper limits; `views`: the views of the config that the learner and the nets take; `help`:
  ``multiq config``.

The package imports only the standard library, PyYAML and `multiq.errors`: every other part of
multiq may import it, and a config is built and checked without torch. A run writes its config
with `multiq.runio.config_file.save_config`.
"""

from __future__ import annotations

from typing import Any

from multiq import moved
from multiq.config.changes import KEYS_A_RESUME_CHANGES, config_changes
from multiq.config.convert import reject_unknown
from multiq.config.keys import BASE_FAMILY, FAMILY_DEFAULTS, KEYS, SECTIONS, ConfigKeys
from multiq.config.limits import (
    MAX_EVAL_EPISODES,
    MAX_GRADIENT_STEPS,
    MAX_HIDDEN_SIZE,
    MAX_N_ENVS,
    MAX_NESTING_DEPTH,
    MAX_ROUTING_MODULES,
    MAX_SCHEDULE_WINDOW,
    MAX_SEED,
    MAX_TASK_EMBEDDING_DIM,
    MAX_YAML_NODES,
)
from multiq.config.model import CONFIG_KEYS, Config
from multiq.config.names import ENV_BACKEND_NAMES, LOGGERS
from multiq.config.overrides import parse_overrides

__all__ = [
    "BASE_FAMILY",
    "CONFIG_KEYS",
    "ENV_BACKEND_NAMES",
    "FAMILY_DEFAULTS",
    "KEYS",
    "KEYS_A_RESUME_CHANGES",
    "LOGGERS",
    "MAX_EVAL_EPISODES",
    "MAX_GRADIENT_STEPS",
    "MAX_HIDDEN_SIZE",
    "MAX_NESTING_DEPTH",
    "MAX_N_ENVS",
    "MAX_ROUTING_MODULES",
    "MAX_SCHEDULE_WINDOW",
    "MAX_SEED",
    "MAX_TASK_EMBEDDING_DIM",
    "MAX_YAML_NODES",
    "SECTIONS",
    "Config",
    "ConfigKeys",
    "broken_rule",
    "config_changes",
    "parse_overrides",
    "reject_unknown",
]


def broken_rule(key: str, value: Any) -> str | None:
    """What `value` must be for `key`, in words (e.g. ``>= 1``), when it breaks the key's bounds,
    choices or requirement; None when it passes. The value has the key's type."""
    return KEYS[key].broken(value)


def __getattr__(name: str) -> Any:
    """`CONFIG_FILE` of 0.1, now `multiq.runio.layout.CONFIG_FILE` (goes in 0.3)."""
    if name == "CONFIG_FILE":
        return moved.forward_attribute(__name__, "multiq.runio.layout", name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
