"""Every service's share of the audit log: its own event store, as a collection.

Served automatically by ``ServiceRuntime`` for any service with a database, so a new
service's changes are in the audit log without a line of its own code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from outpost_contracts.audit import AuditEntry, ListAuditLog
from outpost_contracts.envelope import RequestContext
from outpost_contracts.query import Page
from outpost_kit.db.listing import Collection, Field, list_page
from outpost_kit.db.uow import UnitOfWorkFactory

EVENTS = Collection(
    table="events",
    columns=(
        "event_id, event_type, stream_type, stream_id, version, occurred_at,"
        " actor->>'kind' AS actor_kind, actor->>'id' AS actor_id, request_id, data::text AS data"
    ),
    fields={
        "id": Field("event_id", "uuid"),
        "type": Field("event_type"),
        "streamType": Field("stream_type"),
        "streamId": Field("stream_id", "uuid"),
        "occurredAt": Field("occurred_at", "datetime"),
        "requestId": Field("request_id"),
        "actorId": Field("(actor->>'id')"),
        "actorKind": Field("(actor->>'kind')"),
    },
    id_column="event_id",
)

# Credential material never leaves in an audit entry, even hashed: fields named like a hash,
# a secret, a password or a token, and compound keys (``apiKey``, ``privateKey``, ``caKey``).
# A bare ``key`` is a name (a sensor's or a tag's key) and stays.
_SECRET = re.compile(r"(?i:hash|secret|password|token)$|.Key$")


def _scrub(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "type" and not _SECRET.search(k)}


def _entry(service: str, row: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["event_id"],
        service=service,
        type=row["event_type"],
        stream_type=row["stream_type"],
        stream_id=row["stream_id"],
        version=row["version"],
        occurred_at=row["occurred_at"],
        actor_kind=row["actor_kind"],
        actor_id=row["actor_id"],
        request_id=row["request_id"],
        data=_scrub(msgspec.json.decode(row["data"])),
    )


async def list_audit_log(
    uow: UnitOfWorkFactory, service: str, ctx: RequestContext, q: ListAuditLog
) -> Page[AuditEntry]:
    async with uow(ctx.org_id) as tx:
        return await list_page(tx.conn, EVENTS, q.query, lambda row: _entry(service, row))
