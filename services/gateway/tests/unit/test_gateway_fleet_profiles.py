"""Sensor-profile, device-profile and pack routes against the fake backend (ADR 0092): bodies
checked at the edge, what each route sends (If-Match included), a pack's export and import,
the fleet scope."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from gateway_testkit import FakeBackend, bearer, build_world, key_created
from litestar.testing import TestClient
from test_gateway_http import Env, assert_error, make_app

from outpost_contracts import fleet as api
from outpost_contracts.registry import ValueType
from outpost_gateway.domain.credentials import evolve
from outpost_gateway.domain.policy import ROUTE_POLICIES, rate_category
from outpost_gateway.domain.ratelimit import Category

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def env() -> Iterator[Env]:
    world = build_world()
    backend = FakeBackend()
    with TestClient(make_app(backend, world), raise_server_exceptions=False) as client:
        yield Env(client, backend, world)


def sensor_profile(version: int = 1) -> api.SensorProfileView:
    return api.SensorProfileView(
        id=uuid4(),
        name="Temperature",
        unit="Cel",
        value_type=ValueType.NUMBER,
        min=-40,
        max=85,
        version=version,
        created_at=T0,
        updated_at=T0,
    )


DOCUMENT = {
    "format": "outpost.pack.v1",
    "name": "climate",
    "version": "1.0.0",
    "items": [
        {"kind": "SENSOR_PROFILE", "key": "t", "content": {"name": "T", "unit": "Cel"}},
    ],
}


def test_sensor_profiles_check_bodies_and_pass_if_match(env: Env) -> None:
    view = sensor_profile()
    env.backend.on(api.CREATE_SENSOR_PROFILE, view)
    created = env.client.post(
        "/api/v1/sensor-profiles",
        json={"name": "Temperature", "unit": "Cel", "min": -40, "max": 85},
        headers=bearer(env.world.full),
    )
    assert created.status_code == 201, created.text
    assert env.backend.last.body == api.CreateSensorProfile(
        name="Temperature", unit="Cel", min=-40, max=85
    )
    for body, field in (
        ({"name": "T", "unit": "Cel", "colour": "red"}, "colour"),
        ({"name": "T", "unit": "Cel", "precision": 13}, "precision"),
        ({"name": "", "unit": "Cel"}, "name"),
        ({"name": "T"}, "unit"),
    ):
        resp = env.client.post("/api/v1/sensor-profiles", json=body, headers=bearer(env.world.full))
        assert field in assert_error(resp, 400, "validation_error")["message"]
    env.backend.on(api.UPDATE_SENSOR_PROFILE, sensor_profile(version=2))
    resp = env.client.patch(
        f"/api/v1/sensor-profiles/{view.id}",
        json={"max": 125, "key": None},
        headers={**bearer(env.world.full), "If-Match": '"1"'},
    )
    assert resp.status_code == 200, resp.text
    sent = env.backend.last.body
    assert (sent.id, sent.expected_version, sent.patch.max, sent.patch.key) == (
        view.id,
        1,
        125,
        None,
    )


def test_device_profiles_take_rule_templates_of_alert_rule_shape(env: Env) -> None:
    env.backend.on(api.CREATE_DEVICE_PROFILE, api.CreateDeviceProfile(name="x"))  # any reply
    good = {
        "name": "TH-1",
        "sensors": [{"key": "temp", "sensorProfileId": str(uuid4())}],
        "ruleTemplates": [
            {
                "name": "hot",
                "sensor": "temp",
                "condition": {"op": ">", "threshold": 30},
                "severity": "MAJOR",
            }
        ],
        "expectedIntervalSeconds": 60,
    }
    env.client.post("/api/v1/device-profiles", json=good, headers=bearer(env.world.full))
    sent = env.backend.last.body
    assert isinstance(sent, api.CreateDeviceProfile)
    assert sent.rule_templates[0].condition.threshold == 30
    bad = {**good, "ruleTemplates": [{"name": "x", "condition": {"op": "??"}, "severity": "MAJOR"}]}
    resp = env.client.post("/api/v1/device-profiles", json=bad, headers=bearer(env.world.full))
    assert_error(resp, 400, "validation_error")
    resp = env.client.post(
        "/api/v1/device-profiles",
        json={**good, "expectedIntervalSeconds": 0},
        headers=bearer(env.world.full),
    )
    assert_error(resp, 400, "validation_error")


def test_a_packs_export_and_import(env: Env) -> None:
    pack_id = uuid4()
    document = api.PackDocument(name="climate", version="1.0.0", items=[])
    env.backend.on(api.EXPORT_PACK, document)
    resp = env.client.get(f"/api/v1/packs/{pack_id}/export", headers=bearer(env.world.full))
    assert resp.status_code == 200, resp.text
    assert resp.json()["format"] == "outpost.pack.v1"
    assert env.backend.last.body == api.ExportPack(id=pack_id)
    view = api.PackView(
        id=pack_id,
        name="climate",
        pack_version="1.0.0",
        origin=api.PackOrigin.IMPORTED,
        items=[],
        version=1,
        created_at=T0,
        updated_at=T0,
    )
    env.backend.on(api.IMPORT_PACK, api.PackImportView(outcome="INSTALLED", pack=view, steps=[]))
    resp = env.client.post("/api/v1/packs/import", json=DOCUMENT, headers=bearer(env.world.full))
    assert resp.status_code == 200, resp.text
    assert resp.json()["outcome"] == "INSTALLED"
    sent = env.backend.last.body
    assert isinstance(sent, api.ImportPack) and sent.document.items[0].key == "t"
    for broken in (
        {**DOCUMENT, "version": "1.0"},
        {**DOCUMENT, "format": "other"},
        {**DOCUMENT, "extra": 1},
        {k: v for k, v in DOCUMENT.items() if k != "name"},
    ):
        resp = env.client.post("/api/v1/packs/import", json=broken, headers=bearer(env.world.full))
        assert_error(resp, 400, "validation_error")


def test_the_fleet_scope(env: Env) -> None:
    reader, e = key_created(env.world.org_a, ("fleet:read",))
    evolve(env.world.cache, e)
    env.backend.on(api.EXPORT_PACK, api.PackDocument(name="c", version="1.0.0", items=[]))
    assert (
        env.client.get(f"/api/v1/packs/{uuid4()}/export", headers=bearer(reader)).status_code == 200
    )
    assert_error(
        env.client.post("/api/v1/packs/import", json=DOCUMENT, headers=bearer(reader)),
        403,
        "access_denied",
    )
    assert_error(
        env.client.post(
            "/api/v1/sensor-profiles", json={"name": "T", "unit": "Cel"}, headers=bearer(reader)
        ),
        403,
        "access_denied",
    )
    assert ROUTE_POLICIES[("POST", "/api/v1/packs/import")] == "fleet:write"
    assert ROUTE_POLICIES[("DELETE", "/api/v1/device-profiles/{id}")] == "fleet:write"
    assert ROUTE_POLICIES[("GET", "/api/v1/sensor-profiles")] == "fleet:read"
    assert rate_category("POST", "/api/v1/packs/import") is Category.WRITE
