"""Deliveries in SQL: making them (once per event and channel), the queue the workers claim
(plumbing, no RLS: ids and times only), every attempt (the delivery log) and the outcome."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts import notifications as api
from outpost_kit.db.listing import Collection, Field

# One constant for every replica of the service: claims take turns on it (see ``claim``).
CLAIM_LOCK = 0x6F75_7470_6F73_7401  # "outpost" + 1

DELIVERY_LOG = Collection(
    table="delivery_attempts",
    columns=(
        "id, delivery_id, channel_id, alert_id, event_id, event_type, kind, attempt,"
        " attempted_at, outcome, status_code, error, latency_ms"
    ),
    fields={
        "id": Field("id", "uuid"),
        "deliveryId": Field("delivery_id", "uuid"),
        "channelId": Field("channel_id", "uuid"),
        "alertId": Field("alert_id", "uuid"),
        "eventId": Field("event_id", "uuid"),
        "eventType": Field("event_type"),
        "kind": Field("kind", ops=frozenset({"eq", "ne", "in", "nin"})),
        "attempt": Field("attempt", "int"),
        "attemptedAt": Field("attempted_at", "datetime"),
        "outcome": Field("outcome", ops=frozenset({"eq", "ne", "in", "nin"})),
        "statusCode": Field("status_code", "int"),
        "latencyMs": Field("latency_ms", "float"),
    },
)


def attempt_view(row: Mapping[str, Any]) -> api.DeliveryAttemptView:
    return api.DeliveryAttemptView(
        id=row["id"],
        delivery_id=row["delivery_id"],
        channel_id=row["channel_id"],
        alert_id=row["alert_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        kind=api.DeliveryKind(row["kind"]),
        attempt=row["attempt"],
        attempted_at=row["attempted_at"],
        outcome=api.DeliveryOutcome(row["outcome"]),
        status_code=row["status_code"],
        error=row["error"],
        latency_ms=row["latency_ms"],
    )


@dataclass(frozen=True)
class Delivery:
    id: UUID
    org_id: UUID
    channel_id: UUID
    event_id: UUID
    event_type: str
    kind: api.DeliveryKind
    alert_id: UUID | None
    body: bytes
    status: api.DeliveryStatus
    attempts: int
    created_at: datetime


async def insert(conn: AsyncConnection, d: Delivery, *, queue_at: datetime | None) -> bool:
    """Make the delivery unless one exists for its event and channel (a redelivered event);
    queue it when ``queue_at`` is given. True when it was made."""
    made = (
        await conn.execute(
            text(
                "INSERT INTO deliveries (org_id, id, channel_id, event_id, event_type, kind,"
                " alert_id, body, status, attempts, created_at, updated_at, next_at) VALUES"
                " (:org, :id, :channel, :event, :type, :kind, :alert, :body, :status, :attempts,"
                " :at, :at, :next) ON CONFLICT (org_id, event_id, channel_id) DO NOTHING"
                " RETURNING id"
            ),
            {
                "org": d.org_id,
                "id": d.id,
                "channel": d.channel_id,
                "event": d.event_id,
                "type": d.event_type,
                "kind": d.kind.value,
                "alert": d.alert_id,
                "body": d.body,
                "status": d.status.value,
                "attempts": d.attempts,
                "at": d.created_at,
                "next": queue_at,
            },
        )
    ).first()
    if made is None:
        return False
    if queue_at is not None:
        await conn.execute(
            text(
                "INSERT INTO delivery_queue (delivery_id, tenant_id, channel_id, alert_id,"
                " due_at) VALUES (:id, :org, :channel, :alert, :due)"
            ),
            {
                "id": d.id,
                "org": d.org_id,
                "channel": d.channel_id,
                "alert": d.alert_id,
                "due": queue_at,
            },
        )
    return True


async def load(conn: AsyncConnection, delivery_id: UUID) -> Delivery | None:
    row = (
        await conn.execute(
            text(
                "SELECT org_id, id, channel_id, event_id, event_type, kind, alert_id, body,"
                " status, attempts, created_at FROM deliveries WHERE id = :id"
            ),
            {"id": delivery_id},
        )
    ).first()
    if row is None:
        return None
    return Delivery(
        id=row.id,
        org_id=row.org_id,
        channel_id=row.channel_id,
        event_id=row.event_id,
        event_type=row.event_type,
        kind=api.DeliveryKind(row.kind),
        alert_id=row.alert_id,
        body=bytes(row.body),
        status=api.DeliveryStatus(row.status),
        attempts=row.attempts,
        created_at=row.created_at,
    )


@dataclass(frozen=True)
class Claimed:
    tenant_id: UUID
    delivery_id: UUID
    channel_id: UUID


async def claim(
    conn: AsyncConnection,
    now: datetime,
    lease_until: datetime,
    limit: int,
    per_channel: int,
) -> list[Claimed]:
    """Due deliveries, leased to this replica until ``lease_until``, at most ``per_channel``
    in flight per channel counting what other replicas hold, and none of an alert while an
    earlier delivery of that alert to that channel waits (its opening is delivered, or
    dead-lettered, before its resolution is sent). Claims take turns on one
    transaction-scoped advisory lock, so two replicas never both see a channel's free slot;
    rows are taken ``FOR UPDATE SKIP LOCKED`` past a worker that is recording an outcome."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
    rows = await conn.execute(
        text(
            "WITH due AS ("
            "  SELECT delivery_id, channel_id, due_at FROM delivery_queue q"
            "  WHERE due_at <= :now AND (leased_until IS NULL OR leased_until <= :now)"
            "  AND NOT EXISTS (SELECT 1 FROM delivery_queue e WHERE q.alert_id IS NOT NULL"
            "   AND e.channel_id = q.channel_id AND e.alert_id = q.alert_id AND e.seq < q.seq)"
            "  ORDER BY due_at LIMIT :scan FOR UPDATE OF q SKIP LOCKED"
            "), busy AS ("
            "  SELECT channel_id, count(*) AS n FROM delivery_queue"
            "  WHERE leased_until > :now GROUP BY channel_id"
            "), ranked AS ("
            "  SELECT due.delivery_id, due.due_at, row_number() OVER"
            "   (PARTITION BY due.channel_id ORDER BY due.due_at, due.delivery_id) AS rank,"
            "   coalesce(busy.n, 0) AS busy FROM due LEFT JOIN busy USING (channel_id)"
            "), pick AS ("
            "  SELECT delivery_id FROM ranked WHERE rank + busy <= :per_channel"
            "  ORDER BY due_at LIMIT :n"
            ") UPDATE delivery_queue q SET leased_until = :lease FROM pick"
            " WHERE q.delivery_id = pick.delivery_id"
            " RETURNING q.tenant_id, q.delivery_id, q.channel_id"
        ),
        {
            "now": now,
            "lease": lease_until,
            "n": limit,
            "scan": max(limit * 8, 64),
            "per_channel": per_channel,
        },
    )
    return [Claimed(r.tenant_id, r.delivery_id, r.channel_id) for r in rows]


async def record(
    conn: AsyncConnection,
    d: Delivery,
    *,
    attempt_id: UUID,
    attempted_at: datetime,
    outcome: api.DeliveryOutcome,
    status_code: int | None,
    error: str | None,
    latency_ms: float,
    next_due: datetime | None,
) -> None:
    """One attempt in the log, and the delivery moved on: done (SUCCEEDED, or DEAD: the
    dead-letter record keeps the last error), or queued again at ``next_due``."""
    attempt = d.attempts + 1
    await conn.execute(
        text(
            "INSERT INTO delivery_attempts (org_id, id, delivery_id, channel_id, alert_id,"
            " event_id, event_type, kind, attempt, attempted_at, outcome, status_code, error,"
            " latency_ms) VALUES (:org, :id, :delivery, :channel, :alert, :event, :type, :kind,"
            " :attempt, :at, :outcome, :status, :error, :latency)"
        ),
        {
            "org": d.org_id,
            "id": attempt_id,
            "delivery": d.id,
            "channel": d.channel_id,
            "alert": d.alert_id,
            "event": d.event_id,
            "type": d.event_type,
            "kind": d.kind.value,
            "attempt": attempt,
            "at": attempted_at,
            "outcome": outcome.value,
            "status": status_code,
            "error": error,
            "latency": latency_ms,
        },
    )
    status = {
        api.DeliveryOutcome.SUCCEEDED: api.DeliveryStatus.SUCCEEDED,
        api.DeliveryOutcome.DEAD: api.DeliveryStatus.DEAD,
        api.DeliveryOutcome.FAILED: api.DeliveryStatus.PENDING,
    }[outcome]
    await conn.execute(
        text(
            "UPDATE deliveries SET status = :status, attempts = :attempt, updated_at = :at,"
            " next_at = :next, last_status = :code, last_error = :error WHERE id = :id"
        ),
        {
            "id": d.id,
            "status": status.value,
            "attempt": attempt,
            "at": attempted_at,
            "next": next_due if status is api.DeliveryStatus.PENDING else None,
            "code": status_code,
            "error": error,
        },
    )
    if status is api.DeliveryStatus.PENDING:
        await conn.execute(
            text(
                "UPDATE delivery_queue SET due_at = :due, leased_until = NULL"
                " WHERE delivery_id = :id"
            ),
            {"id": d.id, "due": next_due},
        )
    else:
        await drop(conn, d.id)


async def drop(conn: AsyncConnection, delivery_id: UUID) -> None:
    await conn.execute(
        text("DELETE FROM delivery_queue WHERE delivery_id = :id"), {"id": delivery_id}
    )
