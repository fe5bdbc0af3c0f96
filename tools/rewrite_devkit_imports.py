"""Rewrite references to what moved out of the runtime kit (ADR 0087), idempotently.

    python tools/rewrite_devkit_imports.py [PATH ...]   (default: the whole repository)

Run it again after merging a branch written against the old layout. It does, in order:

1. In Python files, splits ``from outpost_kit.dev.stack import ...`` by where each name lives
   now: the platform material (``outpost_kit.material``), the demo credentials
   (``outpost_kit.deploy``), the rest stays with the dev stack.
2. In every text file, replaces module paths and source paths (the regular expressions in
   ``RENAMES``; ``outpost_kit.infra.broker_pki`` stays in the runtime kit as
   ``outpost_kit.broker_pki``, the rest of ``infra``, ``dev`` and ``testing`` is
   ``outpost_devkit``).
3. Sorts the imports of the Python files it changed (``ruff check --select I --fix``).

Historical records (``docs/adr/``) are left as they were written.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Historical records, and the boundary check's tests (synthetic trees under the old paths).
SKIP_PREFIXES = (
    "docs/adr/",
    "tools/rewrite_devkit_imports.py",
    "tests/tools/test_check_boundaries.py",
)
SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".sh", ".cfg", ".ini", ".txt", ".conf"}
NAMES = {"Makefile", "Dockerfile"}

STACK = "outpost_kit.dev.stack"
# Names that left the dev stack for a runtime module (both run in the images' deploy jobs).
MOVED_NAMES = {
    "outpost_kit.material": {
        "DOMAIN_SERVICES",
        "ALL_SERVICES",
        "DB_SERVICES",
        "SECRETS_NAME",
        "KEY_ENCRYPTION_KEY",
        "CA_ENCRYPTION_KEY",
        "SECRET_ENCRYPTION_KEY",
        "DOWNLOAD_SIGNING_KEY",
        "DEV_NATS_USER",
        "SYSTEM_NATS_USER",
        "NATS_USERS",
        "_ALL_NATS_USERS",
        "SLOT_B_SUFFIX",
        "nats_slots",
        "_nats_secret",
        "_active_key",
        "nats_login",
        "rotate_nats_password",
        "_nats_permissions",
        "broker_config",
        "ensure_secrets",
        "_write_private",
    },
    "outpost_kit.deploy": {
        "CREDENTIALS_NAME",
        "OPERATOR_ACCEPT_TIMEOUT",
        "DEMO_ORG",
        "DEMO_KEY_NAME",
        "_Api",
        "_decode",
        "_read_json",
    },
}

RENAMES: list[tuple[re.Pattern[str], str]] = [
    *(
        (re.compile(rf"\boutpost_kit\.dev\.stack\.({'|'.join(sorted(names))})\b"), rf"{module}.\1")
        for module, names in MOVED_NAMES.items()
    ),
    (re.compile(r"\boutpost_kit\.infra\.broker_pki\b"), "outpost_kit.broker_pki"),
    (re.compile(r"\boutpost_kit/infra/broker_pki\.py\b"), "outpost_kit/broker_pki.py"),
    (re.compile(r"\boutpost_kit\.(infra|dev|testing)\b"), r"outpost_devkit.\1"),
    (
        re.compile(r"\blibs/kit/src/outpost_kit/(infra|dev|testing)\b"),
        r"libs/devkit/src/outpost_devkit/\1",
    ),
    (re.compile(r"(?<![\w/])outpost_kit/(infra|dev|testing)/"), r"outpost_devkit/\1/"),
    (
        re.compile(r"\blibs/kit/tests/integration/test_kit_(infra|free_port)\.py\b"),
        r"libs/devkit/tests/integration/test_kit_\1.py",
    ),
]


def _alias(alias: ast.alias) -> str:
    return alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"


def _statement(module: str, names: list[str], indent: str) -> str:
    one = f"{indent}from {module} import {', '.join(names)}"
    if len(one) <= 100:
        return one + "\n"
    body = "".join(f"{indent}    {name},\n" for name in names)
    return f"{indent}from {module} import (\n{body}{indent})\n"


def split_stack_imports(text: str) -> str:
    """``from outpost_kit.dev.stack import a, b`` as one statement per module that holds the
    names now (keeping their order)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and node.module == STACK and node.level == 0):
            continue
        groups: dict[str, list[str]] = {}
        for alias in node.names:
            module = next((m for m, names in MOVED_NAMES.items() if alias.name in names), STACK)
            groups.setdefault(module, []).append(_alias(alias))
        if list(groups) == [STACK]:
            continue
        indent = " " * node.col_offset
        new = "".join(_statement(m, names, indent) for m, names in groups.items())
        assert node.end_lineno is not None
        edits.append((node.lineno - 1, node.end_lineno, new))
    for start, end, new in sorted(edits, reverse=True):
        lines[start:end] = [new]
    return "".join(lines)


def rewrite(text: str, python: bool) -> str:
    if python:
        text = split_stack_imports(text)
    for pattern, replacement in RENAMES:
        text = pattern.sub(replacement, text)
    return text


def files(paths: list[Path]) -> list[Path]:
    """The tracked files under ``paths`` (git ls-files: nothing in .venv or caches)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *(str(p) for p in paths)],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    found: list[Path] = []
    for rel in filter(None, listed.split("\0")):
        file = ROOT / rel
        if rel.startswith(SKIP_PREFIXES) or not file.is_file():
            continue
        if file.suffix in SUFFIXES or file.name in NAMES:
            found.append(file)
    return sorted(set(found))


def main(argv: list[str]) -> int:
    paths = [Path(a).resolve() for a in argv] or [ROOT]
    changed: list[Path] = []
    for file in files(paths):
        try:
            text = file.read_text()
        except UnicodeDecodeError:
            continue
        new = rewrite(text, file.suffix == ".py")
        if new != text:
            file.write_text(new)
            changed.append(file)
    python = [str(f) for f in changed if f.suffix == ".py"]
    if python:
        subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--quiet", "--select", "I", "--fix", *python],
            cwd=ROOT,
            check=False,
        )
        subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--quiet", *python], cwd=ROOT, check=False
        )
    for file in changed:
        print(file.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
