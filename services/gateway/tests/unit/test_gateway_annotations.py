"""Annotation, annotation-class and readings-settings routes against the fake backend: the
overlap window beside the collection conventions, a device's annotations, bodies checked at
the edge, If-Match and ETag, scopes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from gateway_testkit import FakeBackend, bearer, build_world, key_created
from litestar.testing import TestClient
from test_gateway_http import Env, assert_error, make_app

from outpost_contracts.annotations import (
    CREATE_ANNOTATION,
    GET_ANNOTATION,
    GET_READINGS_SETTINGS,
    QUERY_ANNOTATIONS,
    SET_READINGS_SETTINGS,
    UPDATE_ANNOTATION,
    AnnotationView,
    ReadingsSettings,
)
from outpost_contracts.devices import Tag
from outpost_contracts.query import Cmp, Page
from outpost_gateway.domain.credentials import evolve
from outpost_gateway.domain.policy import rate_category
from outpost_gateway.domain.ratelimit import Category

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def env() -> Iterator[Env]:
    world = build_world()
    backend = FakeBackend()
    with TestClient(make_app(backend, world), raise_server_exceptions=False) as client:
        yield Env(client, backend, world)


def annotation(version: int = 1) -> AnnotationView:
    return AnnotationView(
        id=uuid4(),
        device_id=uuid4(),
        class_id=uuid4(),
        from_=T0,
        to=T0,
        created_at=T0,
        updated_at=T0,
        version=version,
        text="pump swap",
        tags=[Tag(key="crew", value="b")],
    )


def settings(version: int = 0) -> ReadingsSettings:
    return ReadingsSettings(
        auto_declare_sensors=True, retention_days=365, retention_default=True, version=version
    )


def test_the_window_is_not_a_field_filter(env: Env) -> None:
    env.backend.on(QUERY_ANNOTATIONS, Page(data=[annotation()], limit=50))
    resp = env.client.get(
        "/api/v1/annotations",
        params={
            "from": "20260101T000000Z",
            "to": "2026-01-02T00:00:00Z",
            "from__gte": "2025-12-01T00:00:00Z",
            "sensor": "temp",
            "$select": "text,tags",
        },
        headers=bearer(env.world.full),
    )
    assert resp.status_code == 200, resp.text
    body = env.backend.last.body
    assert (body.from_, body.to) == (T0, datetime(2026, 1, 2, tzinfo=UTC))
    assert body.device_id is None
    # `from__gte` filters on the annotation's own `from`; `sensor` is a field filter.
    leaves = body.query.filter.items
    assert Cmp(field="from", op="ge", value="2025-12-01T00:00:00Z") in leaves
    assert Cmp(field="sensor", op="eq", value="temp") in leaves
    assert set(resp.json()["data"][0]) == {"id", "text", "tags"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-01-01T00:00:00"}, "to"),  # no offset
        ({"from": ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]}, "from"),
    ],
)
def test_a_bad_window_is_a_validation_error(
    env: Env, params: dict[str, object], field: str
) -> None:
    resp = env.client.get("/api/v1/annotations", params=params, headers=bearer(env.world.full))
    assert_error(resp, 400, "validation_error", field)
    assert env.backend.calls == []


def test_a_devices_annotations_name_the_device(env: Env) -> None:
    env.backend.on(QUERY_ANNOTATIONS, Page(data=[], limit=50))
    device = uuid4()
    resp = env.client.get(
        f"/api/v1/devices/{device}/annotations",
        params={"to": "2026-01-01T00:00:00Z"},
        headers=bearer(env.world.full),
    )
    assert resp.status_code == 200 and resp.json()["data"] == []
    assert env.backend.last.body.device_id == device and env.backend.last.body.to == T0


def test_create_checks_the_body_and_patch_passes_if_match(env: Env) -> None:
    h = bearer(env.world.full)
    for body, field in [
        ({"deviceId": str(uuid4()), "classId": str(uuid4()), "from": "2026-01-01T00:00:00Z"}, "to"),
        (
            {
                "deviceId": str(uuid4()),
                "classId": str(uuid4()),
                "from": "2026-01-01T00:00:00Z",
                "to": "2026-01-01T00:00:00Z",
                "orgId": str(uuid4()),
            },
            "orgId",
        ),
        (
            {
                "deviceId": str(uuid4()),
                "classId": str(uuid4()),
                "from": "2026-01-01T00:00:00",
                "to": "2026-01-01T00:00:00Z",
            },
            "from",
        ),
    ]:
        resp = env.client.post("/api/v1/annotations", json=body, headers=h)
        assert field in assert_error(resp, 400, "validation_error")["message"]
    assert env.backend.calls == []
    made = annotation()
    env.backend.on(CREATE_ANNOTATION, made)
    body = {
        "deviceId": str(made.device_id),
        "classId": str(made.class_id),
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-01-01T00:00:00Z",
    }
    resp = env.client.post("/api/v1/annotations", json=body, headers=h)
    assert resp.status_code == 201 and resp.json()["from"] == "2026-01-01T00:00:00Z"
    env.backend.on(GET_ANNOTATION, made)
    got = env.client.get(f"/api/v1/annotations/{made.id}", headers=h)
    assert got.headers["etag"] == '"1"'
    env.backend.on(UPDATE_ANNOTATION, annotation(version=2))
    resp = env.client.patch(
        f"/api/v1/annotations/{made.id}", json={"text": None}, headers={**h, "If-Match": '"1"'}
    )
    assert resp.status_code == 200 and resp.headers["etag"] == '"2"'
    assert env.backend.last.body.expected_version == 1
    assert env.backend.last.body.patch.text is None
    moved = env.client.patch(
        f"/api/v1/annotations/{made.id}", json={"deviceId": str(uuid4())}, headers=h
    )
    assert_error(moved, 400, "validation_error")


def test_settings_get_put_bounds_and_if_match(env: Env) -> None:
    h = bearer(env.world.full)
    env.backend.on(GET_READINGS_SETTINGS, settings())
    got = env.client.get("/api/v1/readings/settings", headers=h)
    assert got.status_code == 200 and got.headers["etag"] == '"0"'
    assert got.json()["object"] == "readingsSettings"
    for body in (
        {"autoDeclareSensors": True, "retentionDays": 0},
        {"autoDeclareSensors": True, "retentionDays": 3651},
        {"autoDeclareSensors": True},
        {"retentionDays": 30},
        {"autoDeclareSensors": "yes", "retentionDays": 30},
    ):
        resp = env.client.put("/api/v1/readings/settings", json=body, headers=h)
        assert_error(resp, 400, "validation_error")
    env.backend.on(SET_READINGS_SETTINGS, settings(version=1))
    resp = env.client.put(
        "/api/v1/readings/settings",
        json={"autoDeclareSensors": False, "retentionDays": None},
        headers={**h, "If-Match": '"0"'},
    )
    assert resp.status_code == 200 and resp.headers["etag"] == '"1"'
    cmd = env.backend.last.body
    assert cmd.expected_version == 0 and cmd.settings.auto_declare_sensors is False
    assert cmd.settings.retention_days is None
    assert rate_category("GET", "/api/v1/readings/settings") is Category.SINGLE


def test_scopes(env: Env) -> None:
    member, e = key_created(env.world.org_a, ("readings:*",))
    evolve(env.world.cache, e)
    reader, e = key_created(env.world.org_a, ("readings:read", "readings-settings:read"))
    evolve(env.world.cache, e)
    env.backend.on(QUERY_ANNOTATIONS, Page(data=[], limit=50))
    env.backend.on(GET_READINGS_SETTINGS, settings())
    # devices:read alone reads neither
    assert_error(
        env.client.get("/api/v1/annotations", headers=bearer(env.world.reader)),
        403,
        "access_denied",
    )
    assert env.client.get("/api/v1/annotations", headers=bearer(reader)).status_code == 200
    assert env.client.get("/api/v1/readings/settings", headers=bearer(reader)).status_code == 200
    assert_error(
        env.client.post("/api/v1/annotation-classes", json={"name": "x"}, headers=bearer(reader)),
        403,
        "access_denied",
    )
    # a member sends and annotates readings, but neither reads nor changes the settings
    for method in ("GET", "PUT"):
        resp = env.client.request(
            method,
            "/api/v1/readings/settings",
            json={"autoDeclareSensors": False, "retentionDays": 1},
            headers=bearer(member),
        )
        assert_error(resp, 403, "access_denied")
