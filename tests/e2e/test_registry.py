"""The registry beside devices through the running gateway: sites, device groups, components
and sensors; devices referring to them; the audit log (docs/api.md, "Resources (v1)")."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _error(resp: httpx.Response, status: int, type_: str, field: str | None = None) -> Any:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["type"] == type_, body
    if field is not None:
        assert field in [f["name"] for f in body["fields"]], body
    return body


def _created(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def _ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [item["id"] for item in resp.json()["data"]]


def test_sites_groups_devices_and_sensors(tenants: Any, http: httpx.Client) -> None:
    org = tenants.org("registry")
    auth = bearer(tenants.key(org["id"])["key"])

    site = _created(
        http.post(
            "/api/v1/sites",
            json={
                "name": "north",
                "address": "1 Quay",
                "location": {"latitude": 59.91, "longitude": 10.75},
                "timezone": "Europe/Oslo",
            },
            headers=auth,
        )
    )
    other_site = _created(http.post("/api/v1/sites", json={"name": "south"}, headers=auth))
    group = _created(
        http.post(
            "/api/v1/device-groups", json={"name": "pumps", "description": "all"}, headers=auth
        )
    )
    assert site["object"] == "site" and site["location"]["latitude"] == 59.91
    _error(http.post("/api/v1/sites", json={"name": "north"}, headers=auth), 409, "conflict")
    _error(
        http.post("/api/v1/device-groups", json={"name": "pumps"}, headers=auth), 409, "conflict"
    )

    # Devices name existing sites and groups of their organization.
    dev = _created(
        http.post(
            "/api/v1/devices",
            json={"name": "pump-1", "siteId": site["id"], "groupId": group["id"]},
            headers=auth,
        )
    )
    dev2 = _created(
        http.post(
            "/api/v1/devices", json={"name": "pump-2", "siteId": other_site["id"]}, headers=auth
        )
    )
    unknown = "01900000-0000-7000-8000-000000000000"
    bad = http.post("/api/v1/devices", json={"name": "pump-3", "siteId": unknown}, headers=auth)
    _error(bad, 400, "validation_error", "siteId")
    bad = http.patch(f"/api/v1/devices/{dev2['id']}", json={"groupId": unknown}, headers=auth)
    _error(bad, 400, "validation_error", "groupId")

    assert _ids(http.get("/api/v1/devices", params={"groupId": group["id"]}, headers=auth)) == [
        dev["id"]
    ]
    by_site = http.get(
        "/api/v1/devices", params={"$filter": f"siteId eq {other_site['id']}"}, headers=auth
    )
    assert _ids(by_site) == [dev2["id"]]
    sites = http.get(
        "/api/v1/sites",
        params={"$filter": "startswith(name,'no')", "$select": "name", "include": "totalCount"},
        headers=auth,
    ).json()
    assert sites["data"] == [{"id": site["id"], "name": "north"}] and sites["totalCount"] == 1
    one = http.get(f"/api/v1/sites/{site['id']}", params={"$select": "timezone"}, headers=auth)
    assert one.json() == {"id": site["id"], "timezone": "Europe/Oslo"}
    assert one.headers["etag"] == '"1"'

    # Sensors and components per device.
    temp = _created(
        http.post(
            "/api/v1/sensors",
            json={
                "deviceId": dev["id"],
                "key": "temperature",
                "unit": "C",
                "validRange": {"min": -40, "max": 85},
            },
            headers=auth,
        )
    )
    assert temp["valueType"] == "NUMBER" and temp["validRange"] == {"min": -40.0, "max": 85.0}
    _created(
        http.post(
            "/api/v1/sensors",
            json={"deviceId": dev["id"], "key": "door", "valueType": "BOOLEAN"},
            headers=auth,
        )
    )
    _created(
        http.post(
            "/api/v1/sensors", json={"deviceId": dev2["id"], "key": "temperature"}, headers=auth
        )
    )
    dup = http.post("/api/v1/sensors", json={"deviceId": dev["id"], "key": "door"}, headers=auth)
    _error(dup, 409, "conflict")
    bad_range = http.post(
        "/api/v1/sensors",
        json={"deviceId": dev["id"], "key": "rh", "validRange": {"min": 5, "max": 1}},
        headers=auth,
    )
    _error(bad_range, 400, "validation_error", "validRange")
    no_device = http.post("/api/v1/sensors", json={"deviceId": unknown, "key": "x"}, headers=auth)
    _error(no_device, 400, "validation_error", "deviceId")
    listed = http.get(
        "/api/v1/sensors", params={"deviceId": dev["id"], "order": "ASC"}, headers=auth
    )
    assert [s["key"] for s in listed.json()["data"]] == ["temperature", "door"]
    numbers = http.get(
        "/api/v1/sensors",
        params={"$filter": f"deviceId eq {dev['id']} and valueType eq 'NUMBER'"},
        headers=auth,
    )
    assert _ids(numbers) == [temp["id"]]
    component = _created(
        http.post(
            "/api/v1/components",
            json={"deviceId": dev["id"], "name": "battery", "kind": "power"},
            headers=auth,
        )
    )
    assert _ids(http.get("/api/v1/components", params={"deviceId": dev["id"]}, headers=auth)) == [
        component["id"]
    ]

    # PATCH with If-Match, 412 on a stale version.
    url = f"/api/v1/sites/{site['id']}"
    changed = http.patch(
        url, json={"address": None, "attributes": {"floor": 2}}, headers={**auth, "If-Match": '"1"'}
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"' and changed.json()["address"] is None
    _error(
        http.patch(url, json={"name": "x"}, headers={**auth, "If-Match": '"1"'}),
        412,
        "precondition_failed",
    )
    _error(http.patch(url, json={"name": "south"}, headers=auth), 409, "conflict")
    sensor_url = f"/api/v1/sensors/{temp['id']}"
    patched = http.patch(sensor_url, json={"unit": "K"}, headers={**auth, "If-Match": '"1"'})
    assert patched.status_code == 200 and patched.json()["unit"] == "K"

    # DELETE refuses a site or group in use, until its devices move.
    _error(http.delete(url, headers=auth), 409, "conflict")
    _error(http.delete(f"/api/v1/device-groups/{group['id']}", headers=auth), 409, "conflict")
    moved = http.patch(f"/api/v1/devices/{dev['id']}", json={"siteId": None}, headers=auth)
    assert moved.status_code == 200, moved.text
    _error(http.delete(url, headers={**auth, "If-Match": '"1"'}), 412, "precondition_failed")
    assert http.delete(url, headers={**auth, "If-Match": '"2"'}).status_code == 204
    _error(http.get(url, headers=auth), 404, "not_found")
    assert http.delete(sensor_url, headers=auth).status_code == 204
    assert [
        s["key"]
        for s in http.get("/api/v1/sensors", params={"deviceId": dev["id"]}, headers=auth).json()[
            "data"
        ]
    ] == ["door"]

    # Another organization sees none of it, and cannot refer to it.
    other = tenants.org("registry-other")
    other_auth = bearer(tenants.key(other["id"])["key"])
    _error(http.get(f"/api/v1/sites/{other_site['id']}", headers=other_auth), 404, "not_found")
    _error(
        http.patch(f"/api/v1/sites/{other_site['id']}", json={"name": "x"}, headers=other_auth),
        404,
        "not_found",
    )
    _error(
        http.delete(f"/api/v1/device-groups/{group['id']}", headers=other_auth), 404, "not_found"
    )
    assert _ids(http.get("/api/v1/sites", headers=other_auth)) == []
    foreign = http.post(
        "/api/v1/devices", json={"name": "x", "siteId": other_site["id"]}, headers=other_auth
    )
    _error(foreign, 400, "validation_error", "siteId")
    foreign = http.post(
        "/api/v1/sensors", json={"deviceId": dev["id"], "key": "t"}, headers=other_auth
    )
    _error(foreign, 400, "validation_error", "deviceId")

    # The audit log has the changes.
    want = ["devices.SiteCreated.v1", "devices.SiteUpdated.v1", "devices.SiteDeleted.v1"]
    deadline = time.monotonic() + 30  # a loaded machine
    while True:
        log = http.get("/api/v1/audit-log", params={"streamId": site["id"]}, headers=auth).json()
        types = [e["type"] for e in log["data"]]
        if types == want or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert types == want
    sensor_log = http.get(
        "/api/v1/audit-log", params={"streamId": temp["id"]}, headers=auth
    ).json()["data"]
    assert [e["type"] for e in sensor_log] == [
        "devices.SensorDeclared.v1",
        "devices.SensorUpdated.v1",
        "devices.SensorRemoved.v1",
    ]
    assert sensor_log[0]["streamType"] == "sensor" and sensor_log[0]["data"]["unit"] == "C"


def test_bulk_changes_and_decommissioned_devices(tenants: Any, http: httpx.Client) -> None:
    org = tenants.org("registry-bulk")
    auth = bearer(tenants.key(org["id"])["key"])
    group = _created(http.post("/api/v1/device-groups", json={"name": "fleet"}, headers=auth))
    devs = [
        _created(
            http.post(
                "/api/v1/devices",
                json={"name": f"m-{i}", "deviceType": "meter", "groupId": group["id"]},
                headers=auth,
            )
        )
        for i in range(2)
    ]
    # A bulk PATCH is checked like a single one: nothing changes.
    unknown = "01900000-0000-7000-8000-000000000000"
    bulk = http.patch(
        "/api/v1/devices",
        params={"deviceType": "meter"},
        json={"siteId": unknown},
        headers={**auth, "X-Expected-Count": "2"},
    )
    _error(bulk, 400, "validation_error", "siteId")
    site = _created(http.post("/api/v1/sites", json={"name": "plant"}, headers=auth))
    bulk = http.patch(
        "/api/v1/devices",
        params={"groupId": group["id"]},
        json={"siteId": site["id"]},
        headers={**auth, "X-Expected-Count": "2"},
    )
    assert bulk.status_code == 200 and bulk.json()["changed"] == 2, bulk.text
    listed = http.get(
        "/api/v1/devices", params={"$filter": f"siteId eq {site['id']}"}, headers=auth
    )
    assert sorted(_ids(listed)) == sorted(d["id"] for d in devs)

    # A decommissioned device takes no new sensor and no longer holds its site or group.
    for dev in devs:
        assert http.delete(f"/api/v1/devices/{dev['id']}", headers=auth).status_code == 204
    late = http.post("/api/v1/sensors", json={"deviceId": devs[0]["id"], "key": "t"}, headers=auth)
    _error(late, 409, "conflict")
    renamed = http.patch(f"/api/v1/device-groups/{group['id']}", json={"name": "old"}, headers=auth)
    assert renamed.status_code == 200 and renamed.json()["name"] == "old"
    assert http.delete(f"/api/v1/device-groups/{group['id']}", headers=auth).status_code == 204
    assert http.delete(f"/api/v1/sites/{site['id']}", headers=auth).status_code == 204
    # The names are free again.
    _created(http.post("/api/v1/sites", json={"name": "plant"}, headers=auth))
