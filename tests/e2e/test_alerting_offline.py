"""An ``offline`` rule needs no sensor (decision 71), through the gateway and the broker: a
rule created without ``sensor`` shows ``sensor: null``; readings (which fire a comparison
rule on the same device) leave it alone; a real device's disconnect from the broker opens
its alert with ``sensor: null``, in the timeline too; every other op still requires a
sensor, on create and on a change of op, with a ``validation_error`` naming it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e._devices import bearer, connect, provision
from tests.e2e._poll import eventually

pytestmark = pytest.mark.e2e


def alerts_of(http: httpx.Client, auth: dict[str, str], rule_id: str) -> list[dict[str, Any]]:
    got = http.get("/api/v1/alerts", params={"$filter": f"ruleId eq {rule_id}"}, headers=auth)
    assert got.status_code == 200, got.text
    return list(got.json()["data"])


def refused(resp: httpx.Response, field: str) -> None:
    assert resp.status_code == 400, resp.text
    assert resp.json()["type"] == "validation_error", resp.text
    assert [f["name"] for f in resp.json()["fields"]] == [field], resp.text


def test_an_offline_rule_without_a_sensor_fires_when_a_device_disconnects(
    http: httpx.Client, tenants: Any, raise_limits: Any, platform: dict[str, Any], tmp_path: Path
) -> None:
    org = tenants.org("alerting-offline")
    raise_limits(org["id"])
    auth = bearer(tenants.key(org["id"])["key"])
    device = provision(http, auth, org["id"], tmp_path)
    scope = {"type": "DEVICE", "id": device.id}
    base = {"name": "gone", "scope": scope, "severity": "MAJOR"}

    # Every other op still needs a sensor; nothing is created by a refusal.
    for condition in ({"op": ">", "threshold": 1}, {"op": "nodata", "seconds": 60}):
        made = http.post("/api/v1/alert-rules", json={**base, "condition": condition}, headers=auth)
        refused(made, "sensor")
    assert http.get("/api/v1/alert-rules", headers=auth).json()["data"] == []

    made = http.post(
        "/api/v1/alert-rules",
        json={**base, "condition": {"op": "offline", "seconds": 1}},
        headers=auth,
    )
    assert made.status_code == 201, made.text
    rule = made.json()
    assert "sensor" in rule and rule["sensor"] is None
    assert http.get(f"/api/v1/alert-rules/{rule['id']}", headers=auth).json()["sensor"] is None
    # A change of op away from offline needs a sensor too, and changes nothing when refused.
    to_hot = {"condition": {"op": ">", "threshold": 1}}
    refused(http.patch(f"/api/v1/alert-rules/{rule['id']}", json=to_hot, headers=auth), "sensor")
    assert http.get(f"/api/v1/alert-rules/{rule['id']}", headers=auth).json()["version"] == 1
    marker = http.post(
        "/api/v1/alert-rules",
        json={**base, "name": "any reading", "sensor": "temp", "condition": to_hot["condition"]},
        headers=auth,
    )
    assert marker.status_code == 201, marker.text
    # A comparison rule cannot drop its sensor.
    dropped = http.patch(
        f"/api/v1/alert-rules/{marker.json()['id']}", json={"sensor": None}, headers=auth
    )
    refused(dropped, "sensor")

    loop = asyncio.new_event_loop()
    try:
        nc = loop.run_until_complete(
            connect(platform["natsUrl"], device.tls(platform["brokerCaFile"]))
        )
        online = eventually(
            lambda: http.get(f"/api/v1/devices/{device.id}", headers=auth).json()["online"]
        )
        assert online is True
        now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
        readings = [
            {"deviceId": device.id, "sensor": s, "ts": now.isoformat().replace("+00:00", "Z"),
             "value": 5}
            for s in ("temp", "offline", "humidity")
        ]  # fmt: skip
        sent = http.post("/api/v1/readings/batch", json={"readings": readings}, headers=auth)
        assert sent.status_code == 202 and sent.json()["rejected"] == [], sent.text
        assert eventually(lambda: alerts_of(http, auth, marker.json()["id"]))
        assert alerts_of(http, auth, rule["id"]) == []  # readings never reach it
        loop.run_until_complete(nc.close())
    finally:
        loop.close()

    [alert] = eventually(lambda: alerts_of(http, auth, rule["id"]), timeout=30)
    assert (alert["deviceId"], alert["status"], alert["severity"]) == (device.id, "OPEN", "MAJOR")
    assert "sensor" in alert and alert["sensor"] is None
    assert alert["trigger"]["condition"] == "device offline for 1s"
    assert alert["trigger"]["value"] is None
    got = http.get(f"/api/v1/alerts/{alert['id']}", headers=auth).json()
    assert got["sensor"] is None
    timeline = http.get("/api/v1/events", params={"limit": 100}, headers=auth)
    assert timeline.status_code == 200, timeline.text
    [opened] = [e for e in timeline.json()["data"] if e.get("alertId") == alert["id"]]
    assert opened["type"] == "alerting.AlertOpened.v1" and "device offline" in opened["summary"]
    # Back to a comparison, with a sensor given: accepted as a new version.
    both = {**to_hot, "sensor": "temp"}
    back = http.patch(f"/api/v1/alert-rules/{rule['id']}", json=both, headers=auth)
    assert back.status_code == 200, back.text
    assert (back.json()["version"], back.json()["sensor"]) == (2, "temp")
