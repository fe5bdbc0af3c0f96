"""Sensor keys on the ingest hot path (decoded unchecked, checked once per distinct key in
validation) and the partition days of a batch. No I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import msgspec
import pytest

from outpost_contracts.readings import SensorKey, TelemetryMessage
from outpost_readings.domain.readings import (
    WHOLE_MESSAGE,
    Kind,
    Limits,
    Reading,
    Reason,
    partition_days,
    sensor_key_problem,
    validate,
)

pytestmark = pytest.mark.unit
ARRIVAL = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
BAD_KEYS = ["", "x" * 65, "has space", "semi;colon", "ümlaut", "new\nline"]


class Strict(msgspec.Struct):
    sensor: SensorKey


class StrictMessage(msgspec.Struct):
    """The message as it was decoded before ``WireSensorKey``: the key checked by msgspec."""

    seq: int
    readings: list[Strict]


def _checked(payload: dict[str, Any]) -> str | None:
    """What the strict decoder says of a payload."""
    try:
        msgspec.json.decode(msgspec.json.encode(payload), type=StrictMessage)
    except msgspec.ValidationError as exc:
        return f"invalid telemetry payload: {exc}"
    return None


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_a_bad_key_refuses_the_whole_message_as_the_strict_decoder_would(bad: str) -> None:
    payload = {
        "seq": 3,
        "readings": [
            {"sensor": "temp", "value": 1.0},
            {"sensor": "temp", "value": 2.0, "ts": "2026-11-21T11:59:00Z"},
            {"sensor": bad, "value": 3.0},
        ],
    }
    message = msgspec.json.decode(msgspec.json.encode(payload), type=TelemetryMessage)
    verdict = validate(
        uuid4(),
        uuid4(),
        message,
        ARRIVAL,
        Limits(),
        device_status="ACTIVE",
        sensors={},
        auto_declare=True,
    )
    assert verdict.rows == [] and verdict.declared == {}
    assert [(r.index, r.reason) for r in verdict.rejected] == [
        (WHOLE_MESSAGE, Reason.INVALID_PAYLOAD)
    ]
    assert verdict.rejected[0].detail == _checked(payload)


@pytest.mark.parametrize("good", ["t", "temp.c", "a:b-c_d", "x" * 64])
def test_good_keys_pass_and_are_remembered(good: str) -> None:
    assert sensor_key_problem(good) is None
    assert sensor_key_problem(good) is None  # from the cache the second time
    assert _checked({"seq": 1, "readings": [{"sensor": good}]}) is None


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_bad_keys_are_never_remembered(bad: str) -> None:
    assert sensor_key_problem(bad) is not None
    assert sensor_key_problem(bad) is not None


def _row(ts: datetime) -> Reading:
    return Reading(
        org_id=uuid4(),
        device_id=uuid4(),
        sensor="t",
        ts=ts,
        kind=Kind.NUMBER,
        num=1.0,
        txt=None,
        seq=1,
    )


def test_partition_days_of_a_batch() -> None:
    assert partition_days([]) == set()
    # An instant with an offset is stored on its UTC day.
    late = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
    paris = late.astimezone(ZoneInfo("Europe/Paris"))
    assert partition_days([_row(paris)]) == {date(2026, 11, 21)}
    # A batch over a day or two: every day between, whatever the order.
    rows = [_row(late + timedelta(hours=h)) for h in (25, 0, 2)]
    assert partition_days(rows) == {date(2026, 11, 21), date(2026, 11, 22), date(2026, 11, 23)}
    # A backfill across months: only the days that have rows, no empty partitions between.
    spread = [_row(late - timedelta(days=90)), _row(late), _row(late - timedelta(days=30))]
    assert partition_days(spread) == {r.ts.date() for r in spread}
