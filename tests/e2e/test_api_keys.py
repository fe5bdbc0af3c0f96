"""API keys' lastUsedAt through the running platform: the gateways report the keys they
accepted (every second in this stack, 30 s by default) and identity shows it."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from _keys import bearer, fresh_key

pytestmark = pytest.mark.e2e


def _listed(http: httpx.Client, key: str) -> dict[str, Any]:
    prefix = key.removeprefix("sk_live_")[:12]
    page = http.get("/api/v1/api-keys", headers=bearer(key)).json()
    (mine,) = [k for k in page["data"] if k["prefix"] == prefix]
    return dict(mine)


def test_last_used_at_follows_use(http: httpx.Client, platform: dict[str, Any]) -> None:
    key = fresh_key(http, platform, "last-used")  # fresh_key has used it already
    before = datetime.fromisoformat(_listed(http, key).get("lastUsedAt") or "1970-01-01T00:00Z")
    time.sleep(1.1)
    assert http.get("/api/v1/devices", headers=bearer(key)).status_code == 200
    deadline = time.monotonic() + 30
    while True:
        seen = _listed(http, key).get("lastUsedAt")
        if seen is not None and datetime.fromisoformat(seen) > before:
            break
        assert time.monotonic() < deadline, f"lastUsedAt still {seen!r} 30 s after a use"
        time.sleep(0.3)
    created = datetime.fromisoformat(_listed(http, key)["createdAt"])
    assert datetime.fromisoformat(seen) >= created
    filtered = http.get(
        "/api/v1/api-keys", params={"lastUsedAt__gte": seen}, headers=bearer(key)
    ).json()
    assert [k["prefix"] for k in filtered["data"]] == [key.removeprefix("sk_live_")[:12]]
