"""The timeline table (``/events``): one row per kept event, keyed by the event's id so a
redelivered event is recorded once."""

from __future__ import annotations

from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_alerting.domain.timeline import entry
from outpost_contracts.envelope import EventEnvelope

_INSERT = text(
    "INSERT INTO timeline (org_id, id, ts, type, device_id, alert_id, summary, data)"
    " VALUES (:org, :id, :ts, :type, :device, :alert, :summary, CAST(:data AS jsonb))"
    " ON CONFLICT (org_id, id) DO NOTHING"
)


async def record(conn: AsyncConnection, e: EventEnvelope, device_id: UUID | None = None) -> bool:
    """Record the event if the timeline keeps it; whether it does."""
    kept = entry(e, device_id)
    if kept is None:
        return False
    await conn.execute(
        _INSERT,
        {
            "org": e.org_id,
            "id": e.id,
            "ts": e.occurred_at,
            "type": e.type,
            "device": kept.device_id,
            "alert": kept.alert_id,
            "summary": kept.summary,
            "data": msgspec.json.encode(kept.data).decode(),
        },
    )
    return True
