#!/usr/bin/env python3
"""Import boundaries the architecture promises (docs/architecture.md principles 1 and 8).

Reads every Python file under ``services/*/src`` and ``libs/*/src`` with ``ast`` (nothing is
imported or run) and reports, as ``path:line: message``:

- a module inside a ``domain/`` package importing anything but pure standard-library modules
  (an allowlist), ``msgspec``, ``outpost_contracts`` or its own package's ``domain``;
- a service package importing another service's package;
- ``outpost_kit`` or ``outpost_contracts`` importing any service package;
- ``outpost_contracts`` importing anything but ``msgspec`` and the standard library;
- a service package, ``outpost_kit`` or ``outpost_contracts`` (what the images install)
  importing ``outpost_devkit``, the development tools the images do not install (ADR 0087);
- ``outpost_client`` (installed by users on their own machines) importing any other
  ``outpost_*`` package: it knows the API from its OpenAPI document only (decision 68).

Exit status 1 when anything is reported. Usage: ``check_boundaries.py [REPO_ROOT]``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("gateway", "identity", "devices", "readings", "alerting", "exports", "fleet")
KIT = "outpost_kit"
DEVKIT = "outpost_devkit"
CONTRACTS = "outpost_contracts"
CLIENT = "outpost_client"

# Standard-library modules a pure domain may use: no I/O, no clock, no randomness, no
# environment. Dotted entries allow that submodule only (``urllib.parse``, not ``urllib``).
PURE_STDLIB = frozenset(
    {
        "__future__",
        "abc",
        "base64",
        "binascii",
        "bisect",
        "collections",
        "copy",
        "dataclasses",
        "datetime",
        "decimal",
        "enum",
        "fractions",
        "functools",
        "hashlib",
        "heapq",
        "hmac",
        "ipaddress",
        "itertools",
        "json",
        "math",
        "numbers",
        "operator",
        "re",
        "statistics",
        "string",
        "struct",
        "textwrap",
        "types",
        "typing",
        "typing_extensions",
        "urllib.parse",
        "uuid",
    }
)
DOMAIN_THIRD_PARTY = frozenset({"msgspec", CONTRACTS})
CONTRACTS_THIRD_PARTY = frozenset({"msgspec"})


@dataclass(frozen=True, order=True)
class Violation:
    path: Path
    line: int
    message: str

    def render(self, root: Path) -> str:
        try:
            shown = self.path.relative_to(root)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Module:
    path: Path
    name: str  # dotted, e.g. outpost_identity.domain.organizations
    is_package: bool  # an __init__.py

    @property
    def top(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def in_domain(self) -> bool:
        return "domain" in self.name.split(".")[1:]


def _covers(allowed: str, module: str) -> bool:
    return module == allowed or module.startswith(allowed + ".")


def service_packages(root: Path) -> set[str]:
    """The canonical service packages plus any other package found under services/*/src."""
    found = {f"outpost_{name}" for name in SERVICES}
    for src in root.glob("services/*/src"):
        found.update(p.name for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    return found


def iter_modules(root: Path) -> Iterator[Module]:
    for src in sorted([*root.glob("services/*/src"), *root.glob("libs/*/src")]):
        for path in sorted(src.rglob("*.py")):
            parts = list(path.relative_to(src).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            if parts:
                yield Module(path, ".".join(parts), is_package)


def imported(module: Module, tree: ast.AST) -> Iterator[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) for every import statement."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names if a.name != "*"]
            if node.level == 0:
                yield node.lineno, node.module or "", names
                continue
            package = module.name.split(".")
            if not module.is_package:
                package = package[:-1]
            if node.level > 1:
                package = package[: len(package) - (node.level - 1)]
            base = ".".join(p for p in [*package, node.module or ""] if p)
            yield node.lineno, base, names


def check_module(module: Module, services: set[str], stdlib: frozenset[str]) -> list[Violation]:
    try:
        tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
    except SyntaxError as exc:
        return [Violation(module.path, exc.lineno or 0, f"cannot parse: {exc.msg}")]
    found: list[Violation] = []
    own = module.top
    for line, base, names in imported(module, tree):
        top = base.split(".", 1)[0]

        def bad(message: str, line: int = line) -> None:
            found.append(Violation(module.path, line, message))

        if own == CLIENT and top.startswith("outpost_") and top != own:
            bad(f"{CLIENT} imports {base}: the client may not import any other outpost package")
            continue
        if top == DEVKIT and own != DEVKIT and (own in services or own in (KIT, CONTRACTS)):
            bad(
                f"{own} imports {base}: the images do not install {DEVKIT} (development "
                "tools); only tests, tools and the dev stack may import it"
            )
            continue
        if top in services and top != own:
            if own in services:
                bad(f"{own} imports {base}: services may not import another service's package")
            else:
                bad(f"{own} imports {base}: {own} may not import any service package")
            continue
        if own == CONTRACTS and top not in stdlib and top not in CONTRACTS_THIRD_PARTY | {own}:
            bad(f"{CONTRACTS} imports {base}: contracts may import only msgspec and the stdlib")
            continue
        if module.in_domain and not _domain_allows(own, base, names):
            bad(
                f"domain module imports {base}: the domain does no I/O; allowed are pure "
                f"stdlib modules, msgspec, {CONTRACTS} and {own}.domain"
            )
    return found


def _domain_allows(own: str, base: str, names: list[str]) -> bool:
    allowed = [*PURE_STDLIB, *DOMAIN_THIRD_PARTY, f"{own}.domain"]

    def ok(target: str) -> bool:
        return any(_covers(a, target) for a in allowed)

    if ok(base):
        return True
    # ``from urllib import parse`` or ``from outpost_x import domain``: every name must be
    # an allowed submodule.
    return bool(names) and all(ok(f"{base}.{n}") for n in names)


def check(root: Path) -> list[Violation]:
    root = root.resolve()
    services = service_packages(root)
    stdlib = frozenset(sys.stdlib_module_names)
    found: list[Violation] = []
    for module in iter_modules(root):
        found.extend(check_module(module, services, stdlib))
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[1]
    violations = check(root)
    for violation in violations:
        print(violation.render(root.resolve()))
    if violations:
        print(f"{len(violations)} import-boundary violation(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
