"""The archive: CSV or NDJSON members streamed into a zip file on disk, then
``manifest.json`` (scope, range, counts, sha256 of every member, format version).

Memory stays bounded whatever the size: rows arrive a chunk at a time, each chunk is
formatted to one buffer and written through ``zipfile``'s streaming member writer (deflated
as it goes), and nothing keeps more than the chunk at hand. ``zipfile`` rather than a
streaming-zip library: the archive goes to a file (uploaded afterwards, so an attempt that
dies leaves no half object in the store), and ``zipfile`` writes members of unknown size
to a file with zip64 headers and no extra dependency."""

from __future__ import annotations

import contextlib
import hashlib
import re
import zipfile
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import msgspec

from outpost_contracts import exports as api
from outpost_contracts.alerting import AlertView, TimelineEntry
from outpost_contracts.annotations import AnnotationView
from outpost_contracts.readings import ReadingsChunk

READINGS_COLUMNS = ("deviceId", "sensor", "ts", "value")
ANNOTATION_COLUMNS = ("id", "deviceId", "classId", "sensor", "from", "to", "text", "tags")
ALERT_COLUMNS = (
    "id",
    "ruleId",
    "ruleVersion",
    "deviceId",
    "sensor",
    "status",
    "severity",
    "openedAt",
    "acknowledgedAt",
    "resolvedAt",
    "triggerValue",
    "triggerTs",
)
EVENT_COLUMNS = ("id", "ts", "type", "deviceId", "alertId", "summary", "data")
_json = msgspec.json.Encoder()


class MemberInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    name: str
    rows: int
    bytes: int
    sha256: str


class _Member:
    """One member being written: counts its rows and bytes and hashes what it writes."""

    def __init__(self, zf: zipfile.ZipFile, name: str) -> None:
        self.name = name
        self._handle: IO[bytes] = zf.open(name, "w", force_zip64=True)
        self._sha = hashlib.sha256()
        self.rows = 0
        self.bytes = 0

    def write(self, data: bytes, rows: int) -> None:
        self._sha.update(data)
        self._handle.write(data)
        self.rows += rows
        self.bytes += len(data)

    def close(self) -> MemberInfo:
        self._handle.close()
        return MemberInfo(
            name=self.name, rows=self.rows, bytes=self.bytes, sha256=self._sha.hexdigest()
        )


# A text cell a spreadsheet would evaluate (OWASP "CSV Injection"; ASVS 5.0 1.2.10): one that
# starts with = + - @, or with a tab, CR, LF or NUL before them. Such a cell is written with
# one leading apostrophe, so the spreadsheet shows it as text; so is a cell that starts with
# the apostrophe itself, so that the rule can be undone: a program drops the first character
# of a text cell that starts with "'" and has the value as it was stored. Numbers are numbers
# (``-3.5`` is not text) and are written as they are (decision 77; docs/tour.md, "Exports").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0", "'")
# RFC 4180: a field with a delimiter, a quote or a line break is quoted. ``csv.writer`` quotes
# a CR only when it is part of its own line terminator: a bare CR split rows, hence this.
_QUOTE = re.compile(r'[,"\r\n]')


def neutralise(text: str) -> str:
    """``text`` as a spreadsheet will show, never evaluate, it."""
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_text(text: str) -> str:
    """One text cell: neutralised, then quoted if it needs quotes."""
    text = neutralise(text)
    if _QUOTE.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


def csv_cell(value: Any) -> str:
    """Any cell of a row: text as ``csv_text``; numbers as Python writes them; booleans
    ``true``/``false``; None empty; anything else (ids, enums) by its ``str``."""
    if isinstance(value, str):
        return csv_text(value)
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return csv_text(str(value))


def csv_row(cells: Sequence[Any]) -> str:
    return ",".join(map(csv_cell, cells)) + "\n"


def _csv_values(values: Sequence[float | int | bool | str]) -> list[str]:
    kinds = set(map(type, values))
    if kinds <= {int, float}:
        return list(map(repr, values))
    return list(map(csv_cell, values))


def _json_values(values: Sequence[float | int | bool | str]) -> list[str]:
    kinds = set(map(type, values))
    if kinds <= {int, float}:
        return list(map(repr, values))
    return [_json.encode(v).decode() for v in values]


class Archive:
    """A zip being written to ``path``: ``readings`` / ``annotations`` members in ``fmt``,
    then ``finish(manifest)``."""

    def __init__(self, path: Path, fmt: api.Format, compress_level: int = 1) -> None:
        self.path = path
        self.format = fmt
        self._zip = zipfile.ZipFile(
            path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compress_level
        )
        self._ext = "csv" if fmt == api.Format.CSV else "ndjson"
        self.members: list[MemberInfo] = []
        self._open: _Member | None = None

    # --- readings ---------------------------------------------------------------------

    def begin_readings(self) -> None:
        self._open = _Member(self._zip, f"readings.{self._ext}")
        if self.format == api.Format.CSV:
            self._open.write((",".join(READINGS_COLUMNS) + "\n").encode(), 0)

    def write_readings(self, device_id: UUID, chunk: ReadingsChunk) -> int:
        """One chunk of one device's readings; returns the rows written."""
        assert self._open is not None
        n = len(chunk.ts)
        if not n:
            return 0
        dev = str(device_id)
        if self.format == api.Format.CSV:
            prefix = [f"{dev},{csv_text(s)}," for s in chunk.sensors]
            values = _csv_values(chunk.value)
            text = "".join(
                [
                    f"{prefix[i]}{t},{v}\n"
                    for i, t, v in zip(chunk.sensor_index, chunk.ts, values, strict=True)
                ]
            )
        else:
            prefix = [
                f'{{"deviceId":"{dev}","sensor":{_json.encode(s).decode()},"ts":"'
                for s in chunk.sensors
            ]
            values = _json_values(chunk.value)
            text = "".join(
                [
                    f'{prefix[i]}{t}","value":{v}}}\n'
                    for i, t, v in zip(chunk.sensor_index, chunk.ts, values, strict=True)
                ]
            )
        self._open.write(text.encode(), n)
        return n

    # --- annotations ------------------------------------------------------------------

    def begin_annotations(self) -> None:
        self._open = _Member(self._zip, f"annotations.{self._ext}")
        if self.format == api.Format.CSV:
            self._open.write((",".join(ANNOTATION_COLUMNS) + "\n").encode(), 0)

    def write_annotations(self, items: Sequence[AnnotationView]) -> int:
        assert self._open is not None
        if not items:
            return 0
        if self.format == api.Format.CSV:
            rows = [
                csv_row(
                    [
                        a.id,
                        a.device_id,
                        a.class_id,
                        a.sensor or "",
                        _rfc3339(a.from_),
                        _rfc3339(a.to),
                        a.text or "",
                        _json.encode(a.tags).decode(),
                    ]
                )
                for a in items
            ]
            data = "".join(rows).encode()
        else:
            data = b"".join(_json.encode(a) + b"\n" for a in items)
        self._open.write(data, len(items))
        return len(items)

    # --- alerts and timeline entries -------------------------------------------------

    def begin_alerts(self) -> None:
        self._begin("alerts", ALERT_COLUMNS)

    def write_alerts(self, items: Sequence[AlertView]) -> int:
        return self._write_rows(
            items,
            lambda a: [
                a.id,
                a.rule_id,
                a.rule_version,
                a.device_id,
                a.sensor,
                a.status.value,
                a.severity.value,
                _rfc3339(a.opened_at),
                _rfc3339_or_empty(a.acknowledged_at),
                _rfc3339_or_empty(a.resolved_at),
                a.trigger.value,  # a number (or empty): never neutralised as text
                _rfc3339(a.trigger.ts),
            ],
        )

    def begin_events(self) -> None:
        self._begin("events", EVENT_COLUMNS)

    def write_events(self, items: Sequence[TimelineEntry]) -> int:
        return self._write_rows(
            items,
            lambda e: [
                e.id,
                _rfc3339(e.ts),
                e.type,
                e.device_id or "",
                e.alert_id or "",
                e.summary,
                _json.encode(e.data).decode(),
            ],
        )

    def _begin(self, kind: str, columns: Sequence[str]) -> None:
        self._open = _Member(self._zip, f"{kind}.{self._ext}")
        if self.format == api.Format.CSV:
            self._open.write((",".join(columns) + "\n").encode(), 0)

    def _write_rows(self, items: Sequence[Any], row: Callable[[Any], list[Any]]) -> int:
        """CSV: one row of ``row(item)`` each; NDJSON: the item's view as JSON."""
        assert self._open is not None
        if not items:
            return 0
        if self.format == api.Format.CSV:
            data = "".join([csv_row(row(item)) for item in items]).encode()
        else:
            data = b"".join(_json.encode(item) + b"\n" for item in items)
        self._open.write(data, len(items))
        return len(items)

    # --- the end ----------------------------------------------------------------------

    def end_member(self) -> MemberInfo:
        assert self._open is not None
        info = self._open.close()
        self._open = None
        self.members.append(info)
        return info

    def finish(self, manifest: dict[str, Any]) -> None:
        """Write ``manifest.json`` (with ``files`` from the members) and close the zip."""
        if self._open is not None:
            self.end_member()
        body = {**manifest, "files": [msgspec.to_builtins(m) for m in self.members]}
        self._zip.writestr("manifest.json", _json.encode(body))
        self._zip.close()

    def abort(self) -> None:
        if self._open is not None:
            with contextlib.suppress(Exception):
                self._open.close()
            self._open = None
        with contextlib.suppress(Exception):  # the file is thrown away anyway
            self._zip.close()
        self.path.unlink(missing_ok=True)


def _rfc3339(value: datetime) -> str:
    return _json.encode(value).decode().strip('"')


def _rfc3339_or_empty(value: datetime | None) -> str:
    return "" if value is None else _rfc3339(value)


def manifest(
    *,
    export_id: UUID,
    org_id: UUID,
    scope_type: api.ScopeType,
    scope_id: UUID | None,
    start: datetime,
    end: datetime,
    includes: Sequence[api.Include],
    fmt: api.Format,
    devices: Sequence[UUID],
    reading_count: int,
    annotation_count: int,
    generated_at: datetime,
    alert_count: int | None = None,
    event_count: int | None = None,
) -> dict[str, Any]:
    """``counts`` and ``columns`` always name readings and annotations (as format version 1
    always did), and alerts and events when they are included."""
    counts: dict[str, int] = {"readings": reading_count, "annotations": annotation_count}
    columns: dict[str, list[str]] = {
        "readings": list(READINGS_COLUMNS),
        "annotations": list(ANNOTATION_COLUMNS),
    }
    if api.Include.ALERTS in includes:
        counts["alerts"] = alert_count or 0
        columns["alerts"] = list(ALERT_COLUMNS)
    if api.Include.EVENTS in includes:
        counts["events"] = event_count or 0
        columns["events"] = list(EVENT_COLUMNS)
    return {
        "formatVersion": api.FORMAT_VERSION,
        "exportId": str(export_id),
        "organizationId": str(org_id),
        "scope": {"type": scope_type.value, "id": str(scope_id) if scope_id else None},
        "range": {"from": _rfc3339(start), "to": _rfc3339(end)},
        "includes": [i.value for i in includes],
        "format": fmt.value,
        "devices": [str(d) for d in devices],
        "counts": counts,
        "generatedAt": _rfc3339(generated_at),
        "columns": columns,
    }
