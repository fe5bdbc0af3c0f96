"""Changing devices: PATCH (JSON merge) and DELETE (decommission) with If-Match, and the
guarded bulk forms with X-Expected-Count (docs/api.md, "Single resources", "Collections")."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _error(resp: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = dict(resp.json())
    assert body["type"] == type_, body
    return body


def test_patch_with_if_match_and_decommission(tenants: Any, http: httpx.Client) -> None:
    org = tenants.org("patching")
    auth = bearer(tenants.key(org["id"])["key"])
    dev = http.post(
        "/api/v1/devices",
        json={"name": "pump-1", "deviceType": "pump", "attributes": {"a": 1, "b": 2}},
        headers=auth,
    ).json()
    http.post("/api/v1/devices", json={"name": "pump-2"}, headers=auth)
    url = f"/api/v1/devices/{dev['id']}"
    assert http.get(url, headers=auth).headers["etag"] == '"1"'

    changed = http.patch(
        url,
        json={"name": "pump-1b", "attributes": {"a": None, "c": 3}, "tags": [{"key": "k"}]},
        headers={**auth, "If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"'
    body = changed.json()
    assert body["name"] == "pump-1b" and body["attributes"] == {"b": 2, "c": 3}
    assert body["deviceType"] == "pump" and body["tags"] == [{"key": "k", "value": ""}]

    stale = http.patch(url, json={"deviceType": "x"}, headers={**auth, "If-Match": '"1"'})
    assert "version" in _error(stale, 412, "precondition_failed")["message"]
    _error(http.patch(url, json={"name": "pump-2"}, headers=auth), 409, "conflict")
    assert http.get(url, headers=auth).json()["version"] == 2

    _error(http.delete(url, headers={**auth, "If-Match": '"1"'}), 412, "precondition_failed")
    assert http.delete(url, headers={**auth, "If-Match": '"2"'}).status_code == 204
    gone = http.get(url, headers=auth)
    assert gone.json()["status"] == "DECOMMISSIONED" and gone.headers["etag"] == '"3"'
    assert http.delete(url, headers=auth).status_code == 204  # again: nothing changes
    assert http.get(url, headers=auth).json()["version"] == 3
    _error(http.patch(url, json={"deviceType": "x"}, headers=auth), 409, "conflict")

    # The audit log has the new events.
    deadline = time.monotonic() + 30
    while True:
        log = http.get("/api/v1/audit-log", params={"streamId": dev["id"]}, headers=auth).json()
        types = [e["type"] for e in log["data"]]
        if len(types) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert types == [
        "devices.DeviceRegistered.v1",
        "devices.DeviceUpdated.v1",
        "devices.DeviceDecommissioned.v1",
    ]


def test_bulk_changes_are_guarded_by_the_expected_count(tenants: Any, http: httpx.Client) -> None:
    org = tenants.org("bulk")
    auth = bearer(tenants.key(org["id"])["key"])
    for i in range(4):
        tags = [{"key": "zone", "value": "north" if i < 3 else "south"}]
        resp = http.post("/api/v1/devices", json={"name": f"d-{i}", "tags": tags}, headers=auth)
        assert resp.status_code == 201
    north = {"$filter": "tags/any(t: t/key eq 'zone' and t/value eq 'north')"}

    missing = http.patch("/api/v1/devices", params=north, json={"deviceType": "x"}, headers=auth)
    body = _error(missing, 400, "validation_error")
    assert body["fields"][0]["name"] == "X-Expected-Count"

    wrong = http.patch(
        "/api/v1/devices",
        params=north,
        json={"deviceType": "x"},
        headers={**auth, "X-Expected-Count": "2"},
    )
    body = _error(wrong, 412, "precondition_failed")
    assert "3" in body["message"] and body["details"] == {"expectedCount": 2, "actualCount": 3}
    listed = http.get("/api/v1/devices", params={"deviceType": "x"}, headers=auth).json()
    assert listed["data"] == []

    right = http.patch(
        "/api/v1/devices",
        params=north,
        json={"deviceType": "x"},
        headers={**auth, "X-Expected-Count": "3"},
    )
    assert right.status_code == 200, right.text
    assert right.json() == {"matched": 3, "changed": 3}
    listed = http.get("/api/v1/devices", params={"deviceType": "x"}, headers=auth).json()
    assert sorted(d["name"] for d in listed["data"]) == ["d-0", "d-1", "d-2"]
    assert all(d["version"] == 2 for d in listed["data"])

    _error(
        http.patch(
            "/api/v1/devices",
            params=north,
            json={"name": "same"},
            headers={**auth, "X-Expected-Count": "3"},
        ),
        400,
        "validation_error",
    )
    _error(
        http.delete(
            "/api/v1/devices",
            params={"deviceType": "x", "limit": "2"},
            headers={**auth, "X-Expected-Count": "3"},
        ),
        400,
        "validation_error",
    )
    _error(
        http.delete("/api/v1/devices", params=north, headers={**auth, "X-Expected-Count": "1001"}),
        400,
        "validation_error",
    )

    removed = http.delete(
        "/api/v1/devices", params={"deviceType": "x"}, headers={**auth, "X-Expected-Count": "3"}
    )
    assert removed.status_code == 200 and removed.json() == {"matched": 3, "changed": 3}
    again = http.delete(
        "/api/v1/devices", params={"deviceType": "x"}, headers={**auth, "X-Expected-Count": "3"}
    )
    assert again.json() == {"matched": 3, "changed": 0}
    statuses = {
        d["name"]: d["status"] for d in http.get("/api/v1/devices", headers=auth).json()["data"]
    }
    assert statuses == {
        "d-0": "DECOMMISSIONED",
        "d-1": "DECOMMISSIONED",
        "d-2": "DECOMMISSIONED",
        "d-3": "REGISTERED",
    }
