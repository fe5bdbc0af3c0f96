"""Readings' use cases: ingest a batch of telemetry messages, keep the device registry, and
serve raw readings."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import readings as api
from outpost_contracts.devices import (
    DeviceDecommissioned,
    DeviceRegistered,
    DeviceStatus,
    DeviceUpdated,
)
from outpost_contracts.envelope import EventEnvelope, RequestContext
from outpost_contracts.errors import NotFound, validation_error
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory
from outpost_readings.adapters import store
from outpost_readings.domain.readings import Limits, Reading, Rejected, readings_of, value_of

DeviceExists = Callable[[RequestContext, UUID], Awaitable[bool]]


@dataclass(frozen=True)
class Deps:
    uow: UnitOfWorkFactory
    limits: Limits
    # Asks the devices service: the local registry can be a moment behind a registration.
    device_exists: DeviceExists


@dataclass
class Incoming:
    """One telemetry message as the ingest loop hands it over."""

    org_id: UUID
    device_id: UUID
    message: api.TelemetryMessage
    arrival: datetime


@dataclass
class Outcome:
    stored: int
    rejected: list[Rejected]
    unknown_device: bool = False


async def ingest(deps: Deps, batch: list[Incoming], received_at: datetime) -> list[Outcome]:
    """Store a batch of messages in one transaction; per message, what happened.

    Messages for devices this service does not know (yet) are left out: the caller decides
    whether to wait for the registry or dead-letter them."""
    outcomes: list[Outcome] = []
    by_org: dict[UUID, list[int]] = {}
    for i, item in enumerate(batch):
        by_org.setdefault(item.org_id, []).append(i)
        outcomes.append(Outcome(stored=0, rejected=[]))
    async with deps.uow(None) as uow:
        for org_id, indexes in by_org.items():
            await uow.set_tenant(org_id)
            known = await store.known_devices(uow, (batch[i].device_id for i in indexes))
            rows: list[Reading] = []
            for i in indexes:
                item = batch[i]
                if item.device_id not in known:
                    outcomes[i].unknown_device = True
                    continue
                accepted, rejected = readings_of(
                    org_id, item.device_id, item.message, item.arrival, deps.limits
                )
                rows.extend(accepted)
                outcomes[i].stored = len(accepted)
                outcomes[i].rejected = rejected
            await store.insert_readings(uow, rows, received_at)
        await uow.commit()
    return outcomes


async def on_device_event(uow: UnitOfWork, event: EventEnvelope) -> None:
    """Keep the local registry (policy on the DEVICES stream)."""
    data = event.data
    if isinstance(data, DeviceRegistered):
        await store.upsert_device(
            uow,
            event.org_id,
            event.stream_id,
            data.name,
            DeviceStatus.REGISTERED.value,
            event.version,
        )
    elif isinstance(data, DeviceUpdated):
        name = data.name if "name" in data.changed else None
        await store.update_device(uow, event.org_id, event.stream_id, event.version, name=name)
    elif isinstance(data, DeviceDecommissioned):
        await store.update_device(
            uow,
            event.org_id,
            event.stream_id,
            event.version,
            status=DeviceStatus.DECOMMISSIONED.value,
        )


def _cursor(ts: datetime, sensor: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([ts, sensor])).decode().rstrip("=")


def _parse_cursor(text: str) -> tuple[datetime, str]:
    try:
        ts, sensor = msgspec.json.decode(
            base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), type=tuple[datetime, str]
        )
    except (ValueError, msgspec.DecodeError) as exc:
        raise validation_error("after", "not a cursor from a previous page") from exc
    return ts, sensor


async def list_readings(
    deps: Deps, ctx: RequestContext, q: api.ListReadings
) -> Page[api.ReadingView]:
    if q.from_ is not None and q.to is not None and q.from_ >= q.to:
        raise validation_error("from", "must be before 'to'")
    after = _parse_cursor(q.after) if q.after else None
    async with deps.uow(ctx.org_id) as uow:
        if not await store.device_known(uow, q.device_id):
            # Not in the registry yet, or not this tenant's: only the devices service knows.
            # Either way no reading of it is stored (ingest waits for the registry).
            if not await deps.device_exists(ctx, q.device_id):
                raise NotFound("no such device")
            return Page(data=[], limit=q.limit, order=q.order, has_more=False)
        rows = await store.select_readings(
            uow,
            device_id=q.device_id,
            sensor=q.sensor,
            start=q.from_,
            end=q.to,
            after=after,
            descending=q.order == "DESC",
            limit=q.limit + 1,
        )
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    data = [
        api.ReadingView(
            device_id=r.device_id, sensor=r.sensor, ts=r.ts, value=value_of(r.kind, r.num, r.txt)
        )
        for r in rows
    ]
    # Readings have no ids: the cursor names the last (ts, sensor) of this page.
    return Page(
        data=data,
        limit=q.limit,
        order=q.order,
        has_more=has_more,
        after=_cursor(rows[-1].ts, rows[-1].sensor) if has_more and rows else None,
    )


Handler = Callable[[Deps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {api.LIST_READINGS: list_readings}
