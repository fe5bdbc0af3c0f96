"""Reference pairs through the gateway (ADR 0098): two devices co-located, readings sent
with the HTTP batch route where the sensor under test reads 1.1 * the reference + 2; the pair
created, checked against the registry, changed and listed; its comparison finds the known
bias and slope (and agrees with Python's ``statistics`` over the same bucket means), the
corrected series lands on the reference; bad ranges and intervals are validation errors;
another organization's pair is 404; the scopes."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e._poll import eventually

pytestmark = pytest.mark.e2e

# Two whole hours ending an hour ago (UTC): every reading is in the past, in whole buckets.
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = dict(response.json())
    assert body["object"] == "error" and body["type"] == kind, body
    return body


def reference_value(i: int) -> float:
    """The reference's i-th reading (every 30 s): a slow wave with a ripple."""
    return 12.0 + 6.0 * math.sin(i / 40) + (i % 7) * 0.25


def test_a_known_bias_and_slope_through_the_gateway(
    http: httpx.Client, tenants: Any, raise_limits: Any
) -> None:
    org, other = tenants.org("refpairs"), tenants.org("refpairs-other")
    raise_limits(org["id"])
    key = bearer(tenants.key(org["id"])["key"])
    their_key = bearer(tenants.key(other["id"])["key"])
    low_cost = ok(http.post("/api/v1/devices", json={"name": "aq-cheap"}, headers=key), 201)
    station = ok(http.post("/api/v1/devices", json={"name": "aq-station"}, headers=key), 201)

    points = [(START + timedelta(seconds=30 * i), reference_value(i)) for i in range(240)]
    body = {
        "readings": [
            {"deviceId": station["id"], "sensor": "pm25", "ts": iso(t), "value": v}
            for t, v in points
        ]
        + [
            {"deviceId": low_cost["id"], "sensor": "pm25", "ts": iso(t), "value": 1.1 * v + 2}
            for t, v in points
        ]
        + [{"deviceId": low_cost["id"], "sensor": "fan", "ts": iso(START), "value": True}]
    }

    def send() -> bool:
        resp = http.post("/api/v1/readings/batch", json=body, headers=key)
        assert resp.status_code == 202, resp.text
        return bool(resp.json()["accepted"] == len(body["readings"]))

    # readings learns of the devices from events; a resend stores nothing twice
    assert eventually(send)
    window = {"from": iso(START), "to": iso(START + timedelta(hours=2))}

    def stored(device: dict[str, Any]) -> bool:
        resp = http.get(
            "/api/v1/readings/stats",
            params={"deviceId": device["id"], "sensor": "pm25", **window},
            headers=key,
        )
        return resp.status_code == 200 and [r["count"] for r in resp.json()["data"]] == [240]

    # Both devices' readings stored: the stream ingest stores a device's readings once
    # readings' registry has the device (the batch route may accept them before, asking
    # devices), and the pair is checked against that registry.
    assert eventually(lambda: stored(low_cost) and stored(station))

    test = {"deviceId": low_cost["id"], "sensor": "pm25"}
    reference = {"deviceId": station["id"], "sensor": "pm25"}
    # the registry's checks: the same sensor twice, no such sensor, not a NUMBER one
    for bad in (
        {"test": test, "reference": test},
        {"test": test, "reference": {**reference, "sensor": "nope"}},
        {"test": {**test, "sensor": "fan"}, "reference": reference},
    ):
        error(
            http.post("/api/v1/reference-pairs", json={"name": "x", **bad}, headers=key),
            400,
            "validation_error",
        )
    pair = ok(
        http.post(
            "/api/v1/reference-pairs",
            json={"name": "roof PM2.5", "test": test, "reference": reference},
            headers=key,
        ),
        201,
    )
    assert pair["object"] == "referencePair" and pair["windowSeconds"] == 300
    listed = ok(
        http.get(
            "/api/v1/reference-pairs",
            params={"reference.deviceId": station["id"]},
            headers=key,
        )
    )
    assert [p["id"] for p in listed["data"]] == [pair["id"]]
    patched = ok(
        http.patch(
            f"/api/v1/reference-pairs/{pair['id']}",
            json={"windowSeconds": 900, "description": "co-located on the roof"},
            headers={**key, "If-Match": '"1"'},
        )
    )
    assert patched["version"] == 2 and patched["windowSeconds"] == 900

    url = f"/api/v1/reference-pairs/{pair['id']}/comparison"
    # the pair's window (15m): 8 buckets; the fit of the reference on the test sensor
    view = ok(http.get(url, params={**window, "corrected": "true"}, headers=key))
    assert view["object"] == "referencePairComparison" and view["interval"] == "15m"
    assert view["n"] == 8
    assert math.isclose(view["slope"], 1 / 1.1, rel_tol=1e-9)
    assert math.isclose(view["intercept"], -2 / 1.1, rel_tol=1e-9)
    assert math.isclose(view["r"], 1.0, rel_tol=1e-9)
    xs = [p["test"] for p in view["series"]]
    ys = [p["reference"] for p in view["series"]]
    diffs = [x - y for x, y in zip(xs, ys, strict=True)]
    assert math.isclose(view["bias"], statistics.fmean(diffs), rel_tol=1e-9)
    assert math.isclose(view["mae"], statistics.fmean(abs(d) for d in diffs), rel_tol=1e-9)
    assert math.isclose(
        view["rmse"], math.sqrt(statistics.fmean(d * d for d in diffs)), rel_tol=1e-9
    )
    # bias = mean(0.1 * ref + 2) over the buckets, which hold equal numbers of readings
    expected_bias = 0.1 * statistics.fmean(v for _, v in points) + 2
    assert math.isclose(view["bias"], expected_bias, rel_tol=1e-9)
    for point in view["series"]:
        assert math.isclose(point["corrected"], point["reference"], rel_tol=1e-9)
    # another interval, from the hourly rollup; no series unless asked for
    hourly = ok(http.get(url, params={**window, "interval": "1h"}, headers=key))
    assert hourly["n"] == 2 and "series" not in hourly
    assert math.isclose(hourly["slope"], 1 / 1.1, rel_tol=1e-9)

    # bad ranges and intervals
    for params in (
        {**window, "from": window["to"]},
        {**window, "interval": "2m"},
        {"from": window["from"], "to": iso(START + timedelta(days=30)), "interval": "1m"},
        {**window, "timezone": "Mars/Olympus"},
    ):
        error(http.get(url, params=params, headers=key), 400, "validation_error")

    # another organization sees no pair
    error(http.get(url, params=window, headers=their_key), 404, "not_found")
    error(http.get(f"/api/v1/reference-pairs/{pair['id']}", headers=their_key), 404, "not_found")
    assert ok(http.get("/api/v1/reference-pairs", headers=their_key))["data"] == []

    ok(http.delete(f"/api/v1/reference-pairs/{pair['id']}", headers=key), 204)
    error(http.get(url, params=window, headers=key), 404, "not_found")
