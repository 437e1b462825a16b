"""Help on config keys (`multiq config`): default, allowed values and meaning of every key.

Nothing here is written by hand a second time; every part comes from the one place it lives:

- names, types and defaults: the fields of `multiq.config.Config`;
- meanings: the ``Attributes:`` section of its docstring;
- defaults by observation family: `multiq.config.FAMILY_DEFAULTS`;
- allowed values: the registry the key is looked up in (`REGISTRIES`), else the key's range
  rule in `multiq.config`, asked for its requirement with a value that breaks every rule.

The functions return text; the CLI prints it.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from multiq.config import CONFIG_KEYS, FAMILY_DEFAULTS, Config, broken_rule
from multiq.errors import ConfigError

# Keys whose value names a registry entry: key -> (module, registry). The modules import torch,
# so they load only when a key of theirs is described.
REGISTRIES: dict[str, tuple[str, str]] = {
    "scheme": ("multiq.nets", "SCHEMES"),
    "balancer": ("multiq.mtl", "BALANCERS"),
    "task_schedule": ("multiq.mtl.schedules", "SCHEDULES"),
    "meta_algo": ("multiq.recipes.meta", "ALGORITHMS"),
}

# Values at the far ends of each type's range: a rule a probe breaks answers with its requirement
# (`config.broken_rule`, so that no range is written out twice).
_PROBES: dict[str, tuple[Any, ...]] = {
    "int": (-math.inf, math.inf),
    "float": (-math.inf, math.inf),
    "str": ("",),
}
_BOOL_WORDS = "true or false"
_WIDTH = 96
_ENTRY = re.compile(r"^ {4}(\w+): (.*)$")
_CONTINUATION = re.compile(r"^ {5,}(\S.*)$")


@dataclass(frozen=True)
class KeyHelp:
    """What `multiq config` says about one key.

    Attributes:
        name: the config key.
        type: its annotation, e.g. ``"float"``.
        default: its default value.
        allowed: the allowed values in words (empty when only the type constrains it).
        meaning: what the key does, from `Config`'s docstring.
        by_family: observation family -> its default, for a key whose default follows the
            tasks (`FAMILY_DEFAULTS`); empty for the others.
    """

    name: str
    type: str
    default: Any
    allowed: str
    meaning: str
    by_family: dict[str, Any] = dataclasses.field(default_factory=dict)


def registry_names(key: str) -> list[str]:
    """The sorted names of the registry that validates `key` (empty if no registry does)."""
    if key not in REGISTRIES:
        return []
    module, attribute = REGISTRIES[key]
    return sorted(getattr(importlib.import_module(module), attribute))


def key_help(keys: Sequence[str] = ()) -> list[KeyHelp]:
    """Help on `keys`, in the order given (default: every key, in declaration order).

    Raises:
        ConfigError: on an unknown key, naming the closest valid one.
    """
    for key in keys:
        _check_known(key)
    meanings = _docstring_meanings()
    by_name = {field.name: field for field in dataclasses.fields(Config)}
    return [
        KeyHelp(
            name=name,
            type=str(by_name[name].type),
            default=_default(by_name[name]),
            allowed=_allowed(name, str(by_name[name].type)),
            meaning=meanings.get(name, ""),
            by_family={f: row[name] for f, row in FAMILY_DEFAULTS.items() if name in row},
        )
        for name in dict.fromkeys(keys or CONFIG_KEYS)
    ]


def format_keys(helps: Sequence[KeyHelp]) -> str:
    """Plain text: per key a line ``name = default``, then its type, allowed values, meaning."""
    return "\n\n".join(_format_key(h) for h in helps)


def format_yaml(helps: Sequence[KeyHelp]) -> str:
    """A config file of the keys' defaults, each key under a comment with its meaning and
    allowed values; `multiq train FILE` (and `Config.from_yaml`) reads it back.

    Keys whose defaults follow the tasks are commented out, so that they still do; a key
    uncommented is set, and keeps its value whatever the tasks."""
    header = (
        "# multiq config: every key at its default (`multiq config` explains them).\n"
        "# Keys left commented out follow the tasks' observation family; uncomment one to set it.\n"
        "# Edit, then run: multiq train THIS_FILE\n"
    )
    return header + "".join(f"\n{_yaml_entry(h)}" for h in helps).rstrip("\n")


def flow_yaml(value: Any) -> str:
    """`value` as one line of YAML, as `--set key=value` takes it: ``0.00025``, ``null``, ``[]``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf)
    return text.removesuffix("...\n").strip()


def _check_known(key: str) -> None:
    if key in CONFIG_KEYS:
        return
    close = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"unknown config key {key!r}; {hint}`multiq config` lists every key")


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _allowed(key: str, annotation: str) -> str:
    """The allowed values in words: a registry's names, a rule's requirement, or ''."""
    names = registry_names(key)
    if names:
        return "one of " + ", ".join(names)
    if annotation == "bool":
        return _BOOL_WORDS
    requirements = [broken_rule(key, probe) for probe in _PROBES.get(annotation, ())]
    return " and ".join(dict.fromkeys(r for r in requirements if r))


def _docstring_meanings() -> dict[str, str]:
    """Key -> its entry in the ``Attributes:`` section of `Config`'s docstring, on one line."""
    lines = inspect.cleandoc(Config.__doc__ or "").splitlines()
    start = lines.index("Attributes:") + 1 if "Attributes:" in lines else len(lines)
    meanings: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lines[start:]:
        entry, more = _ENTRY.match(line), _CONTINUATION.match(line)
        if entry:
            current = meanings.setdefault(entry.group(1), [entry.group(2)])
        elif more and current:
            current.append(more.group(1))
        elif line.strip():  # the section ended
            break
    return {key: " ".join(words).replace("``", "`") for key, words in meanings.items()}


def _by_family(h: KeyHelp) -> str:
    """``by observation family: vector 0.001, atari 0.0001 (unless set)``, or '' if none."""
    if not h.by_family:
        return ""
    values = ", ".join(f"{f} {flow_yaml(v)}" for f, v in h.by_family.items())
    return f"by observation family: {values} (unless set)"


def _format_key(h: KeyHelp) -> str:
    kind = f"type: {h.type}" + (f"; allowed: {h.allowed}" if h.allowed else "")
    lines = [f"{h.name} = {flow_yaml(h.default)}", _indent(kind), _indent(h.meaning)]
    lines.append(_indent(_by_family(h)))
    return "\n".join(line for line in lines if line.strip())


def _indent(text: str) -> str:
    return _fill(text, "    ")


def _fill(text: str, prefix: str) -> str:
    """`text` wrapped to `_WIDTH` columns, each line after `prefix` (ids keep their hyphens)."""
    return textwrap.fill(
        text, _WIDTH, initial_indent=prefix, subsequent_indent=prefix, break_on_hyphens=False
    )


def _yaml_entry(h: KeyHelp) -> str:
    comment = _fill(h.meaning, "# ") + (f"\n# allowed: {h.allowed}" if h.allowed else "")
    body = yaml.safe_dump({h.name: h.default}, default_flow_style=False)
    if h.by_family:  # left commented out: the default follows the tasks
        comment += "\n" + _fill(_by_family(h), "# ")
        body = "".join(f"# {line}\n" for line in body.splitlines())
    return f"{comment}\n{body}"
