"""The auth callout's integration credentials against real Postgres (ADR 0097): identity's
events written by the ``devices-integrations`` handler, in version order (a redelivered older
event never undoes a newer one), and read by the callout's one statement with the
organization's suspension."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from devices_testkit import devices_deps

from outpost_contracts import integrations
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.errors import AccessDenied
from outpost_contracts.identity import (
    DeliverPolicy,
    IntegrationCreated,
    IntegrationCredentialRotated,
    IntegrationRevoked,
    OrganizationSuspended,
)
from outpost_devices.adapters.integrations_store import on_integration_event
from outpost_devices.app import broker
from outpost_devkit.testing.suspensions import record_organization_event
from outpost_kit import ids

pytestmark = pytest.mark.integration
SESSION = timedelta(hours=1)


async def _record(deps: object, org: uuid.UUID, iid: uuid.UUID, version: int, data: object) -> None:
    envelope = EventEnvelope(
        id=ids.new_id(),
        org_id=org,
        stream_id=iid,
        stream_type="integration",
        version=version,
        occurred_at=ids.now(),
        data=data,  # type: ignore[arg-type]
    )
    async with deps.uow(org) as unit:  # type: ignore[attr-defined]
        await on_integration_event(unit, envelope)
        await unit.commit()


async def test_the_callout_follows_identitys_events_in_order(postgres_dsn: str) -> None:
    async with devices_deps(postgres_dsn) as deps:
        org, iid = uuid.uuid4(), uuid.uuid4()
        user = integrations.user(iid)
        first, second = "opi_first-password-xxxxxxxx", "opi_second-password-xxxxxxx"
        created = IntegrationCreated(
            name="w",
            user=user,
            password_hash=broker.password_hash(first),
            subjects=("devices.>",),
            filters=integrations.filters(org, ("devices.>",)),
            deliver_policy=DeliverPolicy.ALL,
            consumers=(integrations.consumer(iid, "default"),),
        )
        await _record(deps, org, iid, 1, created)
        now = ids.now()
        session = await broker.authorize_integration(deps.reads, user, first, now, SESSION)
        assert session.org_id == org and session.consumers == created.consumers

        rotated = IntegrationCredentialRotated(
            user=user, password_hash=broker.password_hash(second)
        )
        await _record(deps, org, iid, 2, rotated)
        await _record(deps, org, iid, 1, created)  # redelivered: changes nothing
        with pytest.raises(AccessDenied):
            await broker.authorize_integration(deps.reads, user, first, now, SESSION)
        await broker.authorize_integration(deps.reads, user, second, now, SESSION)

        await record_organization_event(deps.uow, org, 2, OrganizationSuspended())  # type: ignore[arg-type]
        with pytest.raises(AccessDenied, match="suspended"):
            await broker.authorize_integration(deps.reads, user, second, now, SESSION)

        await _record(deps, org, iid, 3, IntegrationRevoked(user=user))
        await _record(deps, org, iid, 2, rotated)  # redelivered: still revoked
        with pytest.raises(AccessDenied, match="revoked"):
            await broker.authorize_integration(deps.reads, user, second, now, SESSION)
        other = integrations.user(uuid.uuid4())
        with pytest.raises(AccessDenied):
            await broker.authorize_integration(deps.reads, other, second, now, SESSION)
