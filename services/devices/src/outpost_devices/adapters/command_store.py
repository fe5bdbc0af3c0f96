"""Commands and device state in SQL: the read models of the command and desired-state
streams (updated in the transaction that appends their events), the commands collection, the
reported state, and the delivery wake-ups (decision 56)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts import commands as api
from outpost_contracts.device_config import Source
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.presence import CommandStatus
from outpost_devices.app.ports import EMPTY_STATE, StateRow
from outpost_devices.domain import commands as domain
from outpost_kit.db.listing import Collection, Field

_encode = msgspec.json.encode

COMMANDS = Collection(
    table="commands",
    columns=(
        "id, device_id, name, params, status, created_at, expires_at, sent_at,"
        " acknowledged_at, completed_at, result::text AS result, requested_by, version"
    ),
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "status": Field("status", ops=frozenset({"eq", "ne", "in", "nin"})),
        "createdAt": Field("created_at", "datetime"),
        "expiresAt": Field("expires_at", "datetime"),
        "sentAt": Field("sent_at", "datetime"),
        "acknowledgedAt": Field("acknowledged_at", "datetime"),
        "completedAt": Field("completed_at", "datetime"),
        "requestedBy": Field("requested_by"),
    },
)


def json_value(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, (str, bytes)) else value


def command_view(row: Mapping[str, Any]) -> api.CommandView:
    return api.CommandView(
        id=row["id"],
        device_id=row["device_id"],
        name=row["name"],
        params=json_value(row["params"]),
        status=CommandStatus(row["status"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        sent_at=row["sent_at"],
        acknowledged_at=row["acknowledged_at"],
        completed_at=row["completed_at"],
        # Read as text (any JSON value, a bare string too), so decoded here and only here.
        result=None if row["result"] is None else msgspec.json.decode(row["result"]),
        requested_by=row["requested_by"],
        version=row["version"],
    )


# The stream type of ``ReportedStateChanged`` facts (outbox only, like presence's: no event
# store row, so not in the audit log); their version is the device's ``reported_version``.
REPORT_STREAM_TYPE = "reported_state"

STATE_COLUMNS = (
    "desired, version, reported, desired_updated_at, reported_updated_at, delivered_version,"
    " local, fleet_sources, fleet_digest, reported_version"
)


def state_row(row: Mapping[str, Any] | None) -> StateRow:
    if row is None:
        return EMPTY_STATE
    return StateRow(
        desired=json_value(row["desired"]),
        version=row["version"],
        reported=json_value(row["reported"]),
        desired_updated_at=row["desired_updated_at"],
        reported_updated_at=row["reported_updated_at"],
        delivered_version=row["delivered_version"],
        local=None if row["local"] is None else json_value(row["local"]),
        sources=msgspec.convert(json_value(row["fleet_sources"]), dict[str, Source]),
        digest=row["fleet_digest"],
        reported_version=row["reported_version"],
    )


def desired_state(
    device_id: UUID, row: Mapping[str, Any]
) -> tuple[domain.DesiredState | None, int]:
    """The desired-state aggregate as its read model holds it (every field its events
    give it), and its version; (None, 0) before its first event."""
    version = row["version"] or 0
    if version == 0:
        return None, 0
    desired = json_value(row["desired"])
    local = json_value(row["local"])
    state = domain.DesiredState(
        device_id=device_id,
        desired=desired,
        local=desired if local is None else local,
        fleet=json_value(row["fleet_document"]),
        sources=msgspec.convert(json_value(row["fleet_sources"]), dict[str, Source]),
        digest=row["fleet_digest"],
    )
    return state, int(version)


async def load_state(conn: AsyncConnection, device_id: UUID, *, lock: bool = False) -> StateRow:
    sql = f"SELECT {STATE_COLUMNS} FROM device_states WHERE device_id = :d"
    if lock:
        sql += " FOR UPDATE"
    row = (await conn.execute(text(sql), {"d": device_id})).first()
    return state_row(None if row is None else dict(row._mapping))


async def save_reported(
    conn: AsyncConnection,
    org_id: UUID,
    device_id: UUID,
    reported: dict[str, Any],
    at: datetime,
    reported_version: int,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO device_states (org_id, device_id, reported, reported_updated_at,"
            " reported_version) VALUES (:org, :d, CAST(:r AS jsonb), :at, :rv)"
            " ON CONFLICT (org_id, device_id) DO UPDATE SET reported = excluded.reported,"
            " reported_updated_at = excluded.reported_updated_at,"
            " reported_version = excluded.reported_version"
        ),
        {
            "org": org_id,
            "d": device_id,
            "r": _encode(reported).decode(),
            "at": at,
            "rv": reported_version,
        },
    )


async def mark_state_delivered(conn: AsyncConnection, device_id: UUID, version: int) -> None:
    await conn.execute(
        text(
            "UPDATE device_states SET delivered_version = greatest(delivered_version, :v)"
            " WHERE device_id = :d"
        ),
        {"d": device_id, "v": version},
    )


# --- wake-ups (plumbing: no RLS, ids and times only) -------------------------------------


async def wake(conn: AsyncConnection, org_id: UUID, device_id: UUID, due: datetime) -> None:
    """Make sure the sweeper looks at the device by ``due`` (earlier wins; attempts reset;
    ``seq`` moves, so a sweep that read the device before this does not undo it)."""
    await conn.execute(
        text(
            "INSERT INTO command_wakeups (device_id, tenant_id, due_at) VALUES (:d, :org, :due)"
            " ON CONFLICT (device_id) DO UPDATE SET"
            " due_at = least(command_wakeups.due_at, excluded.due_at), attempts = 0,"
            " seq = command_wakeups.seq + 1"
        ),
        {"d": device_id, "org": org_id, "due": due},
    )


async def wake_many(
    conn: AsyncConnection, org_id: UUID, device_ids: Sequence[UUID], due: datetime
) -> None:
    """``wake`` for many devices in one statement."""
    if not device_ids:
        return
    await conn.execute(
        text(
            "INSERT INTO command_wakeups (device_id, tenant_id, due_at)"
            " SELECT d, :org, :due FROM unnest(CAST(:ids AS uuid[])) AS d"
            " ON CONFLICT (device_id) DO UPDATE SET"
            " due_at = least(command_wakeups.due_at, excluded.due_at), attempts = 0,"
            " seq = command_wakeups.seq + 1"
        ),
        {"ids": sorted(set(device_ids)), "org": org_id, "due": due},
    )


async def claim_due(
    conn: AsyncConnection, now: datetime, lease_until: datetime, limit: int
) -> list[tuple[UUID, UUID, int]]:
    """(org, device, attempts) of due wake-ups, leased to this replica until ``lease_until``
    (another replica skips them; a replica that dies leaves them due again after the lease)."""
    rows = await conn.execute(
        text(
            "UPDATE command_wakeups w SET due_at = :lease FROM ("
            " SELECT device_id FROM command_wakeups WHERE due_at <= :now"
            " ORDER BY due_at LIMIT :n FOR UPDATE SKIP LOCKED) due"
            " WHERE w.device_id = due.device_id RETURNING w.tenant_id, w.device_id, w.attempts"
        ),
        {"now": now, "lease": lease_until, "n": limit},
    )
    return [(r.tenant_id, r.device_id, r.attempts) for r in rows]


async def claim_device(
    conn: AsyncConnection, device_id: UUID, now: datetime, lease_until: datetime
) -> int | None:
    """Claim one device's due wake-up as ``claim_due`` does; its attempts, or None when it is
    not due or another replica holds it."""
    row = (
        await conn.execute(
            text(
                "UPDATE command_wakeups SET due_at = :lease WHERE device_id = (SELECT device_id"
                " FROM command_wakeups WHERE device_id = :d AND due_at <= :now"
                " FOR UPDATE SKIP LOCKED) RETURNING attempts"
            ),
            {"d": device_id, "now": now, "lease": lease_until},
        )
    ).first()
    return None if row is None else int(row.attempts)


async def reschedule(
    conn: AsyncConnection,
    org_id: UUID,
    device_id: UUID,
    due: datetime | None,
    attempts: int,
    seq: int | None,
) -> None:
    """The device's next look (``None``: nothing waits, forget it), unless a change woke it
    since ``seq`` was read (then that wake-up stands)."""
    if seq is None:
        if due is not None:
            await conn.execute(
                text(
                    "INSERT INTO command_wakeups (device_id, tenant_id, due_at, attempts)"
                    " VALUES (:d, :org, :due, :a) ON CONFLICT (device_id) DO NOTHING"
                ),
                {"d": device_id, "org": org_id, "due": due, "a": attempts},
            )
    elif due is None:
        await conn.execute(
            text("DELETE FROM command_wakeups WHERE device_id = :d AND seq = :seq"),
            {"d": device_id, "seq": seq},
        )
    else:
        await conn.execute(
            text(
                "UPDATE command_wakeups SET due_at = :due, attempts = :a"
                " WHERE device_id = :d AND seq = :seq"
            ),
            {"d": device_id, "due": due, "a": attempts, "seq": seq},
        )


# --- the projector ----------------------------------------------------------------------

_TIME_COLUMN = {
    api.CommandSent: "sent_at",
    api.CommandAcknowledged: "acknowledged_at",
    api.CommandSucceeded: "completed_at",
    api.CommandFailed: "completed_at",
    api.CommandExpired: "completed_at",
}
_STATUS = {
    api.CommandSent: CommandStatus.SENT,
    api.CommandAcknowledged: CommandStatus.ACKNOWLEDGED,
    api.CommandSucceeded: CommandStatus.SUCCEEDED,
    api.CommandFailed: CommandStatus.FAILED,
    api.CommandExpired: CommandStatus.EXPIRED,
}


class CommandsProjector:
    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        base = {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version}
        if isinstance(data, api.CommandCreated):
            actor = e.actor
            await conn.execute(
                text(
                    "INSERT INTO commands (org_id, id, device_id, name, params, status,"
                    " created_at, updated_at, expires_at, requested_by, version) VALUES (:org,"
                    " :id, :d, :name, CAST(:params AS jsonb), 'PENDING', :at, :at, :exp, :by, :v)"
                ),
                {
                    **base,
                    "d": data.device_id,
                    "name": data.name,
                    "params": _encode(data.params).decode(),
                    "exp": data.expires_at,
                    "by": None if actor is None else f"{actor.kind.value}:{actor.id}",
                },
            )
        elif type(data) in _STATUS:
            column = _TIME_COLUMN[type(data)]
            result = getattr(data, "result", None)
            sets = f"status = :s, {column} = :at, updated_at = :at, version = :v"
            if isinstance(data, api.CommandSucceeded | api.CommandFailed):
                sets += ", result = CAST(:r AS jsonb)"
            await conn.execute(
                text(f"UPDATE commands SET {sets} WHERE org_id = :org AND id = :id"),
                {**base, "s": _STATUS[type(data)].value, "r": _encode(result).decode()},
            )
        elif isinstance(data, api.DesiredStateChanged):
            fleet = data.fleet
            sets = (
                "desired = excluded.desired, version = excluded.version,"
                " desired_updated_at = excluded.desired_updated_at, local = excluded.local"
            )
            if fleet is not None:
                sets += (
                    ", fleet_document = excluded.fleet_document,"
                    " fleet_sources = excluded.fleet_sources, fleet_digest = excluded.fleet_digest"
                )
            await conn.execute(
                text(
                    "INSERT INTO device_states (org_id, device_id, desired, version,"
                    " desired_updated_at, local, fleet_document, fleet_sources, fleet_digest)"
                    " VALUES (:org, :d, CAST(:desired AS jsonb), :v, :at, CAST(:local AS jsonb),"
                    " CAST(:doc AS jsonb), CAST(:sources AS jsonb), :digest)"
                    f" ON CONFLICT (org_id, device_id) DO UPDATE SET {sets}"
                ),
                {
                    **base,
                    "d": data.device_id,
                    "desired": _encode(data.desired).decode(),
                    "local": None if data.local is None else _encode(data.local).decode(),
                    "doc": _encode({} if fleet is None else fleet.document).decode(),
                    "sources": _encode({} if fleet is None else fleet.sources).decode(),
                    "digest": "" if fleet is None else fleet.digest,
                },
            )
