"""API v0 through the real gateway: a device created in v0's shape reads back in both
versions (ADR 0041, v0's changelog)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from _keys import bearer, fresh_key

pytestmark = pytest.mark.e2e


def test_a_device_created_through_v0_reads_back_in_both_versions(
    platform: dict[str, Any], http: httpx.Client
) -> None:
    h = bearer(fresh_key(http, platform, "versions"))
    created = http.post(
        "/api/v0/devices",
        json={"name": "old-client-1", "type": "gateway", "tags": {"site": "north", "floor": "2"}},
        headers=h,
    )
    assert created.status_code == 201, created.text
    old = created.json()
    assert old["type"] == "gateway" and "deviceType" not in old
    assert old["tags"] == {"site": "north", "floor": "2"}

    v0 = http.get(f"/api/v0/devices/{old['id']}", headers=h)
    assert v0.status_code == 200 and v0.json() == old
    assert v0.headers["etag"]

    v1 = http.get(f"/api/v1/devices/{old['id']}", headers=h).json()
    assert v1["deviceType"] == "gateway" and "type" not in v1
    assert v1["tags"] == [{"key": "site", "value": "north"}, {"key": "floor", "value": "2"}]

    by_name = http.get("/api/v0/devices(name='old-client-1')", headers=h).json()
    assert by_name["type"] == "gateway" and by_name["tags"]["site"] == "north"

    http.post("/api/v1/devices", json={"name": "new-client-1", "deviceType": "meter"}, headers=h)
    listed_v0 = http.get("/api/v0/devices", params={"limit": 1}, headers=h).json()
    assert listed_v0["has_more"] is True and "hasMore" not in listed_v0
    assert [d["type"] for d in listed_v0["data"]] == ["gateway"]
    listed_v1 = http.get("/api/v1/devices", headers=h).json()
    assert listed_v1["hasMore"] is False
    assert [d["deviceType"] for d in listed_v1["data"]] == ["gateway", "meter"]

    # v0's filter names reach the service as v1's.
    filtered = http.get("/api/v0/devices", params={"type": "meter"}, headers=h).json()
    assert [d["name"] for d in filtered["data"]] == ["new-client-1"]
    odata = http.get("/api/v0/devices", params={"$filter": "type eq 'gateway'"}, headers=h)
    assert [d["name"] for d in odata.json()["data"]] == ["old-client-1"]


def test_errors_through_v0_are_the_error_model(
    platform: dict[str, Any], http: httpx.Client
) -> None:
    h = bearer(fresh_key(http, platform, "versions-errors"))
    first = http.post("/api/v0/devices", json={"name": "dup"}, headers=h)
    assert first.status_code == 201
    again = http.post("/api/v0/devices", json={"name": "dup"}, headers=h)
    assert again.status_code == 409
    body = again.json()
    assert body["object"] == "error" and body["type"] == "conflict"
    assert body["request_id"] == again.headers["x-request-id"]
    assert http.get("/api/v2/devices", headers=h).json()["type"] == "unrecognized_request"
