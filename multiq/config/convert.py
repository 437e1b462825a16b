"""Type checks of config values: each converter takes ``(key, value)`` and returns the value in
its canonical type (a plain, YAML-safe copy), or raises `ConfigError` naming the key and the type
it expected. Ranges and choices are checked after, from the key's declaration (`declare.Key`)."""

from __future__ import annotations

import difflib
import math
import numbers
import reprlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from multiq.config.limits import MAX_NESTING_DEPTH
from multiq.errors import ConfigError

Converter = Callable[[str, Any], Any]

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


def kind(value: Any) -> str:
    """The type name of `value`, for messages."""
    return type(value).__name__


def show(value: Any) -> str:
    """A short repr of `value` for messages (long strings and containers are abridged)."""
    try:
        return _REPR.repr(value)
    except ValueError:  # Python refuses to print ints of more than 4300 digits
        return f"<{kind(value)} too large to print>"


def type_error(key: str, expected: str, value: Any) -> ConfigError:
    """The error of a value of the wrong type."""
    return ConfigError(f"{key}: expected {expected}, got {show(value)} ({kind(value)})")


def reject_unknown(data: Mapping[Any, Any], valid: Iterable[str], what: str) -> None:
    """Raises naming the first unknown key of `data`, the closest valid key and all valid keys."""
    valid = tuple(valid)
    for name in data:
        if name in valid:
            continue
        close = difflib.get_close_matches(str(name), valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise ConfigError(f"unknown {what} {name!r}{hint} Valid keys: {', '.join(valid)}")


def to_int(key: str, value: Any) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise type_error(key, "an integer", value)


def to_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise type_error(key, "a number", value)
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{key}: expected a finite number, got {show(value)}")
    return number


def to_optional_float(key: str, value: Any) -> float | None:
    """A number, or null (None) for "not set"."""
    return None if value is None else to_float(key, value)


def to_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise type_error(key, "a bool (true or false)", value)
    return value


def to_switch(key: str, value: Any) -> bool | str:
    """A bool, or ``auto`` (decided at run time)."""
    if isinstance(value, bool) or value == "auto":
        return value
    raise type_error(key, "true, false or auto", value)


def to_str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise type_error(key, "a string", value)
    return value


def to_name(key: str, value: Any) -> str:
    """A string with more than blanks."""
    if not isinstance(value, str) or not value.strip():
        raise type_error(key, "a non-empty string", value)
    return value


def to_tasks(key: str, value: Any) -> str | list[str | dict[str, Any]]:
    """A suite or comma-separated ids, or a non-empty list of task entries (YAML-safe: env
    factories, classes and instances go to `MultiTaskDQN`/`make_taskset`, which record them)."""
    if isinstance(value, str):
        return to_name(key, value)
    _refuse_python_task(key, value)
    if not isinstance(value, (list, tuple)) or not value:
        raise type_error(key, "a string or a non-empty list of task entries", value)
    return [_to_task_entry(f"{key}[{i}]", entry) for i, entry in enumerate(value)]


_TASK_ENTRY_KEYS = ("id", "name", "kwargs")


def _refuse_python_task(key: str, value: Any) -> None:
    """Raises for an env factory, class or instance: a config holds plain data only."""
    if callable(value) or (hasattr(value, "step") and hasattr(value, "reset")):
        raise ConfigError(
            f"{key}: {show(value)} is a Python object (an env factory, class or instance), "
            "which a config cannot hold: pass it to MultiTaskDQN(tasks=...) or make_taskset, "
            "which record it as {id: factory:<module>:<name>} (or python:... when it cannot "
            "be imported)"
        )


def _to_task_entry(key: str, value: Any) -> str | dict[str, Any]:
    if isinstance(value, str):
        return to_name(key, value)
    _refuse_python_task(key, value)
    if not isinstance(value, Mapping):
        raise type_error(key, "a task id string or a mapping with keys id, name, kwargs", value)
    reject_unknown(value, _TASK_ENTRY_KEYS, f"{key} key")
    if "id" not in value:
        raise ConfigError(f"{key}: a task mapping needs an 'id', e.g. {{id: gym:CartPole-v1}}")
    _refuse_python_task(f"{key}.id", value["id"])
    entry = {"id": to_name(f"{key}.id", value["id"])}
    if "name" in value:
        entry["name"] = to_name(f"{key}.name", value["name"])
    if "kwargs" in value:
        if not isinstance(value["kwargs"], Mapping):
            raise type_error(f"{key}.kwargs", "a mapping of keyword arguments", value["kwargs"])
        entry["kwargs"] = _to_plain(f"{key}.kwargs", value["kwargs"])
    return entry


def _to_plain(key: str, value: Any, depth: int = 0) -> Any:
    """Copies nested data as YAML-safe types (tuples become lists, numpy scalars Python ones)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and not math.isnan(value):
        return float(value)
    if depth >= MAX_NESTING_DEPTH:  # also stops a list or mapping that contains itself
        raise ConfigError(f"{key}: nested deeper than {MAX_NESTING_DEPTH} levels")
    if isinstance(value, (list, tuple)):
        return [_to_plain(f"{key}[{i}]", v, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _to_plain(f"{key}.{k}", v, depth + 1) for k, v in value.items()}
    raise type_error(
        key, "plain data (null, bool, number, string, list, mapping with string keys)", value
    )


def to_task_weights(key: str, value: Any) -> dict[str, float] | None:
    """Null, or task name -> weight >= 0 with at least one weight > 0."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise type_error(key, "null or a mapping of task name to weight", value)
    weights = {
        to_name(f"{key} task name", name): to_float(f"{key}.{name}", w) for name, w in value.items()
    }
    for name, weight in weights.items():
        if weight < 0:
            raise ConfigError(f"{key}.{name} must be >= 0, got {weight!r}")
    if not any(w > 0 for w in weights.values()):
        raise ConfigError(f"{key}: at least one weight must be > 0, got {show(weights)}")
    return weights


def name_list(example: str) -> Converter:
    """A converter of null, one name or a list of non-empty names (`example` for messages)."""

    def convert(key: str, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise type_error(key, example, value)
        return [to_name(f"{key}[{i}]", v).strip() for i, v in enumerate(value)]

    return convert


def to_lr_scales(key: str, value: Any) -> dict[str, float] | None:
    """Null, or group pattern -> learning-rate multiplier > 0."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise type_error(key, "null or a mapping of group pattern to multiplier", value)
    scales = {to_name(f"{key} pattern", k): to_float(f"{key}.{k}", v) for k, v in value.items()}
    for pattern, scale in scales.items():
        if scale <= 0:
            raise ConfigError(f"{key}.{pattern} must be > 0 (freeze a group with frozen_groups)")
    return scales


BY_TYPE: dict[str, Converter] = {"int": to_int, "float": to_float, "bool": to_bool, "str": to_str}
"""The converter of a key declared with a plain annotation and no converter of its own."""
