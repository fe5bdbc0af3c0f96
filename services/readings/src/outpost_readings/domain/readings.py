"""Turning a device's telemetry message into reading rows: pure, with arrival time passed in."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from outpost_contracts.readings import TelemetryMessage


class Kind(enum.IntEnum):
    NUMBER = 0
    BOOL = 1
    TEXT = 2


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    org_id: UUID
    device_id: UUID
    sensor: str
    ts: datetime
    kind: Kind
    num: float | None
    txt: str | None
    seq: int


class Rejected(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    reason: str


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    max_future: timedelta = timedelta(minutes=5)
    max_past: timedelta = timedelta(days=365)


def readings_of(
    org_id: UUID,
    device_id: UUID,
    message: TelemetryMessage,
    arrival: datetime,
    limits: Limits,
) -> tuple[list[Reading], list[Rejected]]:
    """Rows to store and readings refused, by index. ``ts`` defaults to the arrival time."""
    rows: list[Reading] = []
    rejected: list[Rejected] = []
    seen: set[tuple[str, datetime]] = set()
    for index, item in enumerate(message.readings):
        ts = item.ts or arrival
        if ts - arrival > limits.max_future:
            rejected.append(Rejected(index=index, reason="timestamp is too far in the future"))
            continue
        if arrival - ts > limits.max_past:
            rejected.append(Rejected(index=index, reason="timestamp is too far in the past"))
            continue
        if (item.sensor, ts) in seen:
            rejected.append(Rejected(index=index, reason="duplicate sensor and timestamp"))
            continue
        value = item.value
        if isinstance(value, str) and "\x00" in value:
            # Postgres cannot store U+0000 in text: refused here, not failed in the database.
            rejected.append(Rejected(index=index, reason="text values may not contain U+0000"))
            continue
        seen.add((item.sensor, ts))
        if isinstance(value, bool):
            kind, num, txt = Kind.BOOL, float(value), None
        elif isinstance(value, (int, float)):
            kind, num, txt = Kind.NUMBER, float(value), None
        else:
            kind, num, txt = Kind.TEXT, None, value
        rows.append(
            Reading(
                org_id=org_id,
                device_id=device_id,
                sensor=item.sensor,
                ts=ts,
                kind=kind,
                num=num,
                txt=txt,
                seq=message.seq,
            )
        )
    return rows, rejected


def value_of(kind: int, num: float | None, txt: str | None) -> float | int | bool | str:
    if kind == Kind.BOOL:
        return bool(num)
    if kind == Kind.TEXT:
        return txt or ""
    assert num is not None
    return int(num) if num.is_integer() and abs(num) < 2**53 else num
