"""Which organizations are suspended, as each service that acts on it records it in its own
schema (ADR 0076; docs/architecture.md principle 2: no cross-schema SQL).

identity owns the organization; devices, readings and alerting follow its
``OrganizationSuspended`` / ``OrganizationReinstated`` events (their ``<service>-organizations``
consumers) into a table of their own, ``organization_suspensions``. The table is plumbing
like the outbox (ids, a flag, a time and a version; no tenant data), so it has no row-level
security: a telemetry batch of many organizations asks it once. Its key is ``tenant_id``,
as in the other plumbing tables (the rls-audit takes a table with ``org_id`` for a tenant
table). The organization stream's version orders the events, so a redelivered older event
never undoes a newer one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from sqlalchemy import text

from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.identity import (
    SUSPENSION_EVENTS,
    OrganizationReinstated,
    OrganizationSuspended,
)
from outpost_kit.db.uow import UnitOfWork

EVENT_TYPES = SUSPENSION_EVENTS

DDL = """
CREATE TABLE organization_suspensions (
    tenant_id  uuid PRIMARY KEY,
    suspended  boolean     NOT NULL,
    changed_at timestamptz NOT NULL,
    version    integer     NOT NULL
)
"""

_RECORD = text(
    "INSERT INTO organization_suspensions (tenant_id, suspended, changed_at, version)"
    " VALUES (:org, :suspended, :at, :v) ON CONFLICT (tenant_id) DO UPDATE SET"
    " suspended = excluded.suspended, changed_at = excluded.changed_at,"
    " version = excluded.version WHERE organization_suspensions.version < excluded.version"
)


async def on_organization_event(uow: UnitOfWork, event: EventEnvelope) -> None:
    """The ``<service>-organizations`` consumers' handler."""
    if isinstance(event.data, OrganizationSuspended):
        suspended = True
    elif isinstance(event.data, OrganizationReinstated):
        suspended = False
    else:
        return
    await uow.conn.execute(
        _RECORD,
        {
            "org": event.stream_id,
            "suspended": suspended,
            "at": event.occurred_at,
            "v": event.version,
        },
    )


async def suspended(uow: UnitOfWork, org_id: UUID) -> bool:
    """Whether ``org_id`` is suspended, in the unit of work's transaction."""
    found = await uow.conn.execute(
        text("SELECT suspended FROM organization_suspensions WHERE tenant_id = :org"),
        {"org": org_id},
    )
    return bool(found.scalar())


async def suspended_among(conn: Any, org_ids: Iterable[UUID]) -> set[UUID]:
    """The suspended ones of ``org_ids`` (an SQLAlchemy async connection)."""
    wanted = list(set(org_ids))
    if not wanted:
        return set()
    rows = await conn.execute(
        text(
            "SELECT tenant_id FROM organization_suspensions"
            " WHERE suspended AND tenant_id = ANY(CAST(:orgs AS uuid[]))"
        ),
        {"orgs": wanted},
    )
    return {row[0] for row in rows}
