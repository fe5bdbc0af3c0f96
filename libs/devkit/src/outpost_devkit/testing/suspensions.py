"""Identity's suspension events, recorded as a service's ``<service>-organizations`` consumer
records them (ADR 0076): for integration tests that suspend or reinstate an organization in
one service without running identity."""

from __future__ import annotations

from uuid import UUID

from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.identity import OrganizationReinstated, OrganizationSuspended
from outpost_kit import ids
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_kit.suspensions import on_organization_event


async def record_organization_event(
    uow: UnitOfWorkFactory,
    org: UUID,
    version: int,
    data: OrganizationSuspended | OrganizationReinstated,
) -> None:
    """``data`` as version ``version`` of ``org``'s stream, through the consumer's handler."""
    envelope = EventEnvelope(
        id=ids.new_id(),
        org_id=org,
        stream_id=org,
        stream_type="organization",
        version=version,
        occurred_at=ids.now(),
        data=data,
    )
    async with uow(org) as unit:
        await on_organization_event(unit, envelope)
        await unit.commit()
