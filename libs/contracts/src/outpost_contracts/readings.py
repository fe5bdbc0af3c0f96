"""Readings: the device telemetry payload and raw reading queries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Instant, Request
from outpost_contracts.query import DEFAULT_LIMIT, MAX_LIMIT, Page
from outpost_contracts.rpc import Operation

SERVICE = "readings"

SensorKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class TelemetryReading(msgspec.Struct, kw_only=True, frozen=True):
    """One reading as a device sends it (API.md, Device protocol). ``ts`` defaults to the
    arrival time."""

    sensor: SensorKey
    value: float | int | bool | str
    ts: datetime | None = None


class TelemetryMessage(msgspec.Struct, kw_only=True, frozen=True):
    """What a device publishes on its telemetry subject: fixed by API.md, so no renaming."""

    seq: int
    readings: Annotated[list[TelemetryReading], msgspec.Meta(max_length=10_000)]


class ListReadings(Request, kw_only=True, frozen=True):
    device_id: UUID
    sensor: SensorKey | None = None
    from_: Instant | None = msgspec.field(default=None, name="from")
    to: Instant | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    after: str | None = None
    order: Literal["ASC", "DESC"] = "ASC"


class ReadingView(Contract, kw_only=True, frozen=True):
    device_id: UUID
    sensor: str
    ts: datetime
    value: float | int | bool | str


LIST_READINGS = Operation(SERVICE, "ListReadings", ListReadings, Page[ReadingView])
