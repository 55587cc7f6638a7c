"""The folders show the architecture: each part imports only what docs/architecture.md's folder table allows.

The table's last column names, in backticks, the top-level Python modules a part may import beyond the standard
library and its own package (the package a file is imported as: ``local`` for local/emulator/stack.py,
``chat_processor`` for lambda_src/chat_processor/store.py, ``app`` for app.py). This test reads that
table and every Python file of each part, so the document and the code cannot drift apart: a new import across
parts fails here until the table says it is allowed.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURE = REPO / "docs" / "architecture.md"
TICKED = re.compile(r"`([^`]+)`")


def folder_table() -> dict[str, set[str]]:
    """``path -> allowed top-level imports`` from the table whose header is ``| path | part | may import |``."""
    lines = ARCHITECTURE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.replace(" ", "") == "|path|part|mayimport|")
    rules: dict[str, set[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        paths, allowed = TICKED.findall(cells[0]), cells[-1]
        names = set(TICKED.findall(allowed))
        code = [path for path in paths if path.endswith(".py") or path.endswith("/")]
        names |= {own_package(file) for path in code for file in python_files(path)}  # a row's parts import each other
        for path in code:
            rules[path] = names
    return rules


def python_files(path: str) -> list[Path]:
    target = REPO / path
    if target.is_file():
        return [target]
    return sorted(file for file in target.rglob("*.py") if "node_modules" not in file.parts and ".venv" not in file.parts)


def own_package(file: Path) -> str:
    """The top-level name ``file`` is imported as: its outermost folder with an ``__init__.py``, or the file."""
    top = file.with_suffix("") if file.name != "__init__.py" else file.parent
    while (top.parent / "__init__.py").exists():
        top = top.parent
    return top.name


def imported_roots(file: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots - set(sys.stdlib_module_names) - {"__future__"}


RULES = folder_table()


def test_the_table_covers_every_python_folder() -> None:
    tops = {path.split("/")[0] for path in RULES}
    python_tops = {
        path.relative_to(REPO).parts[0]
        for path in REPO.glob("*/**/*.py")
        if not {".venv", "node_modules", "cdk.out", ".git"} & set(path.relative_to(REPO).parts)
    }
    assert python_tops <= tops, f"folders with Python code the table does not describe: {sorted(python_tops - tops)}"


@pytest.mark.parametrize("path", sorted(path for path in RULES if python_files(path)))
def test_each_part_imports_only_what_the_table_allows(path: str) -> None:
    for file in python_files(path):
        extra = imported_roots(file) - RULES[path]
        assert not extra, f"{file.relative_to(REPO)} imports {sorted(extra)}, which docs/architecture.md does not allow {path}"
