#!/usr/bin/env python3
"""Regenerate the generated parts of docs/operations.md from the code, so they cannot drift:

- the configuration reference: every variable of every service's settings struct (name,
  type, default, the comment above the field), plus the few read elsewhere
  (``tools/config_catalog.py``);
- the metrics catalogue: every Prometheus metric the code declares (``Counter(``,
  ``Histogram(``, ``Gauge(``, ``Summary(`` with a literal name; found with ``ast``), its
  type, labels, help text and where it is declared, linked to its entry under "Alerts" when
  one exists.

Each part sits between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``;
the rest of the page is written by hand. ``--check`` exits 1 if the page is stale
(tests/tools/test_gen_config_reference.py runs it). Usage:
``gen_config_reference.py [--check] [REPO_ROOT]``.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import config_catalog

DOC = Path("docs") / "operations.md"
_BLOCK = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)"
    r"(<!-- END GENERATED: (?P=name) -->)",
    re.DOTALL,
)
_METRIC_TYPES = {"Counter", "Histogram", "Gauge", "Summary"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_reference() -> str:
    lines = [
        "Every process reads `OUTPOST_<SERVICE>_<FIELD>`, falling back to the shared",
        "`OUTPOST_<FIELD>` (so `OUTPOST_LOG_LEVEL` sets every service's level and",
        "`OUTPOST_READINGS_LOG_LEVEL` only readings'). Secrets (type `Secret`) never appear in a",
        "log or a repr.",
        "",
        "#### Every process",
        "",
        "| variable | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for setting in config_catalog.common_settings():
        variable = f"`OUTPOST_<SVC>_{setting.name.upper()}`, `{setting.shared_variable}`"
        lines.append(
            f"| {variable} | `{_cell(setting.type)}` | `{_cell(setting.default)}` "
            f"| {_cell(setting.comment)} |"
        )
    for service in config_catalog.SERVICES:
        own = [s for s in config_catalog.settings(service) if not s.inherited]
        lines += ["", f"#### {service}", ""]
        if not own:
            lines.append("Nothing beyond what every process reads.")
            continue
        lines += ["| variable | type | default | meaning |", "|---|---|---|---|"]
        for setting in own:
            lines.append(
                f"| `{setting.variable}` | `{_cell(setting.type)}` | `{_cell(setting.default)}` "
                f"| {_cell(setting.comment)} |"
            )
    lines += [
        "",
        "#### Read outside the settings structs",
        "",
        "| variable | read by | meaning |",
        "|---|---|---|",
    ]
    for name, reader, meaning in config_catalog.EXTRA:
        lines.append(f"| `{name}` | {_cell(reader)} | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    labels: tuple[str, ...]
    help: str
    where: str

    @property
    def exposed(self) -> str:
        """The name Prometheus scrapes (counters gain ``_total``)."""
        if self.kind == "Counter" and not self.name.endswith("_total"):
            return self.name + "_total"
        return self.name


def _literal_strings(node: ast.AST | None) -> tuple[str, ...]:
    if isinstance(node, ast.List | ast.Tuple):
        return tuple(
            e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        )
    return ()


def metrics(root: Path) -> list[Metric]:
    found: list[Metric] = []
    files = sorted([*root.glob("libs/*/src/**/*.py"), *root.glob("services/*/src/**/*.py")])
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if kind not in _METRIC_TYPES or not node.args:
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            help_node = node.args[1] if len(node.args) > 1 else None
            help_text = (
                help_node.value
                if isinstance(help_node, ast.Constant) and isinstance(help_node.value, str)
                else ""
            )
            labels = _literal_strings(node.args[2] if len(node.args) > 2 else None)
            for keyword in node.keywords:
                if keyword.arg == "labelnames":
                    labels = _literal_strings(keyword.value)
            where = f"{path.relative_to(root)}:{node.lineno}"
            found.append(Metric(first.value, kind, labels, help_text, where))
    return sorted(found, key=lambda m: m.exposed)


def metrics_catalogue(root: Path, documented: set[str]) -> str:
    lines = [
        "| metric | type | labels | what it counts | declared in | what to do |",
        "|---|---|---|---|---|---|",
    ]
    for metric in metrics(root):
        # GitHub's heading anchors keep underscores and drop the backquotes.
        anchor = f"[entry](#{metric.exposed})" if metric.exposed in documented else "—"
        labels = ", ".join(f"`{label}`" for label in metric.labels) or "—"
        lines.append(
            f"| `{metric.exposed}` | {metric.kind.lower()} | {labels} | {_cell(metric.help)} "
            f"| `{metric.where.split(':')[0]}` | {anchor} |"
        )
    return "\n".join(lines) + "\n"


def documented_metrics(text: str) -> set[str]:
    """Metrics with an entry under "Alerts": a heading ``#### `outpost_...` ``."""
    return set(re.findall(r"^#### `(outpost_[a-z0-9_]+)`", text, re.MULTILINE))


def render(root: Path, text: str) -> str:
    documented = documented_metrics(text)
    parts = {
        "config-reference": config_reference(),
        "metrics": metrics_catalogue(root, documented),
    }
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in parts:
            raise SystemExit(f"{DOC}: unknown generated block {name!r}")
        seen.add(name)
        return match.group(1) + parts[name] + match.group(4)

    result = _BLOCK.sub(replace, text)
    missing = set(parts) - seen
    if missing:
        raise SystemExit(f"{DOC}: no generated block for {sorted(missing)}")
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    rest = [a for a in args if a != "--check"]
    root = Path(rest[0]).resolve() if rest else config_catalog.repo_root()
    path = root / DOC
    text = path.read_text()
    fresh = render(root, text)
    if check:
        if fresh != text:
            print(f"{DOC} is stale: run `uv run python tools/gen_config_reference.py`")
            return 1
        return 0
    if fresh != text:
        path.write_text(fresh)
        print(f"{DOC} regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
