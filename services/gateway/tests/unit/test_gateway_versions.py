"""API v0, served by translation to and from v1: the translator and the layer end to end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from gateway_testkit import NOW, FakeBackend, World, bearer, build_world
from litestar import Litestar
from litestar.testing import TestClient

from outpost_contracts.devices import (
    CREATE_DEVICE,
    GET_DEVICE,
    LIST_DEVICES,
    DeviceStatus,
    DeviceView,
    Tag,
)
from outpost_contracts.errors import Conflict
from outpost_contracts.query import Page
from outpost_gateway.app.rate_limiter import MemoryStore
from outpost_gateway.bootstrap import create_app
from outpost_gateway.entrypoints.versions import (
    chain_for,
    translate_query,
    translate_request,
    translate_response,
    v0,
)
from outpost_gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
V0 = [v0]


# --- the translator -------------------------------------------------------------------------


def test_only_older_versions_have_a_chain() -> None:
    assert chain_for("v0") == [v0]
    assert chain_for("v1") is None
    assert chain_for("v7") is None


def test_v0_device_body_becomes_v1() -> None:
    body = {"name": "d", "type": "gateway", "tags": {"site": "north", "floor": "2"}}
    assert translate_request(V0, "POST", "/api/v1/devices", body) == {
        "name": "d",
        "deviceType": "gateway",
        "tags": [{"key": "site", "value": "north"}, {"key": "floor", "value": "2"}],
    }


def test_other_bodies_are_untouched() -> None:
    body = {"name": "k", "type": "x", "tags": {"a": "b"}}
    assert translate_request(V0, "POST", "/api/v1/api-keys", body) == body
    assert translate_request(V0, "POST", "/api/v1/devices/registration/tokens", body) == body


def test_v1_device_becomes_v0() -> None:
    device = {
        "id": "1",
        "deviceType": "gateway",
        "tags": [{"key": "site", "value": "north"}],
        "object": "device",
    }
    for path in ("/api/v1/devices/1", "/api/v1/devices/by-key/name='d'", "/api/v1/devices"):
        assert translate_response(V0, "GET", path, 200, device) == {
            "id": "1",
            "type": "gateway",
            "tags": {"site": "north"},
            "object": "device",
        }


def test_v1_list_becomes_v0() -> None:
    page = {
        "object": "list",
        "data": [{"id": "1", "deviceType": None, "tags": []}],
        "limit": 50,
        "after": None,
        "order": "ASC",
        "hasMore": True,
    }
    assert translate_response(V0, "GET", "/api/v1/devices", 200, page) == {
        "object": "list",
        "data": [{"id": "1", "type": None, "tags": {}}],
        "limit": 50,
        "after": None,
        "order": "ASC",
        "has_more": True,
    }
    users = {"object": "list", "data": [{"id": "u", "type": "x"}], "hasMore": False}
    assert translate_response(V0, "GET", "/api/v1/users", 200, users) == {
        "object": "list",
        "data": [{"id": "u", "type": "x"}],
        "has_more": False,
    }


def test_v0_query_names_become_v1() -> None:
    q = (
        b"type=gateway&type__in=a,b&name=type&%24select=id,type"
        b"&%24filter=type%20eq%20%27type%27%20and%20name%20eq%20%27x%27&%24orderby=type%20desc"
    )
    out = translate_query(V0, "GET", "/api/v1/devices", q).decode()
    assert out == (
        "deviceType=gateway&deviceType__in=a,b&name=type&$select=id,deviceType"
        "&$filter=deviceType%20eq%20'type'%20and%20name%20eq%20'x'&$orderby=deviceType%20desc"
    )
    assert translate_query(V0, "GET", "/api/v1/users", b"type=x") == b"type=x"


# --- through the app ------------------------------------------------------------------------


def view(name: str, device_type: str | None, tags: list[Tag]) -> DeviceView:
    return DeviceView(
        id=uuid4(),
        name=name,
        status=DeviceStatus.REGISTERED,
        created_at=T0,
        updated_at=T0,
        version=1,
        device_type=device_type,
        tags=tags,
    )


class Env:
    def __init__(self, client: TestClient[Litestar], backend: FakeBackend, world: World) -> None:
        self.client, self.backend, self.world = client, backend, world


@pytest.fixture
def env() -> Iterator[Env]:
    world = build_world()
    backend = FakeBackend()
    backend.on(CREATE_DEVICE, lambda ctx, body: view(body.name, body.device_type, body.tags))
    app = create_app(
        GatewaySettings(), backend, world.cache, clock=lambda: NOW, store=MemoryStore()
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Env(client, backend, world)


def test_create_through_v0(env: Env) -> None:
    resp = env.client.post(
        "/api/v0/devices",
        json={"name": "d1", "type": "gateway", "tags": {"site": "north"}},
        headers=bearer(env.world.full),
    )
    assert resp.status_code == 201, resp.text
    sent = env.backend.last.body
    assert sent.device_type == "gateway"
    assert sent.tags == [Tag(key="site", value="north")]
    body = resp.json()
    assert body["type"] == "gateway" and "deviceType" not in body
    assert body["tags"] == {"site": "north"}
    assert int(resp.headers["content-length"]) == len(resp.content)
    assert resp.headers["x-ratelimit-limit"]


def test_get_and_list_through_v0(env: Env) -> None:
    d = view("d1", "gateway", [Tag(key="a", value="1")])
    env.backend.on(GET_DEVICE, d)
    env.backend.on(LIST_DEVICES, Page(data=[d], limit=50, has_more=True))
    h = bearer(env.world.full)
    one = env.client.get(f"/api/v0/devices/{d.id}", headers=h)
    assert one.status_code == 200 and one.json()["tags"] == {"a": "1"}
    assert one.headers["etag"] == '"1"'
    listed = env.client.get("/api/v0/devices?type=gateway", headers=h).json()
    assert listed["has_more"] is True and "hasMore" not in listed
    assert listed["data"][0]["type"] == "gateway"
    assert env.backend.last.body.query is not None
    v1 = env.client.get("/api/v1/devices", headers=h).json()
    assert v1["hasMore"] is True and v1["data"][0]["deviceType"] == "gateway"


def test_v0_query_filter_reaches_the_service_in_v1_names(env: Env) -> None:
    env.backend.on(LIST_DEVICES, Page(data=[], limit=50))
    resp = env.client.get("/api/v0/devices?type=gateway", headers=bearer(env.world.full))
    assert resp.status_code == 200
    assert "deviceType" in repr(env.backend.last.body.query)


def test_errors_pass_through_unchanged(env: Env) -> None:
    env.backend.on(CREATE_DEVICE, Conflict("name taken"))
    resp = env.client.post("/api/v0/devices", json={"name": "d1"}, headers=bearer(env.world.full))
    assert resp.status_code == 409
    assert resp.json()["type"] == "conflict" and resp.json()["object"] == "error"
    unauth = env.client.get("/api/v0/devices")
    assert unauth.status_code == 401 and unauth.json()["type"] == "invalid_auth"


def test_unknown_versions_are_unrecognized(env: Env) -> None:
    resp = env.client.get("/api/v2/devices", headers=bearer(env.world.full))
    assert resp.status_code == 404 and resp.json()["type"] == "unrecognized_request"


def test_v0_bad_json_is_v1_s_answer(env: Env) -> None:
    resp = env.client.post(
        "/api/v0/devices",
        content=b"{not json",
        headers={**bearer(env.world.full), "content-type": "application/json"},
    )
    assert resp.status_code == 400 and resp.json()["object"] == "error"
