"""Integrations against real Postgres and a real JetStream (issue 23, ADR 0097): the 201's
password shown once and only its hash in the events; the durable consumers made on PUBLIC
with the organization's filters and the deliver policy; list, get and another
organization's 404; rotation; revocation removes the consumers."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import msgspec
import nats
import pytest
from nats.js.errors import NotFoundError

from outpost_contracts import identity as api
from outpost_contracts import integrations, streams
from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import NotFound, ValidationFailed
from outpost_contracts.query import ListQuery
from outpost_devkit.infra import NatsServer
from outpost_identity import bootstrap
from outpost_identity.adapters.broker import JetStreamConsumers
from outpost_identity.adapters.projections import PROJECTORS
from outpost_identity.adapters.store import PgIdentity
from outpost_identity.app import handlers
from outpost_identity.app.integrations import hash_password
from outpost_kit import ids, messaging
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import provision_service

pytestmark = pytest.mark.integration


def _ctx(org: uuid.UUID) -> RequestContext:
    return RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org,
        principal=Principal(kind=PrincipalKind.API_KEY, id=uuid.uuid4(), org_id=org, scopes=("*",)),
    )


@pytest.fixture
async def world(postgres_dsn: str, tmp_path: Path) -> AsyncIterator[tuple[handlers.Deps, object]]:
    dsn = await provision_service(postgres_dsn, "identity", secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, "identity", migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, "identity", pool_size=2)
    # A broker of its own: the session's broker holds other tests' service streams, whose
    # subjects the stand-in below would overlap.
    broker = NatsServer.start(tmp_path / "nats")
    nc = await nats.connect(broker.url)
    js = nc.jetstream()
    public = next(s for s in streams.STREAMS if s.name == integrations.STREAM)
    # this broker has no service streams: PUBLIC with subjects of its own stands in
    spec = msgspec.structs.replace(public, sources=(), subjects=("outpost.evt.>", "outpost.tel.>"))
    await messaging.apply_streams(js, [spec])
    try:
        yield (
            handlers.Deps(
                uow=PgIdentity(engine, EventCodec(bootstrap.EVENT_TYPES), PROJECTORS),
                consumers=JetStreamConsumers(js),
            ),
            js,
        )
    finally:
        await nc.close()
        broker.stop()
        await engine.dispose()


async def _org(deps: handlers.Deps) -> uuid.UUID:
    operator = RequestContext(
        request_id="r",
        org_id=uuid.UUID(int=0),
        principal=Principal(kind=PrincipalKind.OPERATOR, id=uuid.uuid4(), org_id=uuid.UUID(int=0)),
    )
    view = await handlers.create_organization(
        deps, operator, api.CreateOrganization(name=f"o-{uuid.uuid4().hex[:8]}")
    )
    return view.id


async def test_create_list_get_rotate_revoke(world: tuple[handlers.Deps, object]) -> None:
    deps, js = world
    org, other = await _org(deps), await _org(deps)
    issued = await handlers.create_integration(
        deps,
        _ctx(org),
        api.CreateIntegration(
            name="warehouse",
            subjects=["alerts.>", "devices.DeviceRegistered"],
            deliver_policy=api.DeliverPolicy.ALL,
            groups=["default", "replay"],
        ),
    )
    assert issued.password.startswith("opi_") and issued.user == integrations.user(issued.id)
    assert set(issued.consumers) == {"default", "replay"}
    info = await js.consumer_info(integrations.STREAM, issued.consumers["default"])  # type: ignore[attr-defined]
    filters = set(info.config.filter_subjects or [info.config.filter_subject])
    assert filters == set(integrations.filters(org, issued.subjects))
    assert all(str(org) in f for f in filters)
    assert str(getattr(info.config.deliver_policy, "value", info.config.deliver_policy)) == "all"

    async with deps.uow(org) as tx:
        events = await tx.events.load(issued.id)
    [created] = [e.data for e in events]
    assert isinstance(created, api.IntegrationCreated)
    assert created.password_hash == hash_password(issued.password)
    assert issued.password not in msgspec.json.encode(created).decode()

    page = await handlers.list_integrations(
        deps, _ctx(org), api.ListIntegrations(query=ListQuery())
    )
    assert [v.id for v in page.data] == [issued.id]
    got = await handlers.get_integration(deps, _ctx(org), api.GetIntegration(id=issued.id))
    assert got.consumers == issued.consumers and got.revoked_at is None
    for call in (
        handlers.get_integration(deps, _ctx(other), api.GetIntegration(id=issued.id)),
        handlers.revoke_integration(deps, _ctx(other), api.RevokeIntegration(id=issued.id)),
        handlers.rotate_integration_credential(
            deps, _ctx(other), api.RotateIntegrationCredential(id=issued.id)
        ),
    ):
        with pytest.raises(NotFound):
            await call

    # the auth callout's reports: lastConnectedAt moves forward only
    later, earlier = ids.now(), ids.now() - timedelta(minutes=5)
    for at in (later, earlier):
        report = api.RecordIntegrationConnections(
            connections=[api.IntegrationConnection(id=issued.id, org_id=org, at=at)]
        )
        await handlers.record_integration_connections(deps, _ctx(org), report)
    got = await handlers.get_integration(deps, _ctx(org), api.GetIntegration(id=issued.id))
    assert got.last_connected_at == later

    rotated = await handlers.rotate_integration_credential(
        deps, _ctx(org), api.RotateIntegrationCredential(id=issued.id)
    )
    assert rotated.password != issued.password and rotated.consumers == issued.consumers

    await handlers.revoke_integration(deps, _ctx(org), api.RevokeIntegration(id=issued.id))
    for name in issued.consumers.values():
        with pytest.raises(NotFoundError):
            await js.consumer_info(integrations.STREAM, name)  # type: ignore[attr-defined]
    got = await handlers.get_integration(deps, _ctx(org), api.GetIntegration(id=issued.id))
    assert got.revoked_at is not None and got.version == 3
    with pytest.raises(NotFound):
        await handlers.revoke_integration(deps, _ctx(org), api.RevokeIntegration(id=issued.id))


async def test_a_bad_filter_stores_nothing_and_makes_no_consumer(
    world: tuple[handlers.Deps, object],
) -> None:
    deps, js = world
    org = await _org(deps)
    with pytest.raises(ValidationFailed):
        await handlers.create_integration(
            deps, _ctx(org), api.CreateIntegration(name="x", subjects=["identity.>"])
        )
    page = await handlers.list_integrations(
        deps, _ctx(org), api.ListIntegrations(query=ListQuery())
    )
    assert page.data == []
    names = [c.name async for c in _consumers(js)]
    assert not [n for n in names if n.startswith("integration-")]


async def _consumers(js: object) -> AsyncIterator[object]:
    for info in await js.consumers_info(integrations.STREAM):  # type: ignore[attr-defined]
        yield info
