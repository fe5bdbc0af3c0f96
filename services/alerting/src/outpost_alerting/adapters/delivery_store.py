"""Deliveries in SQL: making them (once per event and channel), the queue the workers claim
(plumbing, no RLS: ids and times only), every attempt (the delivery log) and the outcome.

Every statement of a delivery's path is merged into as few as it can be and runs on asyncpg
(decision 70: through SQLAlchemy a statement cost ~0.11 ms of the replica's CPU and a
transaction ~0.28 ms, against ~0.06 ms raw): the consumer's handler on the asyncpg
connection under its unit of work's transaction (``driver``), the worker's claim and record
in transactions of their own on a pooled connection's asyncpg connection (``raw_unit``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from outpost_alerting.adapters.channel_store import CHANNELS, channel_view
from outpost_contracts import notifications as api
from outpost_kit.db.ddl import TENANT_SETTING
from outpost_kit.db.listing import Collection, Field
from outpost_kit.db.uow import cached_text

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
        "attempt": Field("attempt", "int32"),
        "attemptedAt": Field("attempted_at", "datetime"),
        "outcome": Field("outcome", ops=frozenset({"eq", "ne", "in", "nin"})),
        "statusCode": Field("status_code", "int32"),
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


async def driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under ``conn``'s transaction, which must have begun (a
    statement went through SQLAlchemy first: the tenant's ``set_config``, the inbox row, the
    claim's lock). Statements on it are part of that transaction."""
    raw = await conn.get_raw_connection()
    db = raw.driver_connection
    if db is None or not db.is_in_transaction():
        raise RuntimeError("the unit of work's transaction has not begun")
    return db


_SET_TENANT_TO = f"SELECT set_config('{TENANT_SETTING}', '{{}}', true)"


class RawUnit:
    """One transaction on the asyncpg connection of one of the engine's pooled connections:
    the unit of work's rules (the tenant ``SET LOCAL``: ``set_config(..., true)``; rolled
    back unless ``commit()`` is called) without SQLAlchemy's per-statement and
    per-transaction machinery, for the delivery worker's claim and its record of an attempt
    (decision 70). ``db``: the asyncpg connection."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.committed = False

    async def commit(self) -> None:
        await self.db.execute("COMMIT")
        self.committed = True


@asynccontextmanager
async def raw_unit(engine: AsyncEngine, org_id: UUID | None) -> AsyncIterator[RawUnit]:
    async with engine.connect() as conn:
        db = (await conn.get_raw_connection()).driver_connection
        assert db is not None
        if db.is_in_transaction():  # never: SQLAlchemy begins lazily and was given nothing
            raise RuntimeError("a pooled connection is inside a transaction")
        try:
            if org_id is None:
                await db.execute("BEGIN")
            else:
                # One round trip for both (the simple query protocol takes several
                # statements; it takes no parameters, so the id is written in: str(UUID(…))
                # is hex digits and hyphens, whatever object was passed in).
                await db.execute(f"BEGIN; {_SET_TENANT_TO.format(str(UUID(str(org_id))))}")
            unit = RawUnit(db)
            yield unit
            if not unit.committed and db.is_in_transaction():
                await db.execute("ROLLBACK")
        except BaseException:
            # Roll back; a connection that cannot (broken, cancelled mid-statement) is
            # closed and discarded, never handed to the next user.
            try:
                if not db.is_closed() and db.is_in_transaction():
                    await db.execute("ROLLBACK")
            except BaseException:
                await conn.invalidate()
                raise
            if db.is_closed():
                await conn.invalidate()
            raise


_ALERT_CHANNELS = (
    "SELECT array(SELECT c.id FROM notification_channels c WHERE c.org_id = r.org_id"
    " AND c.id = ANY(r.channel_ids) AND c.enabled ORDER BY c.id) AS ids"
    " FROM alert_rules r WHERE r.id = $1"
)


async def alert_known(conn: AsyncConnection, alert_id: UUID, opened_tag: str) -> bool:
    """Whether the tenant has the alert: its row, or its opening event (an alert whose rule
    was deleted since keeps its delivery log)."""
    found = await conn.execute(
        cached_text(
            "SELECT EXISTS (SELECT 1 FROM alerts WHERE id = :id) OR EXISTS (SELECT 1"
            " FROM events WHERE stream_id = :id AND event_type = :opened)"
        ),
        {"id": alert_id, "opened": opened_tag},
    )
    return bool(found.scalar_one())


async def rule_of_alert(db: Any, alert_id: UUID, opened_tag: str) -> UUID | None:
    """The alert's rule: its row's, else its opening event's. One statement."""
    row = await db.fetchrow(
        "SELECT rule_id FROM alerts WHERE id = $1 UNION ALL SELECT (data->>'ruleId')::uuid"
        " FROM events WHERE stream_id = $1 AND event_type = $2 LIMIT 1",
        alert_id,
        opened_tag,
    )
    return None if row is None else row[0]


async def channels_in_rule_events(db: Any, rule_id: UUID) -> list[UUID] | None:
    """The channels the rule's newest event that names them names (``None``: none does)."""
    row = await db.fetchrow(
        "SELECT (data->'channelIds')::text AS ids FROM events WHERE stream_id = $1"
        " AND data ? 'channelIds' ORDER BY version DESC LIMIT 1",
        rule_id,
    )
    if row is None or row["ids"] is None:
        return None
    return [UUID(i) for i in msgspec.json.decode(row["ids"], type=list[str] | None) or ()]


async def enabled_channels_of_rule(db: Any, rule_id: UUID) -> list[UUID] | None:
    """The enabled channels among the rule's as its row has them now; None when this tenant
    has no row of the rule (deleted since). One statement."""
    row = await db.fetchrow(_ALERT_CHANNELS, rule_id)
    return None if row is None else list(row["ids"])


async def enabled_channels(db: Any, channel_ids: list[UUID]) -> list[UUID]:
    rows = await db.fetch(
        "SELECT id FROM notification_channels WHERE id = ANY($1::uuid[]) AND enabled ORDER BY id",
        channel_ids,
    )
    return [r["id"] for r in rows]


_INSERT_MANY = (
    "WITH made AS ("
    " INSERT INTO deliveries (org_id, id, channel_id, event_id, event_type, kind, alert_id,"
    "  body, status, attempts, created_at, updated_at, next_at)"
    " SELECT $1, m.id, m.channel_id, $4, $5, $6, $7, $8, $9, 0, $10, $10, $10"
    "  FROM unnest($2::uuid[], $3::uuid[]) AS m(id, channel_id)"
    " ON CONFLICT (org_id, event_id, channel_id) DO NOTHING RETURNING id, channel_id"
    ") INSERT INTO delivery_queue (delivery_id, tenant_id, channel_id, alert_id, due_at)"
    " SELECT id, $1, channel_id, $7, $10 FROM made RETURNING delivery_id"
)


async def insert_queued(
    db: Any,
    *,
    org_id: UUID,
    delivery_ids: list[UUID],
    channel_ids: list[UUID],
    event_id: UUID,
    event_type: str,
    kind: api.DeliveryKind,
    alert_id: UUID | None,
    body: bytes,
    at: datetime,
) -> int:
    """One PENDING delivery of the event per channel, queued at ``at``, unless the event and
    channel have one already (a redelivered event): one statement. How many were made."""
    rows = await db.fetch(
        _INSERT_MANY,
        org_id,
        delivery_ids,
        channel_ids,
        event_id,
        event_type,
        kind.value,
        alert_id,
        body,
        api.DeliveryStatus.PENDING.value,
        at,
    )
    return len(rows)


@dataclass(frozen=True)
class Due:
    """A claimed delivery with what sending it needs, read in one statement: its channel
    (None once deleted), the channel's sealed secret, and for an e-mail the rule's and the
    device's names when alerting knows them."""

    delivery: Delivery
    channel: api.NotificationChannelView | None
    sealed_secret: bytes | None
    rule_name: str | None
    device_name: str | None


_CHANNEL_COLUMNS = ", ".join(f"c.{c.strip()}" for c in CHANNELS.columns.split(","))
_LOAD_DUE = (
    "SELECT d.org_id, d.id AS delivery_id, d.channel_id, d.event_id, d.event_type, d.kind,"
    " d.alert_id, d.body, d.status, d.attempts, d.created_at AS made_at, c.org_id AS c_org,"
    f" {_CHANNEL_COLUMNS}, s.sealed,"
    " CASE WHEN c.type = 'EMAIL' THEN (SELECT name FROM alert_rules WHERE id ="
    "  (convert_from(d.body, 'UTF8')::jsonb #>> '{data,ruleId}')::uuid) END AS rule_name,"
    " CASE WHEN c.type = 'EMAIL' THEN (SELECT name FROM devices WHERE id ="
    "  (convert_from(d.body, 'UTF8')::jsonb #>> '{data,deviceId}')::uuid) END AS device_name"
    " FROM deliveries d"
    " LEFT JOIN notification_channels c ON c.org_id = d.org_id AND c.id = d.channel_id"
    " LEFT JOIN channel_secrets s ON s.org_id = d.org_id AND s.channel_id = d.channel_id"
    " WHERE d.id = ANY($1::uuid[])"
)


async def load_due(db: Any, delivery_ids: list[UUID]) -> list[Due]:
    """The tenant's deliveries among ``delivery_ids`` with their channels, secrets and
    names (one statement; ``db`` an asyncpg connection set to the tenant)."""
    found = []
    for row in await db.fetch(_LOAD_DUE, delivery_ids):
        delivery = Delivery(
            id=row["delivery_id"],
            org_id=row["org_id"],
            channel_id=row["channel_id"],
            event_id=row["event_id"],
            event_type=row["event_type"],
            kind=api.DeliveryKind(row["kind"]),
            alert_id=row["alert_id"],
            body=bytes(row["body"]),
            status=api.DeliveryStatus(row["status"]),
            attempts=row["attempts"],
            created_at=row["made_at"],
        )
        channel = None if row["c_org"] is None else channel_view(row)
        sealed = row["sealed"]
        found.append(
            Due(
                delivery,
                channel,
                None if sealed is None else bytes(sealed),
                row["rule_name"],
                row["device_name"],
            )
        )
    return found


_CLAIM_LOCK = "SELECT pg_advisory_xact_lock($1)"
# A suspended organization's deliveries are held in the queue, neither claimed nor sent,
# until the suspension is lifted (decision 76).
_NOT_HELD = (
    "NOT EXISTS (SELECT 1 FROM organization_suspensions s"
    " WHERE s.tenant_id = {q}.tenant_id AND s.suspended)"
)
_CLAIM = (
    "WITH due AS ("
    "  SELECT delivery_id, channel_id, due_at FROM delivery_queue q"
    "  WHERE due_at <= $1 AND (leased_until IS NULL OR leased_until <= $1)"
    f"  AND {_NOT_HELD.format(q='q')}"
    "  AND NOT EXISTS (SELECT 1 FROM delivery_queue e WHERE q.alert_id IS NOT NULL"
    "   AND e.channel_id = q.channel_id AND e.alert_id = q.alert_id AND e.seq < q.seq)"
    "  ORDER BY due_at LIMIT $4 FOR UPDATE OF q SKIP LOCKED"
    "), busy AS ("
    "  SELECT channel_id, count(*) AS n FROM delivery_queue"
    "  WHERE leased_until > $1 GROUP BY channel_id"
    "), ranked AS ("
    "  SELECT due.delivery_id, due.due_at, row_number() OVER"
    "   (PARTITION BY due.channel_id ORDER BY due.due_at, due.delivery_id) AS rank,"
    "   coalesce(busy.n, 0) AS busy FROM due LEFT JOIN busy USING (channel_id)"
    "), pick AS ("
    "  SELECT delivery_id FROM ranked WHERE rank + busy <= $5"
    "  ORDER BY due_at LIMIT $3"
    "), claimed AS ("
    "  UPDATE delivery_queue q SET leased_until = $2 FROM pick"
    "  WHERE q.delivery_id = pick.delivery_id"
    "  RETURNING q.tenant_id, q.delivery_id, q.channel_id"
    ") SELECT tenant_id, delivery_id, channel_id FROM claimed"
    # A last row without a delivery when something due now was left in the queue (a
    # channel's limit, an alert's earlier delivery in flight, a row locked, the limit): the
    # worker looks again when one of its deliveries finishes only then. The snapshot is the
    # statement's, from before the update: what was just claimed is left out by its id.
    " UNION ALL SELECT NULL, NULL, NULL WHERE EXISTS (SELECT 1 FROM delivery_queue r"
    "  WHERE r.due_at <= $1 AND (r.leased_until IS NULL OR r.leased_until <= $1)"
    f"  AND {_NOT_HELD.format(q='r')}"
    "  AND r.delivery_id NOT IN (SELECT delivery_id FROM claimed))"
)


@dataclass(frozen=True)
class Claimed:
    tenant_id: UUID
    delivery_id: UUID
    channel_id: UUID


async def claim(
    db: Any,
    now: datetime,
    lease_until: datetime,
    limit: int,
    per_channel: int,
) -> tuple[list[Claimed], bool]:
    """Due deliveries, leased to this replica until ``lease_until``, at most ``per_channel``
    in flight per channel counting what other replicas hold, and none of an alert while an
    earlier delivery of that alert to that channel waits (its opening is delivered, or
    dead-lettered, before its resolution is sent). Claims take turns on one
    transaction-scoped advisory lock, so two replicas never both see a channel's free slot;
    rows are taken ``FOR UPDATE SKIP LOCKED`` past a worker that is recording an outcome.
    (What was claimed, whether anything due now was left in the queue.) ``db``: the
    asyncpg connection of a transaction without a tenant (``raw_unit``)."""
    await db.execute(_CLAIM_LOCK, CLAIM_LOCK)
    rows = await db.fetch(_CLAIM, now, lease_until, limit, max(limit * 8, 64), per_channel)
    claimed = [
        Claimed(r["tenant_id"], r["delivery_id"], r["channel_id"])
        for r in rows
        if r["delivery_id"] is not None
    ]
    return claimed, len(claimed) < len(rows)


_STATUS_AFTER = {
    api.DeliveryOutcome.SUCCEEDED: api.DeliveryStatus.SUCCEEDED,
    api.DeliveryOutcome.DEAD: api.DeliveryStatus.DEAD,
    api.DeliveryOutcome.FAILED: api.DeliveryStatus.PENDING,
}
# The attempt logged, the delivery moved on, and its queue row either due again ($17: still
# PENDING) or gone: one statement (every data-modifying CTE runs whether read or not).
_RECORD = (
    "WITH logged AS ("
    " INSERT INTO delivery_attempts (org_id, id, delivery_id, channel_id, alert_id, event_id,"
    "  event_type, kind, attempt, attempted_at, outcome, status_code, error, latency_ms)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    "), moved AS ("
    " UPDATE deliveries SET status = $15, attempts = $9, updated_at = $10, next_at = $16,"
    "  last_status = $12, last_error = $13 WHERE id = $3"
    "), requeued AS ("
    " UPDATE delivery_queue SET due_at = $16, leased_until = NULL"
    "  WHERE delivery_id = $3 AND $17"
    ") DELETE FROM delivery_queue WHERE delivery_id = $3 AND NOT $17"
)


async def record(
    db: Any,
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
    dead-letter record keeps the last error), or queued again at ``next_due``. One
    statement on ``db``, the asyncpg connection of the tenant's transaction (``driver``)."""
    status = _STATUS_AFTER[outcome]
    pending = status is api.DeliveryStatus.PENDING
    await db.execute(
        _RECORD,
        d.org_id,
        attempt_id,
        d.id,
        d.channel_id,
        d.alert_id,
        d.event_id,
        d.event_type,
        d.kind.value,
        d.attempts + 1,
        attempted_at,
        outcome.value,
        status_code,
        error,
        latency_ms,
        status.value,
        next_due if pending else None,
        pending,
    )


async def drop(conn: AsyncConnection, delivery_ids: list[UUID]) -> None:
    """Take deliveries off the queue (gone, or no longer PENDING: nothing to send)."""
    await conn.execute(
        text("DELETE FROM delivery_queue WHERE delivery_id = ANY(:ids)"), {"ids": delivery_ids}
    )
