"""Request limits through the HTTP app: body size, header size and the request deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from gateway_testkit import NOW, FakeBackend, World, bearer, build_world
from litestar import Litestar
from litestar.testing import TestClient

from outpost_contracts.devices import LIST_DEVICES
from outpost_contracts.envelope import RequestContext
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_gateway.app.rate_limiter import MemoryStore
from outpost_gateway.bootstrap import create_app
from outpost_gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit


class SlowBackend(FakeBackend):
    """Takes ``delay`` seconds before answering, like a service that does not answer."""

    delay: float = 0.0

    async def call(self, op: Operation[Any, Any], ctx: RequestContext, body: Any) -> Any:
        await asyncio.sleep(self.delay)
        return await super().call(op, ctx, body)


class Env:
    def __init__(self, client: TestClient[Litestar], backend: SlowBackend, world: World) -> None:
        self.client, self.backend, self.world = client, backend, world


@pytest.fixture
def env() -> Iterator[Env]:
    world = build_world()
    backend = SlowBackend()
    backend.on(LIST_DEVICES, Page(data=[], limit=50))
    settings = GatewaySettings(
        max_body_bytes=1000, max_header_bytes=2000, request_timeout_seconds=0.3
    )
    app = create_app(settings, backend, world.cache, clock=lambda: NOW, store=MemoryStore())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Env(client, backend, world)


def assert_error(resp: Any, status: int, type_: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["object"] == "error" and body["code"] == status and body["type"] == type_
    assert body["request_id"] == resp.headers["x-request-id"]
    return dict(body)


def test_a_large_body_is_413(env: Env) -> None:
    h = {**bearer(env.world.full), "content-type": "application/json"}
    for path in ("/api/v1/devices", "/api/v0/devices"):
        resp = env.client.post(path, content=b'{"name":"' + b"x" * 2000 + b'"}', headers=h)
        assert_error(resp, 413, "payload_too_large")


def test_large_headers_are_400_bad_request(env: Env) -> None:
    headers = {**bearer(env.world.full), "X-Padding": "p" * 2100}
    body = assert_error(env.client.get("/api/v1/devices", headers=headers), 400, "bad_request")
    assert "headers too large" in body["message"]
    # Within the limit: served.
    headers["X-Padding"] = "p" * 100
    assert env.client.get("/api/v1/devices", headers=headers).status_code == 200


def test_a_request_past_the_deadline_is_503(env: Env) -> None:
    env.backend.delay = 5.0
    resp = env.client.get("/api/v1/devices", headers=bearer(env.world.full))
    body = assert_error(resp, 503, "service_unavailable")
    assert "not answered within 0.3 s" in body["message"]
    assert resp.headers["x-ratelimit-limit"] == "50"


def test_a_request_within_the_deadline_is_served(env: Env) -> None:
    env.backend.delay = 0.05
    resp = env.client.get("/api/v1/devices", headers=bearer(env.world.full))
    assert resp.status_code == 200


def test_the_default_deadline_is_above_the_rpc_timeout() -> None:
    settings = GatewaySettings()
    assert settings.request_timeout_seconds == 10.0
    assert settings.request_timeout_seconds > settings.rpc_timeout_seconds
    assert settings.max_header_bytes == 16 * 1024
