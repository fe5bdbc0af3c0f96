"""Telemetry → reading rows. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from outpost_contracts.readings import TelemetryMessage, TelemetryReading
from outpost_readings.domain.readings import Kind, Limits, readings_of, value_of

pytestmark = pytest.mark.unit
ARRIVAL = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_defaults_ts_to_arrival_and_types_values() -> None:
    msg = TelemetryMessage(
        seq=7,
        readings=[
            TelemetryReading(sensor="t", value=21.5),
            TelemetryReading(sensor="on", value=True, ts=ARRIVAL - timedelta(seconds=1)),
            TelemetryReading(sensor="mode", value="eco", ts=ARRIVAL - timedelta(seconds=2)),
        ],
    )
    rows, rejected = readings_of(uuid4(), uuid4(), msg, ARRIVAL, Limits())
    assert rejected == []
    assert [(r.sensor, r.ts, r.kind) for r in rows] == [
        ("t", ARRIVAL, Kind.NUMBER),
        ("on", ARRIVAL - timedelta(seconds=1), Kind.BOOL),
        ("mode", ARRIVAL - timedelta(seconds=2), Kind.TEXT),
    ]
    assert all(r.seq == 7 for r in rows)
    assert [value_of(r.kind, r.num, r.txt) for r in rows] == [21.5, True, "eco"]


def test_refuses_absurd_timestamps_and_duplicates() -> None:
    msg = TelemetryMessage(
        seq=1,
        readings=[
            TelemetryReading(sensor="t", value=1, ts=ARRIVAL + timedelta(hours=1)),
            TelemetryReading(sensor="t", value=1, ts=ARRIVAL - timedelta(days=400)),
            TelemetryReading(sensor="t", value=1, ts=ARRIVAL),
            TelemetryReading(sensor="t", value=2, ts=ARRIVAL),
        ],
    )
    rows, rejected = readings_of(uuid4(), uuid4(), msg, ARRIVAL, Limits())
    assert len(rows) == 1
    assert [(r.index, r.reason.split()[-1]) for r in rejected] == [
        (0, "future"),
        (1, "past"),
        (3, "timestamp"),
    ]


def test_integers_come_back_as_integers() -> None:
    assert value_of(Kind.NUMBER, 3.0, None) == 3 and isinstance(
        value_of(Kind.NUMBER, 3.0, None), int
    )
    assert value_of(Kind.NUMBER, 2.5, None) == 2.5


def test_refuses_text_with_nul() -> None:
    msg = TelemetryMessage(seq=1, readings=[TelemetryReading(sensor="mode", value="a\x00b")])
    rows, rejected = readings_of(uuid4(), uuid4(), msg, ARRIVAL, Limits())
    assert rows == [] and [r.index for r in rejected] == [0]
