"""`Config`: the validated, immutable run configuration built from the key declarations.

Build configs with `Config.from_dict`, `Config.from_yaml`, `Config.with_overrides` (CLI ``--set
key=value``) or `Config.replace`: all of them validate and raise `multiq.errors.ConfigError`
with a message that names the offending key. A YAML file or mapping may group keys under their
section names (``net: {scheme: shared}``) or list them flat; both give the same config.

A config remembers which keys it was given (`Config.given_keys`): the other keys hold their
defaults, which the tasks' observation family may change (`multiq.tasks.defaults`). So the given
keys are part of a config's equality and of its repr: ``Config() != Config(learning_rate=2.5e-4)``
(only the first lets CartPole change the learning rate), and the repr lists the given keys only.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import textwrap
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from multiq.config.convert import kind, reject_unknown
from multiq.config.keys import KEYS, SECTIONS, ConfigKeys
from multiq.config.overrides import apply_override
from multiq.config.rules import cross_errors
from multiq.config.yaml_io import dump_yaml, read_yaml
from multiq.errors import ConfigError

CONFIG_KEYS: tuple[str, ...] = tuple(KEYS)
"""Valid config keys, in declaration order (by section)."""

_SECTION_KEYS = {s.name: tuple(k for k, d in KEYS.items() if d.section == s.name) for s in SECTIONS}
_YAML_HEADER = "# multiq run config (multiq.config.Config)\n"


def _records_given_keys(cls: type) -> type:
    """Class decorator (outside `dataclass`): the generated `__init__` also stores the keys it
    was given, positional or by name, as `_given` (`Config.given_keys`); a copy or an
    unpickled config keeps them in its `__dict__`."""
    init = cls.__init__  # type: ignore[misc]
    names = tuple(f.name for f in dataclasses.fields(cls))

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "_given", frozenset([*names[: len(args)], *kwargs]))
        init(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[misc]
    return cls


@_records_given_keys
@dataclass(frozen=True, eq=False, repr=False)
class Config(ConfigKeys):
    """Everything that defines a run. Instances are validated on construction and immutable.

    Change a config with `replace` or `with_overrides`; both return a new, validated config.
    Every key is declared once in `multiq.config.keys` (type, default, allowed values, section,
    meaning, defaults per observation family); ``multiq config`` lists them.

    Only keys not given follow the tasks: a key given to the constructor, `from_dict`,
    `replace` or `with_overrides` (a YAML file's keys, ``--set``, CLI flags, keyword arguments)
    keeps its value. A run's config.yaml holds the resolved values, and reading it back gives
    every key, so a resume changes nothing.
    """

    # Not a field: each instance sets its own in `__init__` (`_records_given_keys`).
    _given: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        errors, invalid = [], set()
        for name, key in KEYS.items():
            try:
                value = key.check(getattr(self, name))
            except ConfigError as e:
                errors.append(str(e))
                invalid.add(name)
                continue
            object.__setattr__(self, name, value)
        errors += cross_errors(vars(self), invalid)
        if len(errors) == 1:
            raise ConfigError(errors[0])
        if errors:
            raise ConfigError(
                f"invalid config ({len(errors)} errors):\n  - " + "\n  - ".join(errors)
            )

    def __eq__(self, other: object) -> bool:
        """Equal values and equal given keys (which decide what the tasks may change)."""
        if not isinstance(other, Config) or type(other) is not type(self):
            return NotImplemented
        return self._given == other._given and self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # lists and mappings inside

    def __repr__(self) -> str:
        """The given keys only, as the call that builds an equal config."""
        given = ", ".join(f"{k}={getattr(self, k)!r}" for k in CONFIG_KEYS if k in self._given)
        return f"{type(self).__name__}({given})"

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, key) for key in CONFIG_KEYS)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Returns the valid config keys, in declaration order."""
        return CONFIG_KEYS

    @property
    def given_keys(self) -> frozenset[str]:
        """The keys set explicitly: passed to the constructor or `from_dict` (a YAML file's
        keys), changed by `replace` or `with_overrides`. The others hold their defaults, which
        the tasks' observation family may change (`FAMILY_DEFAULTS`)."""
        return self._given

    def given_values(self) -> dict[str, Any]:
        """The keys of `given_keys` with their values (plain, as in `to_dict`)."""
        return {k: v for k, v in self.to_dict().items() if k in self._given}

    def settled(self) -> Config:
        """A config of the same values whose every key counts as given, so that no default
        changes it (as a config read back from a run folder)."""
        return type(self).from_dict(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Builds a validated config; keys left out take their defaults.

        Args:
            data: config keys to values, e.g. loaded from YAML; keys may be grouped under their
                section names (``{"net": {"scheme": "shared"}, "seed": 1}``).

        Raises:
            ConfigError: on an unknown key (with the closest valid key), a key under the wrong
                section, a wrong type or a value out of range.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a config must be a mapping of keys to values, got {kind(data)}")
        return cls(**_flatten(data))

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Config:
        """Reads a config file such as ``RUN_DIR/config.yaml``; an empty file gives defaults.

        Raises:
            ConfigError: if the file is missing or unreadable, is not valid YAML (the message
                gives the line), is not a mapping at the top level, or holds an invalid config.
        """
        path = Path(path)
        data = read_yaml(path)
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def with_overrides(self, overrides: Sequence[str], **changes: Any) -> Config:
        """Returns a copy with ``key=value`` overrides (CLI ``--set``, see
        `multiq.config.overrides`) applied in order, then `changes` (e.g. CLI flags such as
        ``total_steps_per_task``); validated once, at the end.

        Raises:
            ConfigError: on a malformed override, an unknown key or an invalid result.
        """
        if isinstance(overrides, str):
            overrides = [overrides]
        data = self.to_dict()
        names = [apply_override(data, item) for item in overrides]
        return self._derive({**data, **changes}, [*names, *changes])

    def replace(self, **changes: Any) -> Config:
        """Returns a validated copy with the given keys changed, e.g. ``cfg.replace(seed=1)``."""
        return self._derive({**self.to_dict(), **changes}, changes.keys())

    def _derive(self, data: Mapping[str, Any], changed: Iterable[str]) -> Config:
        """A validated config of `data` whose given keys are this one's and `changed`."""
        reject_unknown(data, CONFIG_KEYS, "config key")
        derived = type(self)(**data)
        object.__setattr__(derived, "_given", self._given | frozenset(changed))
        return derived

    def to_dict(self) -> dict[str, Any]:
        """Returns all keys as plain, YAML/JSON-safe values (a deep copy), flat."""
        return dataclasses.asdict(self)

    def yaml_text(self) -> str:
        """Every key as YAML (flat, in declaration order); `from_yaml` reads it back equal to
        `settled()`. `multiq.runio.config_file.save_config` writes it into a run folder."""
        return _YAML_HEADER + dump_yaml(self.to_dict())

    def to_yaml(self, path: str | os.PathLike[str]) -> Path:
        """Deprecated: `multiq.runio.config_file.save_config(cfg, path)` (goes in 0.3)."""
        warnings.warn(
            "Config.to_yaml moved to multiq.runio.config_file.save_config in multiq 0.2; the "
            "old name goes in 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        # The one upward import of the config package, listed in the contracts' ignore_imports.
        from multiq.runio.config_file import save_config

        return save_config(self, path)


def _flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with the keys grouped under section names moved to the top level."""
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if name in KEYS or name not in _SECTION_KEYS:
            flat[name] = value
            continue
        if value is None:  # a section whose keys are all commented out
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"section {name}: expected a mapping of its keys, got {kind(value)}")
        reject_unknown(value, CONFIG_KEYS, f"{name} key")
        for key, entry in value.items():
            if KEYS[key].section != name:
                raise ConfigError(f"{name}.{key}: {key} belongs to section {KEYS[key].section}")
            if key in flat or key in data:
                raise ConfigError(f"{key} is given twice (at the top level and under {name})")
            flat[key] = entry
    reject_unknown(flat, (*CONFIG_KEYS, *_SECTION_KEYS), "config key")
    return flat


def _attributes_section() -> str:
    """The ``Attributes:`` section of `Config`'s docstring, from the declarations."""
    lines = ["", "    Attributes:"]
    for name, key in KEYS.items():
        allowed = f" Allowed: {key.allowed()}." if key.allowed() else ""
        text = f"{name}: [{key.section}] {key.meaning}{allowed}"
        lines.append(textwrap.fill(text, 100, initial_indent=" " * 8, subsequent_indent=" " * 12))
    return "\n".join(lines) + "\n"


Config.__doc__ = (Config.__doc__ or "").rstrip() + "\n" + _attributes_section()
