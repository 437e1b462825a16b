"""``key=value`` overrides (CLI ``--set``): parsed into values a config then validates.

Values are read as int, else float, else YAML (``true``, ``null``, ``[a, b]``); values of text
keys (``scheme``, ``device``, ``tasks``) stay verbatim unless they are a YAML list. A dotted key
sets one entry of a mapping key: ``task_weights.Breakout=2.0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from multiq.config import convert
from multiq.config.convert import reject_unknown
from multiq.config.keys import KEYS
from multiq.config.yaml_io import load_yaml
from multiq.errors import ConfigError

_EXAMPLE = "e.g. learning_rate=1e-4 or task_weights.Breakout=2.0"
_TEXT_KEYS = frozenset(
    k for k, d in KEYS.items() if d.convert in (convert.to_str, convert.to_tasks)
)
_MAPPING_KEYS = tuple(
    k for k, d in KEYS.items() if d.convert in (convert.to_task_weights, convert.to_lr_scales)
)


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """The keys ``key=value`` overrides set and their parsed values, not yet validated (the
    config they go into validates them). A dotted key gives a mapping of the entries set.

    Raises:
        ConfigError: on a malformed override or an unknown key.
    """
    data: dict[str, Any] = {}
    for item in overrides:
        apply_override(data, item)
    return data


def apply_override(data: dict[str, Any], item: str) -> str:
    """Applies one ``key=value`` or ``mapping_key.entry=value`` override to `data` in place;
    returns the config key it sets."""
    key, sep, raw = str(item).partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r} must look like key=value, {_EXAMPLE}")
    name, dot, entry = key.partition(".")
    reject_unknown({name: None}, KEYS, "config key")
    if not dot:
        data[name] = _value(name, key, raw)
        return name
    entry = entry.strip()
    if name not in _MAPPING_KEYS or not entry:
        raise ConfigError(
            f"override {item!r}: a dotted key sets one entry of "
            f"{' or '.join(_MAPPING_KEYS)}, {_EXAMPLE}"
        )
    current = data.get(name)
    data[name] = {**(current if isinstance(current, Mapping) else {}), entry: _parse(key, raw)}
    return name


def _value(name: str, key: str, raw: str) -> Any:
    """Parses an override value; text keys keep the raw string unless it is a YAML list."""
    if name not in _TEXT_KEYS:
        return _parse(key, raw)
    try:
        value = _parse(key, raw)
    except ConfigError:
        return raw.strip()
    return value if isinstance(value, (list, dict)) else raw.strip()


def _parse(key: str, raw: str) -> Any:
    """Reads an override value as int, else float, else YAML."""
    text = raw.strip()
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return load_yaml(text, f"the value of {key}")
