"""The walking skeleton, end to end: HTTP through the gateway, readings over NATS."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import nats
import pytest

from outpost_contracts import subjects
from outpost_devkit.dev.stack import DevStack

pytestmark = pytest.mark.e2e


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _org_with_key(http: httpx.Client, operator: str, name: str) -> tuple[str, str]:
    created = http.post(
        "/api/v1/admin/organizations", json={"name": name}, headers=bearer(operator)
    )
    assert created.status_code == 201, created.text
    org = created.json()
    assert org["name"] == name and org["createdAt"].endswith("Z")
    issued = http.post(
        "/api/v1/api-keys",
        json={"name": f"{name}-key"},
        headers={**bearer(operator), "X-Organization": org["id"]},
    )
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["key"].startswith("sk_live_") and body["scopes"] == ["*"]
    return org["id"], body["key"]


def _eventually(check: Any, timeout: float = 30.0, every: float = 0.4) -> Any:
    """Poll ``check`` until it is truthy. Polls are spaced so a check that makes list requests
    stays well under the 50-per-minute list rate limit of the key it uses."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)


def test_dev_credentials_have_the_documented_shape(
    platform: dict[str, Any], http: httpx.Client
) -> None:
    assert set(platform) == {
        "gatewayUrl",
        "natsUrl",
        "mqttUrl",
        "brokerCaFile",
        "operatorKey",
        "organization",
    }
    assert set(platform["organization"]) == {"id", "name", "apiKey"}
    devices = http.get("/api/v1/devices", headers=bearer(platform["organization"]["apiKey"]))
    assert devices.status_code == 200, devices.text


def test_two_tenants_devices_readings_isolation_and_revocation(
    platform: dict[str, Any], http: httpx.Client, stack: DevStack
) -> None:
    operator = platform["operatorKey"]
    suffix = uuid.uuid4().hex[:8]
    org_a, key_a = _org_with_key(http, operator, f"alpha-{suffix}")
    org_b, key_b = _org_with_key(http, operator, f"beta-{suffix}")

    # Org A registers a device: the gateway must already accept A's brand-new key.
    created = _eventually(
        lambda: (
            (
                r := http.post(
                    "/api/v1/devices",
                    json={"name": "pump-1", "tags": [{"key": "site", "value": "north"}]},
                    headers=bearer(key_a),
                )
            ).status_code
            != 401
            and r
        )
    )
    assert created.status_code == 201, created.text
    device = created.json()
    assert device["status"] == "REGISTERED" and device["name"] == "pump-1"
    fetched = http.get(f"/api/v1/devices/{device['id']}", headers=bearer(key_a))
    assert fetched.status_code == 200 and fetched.json()["id"] == device["id"]
    assert fetched.headers["etag"] == '"1"'
    duplicate = http.post("/api/v1/devices", json={"name": "pump-1"}, headers=bearer(key_a))
    assert duplicate.status_code == 409 and duplicate.json()["type"] == "conflict"

    # It publishes readings on the device's telemetry subject, with JetStream acks, as the
    # platform's own tooling may (a device connects with its certificate: test_broker.py).
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    sent = [
        {
            "sensor": "temperature",
            "ts": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "value": 20 + i / 10,
        }
        for i in range(30)
    ]

    async def publish() -> None:
        nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
        js = nc.jetstream()
        subject = subjects.telemetry(org_a, device["id"])
        for seq, chunk in enumerate((sent[:10], sent[10:20], sent[20:]), start=1):
            await js.publish(subject, msgspec.json.encode({"seq": seq, "readings": chunk}))
        await js.publish(
            subject,
            msgspec.json.encode({"seq": 4, "readings": [{"sensor": "door", "value": True}]}),
        )
        await nc.close()

    asyncio.run(publish())

    def read_all() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        after = None
        while True:
            params: dict[str, Any] = {"deviceId": device["id"], "sensor": "temperature", "limit": 7}
            if after:
                params["after"] = after
            page = http.get("/api/v1/readings", params=params, headers=bearer(key_a))
            assert page.status_code == 200, page.text
            body = page.json()
            got.extend(body["data"])
            if not body["hasMore"]:
                return got
            after = body["after"]

    readings = _eventually(lambda: (r := read_all()) and len(r) == len(sent) and r)
    assert readings, "the readings never became queryable"
    assert [(r["ts"], r["value"]) for r in readings] == [(s["ts"], s["value"]) for s in sent]
    assert all(r["deviceId"] == device["id"] and r["sensor"] == "temperature" for r in readings)

    def newest() -> dict[str, Any]:
        page = http.get(
            "/api/v1/readings",
            params={"deviceId": device["id"], "order": "DESC", "limit": 1},
            headers=bearer(key_a),
        ).json()
        return dict(page["data"][0])

    # The door reading came in a later message: it may be stored a batch after the others.
    latest = _eventually(lambda: (n := newest())["sensor"] == "door" and n)
    assert latest and latest["value"] is True

    # Org B sees none of it: 404, never 403 or 200.
    for path, params in (
        (f"/api/v1/devices/{device['id']}", {}),
        ("/api/v1/readings", {"deviceId": device["id"]}),
    ):
        denied = http.get(path, params=params, headers=bearer(key_b))
        assert denied.status_code == 404, (path, denied.text)
        assert denied.json()["type"] == "not_found"
    assert http.get("/api/v1/devices", headers=bearer(key_b)).json()["data"] == []

    # A revoked key stops working within 5 s.
    keys = http.get("/api/v1/api-keys", headers=bearer(key_b)).json()["data"]
    assert len(keys) == 1
    revoked = http.delete(f"/api/v1/api-keys/{keys[0]['id']}", headers=bearer(key_b))
    assert revoked.status_code == 204
    refused = _eventually(
        lambda: http.get("/api/v1/devices", headers=bearer(key_b)).status_code == 401, timeout=5
    )
    assert refused, "a revoked key was still accepted after 5 s"
    body = http.get("/api/v1/devices", headers=bearer(key_b)).json()
    assert (
        body["type"] == "invalid_apikey" and body["code"] == 401 and len(body["request_id"]) == 32
    )
    assert org_b != org_a


def test_pagination_follows_after(platform: dict[str, Any], http: httpx.Client) -> None:
    key = platform["organization"]["apiKey"]
    prefix = f"page-{uuid.uuid4().hex[:6]}"
    ids = []
    for i in range(5):
        r = http.post("/api/v1/devices", json={"name": f"{prefix}-{i}"}, headers=bearer(key))
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {
            "limit": 2,
            "name__in": ",".join(f"{prefix}-{i}" for i in range(5)),
            "include": "totalCount",
        }
        if after:
            params["after"] = after
        body = http.get("/api/v1/devices", params=params, headers=bearer(key)).json()
        assert body["object"] == "list" and body["limit"] == 2 and body["order"] == "ASC"
        assert body["after"] == after and body["totalCount"] == 5
        seen.extend(d["id"] for d in body["data"])
        if not body["hasMore"]:
            break
        after = body["data"][-1]["id"]
    assert seen == ids
    desc = http.get(
        "/api/v1/devices",
        params={"order": "DESC", "name__in": ",".join(f"{prefix}-{i}" for i in range(5))},
        headers=bearer(key),
    )
    assert [d["id"] for d in desc.json()["data"]] == ids[::-1]


def test_error_model(platform: dict[str, Any], http: httpx.Client) -> None:
    key = platform["organization"]["apiKey"]
    cases = [
        (http.get("/api/v1/nowhere", headers=bearer(key)), 404, "unrecognized_request"),
        (http.put("/api/v1/devices", json={}, headers=bearer(key)), 405, "method_not_supported"),
        (http.get("/api/v1/devices"), 401, "invalid_auth"),
        (http.get("/api/v1/devices", headers=bearer("sk_live_" + "x" * 44)), 401, "invalid_apikey"),
        (
            http.post("/api/v1/devices", json={"name": "x", "isAdmin": True}, headers=bearer(key)),
            400,
            "validation_error",
        ),
        (
            http.get("/api/v1/devices", params={"limit": 5000}, headers=bearer(key)),
            400,
            "validation_error",
        ),
        (
            http.get("/api/v1/devices", params={"colour__eq": "red"}, headers=bearer(key)),
            400,
            "validation_error",
        ),
        (http.get(f"/api/v1/devices/{uuid.uuid4()}", headers=bearer(key)), 404, "not_found"),
        (
            http.post("/api/v1/admin/organizations", json={"name": "nope"}, headers=bearer(key)),
            403,
            "access_denied",
        ),
    ]
    nul = http.post(
        "/api/v1/devices",
        json={"name": "nul-1", "attributes": {"k": "a\x00b"}},
        headers=bearer(key),
    )
    cases.append((nul, 400, "validation_error"))
    for response, status, kind in cases:
        body = response.json()
        assert (response.status_code, body["type"]) == (status, kind), (response.request.url, body)
        assert body["object"] == "error" and body["code"] == status
        assert body["request_id"] == response.headers["x-request-id"]
        assert "Traceback" not in response.text
    assert (
        http.get("/api/v1/devices", params={"name": "nul-1"}, headers=bearer(key)).json()["data"]
        == []
    )


def test_platform_endpoints(platform: dict[str, Any], http: httpx.Client) -> None:
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 200
    assert "outpost" in http.get("/metrics").text or http.get("/metrics").status_code == 200
    spec = http.get("/api/v3/api-docs").json()
    assert "/api/v1/devices" in spec["paths"]
    schemas = http.get("/api/schemas").json()
    assert "DeviceRegistered" in schemas["contracts"]


def test_a_service_that_does_not_answer_is_503(
    platform: dict[str, Any], http: httpx.Client, stack: DevStack
) -> None:
    key = platform["organization"]["apiKey"]
    assert http.get("/api/v1/devices", headers=bearer(key)).status_code == 200
    devices = stack.pid("devices")
    os.kill(devices, signal.SIGSTOP)  # alive, connected, and silent
    try:
        started = time.monotonic()
        response = http.get("/api/v1/devices", headers=bearer(key))
        waited = time.monotonic() - started
    finally:
        os.kill(devices, signal.SIGCONT)
    assert response.status_code == 503, response.text
    assert response.json()["type"] == "service_unavailable"
    assert waited < 9
    assert _eventually(lambda: http.get("/api/v1/devices", headers=bearer(key)).status_code == 200)
