"""No import cycles among multiq's modules.

The contracts in pyproject.toml (`lint-imports`) order the packages; a cycle between two
modules of one package is beyond them, so this test looks at every module. Imports under
`if TYPE_CHECKING:` are left out: they never run; so are the deprecated aliases' imports that
the layers contract lists in `ignore_imports` (pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import grimp
import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def ignored_imports() -> list[tuple[str, str]]:
    """(importer, imported) of every contract's `ignore_imports` in pyproject.toml."""
    tomllib = pytest.importorskip("tomllib")
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    pairs = [entry.split(" -> ") for c in contracts for entry in c.get("ignore_imports", [])]
    return [(importer.strip(), imported.strip()) for importer, imported in pairs]


def strongly_connected(
    nodes: Iterable[str], successors: Callable[[str], Iterable[str]]
) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in successors(node):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def test_strongly_connected_finds_cycles_only() -> None:
    edges = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"], "e": []}
    assert strongly_connected(edges, edges.__getitem__) == [["a", "b", "c"]]


def test_multiq_modules_import_no_cycle() -> None:
    graph = grimp.build_graph("multiq", exclude_type_checking_imports=True, cache_dir=None)
    for importer, imported in ignored_imports():
        graph.remove_import(importer=importer, imported=imported)
    cycles = strongly_connected(graph.modules, graph.find_modules_directly_imported_by)
    described = "\n".join("modules importing each other: " + ", ".join(c) for c in cycles)
    assert not cycles, described
