"""Reading YAML safely, and writing a config as YAML that reads back the same.

YAML is read with PyYAML's safe loader plus fixes: exponent floats such as ``1e-4`` or ``1.0e5``
are numbers (YAML 1.1 reads them as strings), duplicate keys are an error, and a document may not
expand to more than `MAX_YAML_NODES` nodes through aliases ("billion laughs") nor nest deeper than
`MAX_NESTING_DEPTH` levels. Every failure is a `ConfigError` that names the file (and the line).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from multiq.config.convert import kind
from multiq.config.limits import MAX_NESTING_DEPTH, MAX_YAML_NODES
from multiq.errors import ConfigError

# PyYAML follows YAML 1.1, where `1e-4` and `1.0e5` are strings; read them as floats.
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """Safe loader that reads exponent floats as numbers and rejects duplicate keys.

    It also bounds the document: at most `MAX_NESTING_DEPTH` levels and `MAX_YAML_NODES` nodes
    once every alias is expanded, checked after composing and before building any value.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        # The composer recurses once per level: stop long before Python's recursion limit.
        if self._depth >= MAX_NESTING_DEPTH:
            raise _composer_error(_DEPTH_PROBLEM, self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is not None and key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """Safe dumper that quotes strings `_Loader` would read as floats (e.g. ``"1e5"``)."""


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789."))

_DEPTH_PROBLEM = f"the document nests deeper than {MAX_NESTING_DEPTH} levels"
_SIZE_PROBLEM = (
    f"the document expands to more than {MAX_YAML_NODES} nodes (YAML aliases); write the values out"
)
_CYCLE_PROBLEM = "an alias refers to a node that contains it (a recursive structure)"


def _composer_error(problem: str, mark: yaml.Mark) -> yaml.composer.ComposerError:
    return yaml.composer.ComposerError(None, None, problem, mark)


def _child_nodes(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Raises if `root`, with every alias expanded, is too large, too deep or recursive.

    Aliases make the composed nodes a graph whose expansion can be exponentially larger than the
    text ("billion laughs"). Each node's expanded size and depth are computed once (memoised by
    node identity) in an explicit depth-first walk, so the check costs time linear in the text.
    """
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, depth)
    started: set[int] = set()
    stack = [root]
    while stack:
        node = stack[-1]
        if id(node) in measured:
            stack.pop()
            continue
        children = _child_nodes(node)
        if id(node) not in started:  # first visit: measure the children first
            started.add(id(node))
            pending = [child for child in children if id(child) not in measured]
            if any(id(child) in started for child in pending):  # an ancestor of `node`
                raise _composer_error(_CYCLE_PROBLEM, node.start_mark)
            stack.extend(pending)
            continue
        stack.pop()
        size = 1 + sum(measured[id(child)][0] for child in children)
        depth = 1 + max((measured[id(child)][1] for child in children), default=0)
        if size > MAX_YAML_NODES:
            raise _composer_error(_SIZE_PROBLEM, node.start_mark)
        if depth > MAX_NESTING_DEPTH:
            raise _composer_error(_DEPTH_PROBLEM + " (YAML aliases)", node.start_mark)
        measured[id(node)] = (size, depth)


def read_yaml(path: Path) -> Mapping[Any, Any]:
    """Loads a YAML mapping from `path`; an empty file is an empty mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None
    data = load_yaml(text, path)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: the top level must be a mapping of config keys (e.g. `seed: 1`), "
            f"got {kind(data)}"
        )
    return data


def load_yaml(text: str, source: Path | str) -> Any:
    """Loads YAML text with `_Loader`; every failure is a ConfigError naming `source`."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise ConfigError(_yaml_error(source, e)) from None
    except ValueError as e:  # a scalar that matches a type but not its range, e.g. 2024-13-45
        raise ConfigError(f"invalid YAML in {source}: cannot read a value ({e})") from None


def _yaml_error(source: Path | str, error: yaml.YAMLError) -> str:
    """Formats a YAML error as 'invalid YAML in SOURCE at line L, column C: PROBLEM'."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"invalid YAML in {source}{where}: {problem}"


def dump_yaml(data: Mapping[str, Any]) -> str:
    """`data` as block YAML in its key order, that `load_yaml` reads back equal."""
    return yaml.dump(
        dict(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
