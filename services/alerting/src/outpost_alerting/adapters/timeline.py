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


# The entry of an alert's event, in the statement that changes the alert's row: ``a`` is that
# statement's CTE returning the alert's ``device_id`` (one round trip for both).
INSERT_FROM_ALERT = (
    " INSERT INTO timeline (org_id, id, ts, type, device_id, alert_id, summary, data)"
    " SELECT :t_org, :t_id, :t_ts, :t_type, a.device_id, :t_alert, :t_summary,"
    " CAST(:t_data AS jsonb) FROM a ON CONFLICT (org_id, id) DO NOTHING"
)


def alert_entry_params(e: EventEnvelope) -> dict[str, object]:
    """``INSERT_FROM_ALERT``'s parameters for an alert's event (the timeline keeps them all)."""
    kept = entry(e)
    if kept is None:
        raise ValueError(f"the timeline keeps every alert event, not {e.type}")
    return {
        "t_org": e.org_id,
        "t_id": e.id,
        "t_ts": e.occurred_at,
        "t_type": e.type,
        "t_alert": kept.alert_id,
        "t_summary": kept.summary,
        "t_data": msgspec.json.encode(kept.data).decode(),
    }


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
