#!/usr/bin/env python3
"""Count the SQL statement literals in services' ``app/`` packages (issue 20: SQL lives in
``adapters/``). A literal is a string constant, adjacent parts joined (so a statement split
over lines counts once), or an f-string by its leading text, that begins with SELECT,
INSERT, UPDATE, DELETE or WITH followed by a space. Reads the files with ``ast``; nothing is
imported. Prints one line per service and the total.

``--check`` (``make lint``) holds the services that reached 0 there (ADR 0085): it fails when
a service not in ``STILL_MOVING`` has a statement literal in ``app/``, or imports a database
driver there (``sqlalchemy``, ``asyncpg``: its exceptions included). A service leaves
``STILL_MOVING`` the day its SQL has moved to ``adapters/``.

Usage: ``sql_in_app.py [--check] [REPO_ROOT]``."""

from __future__ import annotations

import ast
import collections
import re
import sys
from pathlib import Path

_STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH) ")
_DRIVERS = frozenset({"sqlalchemy", "asyncpg"})
# The services whose app/ still holds SQL (issue 20); every other one is held at 0.
STILL_MOVING: frozenset[str] = frozenset()


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant):
            return str(first.value)
    return None


def _literals(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every string literal, an f-string once (not again by its parts)."""
    parts = {
        id(value)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for value in node.values
    }
    found = []
    for node in ast.walk(tree):
        text = None if id(node) in parts else _text(node)
        if text is not None:
            found.append((getattr(node, "lineno", 0), text))
    return found


def _app_files(root: Path) -> list[tuple[str, Path, ast.AST]]:
    return [
        (path.relative_to(root).parts[1], path, ast.parse(path.read_text(), str(path)))
        for path in sorted(root.glob("services/*/src/*/app/**/*.py"))
    ]


def _driver(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [node.module]
    else:
        return None
    return next((n for n in names if n.split(".")[0] in _DRIVERS), None)


def count(root: Path) -> dict[str, int]:
    found: collections.Counter[str] = collections.Counter()
    for service, _path, tree in _app_files(root):
        found[service] += sum(1 for _, text in _literals(tree) if _STATEMENT.match(text))
    return {service: n for service, n in sorted(found.items()) if n}


def check(root: Path) -> list[str]:
    """What puts SQL back into the ``app/`` of a service held at 0: one line each."""
    problems = []
    for service, path, tree in _app_files(root):
        if service in STILL_MOVING:
            continue
        where = path.relative_to(root)
        found = [
            (line, "an SQL statement") for line, text in _literals(tree) if _STATEMENT.match(text)
        ]
        for node in ast.walk(tree):
            driver = _driver(node)
            if driver is not None:
                found.append((getattr(node, "lineno", 0), f"imports {driver}"))
        problems += [f"{where}:{line}: {what}" for line, what in sorted(found)]
    return problems


def main() -> None:
    args = sys.argv[1:]
    strict = "--check" in args
    args = [a for a in args if a != "--check"]
    root = Path(args[0]) if args else Path(__file__).resolve().parent.parent
    if strict:
        problems = check(root)
        for line in problems:
            print(f"{line}: SQL lives in adapters/, behind a port in app/ports.py (ADR 0085)")
        sys.exit(1 if problems else 0)
    found = count(root)
    for service, n in found.items():
        print(f"{service} {n}")
    print(f"total {sum(found.values())}")


if __name__ == "__main__":
    main()
