"""The archive writer: CSV and NDJSON members, manifest counts and checksums, values of every
kind, and memory that does not grow with the archive."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tracemalloc
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import msgspec
import pytest

from outpost_contracts import alerting
from outpost_contracts import exports as api
from outpost_contracts.annotations import AnnotationView, Tag
from outpost_contracts.readings import ReadingsChunk
from outpost_exports.adapters.archive import Archive, manifest

pytestmark = pytest.mark.unit

T = datetime(2024, 1, 1, tzinfo=UTC)


def chunk(n: int, start: int = 0, values: list[object] | None = None) -> ReadingsChunk:
    ts = [
        f"2024-01-01T00:{(start + i) // 60 % 60:02d}:{(start + i) % 60:02d}.000000Z"
        for i in range(n)
    ]
    return ReadingsChunk(
        sensors=["temperature", "door"],
        sensor_index=[i % 2 for i in range(n)],
        ts=ts,
        value=values if values is not None else [(start + i) * 0.5 for i in range(n)],  # type: ignore[arg-type]
        next=False,
    )


def _finish(archive: Archive, readings: int, annotations: int) -> None:
    archive.finish(
        manifest(
            export_id=uuid4(),
            org_id=uuid4(),
            scope_type=api.ScopeType.DEVICE,
            scope_id=uuid4(),
            start=T,
            end=T,
            includes=[api.Include.READINGS, api.Include.ANNOTATIONS],
            fmt=archive.format,
            devices=[],
            reading_count=readings,
            annotation_count=annotations,
            generated_at=T,
        )
    )


def annotation() -> AnnotationView:
    return AnnotationView(
        id=uuid4(),
        device_id=uuid4(),
        class_id=uuid4(),
        from_=T,
        to=T,
        created_at=T,
        updated_at=T,
        version=1,
        sensor="door",
        text='opened, "by hand"\nthen closed',
        tags=[Tag(key="k", value="v")],
    )


@pytest.mark.parametrize("fmt", [api.Format.CSV, api.Format.NDJSON])
def test_members_manifest_and_checksums(tmp_path: Path, fmt: api.Format) -> None:
    device = uuid4()
    archive = Archive(tmp_path / "a.zip", fmt)
    archive.begin_readings()
    values: list[object] = [1, 2.5, True, False, 'a "quoted", text', -1e-07]
    written = archive.write_readings(device, chunk(6, values=values))
    written += archive.write_readings(device, chunk(4, start=6))
    archive.end_member()
    archive.begin_annotations()
    notes = [annotation(), annotation()]
    assert archive.write_annotations(notes) == 2
    _finish(archive, written, 2)
    assert written == 10
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        body = json.loads(zf.read("manifest.json"))
        ext = "csv" if fmt == api.Format.CSV else "ndjson"
        assert [f["name"] for f in body["files"]] == [f"readings.{ext}", f"annotations.{ext}"]
        for f in body["files"]:
            data = zf.read(f["name"])
            assert hashlib.sha256(data).hexdigest() == f["sha256"]
            assert len(data) == f["bytes"]
        assert body["counts"] == {"readings": 10, "annotations": 2}
        assert body["formatVersion"] == api.FORMAT_VERSION
        readings = zf.read(f"readings.{ext}").decode()
        notes_text = zf.read(f"annotations.{ext}").decode()
    if fmt == api.Format.CSV:
        rows = list(csv.DictReader(io.StringIO(readings)))
        assert [r["value"] for r in rows[:6]] == [
            "1",
            "2.5",
            "true",
            "false",
            'a "quoted", text',
            "-1e-07",
        ]
        assert {r["deviceId"] for r in rows} == {str(device)}
        assert rows[1]["sensor"] == "door" and rows[0]["ts"] == "2024-01-01T00:00:00.000000Z"
        got = list(csv.DictReader(io.StringIO(notes_text)))
        assert got[0]["text"] == notes[0].text and json.loads(got[0]["tags"]) == [
            {"key": "k", "value": "v"}
        ]
    else:
        rows = [json.loads(line) for line in readings.splitlines()]
        assert [r["value"] for r in rows[:6]] == values
        assert rows[9] == {
            "deviceId": str(device),
            "sensor": "door",
            "ts": "2024-01-01T00:00:09.000000Z",
            "value": 4.5,
        }
        got = [json.loads(line) for line in notes_text.splitlines()]
        assert got[0]["text"] == notes[0].text and got[0]["id"] == str(notes[0].id)


def test_memory_stays_bounded_whatever_the_size(tmp_path: Path) -> None:
    """A 40-times larger archive costs no more memory than a small one (a chunk at a time)."""
    device = uuid4()
    block = chunk(20_000)

    def peak(chunks: int) -> int:
        archive = Archive(tmp_path / f"{chunks}.zip", api.Format.CSV)
        archive.begin_readings()
        tracemalloc.start()
        for _ in range(chunks):
            archive.write_readings(device, block)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        _finish(archive, 0, 0)
        return top

    small, large = peak(2), peak(80)
    assert large < small * 1.5 + 1_000_000
    assert (tmp_path / "80.zip").stat().st_size > (tmp_path / "2.zip").stat().st_size * 10


def test_abort_leaves_no_file(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "x.zip", api.Format.CSV)
    archive.begin_readings()
    archive.write_readings(uuid4(), chunk(5))
    archive.abort()
    assert not (tmp_path / "x.zip").exists()


def alert(resolved: bool) -> alerting.AlertView:
    return alerting.AlertView(
        id=uuid4(),
        rule_id=uuid4(),
        rule_version=2,
        device_id=uuid4(),
        sensor="temp",
        status=alerting.AlertStatus.RESOLVED if resolved else alerting.AlertStatus.OPEN,
        severity=alerting.Severity.CRITICAL,
        opened_at=T,
        trigger=alerting.AlertTrigger(
            value=None if resolved else 95.5, ts=T, since=T, condition="temp > 90", rule_version=2
        ),
        resolved_at=T if resolved else None,
    )


@pytest.mark.parametrize("fmt", [api.Format.CSV, api.Format.NDJSON])
def test_alerts_and_events_members(tmp_path: Path, fmt: api.Format) -> None:
    archive = Archive(tmp_path / "a.zip", fmt)
    archive.begin_alerts()
    alerts = [alert(False), alert(True)]
    assert archive.write_alerts(alerts) == 2
    archive.end_member()
    archive.begin_events()
    entry = alerting.TimelineEntry(
        id=uuid4(),
        ts=T,
        type="alerting.AlertOpened.v1",
        summary='opened, "hot"',
        device_id=alerts[0].device_id,
        alert_id=alerts[0].id,
        data={"value": 95.5},
    )
    assert archive.write_events([entry]) == 1
    archive.finish(
        manifest(
            export_id=uuid4(),
            org_id=uuid4(),
            scope_type=api.ScopeType.ORGANIZATION,
            scope_id=None,
            start=T,
            end=T,
            includes=[api.Include.ALERTS, api.Include.EVENTS],
            fmt=fmt,
            devices=[],
            reading_count=0,
            annotation_count=0,
            alert_count=2,
            event_count=1,
            generated_at=T,
        )
    )
    ext = "csv" if fmt == api.Format.CSV else "ndjson"
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        body = json.loads(zf.read("manifest.json"))
        assert [f["name"] for f in body["files"]] == [f"alerts.{ext}", f"events.{ext}"]
        for f in body["files"]:
            assert hashlib.sha256(zf.read(f["name"])).hexdigest() == f["sha256"]
        assert body["counts"] == {"readings": 0, "annotations": 0, "alerts": 2, "events": 1}
        assert body["columns"]["alerts"][-2:] == ["triggerValue", "triggerTs"]
        alerts_text = zf.read(f"alerts.{ext}").decode()
        events_text = zf.read(f"events.{ext}").decode()
    stamp = "2024-01-01T00:00:00Z"
    if fmt == api.Format.CSV:
        rows = list(csv.DictReader(io.StringIO(alerts_text)))
        assert rows[0] == {
            "id": str(alerts[0].id),
            "ruleId": str(alerts[0].rule_id),
            "ruleVersion": "2",
            "deviceId": str(alerts[0].device_id),
            "sensor": "temp",
            "status": "OPEN",
            "severity": "CRITICAL",
            "openedAt": stamp,
            "acknowledgedAt": "",
            "resolvedAt": "",
            "triggerValue": "95.5",
            "triggerTs": stamp,
        }
        assert (rows[1]["status"], rows[1]["resolvedAt"], rows[1]["triggerValue"]) == (
            "RESOLVED",
            stamp,
            "",
        )
        [event] = list(csv.DictReader(io.StringIO(events_text)))
        assert event == {
            "id": str(entry.id),
            "ts": stamp,
            "type": "alerting.AlertOpened.v1",
            "deviceId": str(entry.device_id),
            "alertId": str(entry.alert_id),
            "summary": 'opened, "hot"',
            "data": '{"value":95.5}',
        }
    else:
        got = [json.loads(line) for line in alerts_text.splitlines()]
        assert got == [json.loads(msgspec.json.encode(a)) for a in alerts]
        assert got[0]["trigger"]["value"] == 95.5 and got[0]["openedAt"] == stamp
        [event] = [json.loads(line) for line in events_text.splitlines()]
        assert event == json.loads(msgspec.json.encode(entry))


@pytest.mark.parametrize("fmt", [api.Format.CSV, api.Format.NDJSON])
def test_an_offline_alert_without_a_sensor(tmp_path: Path, fmt: api.Format) -> None:
    """Decision 71: an ``offline`` rule may have no sensor; its alerts' ``sensor`` is an
    empty CSV cell and null in NDJSON, which reads back as the view it was."""
    gone = msgspec.structs.replace(
        alert(False),
        sensor=None,
        trigger=alerting.AlertTrigger(
            value=None, ts=T, since=T, condition="device offline for 60s", rule_version=2
        ),
    )
    archive = Archive(tmp_path / "o.zip", fmt)
    archive.begin_alerts()
    assert archive.write_alerts([gone]) == 1
    archive.end_member()
    archive.finish(
        manifest(
            export_id=uuid4(),
            org_id=uuid4(),
            scope_type=api.ScopeType.ORGANIZATION,
            scope_id=None,
            start=T,
            end=T,
            includes=[api.Include.ALERTS],
            fmt=fmt,
            devices=[],
            reading_count=0,
            annotation_count=0,
            alert_count=1,
            event_count=0,
            generated_at=T,
        )
    )
    ext = "csv" if fmt == api.Format.CSV else "ndjson"
    with zipfile.ZipFile(tmp_path / "o.zip") as zf:
        text = zf.read(f"alerts.{ext}").decode()
    if fmt == api.Format.CSV:
        [row] = list(csv.DictReader(io.StringIO(text)))
        assert (row["deviceId"], row["sensor"], row["triggerValue"]) == (
            str(gone.device_id),
            "",
            "",
        )
    else:
        assert json.loads(text)["sensor"] is None
        assert msgspec.json.decode(text.strip(), type=alerting.AlertView) == gone
