"""Telemetry → reading rows and refusals; seq gaps. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from outpost_contracts.readings import TelemetryMessage, TelemetryReading
from outpost_readings.domain.readings import (
    DECOMMISSIONED,
    WHOLE_MESSAGE,
    Kind,
    Limits,
    Reason,
    SensorSpec,
    SeqState,
    Verdict,
    advance_seq,
    validate,
    value_of,
)

pytestmark = pytest.mark.unit
ARRIVAL = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _validate(
    *readings: TelemetryReading,
    status: str | None = "REGISTERED",
    sensors: dict[str, SensorSpec] | None = None,
    auto_declare: bool = True,
    **limits: Any,
) -> Verdict:
    return validate(
        uuid4(),
        uuid4(),
        TelemetryMessage(seq=7, readings=list(readings)),
        ARRIVAL,
        Limits(**limits),
        device_status=status,
        sensors=sensors or {},
        auto_declare=auto_declare,
    )


def _reasons(verdict: Verdict) -> list[tuple[int, Reason]]:
    return [(r.index, r.reason) for r in verdict.rejected]


def test_defaults_ts_to_arrival_and_types_values() -> None:
    verdict = _validate(
        TelemetryReading(sensor="t", value=21.5),
        TelemetryReading(sensor="on", value=True, ts=ARRIVAL - timedelta(seconds=1)),
        TelemetryReading(sensor="mode", value="eco", ts=ARRIVAL - timedelta(seconds=2)),
    )
    assert verdict.rejected == []
    assert [(r.sensor, r.ts, r.kind) for r in verdict.rows] == [
        ("t", ARRIVAL, Kind.NUMBER),
        ("on", ARRIVAL - timedelta(seconds=1), Kind.BOOL),
        ("mode", ARRIVAL - timedelta(seconds=2), Kind.TEXT),
    ]
    assert all(r.seq == 7 for r in verdict.rows)
    assert [value_of(r.kind, r.num, r.txt) for r in verdict.rows] == [21.5, True, "eco"]


def test_refuses_absurd_timestamps_and_duplicates() -> None:
    verdict = _validate(
        TelemetryReading(sensor="t", value=1, ts=ARRIVAL + timedelta(hours=1)),
        TelemetryReading(sensor="t", value=1, ts=ARRIVAL - timedelta(days=400)),
        TelemetryReading(sensor="t", value=1, ts=ARRIVAL),
        TelemetryReading(sensor="t", value=2, ts=ARRIVAL),
    )
    assert len(verdict.rows) == 1
    assert _reasons(verdict) == [
        (0, Reason.TS_IN_FUTURE),
        (1, Reason.TS_IN_PAST),
        (3, Reason.DUPLICATE),
    ]


def test_time_limits_come_from_settings() -> None:
    verdict = _validate(
        TelemetryReading(sensor="t", value=1, ts=ARRIVAL + timedelta(seconds=30)),
        TelemetryReading(sensor="t", value=1, ts=ARRIVAL - timedelta(hours=2)),
        max_future=timedelta(seconds=10),
        max_past=timedelta(hours=1),
    )
    assert _reasons(verdict) == [(0, Reason.TS_IN_FUTURE), (1, Reason.TS_IN_PAST)]


def test_integers_come_back_as_integers() -> None:
    assert value_of(Kind.NUMBER, 3.0, None) == 3 and isinstance(
        value_of(Kind.NUMBER, 3.0, None), int
    )
    assert value_of(Kind.NUMBER, 2.5, None) == 2.5


def test_refuses_text_with_nul() -> None:
    verdict = _validate(TelemetryReading(sensor="mode", value="a\x00b"))
    assert verdict.rows == [] and _reasons(verdict) == [(0, Reason.INVALID_TEXT)]


def test_an_unknown_device_decides_nothing() -> None:
    verdict = _validate(TelemetryReading(sensor="t", value=1), status=None)
    assert verdict.unknown_device and verdict.rows == [] and verdict.rejected == []


def test_a_decommissioned_device_is_refused_whole() -> None:
    verdict = _validate(TelemetryReading(sensor="t", value=1), status=DECOMMISSIONED)
    assert verdict.rows == [] and _reasons(verdict) == [
        (WHOLE_MESSAGE, Reason.DEVICE_DECOMMISSIONED)
    ]


def test_unknown_sensors_are_declared_with_their_first_type_when_allowed() -> None:
    verdict = _validate(
        TelemetryReading(sensor="t", value=1, ts=ARRIVAL),
        TelemetryReading(sensor="t", value="hot", ts=ARRIVAL - timedelta(seconds=1)),
        TelemetryReading(sensor="door", value=False),
    )
    assert verdict.declared == {
        "t": SensorSpec(value_type="NUMBER", auto=True),
        "door": SensorSpec(value_type="BOOLEAN", auto=True),
    }
    assert [r.sensor for r in verdict.rows] == ["t", "door"]
    assert _reasons(verdict) == [(1, Reason.WRONG_TYPE)]


def test_unknown_sensors_are_refused_when_auto_declare_is_off() -> None:
    verdict = _validate(
        TelemetryReading(sensor="t", value=1),
        TelemetryReading(sensor="known", value=1),
        sensors={"known": SensorSpec(value_type="NUMBER")},
        auto_declare=False,
    )
    assert [r.sensor for r in verdict.rows] == ["known"]
    assert _reasons(verdict) == [(0, Reason.UNKNOWN_SENSOR)] and verdict.declared == {}


def test_declared_sensors_check_type_and_range() -> None:
    sensors = {
        "t": SensorSpec(value_type="NUMBER", min=-40, max=85),
        "on": SensorSpec(value_type="BOOLEAN"),
        "mode": SensorSpec(value_type="STRING"),
    }
    at = [ARRIVAL - timedelta(seconds=i) for i in range(8)]
    verdict = _validate(
        TelemetryReading(sensor="t", value=-40, ts=at[0]),
        TelemetryReading(sensor="t", value=85, ts=at[1]),
        TelemetryReading(sensor="t", value=85.01, ts=at[2]),
        TelemetryReading(sensor="t", value=-41, ts=at[3]),
        TelemetryReading(sensor="t", value=True, ts=at[4]),
        TelemetryReading(sensor="on", value=1, ts=at[5]),
        TelemetryReading(sensor="mode", value=False, ts=at[6]),
        TelemetryReading(sensor="mode", value="eco", ts=at[7]),
        sensors=sensors,
    )
    assert [(r.sensor, value_of(r.kind, r.num, r.txt)) for r in verdict.rows] == [
        ("t", -40),
        ("t", 85),
        ("mode", "eco"),
    ]
    assert _reasons(verdict) == [
        (2, Reason.OUT_OF_RANGE),
        (3, Reason.OUT_OF_RANGE),
        (4, Reason.WRONG_TYPE),
        (5, Reason.WRONG_TYPE),
        (6, Reason.WRONG_TYPE),
    ]
    assert verdict.rejected[0].reading == TelemetryReading(sensor="t", value=85.01, ts=at[2])


def test_seq_gaps_are_counted_and_redeliveries_change_nothing() -> None:
    state = advance_seq(None, 1, first_delivery=True)
    assert state == SeqState(last_seq=1)
    state = advance_seq(state, 2, first_delivery=True)
    assert state == SeqState(last_seq=2)
    state = advance_seq(state, 6, first_delivery=True)
    assert state == SeqState(last_seq=6, gaps=3)
    # The same message again, or an older one delivered again: nothing changes.
    assert advance_seq(state, 6, first_delivery=False) is None
    assert advance_seq(state, 2, first_delivery=False) is None
    assert advance_seq(state, 6, first_delivery=True) is None


def test_a_restart_from_one_on_first_delivery_is_a_counter_reset() -> None:
    state = SeqState(last_seq=500, gaps=2)
    state2 = advance_seq(state, 1, first_delivery=True)
    assert state2 == SeqState(last_seq=1, gaps=2, resets=1)
    assert advance_seq(state2, 3, first_delivery=True) == SeqState(last_seq=3, gaps=3, resets=1)
    assert advance_seq(SeqState(last_seq=9), 0, first_delivery=True) == SeqState(
        last_seq=0, resets=1
    )
    # Delivered before: it may be the very message that was counted, so nothing changes.
    assert advance_seq(state, 1, first_delivery=False) is None


def test_a_late_message_fills_a_gap() -> None:
    """Replicas commit batches out of order: seq 7 is stored before seq 6."""
    state = advance_seq(SeqState(last_seq=5), 7, first_delivery=True)
    assert state == SeqState(last_seq=7, gaps=1)
    assert advance_seq(state, 6, first_delivery=True) == SeqState(last_seq=7, gaps=0)
    assert advance_seq(SeqState(last_seq=7), 6, first_delivery=True) is None
    assert advance_seq(state, 6, first_delivery=False) is None
