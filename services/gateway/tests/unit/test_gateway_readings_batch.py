"""``POST /api/v1/readings/batch`` at the gateway (decision 59): the body's bounds, the slices
sent to readings with their place in the request, the 202 answer, the scope."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from gateway_testkit import NOW, FakeBackend, World, bearer, build_world
from litestar import Litestar
from litestar.testing import TestClient

from outpost_contracts.readings import (
    INGEST_READINGS,
    MAX_BATCH_READINGS,
    BatchOutcome,
    BatchRejection,
    IngestReadings,
)
from outpost_gateway.bootstrap import create_app
from outpost_gateway.domain.policy import rate_category
from outpost_gateway.domain.ratelimit import Category
from outpost_gateway.entrypoints import readings
from outpost_gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

URL = "/api/v1/readings/batch"


def item(i: int) -> dict[str, Any]:
    return {"deviceId": str(uuid4()), "sensor": "t", "ts": "2026-01-01T00:00:00Z", "value": i}


def refuse_odd(_ctx: Any, body: IngestReadings) -> BatchOutcome:
    rejected = [
        BatchRejection(index=body.first_index + j, reason="out_of_range")
        for j, it in enumerate(body.readings)
        if it.get("value", 0) % 2
    ]
    return BatchOutcome(accepted=len(body.readings) - len(rejected), rejected=rejected)


@pytest.fixture
def env() -> Iterator[tuple[TestClient[Litestar], FakeBackend, World]]:
    world = build_world()
    backend = FakeBackend().on(INGEST_READINGS, refuse_odd)
    app = create_app(
        GatewaySettings(max_body_bytes=4 * 1024 * 1024), backend, world.cache, clock=lambda: NOW
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, backend, world


def test_a_batch_is_202_with_accepted_and_rejected_by_index(env: Any) -> None:
    client, backend, world = env
    resp = client.post(
        URL, json={"readings": [item(i) for i in range(5)]}, headers=bearer(world.full)
    )
    assert resp.status_code == 202, resp.text
    assert resp.json() == {
        "accepted": 3,
        "rejected": [
            {"index": 1, "reason": "out_of_range", "detail": ""},
            {"index": 3, "reason": "out_of_range", "detail": ""},
        ],
    }
    assert backend.last.ctx.org_id == world.org_a  # the credential's organization
    assert backend.last.body.first_index == 0


def test_a_large_batch_goes_to_readings_in_slices_that_keep_their_indexes(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, backend, world = env
    monkeypatch.setattr(readings, "SLICE_BYTES", 1000)
    resp = client.post(
        URL, json={"readings": [item(i) for i in range(40)]}, headers=bearer(world.full)
    )
    assert resp.status_code == 202, resp.text
    assert len(backend.calls) > 1
    firsts = [c.body.first_index for c in backend.calls]
    sizes = [len(c.body.readings) for c in backend.calls]
    assert firsts == [sum(sizes[:n]) for n in range(len(sizes))] and sum(sizes) == 40
    body = resp.json()
    assert body["accepted"] == 20
    assert [r["index"] for r in body["rejected"]] == list(range(1, 40, 2))


def test_slices_cover_the_batch_in_order() -> None:
    items = [{"v": "x" * (i % 7)} for i in range(100)]
    cut = readings.slices(items)
    assert [it for _, part in cut for it in part] == items
    assert readings.slices([]) == []


def test_more_than_the_maximum_is_a_validation_error_naming_readings(env: Any) -> None:
    client, backend, world = env
    body = {"readings": [{}] * (MAX_BATCH_READINGS + 1)}
    resp = client.post(URL, json=body, headers=bearer(world.full))
    assert resp.status_code == 400, resp.text
    assert resp.json()["type"] == "validation_error"
    assert "readings" in [f["name"] for f in resp.json()["fields"]]
    assert backend.calls == []


def test_unknown_fields_and_non_objects_are_refused_whole(env: Any) -> None:
    client, backend, world = env
    h = bearer(world.full)
    assert client.post(URL, json={"readings": [], "x": 1}, headers=h).status_code == 400
    assert client.post(URL, json={"readings": [5]}, headers=h).status_code == 400
    assert backend.calls == []


def test_the_route_needs_readings_write_and_is_a_write(env: Any) -> None:
    client, backend, world = env
    resp = client.post(URL, json={"readings": [item(0)]}, headers=bearer(world.devices_all))
    assert resp.status_code == 403 and resp.json()["type"] == "access_denied"
    assert rate_category("POST", URL) is Category.WRITE
    assert backend.calls == []


# --- the quarantine routes ------------------------------------------------------------------


def test_quarantine_routes_pass_filters_and_ids_to_readings(env: Any) -> None:
    from outpost_contracts.query import Page
    from outpost_contracts.readings import (
        DISCARD_QUARANTINE,
        LIST_QUARANTINE,
        REPLAY_QUARANTINE,
        QuarantineOutcome,
    )

    client, backend, world = env
    backend.on(LIST_QUARANTINE, Page(data=[], limit=5, order="DESC", has_more=False))
    backend.on(REPLAY_QUARANTINE, QuarantineOutcome(stored=1, not_found=1))
    backend.on(DISCARD_QUARANTINE, QuarantineOutcome(discarded=2))
    h = bearer(world.full)
    device = uuid4()
    resp = client.get(
        "/api/v1/admin/quarantine",
        params={
            "deviceId": str(device),
            "reason__in": "out_of_range,unknown_sensor",
            "limit": 5,
            "order": "DESC",
            "include": "totalCount",
        },
        headers=h,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["object"] == "list"
    q = backend.last.body.query  # the collection conventions, compiled to one filter tree
    assert (q.limit, q.order, q.include_total) == (5, "DESC", True)
    assert "deviceId" in str(q.filter) and "reason" in str(q.filter)
    assert backend.last.ctx.org_id == world.org_a  # an organization sees its own
    ids = [str(uuid4()), str(uuid4())]
    resp = client.post("/api/v1/admin/quarantine/replay", json={"ids": ids}, headers=h)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"stored": 1, "stillRefused": 0, "discarded": 0, "notFound": 1}
    assert [str(i) for i in backend.last.body.ids] == ids
    resp = client.post("/api/v1/admin/quarantine/discard", json={"ids": ids}, headers=h)
    assert resp.status_code == 200 and resp.json()["discarded"] == 2
    bad = client.post("/api/v1/admin/quarantine/discard", json={"ids": []}, headers=h)
    assert bad.status_code == 400 and bad.json()["type"] == "validation_error"


def test_quarantine_routes_need_the_quarantine_scopes(env: Any) -> None:
    client, backend, world = env
    for key in (world.devices_all, world.reader):
        h = bearer(key)
        assert client.get("/api/v1/admin/quarantine", headers=h).status_code == 403
        resp = client.post(
            "/api/v1/admin/quarantine/replay", json={"ids": [str(uuid4())]}, headers=h
        )
        assert resp.status_code == 403
    assert backend.calls == []


# --- a device's health: presence and telemetry numbering, composed by the gateway ----------


def test_device_health_composes_presence_and_seq_gaps(env: Any) -> None:
    from outpost_contracts.errors import ServiceUnavailable
    from outpost_contracts.presence import GET_DEVICE_HEALTH, DeviceHealth
    from outpost_contracts.readings import GET_TELEMETRY_HEALTH, TelemetryHealth

    client, backend, world = env
    device = uuid4()
    backend.on(
        GET_DEVICE_HEALTH, DeviceHealth(device_id=device, online=True, connections=1, version=4)
    )
    backend.on(
        GET_TELEMETRY_HEALTH,
        TelemetryHealth(device_id=device, last_seq=9, seq_gaps=3, seq_resets=1, quarantined=2),
    )
    h = bearer(world.full)
    resp = client.get(f"/api/v1/devices/{device}/health", headers=h)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["online"], body["lastSeq"], body["seqGaps"], body["seqResets"]) == (True, 9, 3, 1)
    assert body["quarantined"] == 2 and resp.headers["etag"] == '"4"'
    assert {c.op.name for c in backend.calls} == {"GetDeviceHealth", "GetTelemetryHealth"}
    picked = client.get(f"/api/v1/devices/{device}/health?$select=seqGaps", headers=h)
    assert picked.status_code == 200 and picked.json() == {"seqGaps": 3}

    backend.on(GET_TELEMETRY_HEALTH, ServiceUnavailable("readings did not answer"))
    resp = client.get(f"/api/v1/devices/{device}/health", headers=h)
    assert resp.status_code == 200, resp.text
    assert resp.json()["online"] is True and resp.json()["seqGaps"] is None


def test_the_batch_route_has_its_own_body_limit() -> None:
    world = build_world()
    backend = FakeBackend().on(INGEST_READINGS, refuse_odd)
    # Every other route refuses bodies over 4 KiB here; a full batch still fits.
    app = create_app(GatewaySettings(max_body_bytes=4096), backend, world.cache, clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=False) as client:
        h = bearer(world.full)
        full = {"readings": [item(2 * i) for i in range(MAX_BATCH_READINGS)]}
        resp = client.post(URL, json=full, headers=h)
        assert resp.status_code == 202, resp.text[:300]
        assert resp.json()["accepted"] == MAX_BATCH_READINGS
        huge = {"readings": [{**item(0), "sensor": "x" * 1000} for _ in range(5000)]}
        resp = client.post(URL, json=huge, headers=h)
        assert resp.status_code == 413 and resp.json()["type"] == "payload_too_large"
        big_device = client.post(
            "/api/v1/devices", json={"name": "a", "attributes": {"x": "y" * 8000}}, headers=h
        )
        assert big_device.status_code == 413
