"""How a config key is declared: once, in its section, with everything said about it.

A key's declaration (`Key`) holds its default, the section it belongs to, its meaning, its
allowed values (bounds, choices or a requirement in words), its converter when its annotation
does not choose one, and, where its good value depends on the tasks, its default per
observation family. Validation, ``multiq config``, the YAML template and the fuzz tests all read
the declarations (`declarations`); nothing about a key is written a second time.

Keys are declared as dataclass fields through their section::

    net = Section("net", "the network and its sharing scheme")
    hidden_size: int = net(128, "units of the hidden layer(s)", bounds=between(1, 65_536))
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from multiq.config.convert import BY_TYPE, Converter, show, to_bool, to_switch
from multiq.errors import ConfigError

_METADATA = "multiq.config.key"
_TYPE_WORDS: dict[Converter, str] = {to_bool: "true or false", to_switch: "true, false or auto"}


@dataclass(frozen=True)
class Bounds:
    """A numeric range: `low` and `high` (None: open-ended), each inclusive unless `open_*`.

    `interval` words the range as one interval (``in (0, 1]``, for fractions), else each side on
    its own (``>= 1``, ``<= 1024``), so that a message names the side that is broken.
    """

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    interval: bool = False

    def _sides(self) -> list[tuple[Callable[[Any, Any], bool], float, str]]:
        """(comparison, limit, sign) of each bounded side."""
        sides = []
        if self.low is not None:
            low_side = (operator.gt, ">") if self.open_low else (operator.ge, ">=")
            sides.append((low_side[0], self.low, low_side[1]))
        if self.high is not None:
            high_side = (operator.lt, "<") if self.open_high else (operator.le, "<=")
            sides.append((high_side[0], self.high, high_side[1]))
        return sides

    def broken(self, value: Any) -> str | None:
        """The requirement `value` breaks, in words; None when it is inside."""
        for compare, limit, sign in self._sides():
            if not compare(value, limit):
                return self.words() if self.interval else f"{sign} {limit}"
        return None

    def words(self) -> str:
        """The whole range in words: ``in (0, 1]`` or ``>= 1 and <= 1024``."""
        if self.interval:
            left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
            return f"in {left}{self.low}, {self.high}{right}"
        return " and ".join(f"{sign} {limit}" for _, limit, sign in self._sides())


def at_least(low: int) -> Bounds:
    """``>= low``."""
    return Bounds(low=low)


def above(low: int) -> Bounds:
    """``> low``."""
    return Bounds(low=low, open_low=True)


def between(low: int, high: int) -> Bounds:
    """``>= low and <= high`` (a message names the side broken)."""
    return Bounds(low=low, high=high)


def fraction(*, open_low: bool = False, open_high: bool = False) -> Bounds:
    """A number in [0, 1], with either end left out as asked."""
    return Bounds(0, 1, open_low=open_low, open_high=open_high, interval=True)


@dataclass(frozen=True)
class Requirement:
    """A rule bounds and choices cannot say: a predicate on the converted value, in words."""

    holds: Callable[[Any], bool]
    words: str


@dataclass(frozen=True)
class Key:
    """One config key's declaration (`name` and `type` come from its dataclass field).

    Attributes:
        name: the key.
        type: its annotation, e.g. ``"float"``.
        default: its default value (the base family's, where it follows the tasks).
        section: the name of its `Section`.
        meaning: what it does, in a sentence or two.
        convert: its converter (`multiq.config.convert`); by default the annotation's.
        bounds: the range of a number.
        choices: the names a text key may take.
        requirement: any other rule on the value.
        by_family: observation family -> default, for a key whose default follows the tasks;
            the base family first (its value is `default`).
        resume_may_change: how a run is executed, not what it learns: a resume may change it.
    """

    name: str
    type: str
    default: Any
    section: str
    meaning: str
    convert: Converter
    bounds: Bounds | None = None
    choices: tuple[str, ...] = ()
    requirement: Requirement | None = None
    by_family: Mapping[str, Any] = field(default_factory=dict)
    resume_may_change: bool = False

    def broken(self, value: Any) -> str | None:
        """What a converted `value` must be, in words (e.g. ``>= 1``), when it breaks the key's
        bounds, choices or requirement; None when it passes."""
        if self.bounds is not None and (words := self.bounds.broken(value)):
            return words
        if self.choices and value not in self.choices:
            return self._choice_words()
        if self.requirement is not None and not self.requirement.holds(value):
            return self.requirement.words
        return None

    def check(self, value: Any) -> Any:
        """`value` converted and checked; raises a ConfigError that names the key (and, for a
        misspelt choice, the closest one)."""
        value = self.convert(self.name, value)
        broken = self.broken(value)
        if broken:
            message = f"{self.name} must be {broken}, got {show(value)}"
            close = difflib.get_close_matches(value, self.choices, n=1) if self.choices else []
            raise ConfigError(message + (f"; did you mean {close[0]!r}?" if close else ""))
        return value

    def allowed(self) -> str:
        """The allowed values in words ('' when only the type constrains them)."""
        if self.convert in _TYPE_WORDS:
            return _TYPE_WORDS[self.convert]
        parts = [
            self.bounds.words() if self.bounds else "",
            self._choice_words() if self.choices else "",
            self.requirement.words if self.requirement else "",
        ]
        return " and ".join(part for part in parts if part)

    def _choice_words(self) -> str:
        return "one of " + ", ".join(self.choices)


@dataclass(frozen=True)
class Section:
    """A group of keys (``net``, ``dqn``, ...): the name a YAML file may group them under.

    Calling a section declares a key in it (a dataclass field; see the module doc).
    """

    name: str
    title: str

    def __call__(
        self,
        default: Any,
        meaning: str,
        *,
        bounds: Bounds | None = None,
        choices: tuple[str, ...] = (),
        requirement: Requirement | None = None,
        convert: Converter | None = None,
        by_family: Mapping[str, Any] | None = None,
        resume_may_change: bool = False,
    ) -> Any:
        """A dataclass field of `default` whose metadata declares the key (see `Key`)."""
        declared = {
            "default": default,
            "section": self.name,
            "meaning": meaning,
            "convert": convert,
            "bounds": bounds,
            "choices": choices,
            "requirement": requirement,
            "by_family": by_family or {},
            "resume_may_change": resume_may_change,
        }
        metadata = {_METADATA: declared}
        if isinstance(default, (list, dict)):
            factory = functools.partial(copy.deepcopy, default)
            return dataclasses.field(default_factory=factory, metadata=metadata)
        return dataclasses.field(default=default, metadata=metadata)


def declarations(cls: type, base_family: str) -> dict[str, Key]:
    """Key name -> declaration of every field of the dataclass `cls`, in field order.

    Args:
        cls: a dataclass whose fields were declared by `Section` calls.
        base_family: the observation family whose values are the defaults.

    Raises:
        TypeError: a field not declared by a section, or an annotation without a converter and
            no converter of its own (at import, so that it cannot ship).
    """
    keys = {}
    for f in dataclasses.fields(cls):
        if _METADATA not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared by a Section")
        declared = dict(f.metadata[_METADATA])
        if declared["convert"] is None:
            if str(f.type) not in BY_TYPE:
                raise TypeError(f"{cls.__name__}.{f.name}: no converter for {f.type}; give one")
            declared["convert"] = BY_TYPE[str(f.type)]
        if declared["by_family"]:
            declared["by_family"] = {base_family: declared["default"], **declared["by_family"]}
        keys[f.name] = Key(name=f.name, type=str(f.type), **declared)
    return keys
