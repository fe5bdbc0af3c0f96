"""A fresh organization and API key, so a test does not share the demo key's rate limits."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def fresh_key(http: httpx.Client, platform: dict[str, Any], prefix: str) -> str:
    operator = platform["operatorKey"]
    org = http.post(
        "/api/v1/admin/organizations",
        json={"name": f"{prefix}-{uuid.uuid4().hex[:8]}"},
        headers=bearer(operator),
    )
    assert org.status_code == 201, org.text
    issued = http.post(
        "/api/v1/api-keys",
        json={"name": prefix},
        headers={**bearer(operator), "X-Organization": org.json()["id"]},
    )
    assert issued.status_code == 201, issued.text
    key = str(issued.json()["key"])
    deadline = time.monotonic() + 30  # until the gateway's credential cache has the key
    while http.get("/api/v1/devices/by-key/name='-'", headers=bearer(key)).status_code == 401:
        assert time.monotonic() < deadline, "the new API key was not accepted within 30 s"
        time.sleep(0.1)
    return key


def scoped_key(http: httpx.Client, platform: dict[str, Any], org_id: str, scopes: list[str]) -> str:
    """An API key of ``org_id`` with only ``scopes``, once the gateway knows it (401 until
    then; a key without the devices scope is answered 403 by the probe, which is enough)."""
    issued = http.post(
        "/api/v1/api-keys",
        json={"name": f"k-{uuid.uuid4().hex[:6]}", "scopes": scopes},
        headers={**bearer(platform["operatorKey"]), "X-Organization": org_id},
    )
    assert issued.status_code == 201, issued.text
    key = str(issued.json()["key"])
    deadline = time.monotonic() + 30
    while http.get("/api/v1/devices/by-key/name='-'", headers=bearer(key)).status_code == 401:
        assert time.monotonic() < deadline, "the key was not accepted within 30 s"
        time.sleep(0.1)
    return key
