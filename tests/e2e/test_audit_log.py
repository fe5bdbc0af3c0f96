"""The audit log: every change, from every service's event store, through the gateway."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_audit_log_names_who_what_when_and_the_request(
    platform: dict[str, Any], http: httpx.Client
) -> None:
    operator = platform["operatorKey"]
    org = http.post(
        "/api/v1/admin/organizations",
        json={"name": f"audited-{uuid.uuid4().hex[:8]}"},
        headers=bearer(operator),
    ).json()
    issued = http.post(
        "/api/v1/api-keys",
        json={"name": "auditor"},
        headers={**bearer(operator), "X-Organization": org["id"]},
    )
    key = issued.json()["key"]
    deadline = time.monotonic() + 30
    while (
        created := http.post("/api/v1/devices", json={"name": "audited-1"}, headers=bearer(key))
    ).status_code == 401:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert created.status_code == 201

    rid = created.headers["x-request-id"]
    found = http.get("/api/v1/audit-log", params={"requestId": rid}, headers=bearer(key)).json()
    assert [(e["service"], e["type"], e["streamId"]) for e in found["data"]] == [
        ("devices", "devices.DeviceRegistered.v1", created.json()["id"])
    ]
    entry = found["data"][0]
    assert entry["actorKind"] == "api_key" and entry["actorId"] == issued.json()["id"]
    assert entry["occurredAt"].endswith("Z") and entry["data"]["name"] == "audited-1"

    everything = http.get(
        "/api/v1/audit-log", params={"include": "totalCount", "limit": 100}, headers=bearer(key)
    ).json()
    types = [e["type"] for e in everything["data"]]
    assert types == [
        "identity.OrganizationCreated.v1",
        "identity.ApiKeyCreated.v1",
        "devices.DeviceRegistered.v1",
    ]
    assert everything["totalCount"] == 3
    assert all("keyHash" not in e["data"] for e in everything["data"])

    # Paging one entry at a time across services gives the same sequence.
    paged: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if after:
            params["after"] = after
        page = http.get("/api/v1/audit-log", params=params, headers=bearer(key)).json()
        paged.extend(e["type"] for e in page["data"])
        if not page["hasMore"]:
            break
        after = page["data"][-1]["id"]
    assert paged == types

    # Another organization sees none of it.
    other = http.get(
        "/api/v1/audit-log",
        params={"requestId": rid},
        headers=bearer(platform["organization"]["apiKey"]),
    ).json()
    assert other["data"] == []
