"""Annotations, annotation classes and readings settings through the gateway (decision 61):
create a class, annotate, list with the overlap window and filters, ETag/If-Match and 412,
a class in use (409), another organization's ids (404), settings GET/PUT switching what the
HTTP batch does with an undeclared sensor, and the scopes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e._keys import scoped_key

pytestmark = pytest.mark.e2e

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = dict(response.json())
    assert body["object"] == "error" and body["type"] == kind, body
    return body


def test_classes_annotations_conventions_and_isolation(
    http: httpx.Client, tenants: Any, raise_limits: Any
) -> None:
    org, other = tenants.org("annot"), tenants.org("annot-other")
    raise_limits(org["id"])
    key = bearer(tenants.key(org["id"])["key"])
    their_key = bearer(tenants.key(other["id"])["key"])
    device = ok(http.post("/api/v1/devices", json={"name": "pump-1"}, headers=key), 201)
    klass = ok(
        http.post(
            "/api/v1/annotation-classes",
            json={"name": "maintenance", "colour": "#ff8800", "description": "planned work"},
            headers=key,
        ),
        201,
    )
    assert klass["object"] == "annotationClass" and klass["version"] == 1
    error(
        http.post("/api/v1/annotation-classes", json={"name": "maintenance"}, headers=key),
        409,
        "conflict",
    )
    error(
        http.post("/api/v1/annotation-classes", json={"name": "x", "colour": "red"}, headers=key),
        400,
        "validation_error",
    )
    error(
        http.post("/api/v1/annotation-classes", json={"name": "x", "org": "y"}, headers=key),
        400,
        "validation_error",
    )

    def annotate(start: float, end: float, **extra: Any) -> dict[str, Any]:
        body = {
            "deviceId": device["id"],
            "classId": klass["id"],
            "from": at(start),
            "to": at(end),
            **extra,
        }
        return dict(ok(http.post("/api/v1/annotations", json=body, headers=key), 201))

    early = annotate(0, 1, text="early", sensor="temp")
    middle = annotate(2, 3, text="middle", tags=[{"key": "crew", "value": "b"}])
    annotate(4, 4, text="instant")
    assert early["from"] == at(0) and early["object"] == "annotation"
    # from after to, an unknown device: validation errors that change nothing
    bad = {"deviceId": device["id"], "classId": klass["id"], "from": at(2), "to": at(1)}
    error(http.post("/api/v1/annotations", json=bad, headers=key), 400, "validation_error")
    stranger = ok(http.post("/api/v1/devices", json={"name": "theirs"}, headers=their_key), 201)
    foreign = {**bad, "from": at(0), "deviceId": stranger["id"]}
    assert (
        error(http.post("/api/v1/annotations", json=foreign, headers=key), 400, "validation_error")[
            "fields"
        ][0]["name"]
        == "deviceId"
    )

    def texts(path: str, **params: Any) -> list[str]:
        page = ok(http.get(path, params=params, headers=key))
        return [a["text"] for a in page["data"]]

    # the overlap window, the device's own route, field filters and OData
    assert texts("/api/v1/annotations", **{"from": at(2.5), "to": at(4)}) == ["middle"]
    assert texts("/api/v1/annotations", **{"from": at(0.5)}) == ["early", "middle", "instant"]
    assert texts(f"/api/v1/devices/{device['id']}/annotations", to="20000101T000000Z") == []
    assert texts("/api/v1/annotations", sensor="temp") == ["early"]
    assert texts("/api/v1/annotations", **{"$filter": "tags/any(t: t/key eq 'crew')"}) == ["middle"]
    assert texts("/api/v1/annotations", **{"$orderby": "from desc", "$top": "2"}) == [
        "instant",
        "middle",
    ]
    page = ok(
        http.get("/api/v1/annotations", params={"limit": 2, "include": "totalCount"}, headers=key)
    )
    assert page["totalCount"] == 3 and page["hasMore"] and page["object"] == "list"
    error(
        http.get("/api/v1/annotations", params={"from": "yesterday"}, headers=key),
        400,
        "validation_error",
    )
    error(
        http.get("/api/v1/annotations", params={"nope": "1"}, headers=key), 400, "validation_error"
    )
    selected = ok(
        http.get(f"/api/v1/annotations/{early['id']}", params={"$select": "text"}, headers=key)
    )
    assert set(selected) <= {"id", "text"}

    # ETag and If-Match
    got = http.get(f"/api/v1/annotations/{middle['id']}", headers=key)
    assert got.headers["etag"] == '"1"'
    changed = http.patch(
        f"/api/v1/annotations/{middle['id']}",
        json={"text": "middle!"},
        headers={**key, "If-Match": '"1"'},
    )
    assert ok(changed)["version"] == 2 and changed.headers["etag"] == '"2"'
    error(
        http.patch(
            f"/api/v1/annotations/{middle['id']}",
            json={"text": "stale"},
            headers={**key, "If-Match": '"1"'},
        ),
        412,
        "precondition_failed",
    )
    error(
        http.patch(
            f"/api/v1/annotations/{middle['id']}", json={"deviceId": stranger["id"]}, headers=key
        ),
        400,
        "validation_error",
    )
    # a class in use is not deleted; another organization sees nothing of ours
    error(http.delete(f"/api/v1/annotation-classes/{klass['id']}", headers=key), 409, "conflict")
    for path in (
        f"/api/v1/annotations/{early['id']}",
        f"/api/v1/annotation-classes/{klass['id']}",
        f"/api/v1/devices/{device['id']}/annotations",
    ):
        error(http.get(path, headers=their_key), 404, "not_found")
    error(
        http.patch(f"/api/v1/annotations/{early['id']}", json={"text": "x"}, headers=their_key),
        404,
        "not_found",
    )
    error(
        http.delete(f"/api/v1/annotation-classes/{klass['id']}", headers=their_key),
        404,
        "not_found",
    )
    assert ok(http.get("/api/v1/annotations", headers=their_key))["data"] == []
    # the changes are in the audit log
    log = ok(
        http.get("/api/v1/audit-log", params={"type": "readings.AnnotationCreated.v1"}, headers=key)
    )
    assert len(log["data"]) == 3


def test_settings_switch_auto_declare_and_scopes(
    http: httpx.Client, tenants: Any, raise_limits: Any, platform: dict[str, Any]
) -> None:
    org = tenants.org("settings")
    raise_limits(org["id"])
    key = bearer(tenants.key(org["id"])["key"])
    device = ok(http.post("/api/v1/devices", json={"name": "meter"}, headers=key), 201)
    got = http.get("/api/v1/readings/settings", headers=key)
    body = ok(got)
    assert body["autoDeclareSensors"] is True and body["retentionDefault"] is True
    assert body["version"] == 0 and got.headers["etag"] == '"0"'
    for bad in (
        {"autoDeclareSensors": False, "retentionDays": 0},
        {"autoDeclareSensors": False, "retentionDays": 3651},
        {"autoDeclareSensors": False},
        {"autoDeclareSensors": False, "retentionDays": 30, "orgId": org["id"]},
    ):
        error(http.put("/api/v1/readings/settings", json=bad, headers=key), 400, "validation_error")
    assert ok(http.get("/api/v1/readings/settings", headers=key))["version"] == 0

    def batch(sensor: str) -> dict[str, Any]:
        item = {"deviceId": device["id"], "sensor": sensor, "ts": at(1), "value": 1.5}
        return dict(
            ok(http.post("/api/v1/readings/batch", json={"readings": [item]}, headers=key), 202)
        )

    # Once a first reading is readable, readings' registry knows the device: from then on the
    # batch's answer is the organization's setting, not the "registered a moment ago" path.
    assert batch("first") == {"accepted": 1, "rejected": []}
    deadline = time.monotonic() + 60
    params = {"deviceId": device["id"], "sensor": "first"}
    while not ok(http.get("/api/v1/readings", params=params, headers=key))["data"]:
        assert time.monotonic() < deadline, "the first reading was not stored within 60 s"
        time.sleep(0.2)
    off = http.put(
        "/api/v1/readings/settings",
        json={"autoDeclareSensors": False, "retentionDays": 30},
        headers={**key, "If-Match": '"0"'},
    )
    assert ok(off)["retentionDays"] == 30 and off.headers["etag"] == '"1"'
    error(
        http.put(
            "/api/v1/readings/settings",
            json={"autoDeclareSensors": False, "retentionDays": 31},
            headers={**key, "If-Match": '"0"'},
        ),
        412,
        "precondition_failed",
    )
    refused = batch("undeclared")
    assert refused["accepted"] == 0 and refused["rejected"][0]["reason"] == "unknown_sensor"
    on = ok(
        http.put(
            "/api/v1/readings/settings",
            json={"autoDeclareSensors": True, "retentionDays": None},
            headers=key,
        )
    )
    assert on["retentionDefault"] is True and on["version"] == 2
    assert batch("undeclared") == {"accepted": 1, "rejected": []}
    log = ok(
        http.get(
            "/api/v1/audit-log", params={"type": "readings.ReadingsSettingsChanged.v1"}, headers=key
        )
    )
    assert len(log["data"]) == 2

    # scopes: annotations are readings:*, settings their own scope
    reader = bearer(scoped_key(http, platform, org["id"], ["readings:read"]))
    member = bearer(scoped_key(http, platform, org["id"], ["readings:*", "devices:*"]))
    error(
        http.post("/api/v1/annotation-classes", json={"name": "r"}, headers=reader),
        403,
        "access_denied",
    )
    assert ok(http.get("/api/v1/annotation-classes", headers=reader))["object"] == "list"
    error(http.get("/api/v1/readings/settings", headers=reader), 403, "access_denied")
    ok(http.post("/api/v1/annotation-classes", json={"name": "m"}, headers=member), 201)
    error(
        http.put(
            "/api/v1/readings/settings",
            json={"autoDeclareSensors": False, "retentionDays": 7},
            headers=member,
        ),
        403,
        "access_denied",
    )
    # (a viewer's `*:read` role covers it too; API keys name scopes one by one)
    settings_reader = bearer(scoped_key(http, platform, org["id"], ["readings-settings:read"]))
    assert ok(http.get("/api/v1/readings/settings", headers=settings_reader))["version"] == 2
    error(
        http.put(
            "/api/v1/readings/settings",
            json={"autoDeclareSensors": True, "retentionDays": 7},
            headers=settings_reader,
        ),
        403,
        "access_denied",
    )
