"""No class does four jobs: at most ``MAX_METHODS`` methods (every ``def`` in the class body)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_METHODS = 25


def oversized(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                methods = sum(isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) for item in node.body)
                if methods > MAX_METHODS:
                    found.append(f"{path.relative_to(ROOT)}: {node.name} has {methods} methods")
    return found


def test_no_class_in_bot_has_more_than_25_methods() -> None:
    paths = sorted((ROOT / "bot").rglob("*.py"))
    assert paths
    assert oversized(paths) == []


def test_an_oversized_class_is_named(tmp_path: Path) -> None:
    module = tmp_path / "big.py"
    module.write_text("class Big:\n" + "".join(f"    def m{i}(self): ...\n" for i in range(MAX_METHODS + 1)))
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert oversized([module]) == [f"big.py: Big has {MAX_METHODS + 1} methods"]
    finally:
        ROOT = saved
