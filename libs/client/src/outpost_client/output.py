"""How the command line shows what the API answered: a rich table for people,
``json``/``yaml``/``csv`` for scripts, ids only with ``--quiet``; sparklines and a terminal
chart of readings. Pure functions of their input (the CLI prints what they return)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from rich.table import Table

FORMATS = ("table", "json", "yaml", "csv")
BARS = "▁▂▃▄▅▆▇█"


def pick(item: Any, path: str) -> Any:
    """``a.b`` of nested objects; None when absent."""
    value = item
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def cell(value: Any) -> str:
    """One value as a table cell: tags as ``k=v``, objects as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        if all(isinstance(v, dict) and "key" in v for v in value):
            return ",".join(f"{v['key']}={v.get('value', '')}" for v in value)
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def columns_of(items: Sequence[Any], preferred: Sequence[str]) -> list[str]:
    """The preferred columns that some item has (``$select`` may leave some out), or every
    top-level field of the first item when none of them is present."""
    present = [c for c in preferred if any(pick(i, c) is not None for i in items)]
    if present or not items or not isinstance(items[0], dict):
        return present or list(preferred)
    return list(items[0])


def table(items: Sequence[Any], columns: Sequence[str], title: str | None = None) -> Table:
    out = Table(title=title, header_style="bold", show_lines=False)
    for column in columns:
        out.add_column(column, overflow="fold")
    for item in items:
        out.add_row(*(cell(pick(item, c)) for c in columns))
    return out


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False)


def as_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def as_csv(items: Iterable[Any], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for item in items:
        writer.writerow([cell(pick(item, c)) for c in columns])
    return buffer.getvalue()


def ids(items: Iterable[Any], key: str = "id") -> str:
    return "".join(f"{cell(pick(i, key))}\n" for i in items)


def render(data: Any, fmt: str, columns: Sequence[str], *, quiet: bool = False) -> Any:
    """What to print: a string, or a rich ``Table`` for ``table``. ``data`` is one object
    (a dict) or a list of them."""
    many = isinstance(data, list)
    items: list[Any] = data if many else [data]
    if quiet:
        return ids(items)
    if fmt == "json":
        return as_json(data) + "\n"
    if fmt == "yaml":
        return as_yaml(data)
    chosen = columns_of(items, columns)
    if fmt == "csv":
        return as_csv(items, chosen)
    if fmt != "table":
        raise ValueError(f"unknown output format {fmt!r}: one of {', '.join(FORMATS)}")
    if not many and isinstance(data, dict):
        return details(data)
    return table(items, chosen)


def details(item: dict[str, Any]) -> Table:
    """One object as a two-column table of its fields."""
    out = Table(show_header=False, box=None, pad_edge=False)
    out.add_column("field", style="bold")
    out.add_column("value", overflow="fold")
    for key, value in item.items():
        out.add_row(key, cell(value))
    return out


# -- readings -----------------------------------------------------------------------------


def _finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def sparkline(values: Sequence[float | None]) -> str:
    """One character per value, ``▁`` (the lowest) to ``█`` (the highest); a gap (no value)
    is a space. A flat series is all ``▄``."""
    known = _finite(values)
    if not known:
        return " " * len(values)
    low, high = min(known), max(known)
    span = high - low
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(" ")
        elif span == 0:
            out.append(BARS[3])
        else:
            out.append(BARS[min(len(BARS) - 1, int((v - low) / span * len(BARS)))])
    return "".join(out)


def resample(values: Sequence[float | None], width: int) -> list[float | None]:
    """At most ``width`` values: consecutive ones averaged (gaps ignored)."""
    if len(values) <= width:
        return list(values)
    out: list[float | None] = []
    for i in range(width):
        chunk = _finite(values[i * len(values) // width : (i + 1) * len(values) // width])
        out.append(sum(chunk) / len(chunk) if chunk else None)
    return out


def chart(values: Sequence[float | None], *, height: int = 8, width: int = 60) -> list[str]:
    """A column chart of ``height`` rows: each column the value's height in eighths of a
    row (the minimum one eighth, the maximum the full height; a flat series half of it),
    the y axis labelled with the maximum and the minimum."""
    series = resample(values, width)
    known = _finite(series)
    if not known:
        return ["(no data)"]
    low, high = min(known), max(known)
    span = high - low
    label_width = max(len(f"{high:.4g}"), len(f"{low:.4g}"))
    top = height * 8
    levels = [
        None if v is None else (top // 2 if span == 0 else round((v - low) / span * (top - 1)) + 1)
        for v in series
    ]
    rows = []
    for row in range(height, 0, -1):
        line = []
        floor = (row - 1) * 8
        for level in levels:
            if level is None or level <= floor:
                line.append(" ")
            elif level >= floor + 8:
                line.append("█")
            else:
                line.append(BARS[level - floor - 1])
        label = f"{high:.4g}" if row == height else f"{low:.4g}" if row == 1 else ""
        rows.append(f"{label:>{label_width}} ┤{''.join(line)}")
    return rows
