"""Registry routes (sites, device groups, components, sensors) against the fake backend:
routing, scopes, body validation, list conventions, ETag and If-Match."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from gateway_testkit import FakeBackend, bearer, build_world
from litestar.testing import TestClient
from test_gateway_http import Env, assert_error, make_app

from outpost_contracts.base import Empty
from outpost_contracts.errors import Conflict
from outpost_contracts.query import Cmp, Page
from outpost_contracts.registry import (
    CREATE_SITE,
    DECLARE_SENSOR,
    DELETE_GROUP,
    DELETE_SITE,
    GET_GROUP,
    LIST_COMPONENTS,
    LIST_SENSORS,
    LIST_SITES,
    UPDATE_SENSOR,
    UPDATE_SITE,
    DeviceGroupView,
    Location,
    SensorView,
    SiteView,
    ValidRange,
    ValueType,
)

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def env() -> Iterator[Env]:
    world = build_world()
    backend = FakeBackend()
    with TestClient(make_app(backend, world), raise_server_exceptions=False) as client:
        yield Env(client, backend, world)


def site(version: int = 1) -> SiteView:
    return SiteView(
        id=uuid4(),
        name="north",
        created_at=T0,
        updated_at=T0,
        version=version,
        location=Location(latitude=59.9, longitude=10.7),
        timezone="Europe/Oslo",
    )


def sensor(device_id: object, version: int = 1) -> SensorView:
    return SensorView(
        id=uuid4(),
        device_id=device_id,  # type: ignore[arg-type]
        key="temperature",
        value_type=ValueType.NUMBER,
        created_at=T0,
        updated_at=T0,
        version=version,
        unit="C",
        valid_range=ValidRange(min=-40, max=85),
    )


def test_create_site_passes_the_body_and_answers_201(env: Env) -> None:
    view = site()
    env.backend.on(CREATE_SITE, view)
    body = {
        "name": "north",
        "timezone": "Europe/Oslo",
        "location": {"latitude": 59.9, "longitude": 10.7},
    }
    resp = env.client.post("/api/v1/sites", json=body, headers=bearer(env.world.devices_all))
    assert resp.status_code == 201, resp.text
    assert resp.json()["object"] == "site" and resp.json()["location"]["latitude"] == 59.9
    call = env.backend.last
    assert call.body.name == "north" and call.ctx.org_id == env.world.org_a


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/sites", {"name": "n", "colour": "red"}, "colour"),
        ("/api/v1/sites", {"name": "n", "location": {"latitude": 91, "longitude": 0}}, "latitude"),
        ("/api/v1/device-groups", {}, "name"),
        ("/api/v1/components", {"name": "battery"}, "deviceId"),
        (
            "/api/v1/sensors",
            {"deviceId": str(uuid4()), "key": "t", "valueType": "INT"},
            "valueType",
        ),
        (
            "/api/v1/sensors",
            {"deviceId": str(uuid4()), "key": "t", "validRange": {"min": 1}},
            "max",
        ),
    ],
)
def test_bodies_are_validated_at_the_edge(
    env: Env, path: str, body: dict[str, object], field: str
) -> None:
    resp = env.client.post(path, json=body, headers=bearer(env.world.full))
    error = assert_error(resp, 400, "validation_error")
    assert field in resp.text, error
    assert env.backend.calls == []


def test_writes_need_devices_write(env: Env) -> None:
    for path in ("/api/v1/sites", "/api/v1/device-groups", "/api/v1/components", "/api/v1/sensors"):
        resp = env.client.post(path, json={"name": "x"}, headers=bearer(env.world.reader))
        assert_error(resp, 403, "access_denied")
    assert env.backend.calls == []


def test_site_list_has_the_collection_shape_and_odata(env: Env) -> None:
    view = site()
    env.backend.on(LIST_SITES, Page(data=[view], limit=5, total_count=1))
    h = bearer(env.world.reader)
    body = env.client.get(
        "/api/v1/sites",
        params={"$filter": "name eq 'north'", "$select": "name", "$top": "5", "$count": "true"},
        headers=h,
    ).json()
    assert body["data"] == [{"id": str(view.id), "name": "north"}]
    assert (body["object"], body["totalCount"], body["hasMore"]) == ("list", 1, False)
    assert env.backend.last.body.query.filter == Cmp(field="name", op="eq", value="north")


def test_sensors_and_components_list_by_device(env: Env) -> None:
    device_id = uuid4()
    env.backend.on(LIST_SENSORS, Page(data=[sensor(device_id)], limit=50))
    env.backend.on(LIST_COMPONENTS, Page(data=[], limit=50))
    h = bearer(env.world.reader)
    body = env.client.get(f"/api/v1/sensors?deviceId={device_id}", headers=h).json()
    assert body["data"][0]["validRange"] == {"min": -40.0, "max": 85.0}
    assert env.backend.last.body.query.filter == Cmp(
        field="deviceId", op="eq", value=str(device_id)
    )
    assert env.client.get(f"/api/v1/components?deviceId={device_id}", headers=h).status_code == 200
    assert env.backend.last.op is LIST_COMPONENTS


def test_get_has_an_etag_and_select(env: Env) -> None:
    view = DeviceGroupView(id=uuid4(), name="fleet", created_at=T0, updated_at=T0, version=5)
    env.backend.on(GET_GROUP, view)
    resp = env.client.get(
        f"/api/v1/device-groups/{view.id}",
        params={"$select": "name"},
        headers=bearer(env.world.reader),
    )
    assert resp.status_code == 200 and resp.headers["etag"] == '"5"'
    assert resp.json() == {"id": str(view.id), "name": "fleet"}
    assert env.backend.last.body.id == view.id


def test_patch_passes_if_match_and_answers_the_new_etag(env: Env) -> None:
    view = site(version=2)
    env.backend.on(UPDATE_SITE, view)
    resp = env.client.patch(
        f"/api/v1/sites/{view.id}",
        json={"address": None, "attributes": {"a": 1}},
        headers={**bearer(env.world.full), "If-Match": '"1"'},
    )
    assert resp.status_code == 200 and resp.headers["etag"] == '"2"'
    cmd = env.backend.last.body
    assert cmd.id == view.id and cmd.expected_version == 1 and cmd.patch.address is None
    # A sensor's key and device are its identity: a patch cannot name them.
    bad = env.client.patch(
        f"/api/v1/sensors/{uuid4()}", json={"key": "x"}, headers=bearer(env.world.full)
    )
    assert_error(bad, 400, "validation_error")
    env.backend.on(UPDATE_SENSOR, sensor(uuid4(), 2))
    ok = env.client.patch(
        f"/api/v1/sensors/{uuid4()}", json={"unit": "K"}, headers=bearer(env.world.full)
    )
    assert ok.status_code == 200 and env.backend.last.body.expected_version is None


def test_delete_answers_204_and_keeps_the_conflict(env: Env) -> None:
    env.backend.on(DELETE_SITE, Empty())
    sid = uuid4()
    resp = env.client.delete(
        f"/api/v1/sites/{sid}", headers={**bearer(env.world.full), "If-Match": '"3"'}
    )
    assert resp.status_code == 204
    assert env.backend.last.body.id == sid and env.backend.last.body.expected_version == 3
    env.backend.on(DELETE_GROUP, Conflict("the device group is in use by 2 device(s)"))
    resp = env.client.delete(f"/api/v1/device-groups/{uuid4()}", headers=bearer(env.world.full))
    assert_error(resp, 409, "conflict")


def test_sensor_create_reaches_the_service(env: Env) -> None:
    device_id = uuid4()
    env.backend.on(DECLARE_SENSOR, sensor(device_id))
    resp = env.client.post(
        "/api/v1/sensors",
        json={"deviceId": str(device_id), "key": "temperature", "unit": "C"},
        headers=bearer(env.world.full),
    )
    assert resp.status_code == 201
    assert env.backend.last.body.value_type is ValueType.NUMBER  # the default
