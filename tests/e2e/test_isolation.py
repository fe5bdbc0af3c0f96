"""Tenant isolation through the gateway (docs/design/reliability.md rows bola and mass-assign):
every object id of organization A used on every route as organization B is 404 not_found (never 200
or 403), and privileged or unknown fields in bodies are a validation_error that creates or
changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _error(resp: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.text}"
    body = dict(resp.json())
    assert body["object"] == "error" and body["type"] == type_, body
    return body


@pytest.fixture(scope="module")
def two(platform: dict[str, Any], http: httpx.Client, tenants: Any) -> dict[str, Any]:
    """Organizations A and B, each with keys; A has a device."""
    a, b = tenants.org("tenant-a"), tenants.org("tenant-b")
    a_key, b_keys = tenants.key(a["id"]), [tenants.key(b["id"]) for _ in range(3)]
    device = http.post(
        "/api/v1/devices",
        json={"name": "a-gateway-01", "tags": [{"key": "site", "value": "north"}]},
        headers=bearer(a_key["key"]),
    )
    assert device.status_code == 201, device.text
    return {"a": a, "b": b, "a_key": a_key, "b_keys": b_keys, "device": device.json()}


def test_bola_every_object_of_a_is_not_found_for_b(two: dict[str, Any], http: httpx.Client) -> None:
    dev_id, key_id = two["device"]["id"], two["a_key"]["id"]
    b_read, b_write, _ = (bearer(k["key"]) for k in two["b_keys"])
    for path in (
        f"/api/v1/devices/{dev_id}",
        f"/api/v1/devices({dev_id})",
        "/api/v1/devices(name='a-gateway-01')",
    ):
        _error(http.get(path, headers=b_read), 404, "not_found")
    _error(
        http.patch(f"/api/v1/devices/{dev_id}", json={"deviceType": "x"}, headers=b_write),
        404,
        "not_found",
    )
    # A matching If-Match changes nothing: the id is unknown before any version is compared.
    _error(
        http.patch(
            f"/api/v1/devices/{dev_id}",
            json={"deviceType": "x"},
            headers={**b_write, "If-Match": '"1"'},
        ),
        404,
        "not_found",
    )
    _error(http.delete(f"/api/v1/devices/{dev_id}", headers=b_write), 404, "not_found")
    _error(
        http.delete(f"/api/v1/devices/{dev_id}", headers={**b_write, "If-Match": '"1"'}),
        404,
        "not_found",
    )
    _error(http.delete(f"/api/v1/api-keys/{key_id}", headers=b_write), 404, "not_found")

    # Collections never show A's objects: a filter on A's ids matches nothing (an empty
    # list, as for any filter that matches nothing), and a guarded bulk change counts 0.
    for params in ({"id": dev_id}, {"$filter": f"id eq {dev_id}"}):
        listed = http.get("/api/v1/devices", params=params, headers=b_read)
        assert listed.status_code == 200 and listed.json()["data"] == []
    audit = http.get("/api/v1/audit-log", params={"streamId": dev_id}, headers=b_read)
    assert audit.status_code == 200 and audit.json()["data"] == []
    keys = http.get("/api/v1/api-keys", params={"id": key_id}, headers=b_read)
    assert keys.status_code == 200 and keys.json()["data"] == []
    bulk = http.patch(
        "/api/v1/devices",
        params={"id": dev_id},
        json={"deviceType": "x"},
        headers={**b_write, "X-Expected-Count": "1"},
    )
    assert _error(bulk, 412, "precondition_failed")["details"]["actualCount"] == 0
    bulk = http.delete(
        "/api/v1/devices", params={"id": dev_id}, headers={**b_write, "X-Expected-Count": "1"}
    )
    assert _error(bulk, 412, "precondition_failed")["details"]["actualCount"] == 0

    # Admin routes are the operator's: a tenant gets the same 403 for A's id as for any id.
    for org_id in (two["a"]["id"], str(uuid.uuid4())):
        _error(
            http.get(f"/api/v1/admin/organizations/{org_id}", headers=b_read), 403, "access_denied"
        )
        _error(
            http.post(f"/api/v1/admin/organizations/{org_id}/suspend", headers=b_write),
            403,
            "access_denied",
        )

    # A's objects are untouched.
    a = bearer(two["a_key"]["key"])
    got = http.get(f"/api/v1/devices/{dev_id}", headers=a)
    assert got.status_code == 200 and got.json()["version"] == 1
    assert got.json()["status"] == "REGISTERED" and got.json().get("deviceType") is None
    assert http.get("/api/v1/devices", headers=a).status_code == 200  # A's key still works
    audit = http.get("/api/v1/audit-log", params={"streamId": dev_id}, headers=a).json()
    assert [e["type"] for e in audit["data"]] == ["devices.DeviceRegistered.v1"]


def test_b_may_reuse_a_name_of_a(two: dict[str, Any], http: httpx.Client) -> None:
    """Names are unique per organization: a 409 here would tell B that A has the name."""
    created = http.post(
        "/api/v1/devices", json={"name": "a-gateway-01"}, headers=bearer(two["b_keys"][2]["key"])
    )
    assert created.status_code == 201, created.text
    assert created.json()["id"] != two["device"]["id"]


@pytest.mark.parametrize(
    "extra",
    [
        {"orgId": "A"},
        {"status": "ACTIVE"},
        {"id": "00000000-0000-7000-8000-000000000000"},
        {"version": 7},
        {"createdAt": "2020-01-01T00:00:00Z"},
        {"scopes": ["*"], "operator": True},
    ],
)
def test_mass_assignment_on_create_and_patch(
    two: dict[str, Any], http: httpx.Client, tenants: Any, extra: dict[str, Any]
) -> None:
    extra = {k: (two["a"]["id"] if v == "A" else v) for k, v in extra.items()}
    b = two["b"]
    key = tenants.key(b["id"])  # fresh: these are writes, 50/min per credential
    auth = bearer(key["key"])
    name = f"x-{uuid.uuid4().hex[:8]}"

    body = _error(
        http.post("/api/v1/devices", json={"name": name, **extra}, headers=auth),
        400,
        "validation_error",
    )
    assert body["fields"], body
    assert http.get("/api/v1/devices", params={"name": name}, headers=auth).json()["data"] == []

    key_name = f"k-{uuid.uuid4().hex[:8]}"
    _error(
        http.post("/api/v1/api-keys", json={"name": key_name, **extra}, headers=auth),
        400,
        "validation_error",
    )
    listed = http.get("/api/v1/api-keys", params={"name": key_name}, headers=auth)
    assert listed.status_code == 200 and listed.json()["data"] == []

    own = http.post("/api/v1/devices", json={"name": name}, headers=auth).json()
    _error(
        http.patch(f"/api/v1/devices/{own['id']}", json={"deviceType": "t", **extra}, headers=auth),
        400,
        "validation_error",
    )
    _error(
        http.patch(
            "/api/v1/devices",
            params={"id": own["id"]},
            json={"deviceType": "t", **extra},
            headers={**auth, "X-Expected-Count": "1"},
        ),
        400,
        "validation_error",
    )
    after = http.get(f"/api/v1/devices/{own['id']}", headers=auth).json()
    assert after["version"] == 1 and after["status"] == "REGISTERED"
    assert after.get("deviceType") is None
