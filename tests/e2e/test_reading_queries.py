"""Reading queries through the gateway (decision 60): readings sent with the HTTP batch
route, then raw, aggregated, stats and latest by device, group and site; scopes; validation
errors; another organization sees nothing."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e._poll import eventually

pytestmark = pytest.mark.e2e

# A whole hour an hour ago (UTC), so every reading is on one side of "now" and in one hour.
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def created(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_aggregated_stats_latest_by_device_group_and_site(
    http: httpx.Client, tenants: Any, raise_limits: Any
) -> None:
    org, other = tenants.org("queries"), tenants.org("queries-other")
    raise_limits(org["id"])
    raise_limits(other["id"])
    key = tenants.key(org["id"])["key"]
    other_key = tenants.key(other["id"])["key"]
    auth = bearer(key)
    site = created(http.post("/api/v1/sites", json={"name": "plant"}, headers=auth))
    group = created(http.post("/api/v1/device-groups", json={"name": "pumps"}, headers=auth))
    a = created(
        http.post(
            "/api/v1/devices",
            json={"name": "pump-a", "groupId": group["id"], "siteId": site["id"]},
            headers=auth,
        )
    )
    b = created(
        http.post("/api/v1/devices", json={"name": "pump-b", "groupId": group["id"]}, headers=auth)
    )
    # a: 0.0, 1.0, … every 30 s for the hour; b: a reading every 10 minutes
    sent = {
        a["id"]: [(HOUR + timedelta(seconds=30 * i), float(i)) for i in range(120)],
        b["id"]: [(HOUR + timedelta(minutes=10 * i), 100.0 + i) for i in range(6)],
    }
    body = {
        "readings": [
            {"deviceId": d, "sensor": "flow", "ts": iso(t), "value": v}
            for d, points in sent.items()
            for t, v in points
        ]
        + [{"deviceId": a["id"], "sensor": "running", "ts": iso(HOUR), "value": True}]
    }

    def send() -> dict[str, Any]:
        resp = http.post("/api/v1/readings/batch", json=body, headers=auth)
        assert resp.status_code == 202, resp.text
        return dict(resp.json())

    # the readings service learns of the devices (and their group and site) from events
    assert eventually(lambda: send()["accepted"] == len(body["readings"]))
    window = {"from": iso(HOUR), "to": iso(HOUR + timedelta(hours=1))}

    def get(path: str, params: dict[str, Any], key_: str = key) -> httpx.Response:
        return http.get(f"/api/v1/readings{path}", params=params, headers=bearer(key_))

    def stored() -> bool:
        resp = get("/stats", {"groupId": group["id"], "sensor": "flow", **window})
        data = resp.json().get("data", [])
        return sum(r["count"] for r in data) == 126

    assert eventually(stored)

    # aggregated: 5-minute buckets of a's flow, by device
    resp = get(
        "/aggregated",
        {
            "deviceId": a["id"],
            "sensor": "flow",
            "interval": "5m",
            "fn": "avg,min,max,count,first,last,sum",
            **window,
        },
    )
    assert resp.status_code == 200, resp.text
    page = resp.json()
    assert page["object"] == "list" and page["hasMore"] is False
    assert len(page["data"]) == 12
    first = page["data"][0]
    assert first["ts"] == iso(HOUR) and first["deviceId"] == a["id"]
    assert (first["count"], first["min"], first["max"], first["first"], first["last"]) == (
        10,
        0.0,
        9.0,
        0.0,
        9.0,
    )
    assert first["avg"] == 4.5 and first["sum"] == 45.0
    # by group, hourly, in Kolkata (hours start at :30 UTC): both devices, only avg
    resp = get(
        "/aggregated",
        {
            "groupId": group["id"],
            "sensor": "flow",
            "interval": "1h",
            "timezone": "Asia/Kolkata",
            **window,
        },
    )
    assert resp.status_code == 200, resp.text
    rows = resp.json()["data"]
    assert {r["deviceId"] for r in rows} == {a["id"], b["id"]}
    assert all(set(r) == {"deviceId", "sensor", "ts", "avg"} for r in rows)
    assert all(r["ts"].endswith(":30:00Z") for r in rows)
    # by site: a only; pages of 5 followed by the cursor
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {
        "siteId": site["id"],
        "sensor": "flow",
        "interval": "1m",
        "limit": 5,
        **window,
    }
    while True:
        resp = get("/aggregated", params)
        assert resp.status_code == 200, resp.text
        seen.extend(resp.json()["data"])
        if not resp.json()["hasMore"]:
            break
        params["after"] = resp.json()["after"]
    assert len(seen) == 60 and {r["deviceId"] for r in seen} == {a["id"]}

    # stats against Python
    resp = get("/stats", {"deviceId": a["id"], "sensor": "flow", **window})
    [s] = resp.json()["data"]
    values = [v for _, v in sent[a["id"]]]
    assert s["count"] == 120 and s["avg"] == statistics.fmean(values)
    assert abs(s["stddev"] - statistics.stdev(values)) < 1e-9
    q = statistics.quantiles(values, n=100, method="inclusive")
    assert abs(s["p50"] - q[49]) < 1e-9 and abs(s["p95"] - q[94]) < 1e-9

    # latest: per device and sensor, by group
    resp = get("/latest", {"groupId": group["id"]})
    latest = {(r["deviceId"], r["sensor"]): (r["ts"], r["value"]) for r in resp.json()["data"]}
    assert latest == {
        (a["id"], "flow"): (iso(sent[a["id"]][-1][0]), 119),
        (a["id"], "running"): (iso(HOUR), True),
        (b["id"], "flow"): (iso(sent[b["id"]][-1][0]), 105),
    }
    # raw by group: both devices in time order
    resp = get("", {"groupId": group["id"], "sensor": "flow", "limit": 1000, **window})
    assert len(resp.json()["data"]) == 126

    # validation errors name the parameter, in the error model
    for path, params, field in [
        (
            "/aggregated",
            {
                "deviceId": a["id"],
                "interval": "1m",
                "from": iso(HOUR),
                "to": iso(HOUR + timedelta(days=8)),
            },
            "interval",
        ),
        (
            "/aggregated",
            {"deviceId": a["id"], "interval": "1h", "timezone": "Mars/Base", **window},
            "timezone",
        ),
        ("/aggregated", {"deviceId": a["id"], "interval": "3m", **window}, "interval"),
        (
            "/aggregated",
            {"deviceId": a["id"], "groupId": group["id"], "interval": "1h", **window},
            "deviceId",
        ),
        (
            "/stats",
            {"deviceId": a["id"], "from": iso(HOUR - timedelta(days=40)), "to": window["to"]},
            "from",
        ),
        ("", {"groupId": group["id"]}, "from"),
        ("/latest", {}, "deviceId"),
    ]:
        resp = get(path, params)
        assert resp.status_code == 400, (path, params, resp.text)
        err = resp.json()
        assert err["type"] == "validation_error" and err["fields"][0]["name"] == field, err

    # scopes: a key without readings:read is refused; with it, allowed
    devices_only = tenants.key(org["id"], scopes=["devices:read"])["key"]
    assert get("/latest", {"deviceId": a["id"]}, devices_only).status_code == 403
    reader = tenants.key(org["id"], scopes=["devices:read", "readings:read"])["key"]
    assert get("/latest", {"deviceId": a["id"]}, reader).status_code == 200

    # another organization: 404 for the device, nothing for the group or site
    assert (
        get("/aggregated", {"deviceId": a["id"], "interval": "1h", **window}, other_key).status_code
        == 404
    )
    assert get("/latest", {"groupId": group["id"]}, other_key).json()["data"] == []
    assert get("/stats", {"siteId": site["id"], **window}, other_key).json()["data"] == []
