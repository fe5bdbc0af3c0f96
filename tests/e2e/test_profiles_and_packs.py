"""Sensor profiles, device profiles and packs through the gateway (issue 21, ADR 0092): org A
describes a kind of device and authors a pack of it; the pack exported from A is imported
into org B (everything created, B's own ids), imported again (nothing changes), upgraded
(A's newer version: what B's users left alone follows, what they changed is reported as a
conflict and left as it is), and uninstalled (what the pack created goes, B's own items
stay). Tenancy, ETag/If-Match, a sensor profile in use (409), the fleet scope, the audit log."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e._keys import scoped_key

pytestmark = pytest.mark.e2e


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = dict(response.json())
    assert body["object"] == "error" and body["type"] == kind, body
    return body


def _all(http: httpx.Client, path: str, key: dict[str, str]) -> list[dict[str, Any]]:
    return list(ok(http.get(path, headers=key))["data"])


def test_a_pack_from_one_organization_to_another(
    http: httpx.Client, tenants: Any, raise_limits: Any
) -> None:
    org_a, org_b = tenants.org("fleet-a"), tenants.org("fleet-b")
    raise_limits(org_a["id"])
    raise_limits(org_b["id"])
    a = bearer(tenants.key(org_a["id"])["key"])
    b = bearer(tenants.key(org_b["id"])["key"])

    # A describes its measurements and its kind of device
    temp = ok(
        http.post(
            "/api/v1/sensor-profiles",
            json={"name": "Temperature", "unit": "Cel", "min": -40, "max": 85, "precision": 1},
            headers=a,
        ),
        201,
    )
    hum = ok(
        http.post(
            "/api/v1/sensor-profiles",
            json={"name": "Humidity", "unit": "%{RH}", "min": 0, "max": 100},
            headers=a,
        ),
        201,
    )
    assert temp["object"] == "sensorProfile" and temp["version"] == 1
    error(
        http.post("/api/v1/sensor-profiles", json={"name": "bad", "unit": "°C"}, headers=a),
        400,
        "validation_error",
    )
    profile = ok(
        http.post(
            "/api/v1/device-profiles",
            json={
                "name": "TH-1",
                "components": [{"name": "probe", "kind": "sht31"}],
                "sensors": [
                    {"key": "temp", "sensorProfileId": temp["id"], "component": "probe"},
                    {"key": "hum", "sensorProfileId": hum["id"]},
                ],
                "ruleTemplates": [
                    {
                        "name": "hot",
                        "sensor": "temp",
                        "condition": {"op": ">", "threshold": 30},
                        "severity": "MAJOR",
                    }
                ],
                "expectedIntervalSeconds": 60,
            },
            headers=a,
        ),
        201,
    )
    assert [t["condition"]["op"] for t in profile["impliedRuleTemplates"]] == [
        "nodata",
        "nodata",
        "offline",
    ]
    error(http.delete(f"/api/v1/sensor-profiles/{temp['id']}", headers=a), 409, "conflict")
    error(http.get(f"/api/v1/device-profiles/{profile['id']}", headers=b), 404, "not_found")

    pack = ok(
        http.post(
            "/api/v1/packs",
            json={
                "name": "climate",
                "version": "1.0.0",
                "items": [{"kind": "DEVICE_PROFILE", "id": profile["id"]}],
            },
            headers=a,
        ),
        201,
    )
    assert pack["origin"] == "AUTHORED" and pack["packVersion"] == "1.0.0"
    v1 = ok(http.get(f"/api/v1/packs/{pack['id']}/export", headers=a))
    assert v1["format"] == "outpost.pack.v1"
    assert [i["kind"] for i in v1["items"]] == [
        "SENSOR_PROFILE",
        "SENSOR_PROFILE",
        "DEVICE_PROFILE",
    ]
    error(http.get(f"/api/v1/packs/{pack['id']}/export", headers=b), 404, "not_found")

    # B imports it: everything created, with B's own ids
    imported = http.post("/api/v1/packs/import", json=v1, headers=b)
    first = ok(imported)
    assert first["outcome"] == "INSTALLED"
    assert [s["action"] for s in first["steps"]] == ["CREATE"] * 3
    (b_profile,) = _all(http, "/api/v1/device-profiles", b)
    assert b_profile["name"] == "TH-1" and b_profile["id"] != profile["id"]
    b_sensor = {s["key"]: s["sensorProfileId"] for s in b_profile["sensors"]}
    assert set(b_sensor.values()).isdisjoint({temp["id"], hum["id"]})
    b_pack = first["pack"]
    assert b_pack["origin"] == "IMPORTED"

    # again: nothing changes
    again = ok(http.post("/api/v1/packs/import", json=v1, headers=b))
    assert again["outcome"] == "UNCHANGED"
    assert again["pack"]["version"] == b_pack["version"]
    assert ok(http.get(f"/api/v1/device-profiles/{b_profile['id']}", headers=b)) == b_profile

    # A publishes 1.1.0: both ranges grow
    for sensor_profile, new_max in ((temp, 125), (hum, 110)):
        etag = http.get(f"/api/v1/sensor-profiles/{sensor_profile['id']}", headers=a).headers[
            "etag"
        ]
        ok(
            http.patch(
                f"/api/v1/sensor-profiles/{sensor_profile['id']}",
                json={"max": new_max},
                headers={**a, "If-Match": etag},
            )
        )
    error(
        http.patch(
            f"/api/v1/sensor-profiles/{temp['id']}",
            json={"max": 1},
            headers={**a, "If-Match": '"1"'},
        ),
        412,
        "precondition_failed",
    )
    ok(http.patch(f"/api/v1/packs/{pack['id']}", json={"version": "1.1.0"}, headers=a))
    v2 = ok(http.get(f"/api/v1/packs/{pack['id']}/export", headers=a))
    assert v2["version"] == "1.1.0"

    # meanwhile B's user changed the humidity profile
    ok(
        http.patch(
            f"/api/v1/sensor-profiles/{b_sensor['hum']}",
            json={"displayName": "RH (calibrated)"},
            headers=b,
        )
    )
    upgraded = ok(http.post("/api/v1/packs/import", json=v2, headers=b))
    assert upgraded["outcome"] == "UPGRADED"
    actions = {s["resourceId"]: s["action"] for s in upgraded["steps"]}
    assert actions[b_sensor["temp"]] == "UPGRADE"
    assert actions[b_sensor["hum"]] == "CONFLICT"
    assert [c["resourceId"] for c in upgraded["conflicts"]] == [b_sensor["hum"]]
    b_temp = ok(http.get(f"/api/v1/sensor-profiles/{b_sensor['temp']}", headers=b))
    b_hum = ok(http.get(f"/api/v1/sensor-profiles/{b_sensor['hum']}", headers=b))
    assert b_temp["max"] == 125
    assert (b_hum["max"], b_hum["displayName"]) == (100, "RH (calibrated)")
    got = ok(http.get(f"/api/v1/packs/{b_pack['id']}", headers=b))
    assert got["packVersion"] == "1.1.0" and got["conflicts"] == [hum["id"]]
    error(http.post("/api/v1/packs/import", json=v1, headers=b), 409, "conflict")  # no downgrade

    # B's own sensor profile stays when the pack goes
    own = ok(
        http.post("/api/v1/sensor-profiles", json={"name": "CO2", "unit": "[ppm]"}, headers=b), 201
    )
    ok(http.delete(f"/api/v1/packs/{b_pack['id']}", headers=b), 204)
    assert [p["id"] for p in _all(http, "/api/v1/sensor-profiles", b)] == [own["id"]]
    assert _all(http, "/api/v1/device-profiles", b) == []
    assert _all(http, "/api/v1/packs", b) == []
    # A keeps its pack and items
    assert [p["id"] for p in _all(http, "/api/v1/packs", a)] == [pack["id"]]
    assert len(_all(http, "/api/v1/sensor-profiles", a)) == 2

    # the first import is in B's audit log: fleet's events of that one request
    rid = imported.headers["x-request-id"]
    audit = ok(http.get("/api/v1/audit-log", params={"requestId": rid}, headers=b))["data"]
    assert {e["service"] for e in audit} == {"fleet"}
    assert sorted(e["type"] for e in audit) == sorted(
        ["fleet.SensorProfileCreated.v1"] * 2
        + ["fleet.DeviceProfileCreated.v1", "fleet.PackInstalled.v1"]
    )


def test_the_fleet_scope(http: httpx.Client, tenants: Any, platform: dict[str, Any]) -> None:
    org = tenants.org("fleet-scope")
    reader = bearer(scoped_key(http, platform, org["id"], ["fleet:read"]))
    other = bearer(scoped_key(http, platform, org["id"], ["devices:*"]))
    assert ok(http.get("/api/v1/sensor-profiles", headers=reader))["data"] == []
    error(
        http.post("/api/v1/sensor-profiles", json={"name": "T", "unit": "Cel"}, headers=reader),
        403,
        "access_denied",
    )
    error(http.get("/api/v1/packs", headers=other), 403, "access_denied")
