"""Rate-limit headers, 429 and Idempotency-Key through the HTTP app (in-process store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from gateway_testkit import NOW, FakeBackend, World, bearer, build_world
from litestar import Litestar
from litestar.testing import TestClient

from outpost_contracts.devices import CREATE_DEVICE, GET_DEVICE, DeviceStatus, DeviceView
from outpost_contracts.errors import NotFound, ServiceUnavailable
from outpost_gateway.app.rate_limiter import MemoryStore
from outpost_gateway.bootstrap import create_app
from outpost_gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

T = 1_800_000_010.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def device(name: str) -> DeviceView:
    return DeviceView(
        id=uuid4(),
        name=name,
        status=DeviceStatus.REGISTERED,
        created_at=T0,
        updated_at=T0,
        version=1,
    )


class Env:
    def __init__(self, client: TestClient[Litestar], backend: FakeBackend, world: World) -> None:
        self.client, self.backend, self.world = client, backend, world


@pytest.fixture
def env() -> Iterator[Env]:
    world = build_world()
    backend = FakeBackend()
    backend.on(CREATE_DEVICE, lambda ctx, body: device(body.name))
    app = create_app(
        GatewaySettings(ratelimit_write_per_minute=3, ratelimit_list_per_minute=2),
        backend,
        world.cache,
        clock=lambda: NOW,
        store=MemoryStore(),
        epoch_clock=lambda: T,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Env(client, backend, world)


def limits(resp: Any) -> tuple[str, str, str]:
    h = resp.headers
    return h["x-ratelimit-limit"], h["x-ratelimit-remaining"], h["x-ratelimit-reset"]


def test_success_and_error_responses_carry_the_headers_and_429_names_the_limit(env: Env) -> None:
    key = bearer(env.world.full)
    created = [
        env.client.post("/api/v1/devices", json={"name": f"d{i}"}, headers=key) for i in range(3)
    ]
    assert [r.status_code for r in created] == [201, 201, 201]
    assert [limits(r) for r in created] == [
        ("3", "2", "1800000060"),
        ("3", "1", "1800000060"),
        ("3", "0", "1800000060"),
    ]
    refused = env.client.post("/api/v1/devices", json={"name": "d4"}, headers=key)
    assert refused.status_code == 429
    body = refused.json()
    assert body["type"] == "throttled"
    assert "rate limit 'write' of 3 requests per minute exceeded" in body["message"]
    assert refused.headers["retry-after"] == "50"
    assert limits(refused) == ("3", "0", "1800000060")
    assert len(env.backend.calls) == 3
    # A 4xx from validation also carries them (another category: list).
    bad = env.client.get("/api/v1/devices", params={"limit": "nope"}, headers=key)
    assert bad.status_code == 400 and limits(bad) == ("2", "1", "1800000060")


def test_categories_are_counted_separately_and_per_credential(env: Env) -> None:
    backend = env.backend.on(GET_DEVICE, device("x"))
    full, other = bearer(env.world.full), bearer(env.world.devices_all)
    for _ in range(3):
        env.client.post("/api/v1/devices", json={"name": "d"}, headers=full)
    single = env.client.get(f"/api/v1/devices/{uuid4()}", headers=full)
    assert single.status_code == 200 and limits(single)[0:2] == ("500", "499")
    assert env.client.post("/api/v1/devices", json={"name": "e"}, headers=other).status_code == 201
    assert backend.calls


def test_public_routes_are_not_limited(env: Env) -> None:
    for _ in range(5):
        resp = env.client.get("/healthz")
        assert resp.status_code == 200
        assert "x-ratelimit-limit" not in resp.headers


def test_an_idempotency_key_replays_the_first_response_and_refuses_another_body(
    env: Env,
) -> None:
    key = {**bearer(env.world.full), "Idempotency-Key": "create-pump-1"}
    first = env.client.post("/api/v1/devices", json={"name": "pump-1"}, headers=key)
    again = env.client.post("/api/v1/devices", json={"name": "pump-1"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(env.backend.calls) == 1
    other = env.client.post("/api/v1/devices", json={"name": "pump-2"}, headers=key)
    assert other.status_code == 409 and other.json()["type"] == "conflict"
    assert len(env.backend.calls) == 1
    # Another credential's key of the same name is its own.
    mine = {**bearer(env.world.devices_all), "Idempotency-Key": "create-pump-1"}
    assert env.client.post("/api/v1/devices", json={"name": "p"}, headers=mine).status_code == 201


def test_an_operator_reusing_a_key_in_another_organization_is_not_replayed(env: Env) -> None:
    """``bola``: the operator's one credential acts in several organizations
    (``X-Organization``); the same key and body in organization B reach the service and get
    B's answer, never A's stored response (decision 78)."""
    op = bearer(env.world.operator)
    in_a = {**op, "Idempotency-Key": "create-1", "X-Organization": str(env.world.org_a)}
    in_b = {**op, "Idempotency-Key": "create-1", "X-Organization": str(env.world.org_b)}
    first = env.client.post("/api/v1/devices", json={"name": "pump"}, headers=in_a)
    again = env.client.post("/api/v1/devices", json={"name": "pump"}, headers=in_a)
    other = env.client.post("/api/v1/devices", json={"name": "pump"}, headers=in_b)
    assert first.status_code == again.status_code == other.status_code == 201, other.text
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in other.headers
    assert other.json()["id"] != first.json()["id"]
    assert [c.ctx.org_id for c in env.backend.calls] == [env.world.org_a, env.world.org_b]
    # (That B's record then replays in B and A's in A: the store's integration test; this
    # fixture allows 3 writes a minute.)


def test_a_5xx_releases_the_key_so_a_retry_reaches_the_service(env: Env) -> None:
    key = {**bearer(env.world.full), "Idempotency-Key": "k"}
    env.backend.on(CREATE_DEVICE, ServiceUnavailable("devices did not answer"))
    assert env.client.post("/api/v1/devices", json={"name": "a"}, headers=key).status_code == 503
    env.backend.on(CREATE_DEVICE, lambda ctx, body: device(body.name))
    assert env.client.post("/api/v1/devices", json={"name": "a"}, headers=key).status_code == 201
    assert len(env.backend.calls) == 2


def test_the_operator_sets_and_clears_an_organizations_limits() -> None:
    from outpost_contracts.identity import GET_ORGANIZATION

    world, backend = build_world(), FakeBackend()
    backend.on(CREATE_DEVICE, lambda ctx, body: device(body.name))
    app = create_app(
        GatewaySettings(ratelimit_write_per_minute=20),
        backend,
        world.cache,
        clock=lambda: NOW,
        store=MemoryStore(),
        epoch_clock=lambda: T,
    )
    op, org = bearer(world.operator), world.org_a
    url = f"/api/v1/admin/organizations/{org}/rate-limits"
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get(url, headers=op).json() == {
            "organizationId": str(org),
            "single": 500,
            "list": 50,
            "write": 20,
            "overridden": [],
        }
        put = client.put(url, json={"write": 5, "list": None}, headers=op)
        assert put.status_code == 200, put.text
        assert (put.json()["write"], put.json()["list"], put.json()["overridden"]) == (
            5,
            50,
            ["write"],
        )
        key = bearer(world.full)
        statuses = [
            client.post("/api/v1/devices", json={"name": f"n{i}"}, headers=key).status_code
            for i in range(6)
        ]
        assert statuses == [201] * 5 + [429]  # the new limit applies at once on this replica
        cleared = client.put(url, json={}, headers=op).json()
        assert (cleared["write"], cleared["overridden"]) == (20, [])

        for body in ({"write": 0}, {"write": "many"}, {"burst": 5}):
            resp = client.put(url, json=body, headers=op)
            assert resp.status_code == 400, resp.text
            assert resp.json()["type"] == "validation_error", resp.text
        assert client.get(url, headers=key).status_code == 403  # operator only
        backend.on(GET_ORGANIZATION, NotFound("no such organization"))
        unknown = f"/api/v1/admin/organizations/{uuid4()}/rate-limits"
        assert client.get(unknown, headers=op).status_code == 404
