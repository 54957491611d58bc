"""Layers only point down, read from the import graph (every import: at the top, inside functions and under
``TYPE_CHECKING``). The core never reaches up into the engine or the interface; storage imports nothing of
``bot`` (its Alembic environment excepted: the schema is gathered above it, in ``bot.schema``)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CORE = [
    "runs",
    "policy",
    "catalogue",
    "audit",
    "safety",
    "schedule",
    "freezes",
    "retro",
    "actions",
    "backlog",
    "reports",
    "dashboards",
    "records",
    "alerting",
]
ABOVE_THE_CORE = ("bot.engine", "bot.interface", "bot.slack", "bot.console")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line, modules) of every import statement in the file, relative ones resolved: ``from a import b``
    may import the module ``a.b``, so both are listed."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, [alias.name]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            yield node.lineno, [base, *(f"{base}.{alias.name}" for alias in node.names)]


def within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def offences(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in paths:
        for line, modules in sorted(imports(path)):
            bad = [module for module in modules if within(module, forbidden)]
            if bad:
                found.append(f"{path.relative_to(ROOT)}:{line} ({module_name(path)}) imports {min(bad, key=len)}")
    return found


def core_modules() -> list[Path]:
    return [path for package in CORE for path in sorted((ROOT / "bot" / package).rglob("*.py"))]


def storage_modules() -> list[Path]:
    return [path for path in sorted((ROOT / "storage").rglob("*.py")) if "migrations" not in path.parts]


def test_the_core_imports_nothing_above_it() -> None:
    assert all((ROOT / "bot" / package).is_dir() for package in CORE)
    assert offences(core_modules(), ABOVE_THE_CORE) == []


def test_storage_imports_nothing_from_bot() -> None:
    assert offences(storage_modules(), ("bot",)) == []


def test_an_upward_import_is_found_wherever_it_hides(tmp_path: Path) -> None:
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        module = tmp_path / "bot" / "runs" / "sneaky.py"
        module.parent.mkdir(parents=True)
        module.write_text(
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from bot.engine.models import Lease\n"
            "def later():\n"
            "    import bot.slack.app\n"
            "    from ..engine import supervisor\n"
            "from bot import console\n"
        )
        assert offences([module], ABOVE_THE_CORE) == [
            "bot/runs/sneaky.py:3 (bot.runs.sneaky) imports bot.engine.models",
            "bot/runs/sneaky.py:5 (bot.runs.sneaky) imports bot.slack.app",
            "bot/runs/sneaky.py:6 (bot.runs.sneaky) imports bot.engine",
            "bot/runs/sneaky.py:7 (bot.runs.sneaky) imports bot.console",
        ]
    finally:
        ROOT = saved
