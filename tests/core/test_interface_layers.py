"""The interface's layers, read from its source: no import cycle (imports under ``TYPE_CHECKING`` and inside
functions included), and the message builders stand on nothing above them (no desk handler, no publisher,
no conversation), so any desk, the publisher and the console can use them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "bot.interface"

# Message builders and what they may stand on: Block Kit's pieces, ids, typed metadata, the renderer, the
# run card (plain data), and each other.
BUILDERS = {
    "bot.interface.kit",
    "bot.interface.limits",
    "bot.interface.ids",
    "bot.interface.metadata",
    "bot.interface.render",
    "bot.interface.runs.cards",
    "bot.interface.runs.messages",
    "bot.interface.schedule.messages",
    "bot.interface.learning.messages",
    "bot.interface.alarms.messages",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in (ROOT / "bot" / "interface").rglob("*.py")}


def _imported(tree: ast.AST, known: set[str]) -> set[str]:
    """Every module of the interface this source imports, anywhere in it; importing ``a.b.c`` runs ``a.b``'s
    ``__init__`` too, so the packages on the way count as imported."""
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            for end in range(2, len(parts) + 1):
                prefix = ".".join(parts[:end])
                if prefix in known and prefix != PACKAGE:
                    found.add(prefix)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {
        name: _imported(ast.parse(path.read_text(encoding="utf-8")), known) - {name} for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle is not None:
            return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_graph_sees_the_interface() -> None:
    graph = import_graph()
    assert "bot.interface.handlers" in graph
    assert "bot.interface.routes" in graph["bot.interface.handlers"]
    assert set(graph) >= BUILDERS


def test_no_import_cycle_in_the_interface() -> None:
    assert find_cycle(import_graph()) is None


def test_a_cycle_is_found_even_through_a_package() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_type_checking_and_function_level_imports_count() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from bot.interface.publisher import Publisher\n"
        "def later():\n    from bot.interface.runs import actions\n"
    )
    known = {"bot.interface.publisher", "bot.interface.runs", "bot.interface.runs.actions"}
    assert _imported(ast.parse(source), known) == known


def test_message_builders_stand_on_nothing_above_them() -> None:
    graph = import_graph()
    packages = {name for name, path in _modules().items() if path.name == "__init__.py"}
    for builder in sorted(BUILDERS):
        above = reachable(graph, builder) - BUILDERS - packages
        assert not above, f"{builder} reaches {sorted(above)}: a message builder must not import a desk's handlers"


def test_desk_packages_import_nothing_when_imported() -> None:
    """A desk's ``__init__`` stays empty, so importing its messages never drags in its handlers."""
    graph = import_graph()
    for name, path in _modules().items():
        if path.name == "__init__.py":
            assert not graph[name], f"{name} imports {sorted(graph[name])}"
