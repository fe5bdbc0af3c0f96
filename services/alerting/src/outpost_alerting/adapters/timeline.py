"""The timeline table (``/events``): one row per kept event, keyed by the event's id so a
redelivered event is recorded once.

Each entry takes the organization's next ``seq`` from ``timeline_seqs`` in the statement that
adds it; the counter row stays locked until the transaction ends, so an organization's
entries commit in ``seq`` order and a reader that sees entry *n* sees every entry before it
(ADR 0096). The same statement writes an outbox row announcing the entry
(``alerting.TimelineAdvanced`` on ``subjects.timeline(org)``), published once it commits: what
wakes the gateway's ``/events/stream``. A redelivered event leaves a hole in the numbering
(its counter step is taken, its row is not added): readers never rely on contiguity."""

from __future__ import annotations

from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_alerting.domain.timeline import entry
from outpost_contracts import subjects
from outpost_contracts.envelope import EventEnvelope
from outpost_kit.db.outbox import WAKE

# The announcement's outbox row of the entries ``t`` returns (``id``, ``seq``): its own id
# (the event's id is its event row's), ``{"seq": n}`` (``alerting.TimelineAdvanced``).
_ANNOUNCE = (
    " INSERT INTO outbox (event_id, subject, payload, headers)"
    " SELECT md5('timeline ' || t.id::text)::uuid, :t_subject,"
    " convert_to(json_build_object('seq', t.seq)::text, 'UTF8'),"
    " jsonb_build_object('Nats-Msg-Id', md5('timeline ' || t.id::text)::uuid::text) FROM t"
)
_NEXT_SEQ = (
    " INSERT INTO timeline_seqs (org_id, seq) SELECT :t_org, 1 {source}"
    " ON CONFLICT (org_id) DO UPDATE SET seq = timeline_seqs.seq + 1 RETURNING seq"
)

_INSERT = text(
    f"WITH s AS ({_NEXT_SEQ.format(source='')}),"
    " t AS (INSERT INTO timeline (org_id, id, ts, type, device_id, alert_id, summary, data, seq)"
    " SELECT :t_org, :t_id, :t_ts, :t_type, :t_device, :t_alert, :t_summary,"
    " CAST(:t_data AS jsonb), s.seq FROM s ON CONFLICT (org_id, id) DO NOTHING"
    " RETURNING id, seq),"
    f" ob AS ({_ANNOUNCE}) SELECT {WAKE}"
)


# The entry of an alert's event, in the statement that changes the alert's row: ``a`` is that
# statement's CTE returning the alert's ``device_id`` (one round trip for both). The event's
# own outbox row, appended in the same transaction, wakes the relay.
INSERT_FROM_ALERT = (
    f" ts AS ({_NEXT_SEQ.format(source='FROM a')}),"
    " t AS (INSERT INTO timeline (org_id, id, ts, type, device_id, alert_id, summary, data, seq)"
    " SELECT :t_org, :t_id, :t_ts, :t_type, a.device_id, :t_alert, :t_summary,"
    " CAST(:t_data AS jsonb), ts.seq FROM a, ts ON CONFLICT (org_id, id) DO NOTHING"
    " RETURNING id, seq),"
    f" tob AS ({_ANNOUNCE})"
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
        "t_subject": subjects.timeline(e.org_id),
    }


async def record(conn: AsyncConnection, e: EventEnvelope, device_id: UUID | None = None) -> bool:
    """Record the event if the timeline keeps it; whether it does."""
    kept = entry(e, device_id)
    if kept is None:
        return False
    await conn.execute(
        _INSERT,
        {
            "t_org": e.org_id,
            "t_id": e.id,
            "t_ts": e.occurred_at,
            "t_type": e.type,
            "t_device": kept.device_id,
            "t_alert": kept.alert_id,
            "t_summary": kept.summary,
            "t_data": msgspec.json.encode(kept.data).decode(),
            "t_subject": subjects.timeline(e.org_id),
        },
    )
    return True
