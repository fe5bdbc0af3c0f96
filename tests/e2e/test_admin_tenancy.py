"""Suspending an organization (operator): every credential of it is refused, 403
access_denied, within 5 s at the gateway; other organizations are untouched."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wait_until(probe: Any, want: int, seconds: float = 10) -> float:
    """Poll ``probe()`` (a status code) until it is ``want``; the seconds it took."""
    start = time.monotonic()
    while (got := probe()) != want:
        assert time.monotonic() - start < seconds, f"still {got} after {seconds}s, wanted {want}"
        time.sleep(0.1)
    return time.monotonic() - start


def _login(http: httpx.Client, platform: dict[str, Any], org_id: str) -> str:
    """A session token of a fresh owner of ``org_id``."""
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    created = http.post(
        "/api/v1/users",
        json={"email": email, "password": "correct horse battery staple", "role": "owner"},
        headers={**bearer(platform["operatorKey"]), "X-Organization": org_id},
    )
    assert created.status_code == 201, created.text
    resp = http.post(
        "/api/v1/auth/login",
        json={"email": email, "password": "correct horse battery staple"},
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["accessToken"])


def test_suspending_an_organization_refuses_all_its_credentials(
    platform: dict[str, Any], http: httpx.Client, tenants: Any
) -> None:
    operator = platform["operatorKey"]
    org = tenants.org("suspended")
    other = tenants.org("bystander")
    keys = [tenants.key(org["id"]) for _ in range(2)]
    bystander = tenants.key(other["id"])
    token = _login(http, platform, org["id"])
    wait_until(lambda: http.get("/api/v1/devices", headers=bearer(token)).status_code, 200)

    resp = http.post(f"/api/v1/admin/organizations/{org['id']}/suspend", headers=bearer(operator))
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == org["id"] and resp.json()["status"] == "SUSPENDED"
    assert resp.json()["version"] == 2

    for credential in [k["key"] for k in keys] + [token]:
        took = wait_until(
            lambda c=credential: http.get("/api/v1/devices", headers=bearer(c)).status_code,
            403,
            seconds=5,
        )
        assert took < 5
        refused = http.post("/api/v1/devices", json={"name": "nope"}, headers=bearer(credential))
        assert refused.status_code == 403
        body = refused.json()
        assert body["type"] == "access_denied" and "suspended" in body["message"]

    # The organization is SUSPENDED for the operator; suspending again changes nothing.
    got = http.get(f"/api/v1/admin/organizations/{org['id']}", headers=bearer(operator))
    assert got.json()["status"] == "SUSPENDED"
    again = http.post(f"/api/v1/admin/organizations/{org['id']}/suspend", headers=bearer(operator))
    assert again.status_code == 200 and again.json()["version"] == 2
    # Nothing new can be issued for it, and other organizations are unaffected.
    issued = http.post(
        "/api/v1/api-keys",
        json={"name": "late"},
        headers={**bearer(operator), "X-Organization": org["id"]},
    )
    assert issued.status_code == 403
    assert http.get("/api/v1/devices", headers=bearer(bystander["key"])).status_code == 200


def test_suspend_is_operator_only_and_unknown_is_404(
    platform: dict[str, Any], http: httpx.Client, tenants: Any
) -> None:
    org = tenants.org("owner-cannot-suspend")
    key = tenants.key(org["id"])  # every scope, but not the operator
    resp = http.post(f"/api/v1/admin/organizations/{org['id']}/suspend", headers=bearer(key["key"]))
    assert resp.status_code == 403 and resp.json()["type"] == "access_denied"
    assert http.get("/api/v1/devices", headers=bearer(key["key"])).status_code == 200

    missing = http.post(
        f"/api/v1/admin/organizations/{uuid.uuid4()}/suspend",
        headers=bearer(platform["operatorKey"]),
    )
    assert missing.status_code == 404 and missing.json()["type"] == "not_found"
