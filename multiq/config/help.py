"""Help on config keys (`multiq config`): default, allowed values and meaning of every key, by
section, read from the keys' declarations (`multiq.config.keys`). The functions return text;
the CLI prints it."""

from __future__ import annotations

import difflib
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from multiq.config.declare import Key
from multiq.config.keys import KEYS, SECTIONS
from multiq.config.model import CONFIG_KEYS
from multiq.errors import ConfigError

_WIDTH = 96
_SECTION_TITLES = {section.name: section.title for section in SECTIONS}


@dataclass(frozen=True)
class KeyHelp:
    """What `multiq config` says about one key.

    Attributes:
        name: the config key.
        type: its annotation, e.g. ``"float"``.
        default: its default value.
        allowed: the allowed values in words (empty when only the type constrains it).
        meaning: what the key does.
        by_family: observation family -> its default, for a key whose default follows the
            tasks; empty for the others.
        section: the name of the key's section (``net``, ``dqn``, ...).
    """

    name: str
    type: str
    default: Any
    allowed: str
    meaning: str
    by_family: dict[str, Any] = field(default_factory=dict)
    section: str = ""


def registry_names(key: str) -> list[str]:
    """The sorted names `key` may take (empty for a key without choices)."""
    return sorted(KEYS[key].choices) if key in KEYS else []


def key_help(keys: Sequence[str] = ()) -> list[KeyHelp]:
    """Help on `keys`, in the order given (default: every key, in declaration order, which
    groups them by section).

    Raises:
        ConfigError: on an unknown key, naming the closest valid one.
    """
    for key in keys:
        _check_known(key)
    return [_help(KEYS[name]) for name in dict.fromkeys(keys or CONFIG_KEYS)]


def format_keys(helps: Sequence[KeyHelp], sections: bool = False) -> str:
    """Plain text: per key a line ``name = default``, then its type, allowed values, meaning;
    with `sections`, a ``# section: title`` line before each section's first key."""
    blocks, current = [], None
    for h in helps:
        if sections and h.section != current:
            current = h.section
            blocks.append(f"# {h.section}: {_SECTION_TITLES[h.section]}")
        blocks.append(_format_key(h))
    return "\n\n".join(blocks)


def format_yaml(helps: Sequence[KeyHelp]) -> str:
    """A config file of the keys' defaults, each key under a comment with its meaning and
    allowed values, the keys under their sections' names; `multiq train FILE` (and
    `Config.from_yaml`) reads it back.

    Keys whose defaults follow the tasks are commented out, so that they still do; a key
    uncommented is set, and keeps its value whatever the tasks."""
    header = (
        "# multiq config: every key at its default (`multiq config` explains them).\n"
        "# Keys left commented out follow the tasks' observation family; uncomment one to set it.\n"
        "# Sections group the keys; a flat file of the same keys is read the same.\n"
        "# Edit, then run: multiq train THIS_FILE\n"
    )
    by_section: dict[str, list[KeyHelp]] = {}
    for h in helps:
        by_section.setdefault(h.section, []).append(h)
    parts = [_yaml_section(name, entries) for name, entries in by_section.items()]
    return header + "".join(parts).rstrip("\n")


def flow_yaml(value: Any) -> str:
    """`value` as one line of YAML, as `--set key=value` takes it: ``0.00025``, ``null``, ``[]``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf)
    return text.removesuffix("...\n").strip()


def _help(key: Key) -> KeyHelp:
    return KeyHelp(
        name=key.name,
        type=key.type,
        default=key.default,
        allowed=key.allowed(),
        meaning=key.meaning,
        by_family=dict(key.by_family),
        section=key.section,
    )


def _check_known(key: str) -> None:
    if key in KEYS:
        return
    close = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"unknown config key {key!r}; {hint}`multiq config` lists every key")


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


def _yaml_section(name: str, helps: Sequence[KeyHelp]) -> str:
    """``name:`` and its keys' entries, indented under it (a commented-out key included)."""
    entries = "".join(f"\n{_yaml_entry(h)}" for h in helps)
    body = textwrap.indent(entries, "  ", lambda line: line.strip() != "")
    return f"\n# --- {name}: {_SECTION_TITLES[name]}\n{name}:{body}"


def _yaml_entry(h: KeyHelp) -> str:
    comment = _fill(h.meaning, "# ") + (f"\n# allowed: {h.allowed}" if h.allowed else "")
    body = yaml.safe_dump({h.name: h.default}, default_flow_style=False)
    if h.by_family:  # left commented out: the default follows the tasks
        comment += "\n" + _fill(_by_family(h), "# ")
        body = "".join(f"# {line}\n" for line in body.splitlines())
    return f"{comment}\n{body}"
