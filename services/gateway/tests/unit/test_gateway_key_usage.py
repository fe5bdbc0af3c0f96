"""lastUsedAt: the gateway notes the API keys it accepts and reports them in batches."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from gateway_testkit import NOW, FakeBackend, bearer, build_world
from litestar.testing import TestClient

from outpost_contracts.base import Empty
from outpost_contracts.envelope import Principal, PrincipalKind
from outpost_contracts.errors import ServiceUnavailable
from outpost_contracts.identity import RECORD_KEY_USAGE
from outpost_gateway.app.key_usage import KeyUsage
from outpost_gateway.bootstrap import create_app
from outpost_gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit


def key(kind: PrincipalKind = PrincipalKind.API_KEY) -> Principal:
    return Principal(kind=kind, id=uuid4(), org_id=uuid4())


async def test_one_entry_per_key_with_its_latest_use_and_a_failed_report_is_kept() -> None:
    usage, backend = KeyUsage(), FakeBackend()
    a, b = key(), key(PrincipalKind.OPERATOR)
    usage.note(a, NOW)
    usage.note(a, NOW + timedelta(seconds=3))
    usage.note(b, NOW)
    usage.note(key(PrincipalKind.USER), NOW)  # sessions are not API keys
    backend.on(RECORD_KEY_USAGE, ServiceUnavailable("identity is away"))
    assert await usage.report(backend) == 0
    usage.note(a, NOW + timedelta(seconds=9))  # newer than the report that failed
    backend.on(RECORD_KEY_USAGE, Empty())
    assert await usage.report(backend) == 2
    sent = {u.id: (u.org_id, u.at) for u in backend.last.body.uses}
    assert sent == {a.id: (a.org_id, NOW + timedelta(seconds=9)), b.id: (b.org_id, NOW)}
    assert backend.last.ctx.principal.kind is PrincipalKind.SYSTEM
    assert await usage.report(backend) == 0  # nothing new: no call
    assert len(backend.calls) == 2


def test_every_accepted_api_key_is_noted_and_refused_ones_are_not() -> None:
    world, backend = build_world(), FakeBackend()
    app = create_app(GatewaySettings(), backend, world.cache, clock=lambda: NOW)
    usage: KeyUsage = app.state["gateway"].usage
    with TestClient(app, raise_server_exceptions=False) as client:
        client.get("/api/v1/api-keys", headers=bearer(world.revoked))
        client.get("/api/v1/api-keys", headers=bearer(world.expired))
        assert usage.drain() == []
        client.get(f"/api/v1/devices/{uuid4()}", headers=bearer(world.reader))
        (use,) = usage.drain()
        assert (use.id, use.org_id, use.at) == (world.reader.id, world.org_a, NOW)
