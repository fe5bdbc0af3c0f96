"""Exports through the gateway (issue 7; decision 65): ingest known readings and an
annotation, export a device and a group in both formats, download through ``downloadUrl``
with no Authorization header, unzip and compare every row and the manifest's counts;
another organization's export id is 404; a tampered, another export's or an expired link
is refused; DELETE cancels or deletes; bad requests are refused and create nothing; a fired
and resolved alert and the device's timeline exported with every include."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest

from tests.e2e._keys import scoped_key
from tests.e2e._poll import eventually

pytestmark = pytest.mark.e2e

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


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


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def fetch(http: httpx.Client, url: str) -> httpx.Response:
    """A download as a browser would: the link alone, no Authorization header."""
    parsed = urlparse(url)
    return http.get(f"{parsed.path}?{parsed.query}")


def rows_of(archive: zipfile.ZipFile, fmt: str) -> set[tuple[str, str, datetime, Any]]:
    if fmt == "CSV":
        reader = csv.DictReader(io.StringIO(archive.read("readings.csv").decode()))
        out = set()
        for r in reader:
            value: Any = r["value"]
            value = {"true": True, "false": False}.get(value, value)
            if not isinstance(value, bool):
                value = float(value)
            out.add((r["deviceId"], r["sensor"], parse_ts(r["ts"]), value))
        return out
    return {
        (
            r["deviceId"],
            r["sensor"],
            parse_ts(r["ts"]),
            r["value"] if isinstance(r["value"], bool) else float(r["value"]),
        )
        for r in map(json.loads, archive.read("readings.ndjson").decode().splitlines())
    }


def test_exports_from_request_to_download(
    http: httpx.Client, tenants: Any, raise_limits: Any
) -> None:
    org, other = tenants.org("exports"), tenants.org("exports-other")
    raise_limits(org["id"])
    raise_limits(other["id"])
    auth = bearer(tenants.key(org["id"])["key"])
    their = bearer(tenants.key(other["id"])["key"])
    group = ok(http.post("/api/v1/device-groups", json={"name": "pumps"}, headers=auth), 201)
    a = ok(
        http.post("/api/v1/devices", json={"name": "pump-a", "groupId": group["id"]}, headers=auth),
        201,
    )
    b = ok(
        http.post("/api/v1/devices", json={"name": "pump-b", "groupId": group["id"]}, headers=auth),
        201,
    )
    lone = ok(http.post("/api/v1/devices", json={"name": "lone"}, headers=auth), 201)
    # a: 600 flow readings every 5 s and a door state; b: 50 readings; lone: outside the group
    sent: dict[str, list[tuple[str, datetime, Any]]] = {
        a["id"]: [("flow", HOUR + timedelta(seconds=5 * i), i * 0.5) for i in range(600)]
        + [("door", HOUR + timedelta(minutes=m), m % 2 == 0) for m in range(10)],
        b["id"]: [("flow", HOUR + timedelta(minutes=i), 100.0 + i) for i in range(50)],
        lone["id"]: [("flow", HOUR, 1.0)],
    }
    # Outside the range: must not be exported.
    late = HOUR + timedelta(hours=2)
    body = {
        "readings": [
            {"deviceId": d, "sensor": s, "ts": iso(t), "value": v}
            for d, points in sent.items()
            for s, t, v in points
        ]
        + [{"deviceId": a["id"], "sensor": "flow", "ts": iso(late), "value": 9.0}]
    }

    def send() -> bool:
        resp = http.post("/api/v1/readings/batch", json=body, headers=auth)
        assert resp.status_code == 202, resp.text
        return bool(resp.json()["accepted"] == len(body["readings"]))

    assert eventually(send), "the readings service never learnt of the devices"
    klass = ok(http.post("/api/v1/annotation-classes", json={"name": "service"}, headers=auth), 201)
    note = ok(
        http.post(
            "/api/v1/annotations",
            json={
                "deviceId": a["id"],
                "classId": klass["id"],
                "from": iso(HOUR + timedelta(minutes=5)),
                "to": iso(HOUR + timedelta(minutes=6)),
                "text": "filter changed, by hand",
            },
            headers=auth,
        ),
        201,
    )
    window = {"from": iso(HOUR), "to": iso(HOUR + timedelta(hours=1))}

    def stored() -> bool:
        resp = http.get(
            "/api/v1/readings/stats",
            params={"groupId": group["id"], "sensor": "flow", **window},
            headers=auth,
        )
        return sum(r["count"] for r in resp.json().get("data", [])) == 650

    assert eventually(stored)

    def export(scope_type: str, scope_id: str, fmt: str) -> dict[str, Any]:
        created = ok(
            http.post(
                "/api/v1/exports",
                json={
                    "scopeType": scope_type,
                    "scopeId": scope_id,
                    **window,
                    "includes": ["READINGS", "ANNOTATIONS"],
                    "format": fmt,
                },
                headers=auth,
            ),
            201,
        )
        assert created["status"] == "PENDING" and created["requestedBy"] and created["createdAt"]
        assert created["scopeId"] == scope_id and created["format"] == fmt

        def ready() -> Any:
            view = ok(http.get(f"/api/v1/exports/{created['id']}", headers=auth))
            assert view["status"] in ("PENDING", "RUNNING", "READY"), view
            return view if view["status"] == "READY" else None

        view = eventually(ready, timeout=60)
        assert view, "the export never became READY"
        return dict(view)

    cases = [
        ("DEVICE", a["id"], "CSV", [a["id"]]),
        ("GROUP", group["id"], "NDJSON", [a["id"], b["id"]]),
    ]
    views = []
    for scope_type, scope_id, fmt, devices in cases:
        view = export(scope_type, scope_id, fmt)
        views.append(view)
        expected = {
            (d, s, t, v if isinstance(v, bool) else float(v))
            for d in devices
            for s, t, v in sent[d]
        }
        assert view["readingCount"] == len(expected) and view["annotationCount"] == 1
        assert view["sizeBytes"] > 0 and view["completedAt"] and view["expiresAt"]
        response = fetch(http, view["downloadUrl"])
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/zip")
        assert int(response.headers["content-length"]) == view["sizeBytes"] == len(response.content)
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        assert rows_of(archive, fmt) == expected
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["counts"] == {"readings": len(expected), "annotations": 1}
        assert manifest["scope"] == {"type": scope_type, "id": scope_id}
        assert manifest["format"] == fmt and manifest["formatVersion"] == 1
        for member in manifest["files"]:
            assert hashlib.sha256(archive.read(member["name"])).hexdigest() == member["sha256"]
        ext = fmt.lower()
        assert note["id"] in archive.read(f"annotations.{ext}").decode()
        # A fresh link on every GET.
        again = ok(http.get(f"/api/v1/exports/{view['id']}", headers=auth))
        assert again["status"] == "READY" and again["downloadUrl"]

    device_view, group_view = views
    listed = ok(http.get("/api/v1/exports", params={"status": "READY"}, headers=auth))
    assert listed["object"] == "list" and {e["id"] for e in listed["data"]} == {
        v["id"] for v in views
    }

    # Another organization: 404 for every route, and its links do not open ours.
    for method, path in (("GET", ""), ("DELETE", "")):
        error(
            http.request(method, f"/api/v1/exports/{device_view['id']}{path}", headers=their),
            404,
            "not_found",
        )

    # Refused links: one flipped byte, another export's signature, a longer life, no signature.
    url = urlparse(
        ok(http.get(f"/api/v1/exports/{device_view['id']}", headers=auth))["downloadUrl"]
    )
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    sig = params["signature"]
    other_params = {
        k: v[0]
        for k, v in parse_qs(
            urlparse(
                ok(http.get(f"/api/v1/exports/{group_view['id']}", headers=auth))["downloadUrl"]
            ).query
        ).items()
    }
    tampered = [
        {**params, "signature": sig[:-1] + ("A" if sig[-1] != "A" else "B")},
        {**params, "signature": other_params["signature"], "expires": other_params["expires"]},
        {**params, "expires": str(int(params["expires"]) + 3600)},
        {**params, "org": other["id"]},
        {k: v for k, v in params.items() if k != "signature"},
    ]
    for query in tampered:
        error(http.get(f"{url.path}?{urlencode(query)}"), 403, "access_denied")
    assert http.get(f"{url.path}?{urlencode(params)}").status_code == 200
    # The link dies after its lifetime (8 s in this platform).
    time.sleep(max(0.0, int(params["expires"]) - time.time()) + 1.0)
    error(http.get(f"{url.path}?{urlencode(params)}"), 403, "access_denied")

    # Writes are in the audit log (the job's events), with who asked.
    log = ok(
        http.get("/api/v1/audit-log", params={"type": "exports.ExportRequested.v1"}, headers=auth)
    )
    assert {e["streamId"] for e in log["data"]} >= {v["id"] for v in views}, log
    completed = ok(
        http.get("/api/v1/audit-log", params={"type": "exports.ExportCompleted.v1"}, headers=auth)
    )
    assert len(completed["data"]) == 2

    # DELETE of a READY export deletes it and its archive: its old link is 404, the id too.
    fresh = ok(http.get(f"/api/v1/exports/{group_view['id']}", headers=auth))["downloadUrl"]
    assert http.delete(f"/api/v1/exports/{group_view['id']}", headers=auth).status_code == 204
    error(fetch(http, fresh), 404, "not_found")
    error(http.get(f"/api/v1/exports/{group_view['id']}", headers=auth), 404, "not_found")


def test_bad_export_requests_change_nothing_and_scopes_apply(
    http: httpx.Client, tenants: Any, raise_limits: Any
) -> None:
    org = tenants.org("exports-bad")
    raise_limits(org["id"])
    auth = bearer(tenants.key(org["id"])["key"])
    reader = bearer(scoped_key(http, tenants.platform, org["id"], ["exports:read"]))
    device = ok(http.post("/api/v1/devices", json={"name": "d"}, headers=auth), 201)
    start = iso(HOUR)
    good = {
        "scopeType": "DEVICE",
        "scopeId": device["id"],
        "from": start,
        "to": iso(HOUR + timedelta(hours=1)),
    }
    bad = [
        {**good, "scopeType": "PLANET"},
        {**good, "from": iso(HOUR + timedelta(hours=2))},
        {**good, "to": iso(HOUR + timedelta(days=400))},
        {**good, "includes": ["ALERTS", "ALERTS"]},
        {**good, "format": "XLSX"},
        {**good, "scopeId": "01900000-0000-7000-8000-000000000000"},
        {**good, "status": "READY"},
        {k: v for k, v in good.items() if k != "scopeId"},
    ]
    for body in bad:
        error(http.post("/api/v1/exports", json=body, headers=auth), 400, "validation_error")
    assert ok(http.get("/api/v1/exports", headers=auth))["data"] == []
    error(http.post("/api/v1/exports", json=good, headers=reader), 403, "access_denied")
    created = ok(http.post("/api/v1/exports", json=good, headers=auth), 201)
    assert ok(http.get(f"/api/v1/exports/{created['id']}", headers=reader))["id"] == created["id"]
    error(http.delete(f"/api/v1/exports/{created['id']}", headers=reader), 403, "access_denied")
    error(
        http.get("/api/v1/exports/01900000-0000-7000-8000-000000000000", headers=auth),
        404,
        "not_found",
    )


def test_alerts_and_events_are_exported(
    http: httpx.Client, tenants: Any, raise_limits: Any
) -> None:
    """A rule fires for the device (and the alert is resolved by hand); the export with every
    include has each of the device's alerts and timeline entries, as alerting lists them."""
    org = tenants.org("exports-alerts")
    raise_limits(org["id"])
    auth = bearer(tenants.key(org["id"])["key"])
    device = ok(http.post("/api/v1/devices", json={"name": "boiler"}, headers=auth), 201)
    other = ok(http.post("/api/v1/devices", json={"name": "other"}, headers=auth), 201)
    rule = ok(
        http.post(
            "/api/v1/alert-rules",
            json={
                "name": "boiler too hot",
                "scope": {"type": "ORGANIZATION"},
                "sensor": "temp",
                "condition": {"op": ">", "threshold": 90},
                "severity": "CRITICAL",
            },
            headers=auth,
        ),
        201,
    )
    now = datetime.now(UTC).replace(microsecond=0)
    sent = [(device["id"], 0, 70.0), (device["id"], 1, 95.5), (other["id"], 1, 99.0)]
    body = {
        "readings": [
            {
                "deviceId": d,
                "sensor": "temp",
                "ts": iso(now - timedelta(seconds=60 - s)),
                "value": v,
            }
            for d, s, v in sent
        ]
    }

    def send() -> bool:
        resp = http.post("/api/v1/readings/batch", json=body, headers=auth)
        assert resp.status_code == 202, resp.text
        return bool(resp.json()["accepted"] == len(body["readings"]))

    assert eventually(send), "the readings service never learnt of the devices"

    def listed(path: str, device_id: str) -> list[dict[str, Any]]:
        got = ok(
            http.get(
                path,
                params={"$filter": f"deviceId eq {device_id}", "limit": "100"},
                headers=auth,
            )
        )
        return list(got["data"])

    [alert] = eventually(lambda: listed("/api/v1/alerts", device["id"]))
    assert alert["ruleId"] == rule["id"] and alert["trigger"]["value"] == 95.5
    assert eventually(lambda: len(listed("/api/v1/alerts", other["id"])) == 1)
    done = http.post(f"/api/v1/alerts/{alert['id']}/resolve", json={}, headers=auth)
    assert done.status_code == 200, done.text

    def timeline_has_both() -> bool:
        kinds = [e["type"] for e in listed("/api/v1/events", device["id"])]
        return {"alerting.AlertOpened.v1", "alerting.AlertResolved.v1"} <= set(kinds)

    assert eventually(timeline_has_both)
    window = {"from": iso(now - timedelta(hours=1)), "to": iso(now + timedelta(hours=1))}
    for fmt in ("CSV", "NDJSON"):
        created = ok(
            http.post(
                "/api/v1/exports",
                json={
                    "scopeType": "DEVICE",
                    "scopeId": device["id"],
                    **window,
                    "includes": ["READINGS", "ANNOTATIONS", "ALERTS", "EVENTS"],
                    "format": fmt,
                },
                headers=auth,
            ),
            201,
        )

        def ready(export_id: str = created["id"]) -> Any:
            view = ok(http.get(f"/api/v1/exports/{export_id}", headers=auth))
            assert view["status"] in ("PENDING", "RUNNING", "READY"), view
            return view if view["status"] == "READY" else None

        view = eventually(ready, timeout=60)
        assert view, "the export never became READY"
        response = fetch(http, view["downloadUrl"])
        assert response.status_code == 200, response.text
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        alerts = listed("/api/v1/alerts", device["id"])
        events = listed("/api/v1/events", device["id"])
        assert [a["id"] for a in alerts] == [alert["id"]] and alerts[0]["status"] == "RESOLVED"
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["counts"] == {
            "readings": 2,
            "annotations": 0,
            "alerts": 1,
            "events": len(events),
        }
        for member in manifest["files"]:
            assert hashlib.sha256(archive.read(member["name"])).hexdigest() == member["sha256"]
        ext = fmt.lower()
        got_alerts = archive.read(f"alerts.{ext}").decode()
        got_events = archive.read(f"events.{ext}").decode()
        if fmt == "NDJSON":
            assert [json.loads(line) for line in got_alerts.splitlines()] == alerts
            assert [json.loads(line) for line in got_events.splitlines()] == events
            continue
        assert list(csv.DictReader(io.StringIO(got_alerts))) == [
            {
                "id": a["id"],
                "ruleId": a["ruleId"],
                "ruleVersion": str(a["ruleVersion"]),
                "deviceId": a["deviceId"],
                "sensor": a["sensor"],
                "status": a["status"],
                "severity": a["severity"],
                "openedAt": a["openedAt"],
                "acknowledgedAt": a.get("acknowledgedAt") or "",
                "resolvedAt": a.get("resolvedAt") or "",
                "triggerValue": repr(a["trigger"]["value"]),
                "triggerTs": a["trigger"]["ts"],
            }
            for a in alerts
        ]
        assert list(csv.DictReader(io.StringIO(got_events))) == [
            {
                "id": e["id"],
                "ts": e["ts"],
                "type": e["type"],
                "deviceId": e["deviceId"],
                "alertId": e.get("alertId") or "",
                "summary": e["summary"],
                "data": json.dumps(e.get("data", {}), separators=(",", ":"), ensure_ascii=False),
            }
            for e in events
        ]
