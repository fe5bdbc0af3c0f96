#!/usr/bin/env python3
"""Count the SQL statement literals in services' ``app/`` packages (issue 20: SQL lives in
``adapters/``). A literal is a string constant, adjacent parts joined (so a statement split
over lines counts once), or an f-string by its leading text, that begins with SELECT,
INSERT, UPDATE, DELETE or WITH followed by a space. Reads the files with ``ast``; nothing is
imported. Prints one line per service and the total.

Usage: ``sql_in_app.py [REPO_ROOT]``."""

from __future__ import annotations

import ast
import collections
import re
import sys
from pathlib import Path

_STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH) ")


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant):
            return str(first.value)
    return None


def count(root: Path) -> dict[str, int]:
    found: collections.Counter[str] = collections.Counter()
    for path in sorted(root.glob("services/*/src/*/app/**/*.py")):
        service = path.relative_to(root).parts[1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            text = _text(node)
            if text is not None and _STATEMENT.match(text):
                found[service] += 1
    return dict(sorted(found.items()))


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    found = count(root)
    for service, n in found.items():
        print(f"{service} {n}")
    print(f"total {sum(found.values())}")


if __name__ == "__main__":
    main()
