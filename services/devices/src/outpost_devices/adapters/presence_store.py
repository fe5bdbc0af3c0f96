"""Presence in Postgres: the fold's state per device (``device_presence``, locked while a
fact is applied), what the device view shows (columns on ``devices``, which do not touch its
version), and presence events straight into the outbox.

Presence events are not changes someone made: they are not appended to the event store (so
not in the audit log, and never a device version) but go to the DEVICES stream through the
outbox like every event, with ``streamType`` ``presence``, ``streamId`` the device and
``version`` the device's presence version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.envelope import EventEnvelope
from outpost_devices.domain.presence import Presence
from outpost_kit import ids
from outpost_kit.db import outbox
from outpost_kit.db.uow import UnitOfWork

STREAM_TYPE = "presence"
_encoder = msgspec.json.Encoder()
_state = msgspec.json.Decoder(Presence)


def decode_state(raw: Any) -> Presence:
    if raw is None:
        return Presence()
    if isinstance(raw, dict):
        return msgspec.convert(raw, Presence)
    return _state.decode(raw)


async def lock(uow: UnitOfWork, device_id: UUID) -> tuple[Presence, int] | None:
    """The device's presence and presence version, its row locked until the transaction
    ends (concurrent handlers on any replica queue here); None for a device this tenant
    does not have."""
    exists = (await uow.execute("SELECT 1 FROM devices WHERE id = :d", {"d": device_id})).first()
    if exists is None:
        return None
    created = (
        await uow.execute(
            "INSERT INTO device_presence (org_id, device_id) VALUES (:o, :d)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            {"o": uow.org_id, "d": device_id},
        )
    ).first()
    if created is not None:
        await uow.execute(
            "INSERT INTO presence_organizations (organization) VALUES (:o) ON CONFLICT DO NOTHING",
            {"o": uow.org_id},
        )
    row = (
        await uow.execute(
            "SELECT state::text AS state, version FROM device_presence WHERE device_id = :d"
            " FOR UPDATE",
            {"d": device_id},
        )
    ).one()
    return decode_state(row.state), int(row.version)


async def save(
    uow: UnitOfWork,
    device_id: UUID,
    state: Presence,
    version: int,
    events: Sequence[Event],
    now: datetime,
) -> int:
    """Store the new state; each event takes the next presence version and an outbox row.
    The presence version after it."""
    assert uow.org_id is not None
    version += len(events)
    await uow.execute(
        "UPDATE device_presence SET state = CAST(:s AS jsonb), version = :v, updated_at = :now"
        " WHERE device_id = :d",
        {"s": _encoder.encode(state).decode(), "v": version, "now": now, "d": device_id},
    )
    await uow.execute(
        "UPDATE devices SET online = :online,"
        " last_seen_at = GREATEST(last_seen_at, :seen),"
        " last_connected_at = :connected, last_disconnected_at = :disconnected"
        " WHERE id = :d",
        {
            "online": state.online,
            "seen": state.last_seen_at,
            "connected": state.last_connected_at,
            "disconnected": state.last_disconnected_at,
            "d": device_id,
        },
    )
    first = version - len(events) + 1
    await enqueue(
        uow,
        [
            EventEnvelope(
                id=ids.new_id(),
                org_id=uow.org_id,
                stream_id=device_id,
                stream_type=STREAM_TYPE,
                version=first + i,
                occurred_at=now,
                data=event,
            )
            for i, event in enumerate(events)
        ],
    )
    return version


async def enqueue(uow: UnitOfWork, envelopes: Iterable[EventEnvelope]) -> None:
    """Outbox rows for events that are not in the event store (the relay publishes them to
    the service's stream with ``Nats-Msg-Id`` = event id, as every event)."""
    await outbox.write(uow.conn, [outbox.OutboxRow.of_event(e) for e in envelopes])


async def organizations(uow: UnitOfWork) -> list[UUID]:
    """Every organization with presence state (plumbing, read with no tenant set)."""
    rows = await uow.execute("SELECT organization FROM presence_organizations")
    return [r.organization for r in rows]


async def online_states(uow: UnitOfWork) -> dict[UUID, Presence]:
    """The tenant's devices that are online, with their presence (no lock: a reconciliation
    first looks, then locks only the devices it must change)."""
    rows = await uow.execute(
        "SELECT p.device_id, p.state::text AS state FROM devices d JOIN device_presence p"
        " ON p.org_id = d.org_id AND p.device_id = d.id WHERE d.online"
    )
    return {r.device_id: decode_state(r.state) for r in rows}


async def states(uow: UnitOfWork, device_ids: Sequence[UUID]) -> dict[UUID, Presence]:
    rows = await uow.execute(
        "SELECT device_id, state::text AS state FROM device_presence WHERE device_id = ANY(:ids)",
        {"ids": list(device_ids)},
    )
    return {r.device_id: decode_state(r.state) for r in rows}


async def record_seen(uow: UnitOfWork, seen: Mapping[UUID, datetime]) -> int:
    """``last_seen_at`` of many devices of one tenant forward to the times given, in one
    statement; how many rows moved."""
    result = await uow.execute(
        "UPDATE devices AS d SET last_seen_at = v.at"
        " FROM unnest(CAST(:ids AS uuid[]), CAST(:ats AS timestamptz[])) AS v(id, at)"
        " WHERE d.id = v.id AND (d.last_seen_at IS NULL OR d.last_seen_at < v.at)",
        {"ids": list(seen), "ats": list(seen.values())},
    )
    return int(result.rowcount or 0)


HEALTH = (
    "SELECT d.id, d.online, d.last_seen_at, d.last_connected_at, d.last_disconnected_at,"
    " p.state::text AS state, coalesce(p.version, 0) AS presence_version"
    " FROM devices d LEFT JOIN device_presence p ON p.org_id = d.org_id AND p.device_id = d.id"
    " WHERE d.id = $1"
)
