from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from gateway_testkit import NOW, FakeBackend, World, bearer, build_world
from litestar import Litestar, get
from litestar.testing import TestClient
from prometheus_client import CONTENT_TYPE_LATEST

from outpost_contracts import asyncapi
from outpost_contracts.devices import (
    CREATE_DEVICE,
    GET_DEVICE,
    GET_DEVICE_BY_NAME,
    LIST_DEVICES,
    DeviceStatus,
    DeviceView,
)
from outpost_contracts.envelope import PLATFORM_ORG_ID, PrincipalKind
from outpost_contracts.errors import (
    Conflict,
    ErrorType,
    FieldError,
    NotFound,
    OutpostError,
    ServiceUnavailable,
    ValidationFailed,
)
from outpost_contracts.identity import (
    CREATE_API_KEY,
    CREATE_ORGANIZATION,
    GET_ORGANIZATION,
    LIST_ORGANIZATIONS,
    REVOKE_API_KEY,
    ApiKeyIssued,
    OrganizationStatus,
    OrganizationView,
)
from outpost_contracts.query import And, AnyOf, Cmp, OrderBy, Page
from outpost_contracts.readings import (
    GET_AGGREGATES,
    GET_LATEST,
    GET_STATS,
    LIST_READINGS,
    AggregateView,
    ReadingView,
    StatsView,
)
from outpost_gateway.app.readiness import Readiness
from outpost_gateway.bootstrap import create_app
from outpost_gateway.domain.policy import ROUTE_POLICIES, policy_for
from outpost_gateway.entrypoints.devices import parse_expected_count, parse_if_match
from outpost_gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

RID = re.compile(r"^[0-9a-f]{32}$")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def device(name: str = "gw-1", version: int = 3) -> DeviceView:
    return DeviceView(
        id=uuid4(),
        name=name,
        status=DeviceStatus.REGISTERED,
        created_at=T0,
        updated_at=T0,
        version=version,
    )


class Env:
    def __init__(self, client: TestClient[Litestar], backend: FakeBackend, world: World) -> None:
        self.client, self.backend, self.world = client, backend, world


def make_app(backend: FakeBackend, world: World, readiness: Readiness | None = None) -> Litestar:
    return create_app(
        GatewaySettings(max_body_bytes=4096),
        backend,
        world.cache,
        readiness=readiness,
        clock=lambda: NOW,
    )


@pytest.fixture
def env() -> Iterator[Env]:
    world = build_world()
    backend = FakeBackend()
    app = make_app(backend, world)

    @get("/boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("secret stack detail")

    app.register(boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Env(client, backend, world)


def assert_error(resp: Any, status: int, type_: str, field: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"object", "code", "type", "message", "fields", "request_id"}
    assert body["object"] == "error"
    assert (body["code"], body["type"]) == (status, type_)
    assert RID.match(body["request_id"])
    assert body["request_id"] == resp.headers["x-request-id"]
    if field is not None:
        assert field in [f["name"] for f in body["fields"]], body
    return body


# --- the error model -----------------------------------------------------------------------


def test_every_response_has_a_fresh_request_id(env: Env) -> None:
    seen = set()
    for method, path in [
        ("GET", "/healthz"),
        ("GET", "/nowhere"),
        ("POST", "/healthz"),
        ("GET", "/boom"),
        ("GET", "/api/v1/devices"),
    ]:
        resp = env.client.request(method, path, headers={"X-Request-ID": "client-chosen"})
        rid = resp.headers["x-request-id"]
        assert RID.match(rid), (path, rid)
        seen.add(rid)
    assert len(seen) == 5


def test_unknown_url_is_unrecognized_request(env: Env) -> None:
    assert_error(env.client.get("/api/v1/nothing"), 404, "unrecognized_request")
    assert_error(env.client.get("/api/v3/whatever"), 404, "unrecognized_request")


def test_wrong_method_is_method_not_supported(env: Env) -> None:
    resp = env.client.put("/api/v1/devices", headers=bearer(env.world.full))
    assert_error(resp, 405, "method_not_supported")
    assert "GET" in resp.headers["allow"]


def test_unexpected_errors_are_500_without_a_stack_trace(env: Env) -> None:
    body = assert_error(env.client.get("/boom"), 500, "internal_server_error")
    assert "secret" not in body["message"]
    assert "Traceback" not in str(body)


def test_authentication_errors(env: Env) -> None:
    w = env.world
    assert_error(env.client.get("/api/v1/devices"), 401, "invalid_auth")
    resp = env.client.get("/api/v1/devices", headers={"Authorization": "Token x"})
    assert_error(resp, 401, "invalid_auth")
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert_error(
        env.client.get("/api/v1/devices", headers=bearer("jwt.like.token")), 401, "invalid_token"
    )
    for key in (w.revoked, w.expired):
        assert_error(env.client.get("/api/v1/devices", headers=bearer(key)), 401, "invalid_apikey")
    assert_error(
        env.client.get("/api/v1/devices", headers=bearer(w.suspended)), 403, "access_denied"
    )
    assert env.backend.calls == []


def test_body_validation_errors_name_the_field(env: Env) -> None:
    h = bearer(env.world.full)
    assert_error(
        env.client.post("/api/v1/devices", json={"name": 5}, headers=h),
        400,
        "validation_error",
        "name",
    )
    assert_error(
        env.client.post("/api/v1/devices", json={}, headers=h), 400, "validation_error", "name"
    )
    resp = env.client.post("/api/v1/devices", json={"name": "a", "owner": "x"}, headers=h)
    assert_error(resp, 400, "validation_error", "owner")
    resp = env.client.post("/api/v1/devices", json={"name": "a", "tags": [{"key": 1}]}, headers=h)
    assert_error(resp, 400, "validation_error", "tags[0].key")
    assert env.backend.calls == []


def test_malformed_json_is_bad_request(env: Env) -> None:
    h = {**bearer(env.world.full), "Content-Type": "application/json"}
    assert_error(
        env.client.post("/api/v1/devices", content=b"{nope", headers=h), 400, "bad_request"
    )


def test_non_json_content_type_is_415(env: Env) -> None:
    h = {**bearer(env.world.full), "Content-Type": "text/plain"}
    resp = env.client.post("/api/v1/devices", content=b'{"name":"a"}', headers=h)
    assert_error(resp, 415, "unsupported_media_type")


def test_oversized_body_is_413(env: Env) -> None:
    h = {**bearer(env.world.full), "Content-Type": "application/json"}
    big = b'{"name":"a","attributes":{"x":"' + b"y" * 8000 + b'"}}'
    assert_error(
        env.client.post("/api/v1/devices", content=big, headers=h), 413, "payload_too_large"
    )


def test_bad_uuid_path_parameter_is_validation_error(env: Env) -> None:
    resp = env.client.get("/api/v1/devices/not-a-uuid", headers=bearer(env.world.full))
    assert resp.status_code in (400, 404)
    if resp.status_code == 400:
        assert_error(resp, 400, "validation_error", "id")
    else:
        assert_error(resp, 404, "unrecognized_request")


def test_bad_query_parameters_are_validation_errors(env: Env) -> None:
    h = bearer(env.world.full)
    for query, field in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("name__like=x", "name__like"),
        ("include=everything", "include"),
    ]:
        assert_error(
            env.client.get(f"/api/v1/devices?{query}", headers=h), 400, "validation_error", field
        )
    assert env.backend.calls == []


@pytest.mark.parametrize(
    ("exc", "status", "type_"),
    [
        (NotFound("device not found"), 404, "not_found"),
        (Conflict("name taken"), 409, "conflict"),
        (
            ServiceUnavailable("the devices service did not answer in time"),
            503,
            "service_unavailable",
        ),
    ],
)
def test_service_errors_keep_their_type(env: Env, exc: Exception, status: int, type_: str) -> None:
    env.backend.on(CREATE_DEVICE, exc)
    resp = env.client.post("/api/v1/devices", json={"name": "a"}, headers=bearer(env.world.full))
    assert_error(resp, status, type_)


def test_service_validation_errors_keep_their_fields(env: Env) -> None:
    env.backend.on(
        LIST_DEVICES,
        ValidationFailed(
            "colour: unknown field", fields=[FieldError(name="colour", message="unknown")]
        ),
    )
    resp = env.client.get("/api/v1/devices?colour=red", headers=bearer(env.world.full))
    assert_error(resp, 400, "validation_error", "colour")


# --- authorization and tenancy -------------------------------------------------------------


def test_every_route_has_a_policy(env: Env) -> None:
    schema = env.client.get("/api/v3/api-docs").json()
    documented = [
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    # Both directions: every /api/v1 route documented has a policy, every policy a route.
    api_policies = {key for key in ROUTE_POLICIES if key[1].startswith("/api/v1")}
    assert {r for r in documented if r[1].startswith("/api/v1")} == api_policies
    missing = [r for r in documented if policy_for(*r) is None]
    assert missing == []
    served = [
        (m, r.path_format)
        for r in env.client.app.routes
        for m in getattr(r, "methods", ())
        if r.path_format != "/boom"
    ]
    assert [r for r in served if policy_for(*r) is None] == []


def test_missing_scope_is_access_denied(env: Env) -> None:
    resp = env.client.post("/api/v1/devices", json={"name": "a"}, headers=bearer(env.world.reader))
    assert_error(resp, 403, "access_denied")
    resp = env.client.get("/api/v1/readings", headers=bearer(env.world.devices_all))
    assert_error(resp, 403, "access_denied")


def test_org_keys_cannot_use_admin_routes(env: Env) -> None:
    resp = env.client.get("/api/v1/admin/organizations", headers=bearer(env.world.full))
    assert_error(resp, 403, "access_denied")


def test_org_key_requests_carry_the_org_and_principal(env: Env) -> None:
    env.backend.on(CREATE_DEVICE, lambda ctx, body: device(body.name))
    resp = env.client.post(
        "/api/v1/devices",
        json={"name": "gw-1", "tags": [{"key": "k"}]},
        headers=bearer(env.world.devices_all),
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["name"] == "gw-1"
    assert body["createdAt"] == "2026-01-01T00:00:00Z"
    call = env.backend.last
    assert call.op is CREATE_DEVICE
    assert call.ctx.org_id == env.world.org_a
    assert call.ctx.principal.kind is PrincipalKind.API_KEY
    assert call.ctx.principal.id == env.world.devices_all.id
    assert call.ctx.request_id == resp.headers["x-request-id"]


def test_operator_manages_organizations_in_the_platform_tenant(env: Env) -> None:
    org = OrganizationView(
        id=uuid4(), name="acme", status=OrganizationStatus.ACTIVE, created_at=T0, version=1
    )
    env.backend.on(CREATE_ORGANIZATION, org).on(GET_ORGANIZATION, org)
    env.backend.on(LIST_ORGANIZATIONS, Page(data=[org], limit=50))
    h = bearer(env.world.operator)
    resp = env.client.post("/api/v1/admin/organizations", json={"name": "acme"}, headers=h)
    assert resp.status_code == 201
    assert resp.json()["id"] == str(org.id)
    assert env.backend.last.ctx.org_id == PLATFORM_ORG_ID
    assert env.backend.last.ctx.principal.kind is PrincipalKind.OPERATOR
    assert (
        env.client.get(f"/api/v1/admin/organizations/{org.id}", headers=h).json()["name"] == "acme"
    )
    assert env.backend.last.body.id == org.id
    listing = env.client.get("/api/v1/admin/organizations", headers=h).json()
    assert listing["object"] == "list"
    assert listing["data"][0]["name"] == "acme"


def test_operator_acts_inside_an_organization_with_x_organization(env: Env) -> None:
    w = env.world
    issued = ApiKeyIssued(id=uuid4(), name="ci", key="sk_live_x", scopes=["*"], created_at=T0)
    env.backend.on(CREATE_API_KEY, issued)
    h = {**bearer(w.operator), "X-Organization": str(w.org_a)}
    resp = env.client.post("/api/v1/api-keys", json={"name": "ci"}, headers=h)
    assert resp.status_code == 201
    assert resp.json() == {
        "id": str(issued.id),
        "name": "ci",
        "key": "sk_live_x",
        "scopes": ["*"],
        "createdAt": "2026-01-01T00:00:00Z",
        "expiresAt": None,
    }
    assert env.backend.last.ctx.org_id == w.org_a
    h["X-Organization"] = "nope"
    assert_error(
        env.client.post("/api/v1/api-keys", json={"name": "ci"}, headers=h),
        400,
        "validation_error",
        "X-Organization",
    )
    unknown = uuid4()
    env.backend.on(GET_ORGANIZATION, NotFound(f"organization {unknown} not found"))
    h["X-Organization"] = str(unknown)
    assert_error(
        env.client.post("/api/v1/api-keys", json={"name": "ci"}, headers=h), 404, "not_found"
    )
    resp = env.client.post("/api/v1/api-keys", json={"name": "ci"}, headers=bearer(w.operator))
    assert_error(resp, 400, "validation_error", "X-Organization")
    # Created a moment ago, its event not yet in the cache: identity is asked, not 404.
    fresh = uuid4()
    env.backend.on(
        GET_ORGANIZATION,
        OrganizationView(
            id=fresh, name="fresh", status=OrganizationStatus.ACTIVE, created_at=T0, version=1
        ),
    )
    h["X-Organization"] = str(fresh)
    assert env.client.post("/api/v1/api-keys", json={"name": "ci"}, headers=h).status_code == 201
    assert env.backend.last.ctx.org_id == fresh


def test_org_key_cannot_name_another_organization(env: Env) -> None:
    h = {**bearer(env.world.full), "X-Organization": str(env.world.org_b)}
    assert_error(env.client.get("/api/v1/devices", headers=h), 403, "access_denied")


# --- routes --------------------------------------------------------------------------------


def test_get_device_has_an_etag(env: Env) -> None:
    view = device(version=7)
    env.backend.on(GET_DEVICE, view)
    resp = env.client.get(f"/api/v1/devices/{view.id}", headers=bearer(env.world.reader))
    assert resp.status_code == 200
    assert resp.headers["etag"] == '"7"'
    assert env.backend.last.body.id == view.id


def test_lists_have_the_api_shape_and_pass_the_query(env: Env) -> None:
    env.backend.on(LIST_DEVICES, Page(data=[device()], limit=10, order="DESC", total_count=1))
    h = bearer(env.world.reader)
    body = env.client.get("/api/v1/devices?limit=10&order=DESC&status=ACTIVE", headers=h).json()
    assert set(body) == {"object", "data", "limit", "after", "order", "hasMore"}
    assert (body["object"], body["limit"], body["after"], body["order"], body["hasMore"]) == (
        "list",
        10,
        None,
        "DESC",
        False,
    )
    query = env.backend.last.body.query
    assert query.filter == Cmp(field="status", op="eq", value="ACTIVE")
    assert (query.limit, query.order, query.include_total) == (10, "DESC", False)
    body = env.client.get("/api/v1/devices?include=totalCount", headers=h).json()
    assert body["totalCount"] == 1
    assert env.backend.last.body.query.include_total is True


def test_odata_list_options_reach_the_service_and_select_prunes(env: Env) -> None:
    view = device("gw-1")
    env.backend.on(LIST_DEVICES, Page(data=[view], limit=5, total_count=1))
    h = bearer(env.world.reader)
    body = env.client.get(
        "/api/v1/devices",
        params={
            "status": "ACTIVE",
            "$filter": "tags/any(t:t/key eq 'site')",
            "$select": "name",
            "$top": "5",
            "$orderby": "name desc",
            "$count": "true",
        },
        headers=h,
    ).json()
    assert body["data"] == [{"id": str(view.id), "name": "gw-1"}]
    assert body["totalCount"] == 1
    query = env.backend.last.body.query
    assert query.filter == And(
        items=[
            Cmp(field="status", op="eq", value="ACTIVE"),
            AnyOf(relation="tags", predicate=Cmp(field="key", op="eq", value="site")),
        ]
    )
    assert (query.limit, query.order_by, query.include_total) == (
        5,
        [OrderBy(field="name", desc=True)],
        True,
    )
    full = env.client.get("/api/v1/devices", params={"$expand": "tags"}, headers=h).json()
    assert set(full["data"][0]) >= {"id", "name", "status", "tags", "createdAt"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"$filter": "name eq"}, "$filter"),
        ({"$select": "colour"}, "$select"),
        ({"$expand": "site"}, "$expand"),
        ({"$search": "x"}, "$search"),
        ({"$top": "0"}, "$top"),
        ({"$skip": "x"}, "$skip"),
    ],
)
def test_odata_errors_are_validation_errors(env: Env, params: dict[str, str], field: str) -> None:
    resp = env.client.get("/api/v1/devices", params=params, headers=bearer(env.world.reader))
    assert_error(resp, 400, "validation_error", field)
    assert env.backend.calls == []


def test_get_device_accepts_select(env: Env) -> None:
    view = device(version=4)
    env.backend.on(GET_DEVICE, view)
    resp = env.client.get(
        f"/api/v1/devices/{view.id}", params={"$select": "name,version"},
        headers=bearer(env.world.reader),
    )  # fmt: skip
    assert resp.json() == {"id": str(view.id), "name": "gw-1", "version": 4}
    assert resp.headers["etag"] == '"4"'
    bad = env.client.get(
        f"/api/v1/devices/{view.id}", params={"$top": "1"}, headers=bearer(env.world.reader)
    )
    assert_error(bad, 400, "validation_error", "$top")


def test_alternate_keys_route_to_the_by_key_handler(env: Env) -> None:
    view = device("warehouse-gateway-01", version=2)
    env.backend.on(GET_DEVICE_BY_NAME, view).on(GET_DEVICE, view)
    h = bearer(env.world.reader)
    resp = env.client.get("/api/v1/devices(name='warehouse-gateway-01')", headers=h)
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == str(view.id) and resp.headers["etag"] == '"2"'
    assert "x-ratelimit-remaining" in resp.headers  # counted like any single GET
    metrics = env.client.get("/metrics").text
    assert 'route="/api/v1/devices/by-key/{key}",status="200"' in metrics
    assert env.backend.last.op is GET_DEVICE_BY_NAME
    assert env.backend.last.body.name == "warehouse-gateway-01"
    resp = env.client.get(
        "/api/v1/devices(name=%27warehouse-gateway-01%27)?$select=name", headers=h
    )
    assert resp.json() == {"id": str(view.id), "name": "warehouse-gateway-01"}
    resp = env.client.get(f"/api/v1/devices({view.id})", headers=h)
    assert resp.status_code == 200 and env.backend.last.op is GET_DEVICE
    assert env.backend.last.body.id == view.id
    env.backend.on(GET_DEVICE_BY_NAME, NotFound("no such device"))
    assert_error(env.client.get("/api/v1/devices(name='x')", headers=h), 404, "not_found")
    assert_error(
        env.client.get("/api/v1/devices(colour='x')", headers=h), 400, "validation_error", "key"
    )
    assert_error(
        env.client.get("/api/v1/devices(not-a-uuid)", headers=h), 400, "validation_error", "key"
    )
    assert_error(env.client.get("/api/v1/devices(name='x')"), 401, "invalid_auth")
    assert_error(
        env.client.get("/api/v1/gadgets(name='x')", headers=h), 404, "unrecognized_request"
    )


def test_openapi_documents_odata_options(env: Env) -> None:
    schema = env.client.get("/api/v3/api-docs").json()
    listed = {p["name"] for p in schema["paths"]["/api/v1/devices"]["get"]["parameters"]}
    assert {"$filter", "$select", "$expand", "$orderby", "$top", "$skip", "$count"} <= listed
    assert "/api/v1/devices/by-key/{key}" in schema["paths"]
    assert not any("(" in path for path in schema["paths"])


def test_revoke_api_key_is_204(env: Env) -> None:
    from outpost_contracts.base import Empty

    env.backend.on(REVOKE_API_KEY, Empty())
    key_id = uuid4()
    resp = env.client.delete(f"/api/v1/api-keys/{key_id}", headers=bearer(env.world.full))
    assert resp.status_code == 204
    assert resp.content == b""
    assert env.backend.last.body.id == key_id


def test_readings_query(env: Env) -> None:
    dev = uuid4()
    reading = ReadingView(device_id=dev, sensor="temperature", ts=T0, value=21.5)
    env.backend.on(LIST_READINGS, Page(data=[reading], limit=5))
    h = bearer(env.world.full)
    resp = env.client.get(
        f"/api/v1/readings?deviceId={dev}&sensor=temperature&from=20251231T000000Z&limit=5&order=DESC",
        headers=h,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == [
        {"deviceId": str(dev), "sensor": "temperature", "ts": "2026-01-01T00:00:00Z", "value": 21.5}
    ]
    body = env.backend.last.body
    assert (body.device_id, body.sensor, body.limit, body.order) == (dev, "temperature", 5, "DESC")
    assert body.from_ == datetime(2025, 12, 31, tzinfo=UTC)
    assert_error(env.client.get("/api/v1/readings", headers=h), 400, "validation_error", "deviceId")
    resp = env.client.get(f"/api/v1/readings?deviceId={dev}&from=yesterday", headers=h)
    assert_error(resp, 400, "validation_error", "from")
    both = f"/api/v1/readings?deviceId={dev}&groupId={uuid4()}"
    assert_error(env.client.get(both, headers=h), 400, "validation_error", "deviceId")


def test_reading_aggregates_stats_and_latest_routes(env: Env) -> None:
    """Parameters become the typed request; only the functions asked for are rendered."""
    group = uuid4()
    row = AggregateView(device_id=group, sensor="t", ts=T0, max=3.5, count=2)
    env.backend.on(GET_AGGREGATES, Page(data=[row], limit=1000))
    h = bearer(env.world.full)
    window = "from=20251231T000000Z&to=2026-01-01T00:00:00Z"
    url = f"/api/v1/readings/aggregated?groupId={group}&{window}&interval=1h&fn=max,count"
    resp = env.client.get(f"{url}&timezone=Asia/Kolkata", headers=h)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == [
        {
            "deviceId": str(group),
            "sensor": "t",
            "ts": "2026-01-01T00:00:00Z",
            "max": 3.5,
            "count": 2,
        }
    ]
    body = env.backend.last.body
    assert (body.group_id, body.interval, body.fn, body.timezone) == (
        group,
        "1h",
        "max,count",
        "Asia/Kolkata",
    )
    assert body.limit == 1000
    for bad, field in [
        (f"/api/v1/readings/aggregated?groupId={group}&{window}", "interval"),
        (f"/api/v1/readings/aggregated?groupId={group}&from=20251231T000000Z&interval=1m", "to"),
        (f"{url}&limit=10081", "limit"),
        (f"/api/v1/readings/aggregated?{window}&interval=1m", "deviceId"),
        (f"{url.replace('fn=max,count', 'fn=median')}", "fn"),
    ]:
        assert_error(env.client.get(bad, headers=h), 400, "validation_error", field)
    stats = StatsView(
        device_id=group, sensor="t", count=1, min=1, max=1, avg=1, stddev=None, p50=1, p95=1, p99=1
    )
    env.backend.on(GET_STATS, Page(data=[stats], limit=50))
    resp = env.client.get(f"/api/v1/readings/stats?siteId={group}&{window}", headers=h)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"][0]["stddev"] is None and env.backend.last.body.site_id == group
    env.backend.on(GET_LATEST, Page(data=[], limit=50))
    resp = env.client.get(f"/api/v1/readings/latest?deviceId={group}&sensor=t", headers=h)
    assert resp.status_code == 200 and env.backend.last.body.sensor == "t"


# --- platform ------------------------------------------------------------------------------


def test_health_and_readiness() -> None:
    world = build_world()
    ready = {"nats": True, "credentials": False}
    readiness = Readiness()
    for name in ready:
        readiness.add(name, lambda name=name: ready[name])  # type: ignore[misc]
    with TestClient(make_app(FakeBackend(), world, readiness)) as client:
        assert client.get("/healthz").status_code == 200
        body = assert_error(client.get("/readyz"), 503, "service_unavailable")
        assert "credentials" in body["message"]
        ready["credentials"] = True
        assert client.get("/readyz").status_code == 200


def test_metrics_count_requests_by_route_template(env: Env) -> None:
    env.client.get(f"/api/v1/devices/{uuid4()}")
    env.client.get("/nowhere")
    text = env.client.get("/metrics").text
    assert 'route="/api/v1/devices/{id}",status="401"' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "outpost_gateway_http_request_duration_seconds_bucket" in text


def test_metrics_media_type_names_each_parameter_once(env: Env) -> None:
    """Prometheus 3 refuses a media type with a repeated parameter (``charset`` twice);
    the header is prometheus_client's own (decision 77)."""
    ctype = env.client.get("/metrics").headers["content-type"]
    media, *params = (p.strip() for p in ctype.split(";"))
    names = [p.partition("=")[0].lower() for p in params]
    assert media == "text/plain" and sorted(names) == ["charset", "version"], ctype
    assert ctype == CONTENT_TYPE_LATEST


def test_documents(env: Env) -> None:
    schema = env.client.get("/api/v3/api-docs").json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/devices/{id}" in schema["paths"]
    assert "CreateDevice" in schema["components"]["schemas"]
    schemas = env.client.get("/api/schemas").json()
    assert "DeviceView" in schemas["contracts"]


def test_the_asyncapi_document_is_served_like_the_schemas(env: Env) -> None:
    """``/api/asyncapi`` (decision 95) is public like ``/api/schemas``: no credential needed,
    and a credential changes nothing; the body is the contracts' document."""
    anonymous = env.client.get("/api/asyncapi")
    assert anonymous.status_code == 200, anonymous.text
    assert anonymous.headers["content-type"].startswith("application/json")
    assert anonymous.json() == asyncapi.document()
    with_key = env.client.get("/api/asyncapi", headers=bearer(env.world.reader))
    assert with_key.status_code == 200 and with_key.json() == anonymous.json()
    assert policy_for("GET", "/api/asyncapi") == policy_for("GET", "/api/schemas")


@pytest.mark.parametrize(
    ("parse", "value", "header"),
    [
        (parse_if_match, '"²"', "If-Match"),
        (parse_if_match, 'W/"1³"', "If-Match"),
        (parse_expected_count, "¹", "X-Expected-Count"),
    ],
)
def test_version_headers_take_ascii_digits_only(
    parse: Callable[[str], int | None], value: str, header: str
) -> None:
    """``str.isdigit`` is true of '²' (byte 0xB2 of a header, read as latin-1) but ``int``
    refuses it: the header was a 500 instead of a validation_error."""
    with pytest.raises(OutpostError) as caught:
        parse(value)
    assert caught.value.type is ErrorType.VALIDATION_ERROR
    assert [f.name for f in caught.value.fields] == [header]
    assert parse_if_match('W/"12"') == 12 and parse_expected_count("7") == 7


def test_every_get_documents_the_odata_options_it_accepts(env: Env) -> None:
    """docs/api.md "Collections" and "Single resources" on every route, present and future: the
    document lists the OData options on every collection and single-resource GET."""
    schema = env.client.get("/api/v3/api-docs").json()
    checked = 0
    for path, item in schema["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        names = {p["name"] for p in operation.get("parameters", [])}
        if "limit" in names:
            assert {"$filter", "$select", "$expand", "$orderby", "$top", "$skip", "$count"} <= (
                names
            ), path
            checked += 1
        elif path.endswith("}"):
            assert {"$select", "$expand"} <= names, path
            checked += 1
    assert checked >= 10


def test_select_prunes_users_organizations_and_the_audit_log(env: Env) -> None:
    from outpost_contracts.audit import LIST_AUDIT_LOG, AuditEntry
    from outpost_contracts.identity import (
        GET_ORGANIZATION,
        GET_USER,
        LIST_USERS,
        OrganizationStatus,
        OrganizationView,
        Role,
        UserView,
    )

    user = UserView(id=uuid4(), email="a@example.com", role=Role.ADMIN, created_at=T0)
    env.backend.on(LIST_USERS, Page(data=[user], limit=50)).on(GET_USER, user)
    h = bearer(env.world.full)
    listed = env.client.get("/api/v1/users", params={"$select": "email"}, headers=h).json()
    assert listed["data"] == [{"id": str(user.id), "email": "a@example.com"}]
    one = env.client.get(f"/api/v1/users/{user.id}", params={"$select": "role"}, headers=h)
    assert one.json() == {"id": str(user.id), "role": "admin"}
    assert_error(
        env.client.get("/api/v1/users", params={"$select": "password"}, headers=h),
        400,
        "validation_error",
        "$select",
    )

    org = OrganizationView(
        id=env.world.org_a, name="a", status=OrganizationStatus.ACTIVE, created_at=T0, version=1
    )
    env.backend.on(GET_ORGANIZATION, org)
    got = env.client.get(
        f"/api/v1/admin/organizations/{org.id}",
        params={"$select": "name"},
        headers=bearer(env.world.operator),
    )
    assert got.json() == {"id": str(org.id), "name": "a"}

    entry = AuditEntry(
        id=uuid4(),
        service="devices",
        type="devices.DeviceRegistered.v1",
        stream_type="device",
        stream_id=uuid4(),
        version=1,
        occurred_at=T0,
    )
    answers = iter([Page(data=[entry], limit=50)])  # one service has the entry, others none
    env.backend.on(
        LIST_AUDIT_LOG["devices"], lambda ctx, body: next(answers, Page(data=[], limit=50))
    )
    audit = env.client.get("/api/v1/audit-log", params={"$select": "type"}, headers=h).json()
    assert audit["data"] == [{"id": str(entry.id), "type": "devices.DeviceRegistered.v1"}]
