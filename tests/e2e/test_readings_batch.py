"""Readings through the gateway (decisions 58 and 59): HTTP batch ingest with per-item
rejections, a retried batch stored once, another organization's device refused; the
quarantine listed, replayed after a fix and discarded; seq gaps on the device's health."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import nats
import pytest
from nats.js.errors import NotFoundError

from outpost_contracts import subjects
from outpost_contracts.registry import SensorDeclared
from outpost_devkit.dev.stack import DevStack
from tests.e2e._poll import eventually

pytestmark = pytest.mark.e2e

BATCH = "/api/v1/readings/batch"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ts(seconds: int) -> str:
    return (START + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def new_device(http: httpx.Client, key: str, name: str) -> dict[str, Any]:
    made = http.post("/api/v1/devices", json={"name": name}, headers=bearer(key))
    assert made.status_code == 201, made.text
    return dict(made.json())


def registry_knows_sensor(stack: DevStack, org_id: str) -> None:
    """Wait until readings' local registry has applied the organization's latest sensor
    declaration: the ``readings-devices`` consumer's ack floor is past that event in DEVICES.
    Forced, not a guessed second (a loaded machine may take several)."""
    subject = subjects.event(SensorDeclared.__struct_config__.tag, org_id)

    async def caught_up() -> bool:
        nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
        try:
            js = nc.jetstream()
            try:
                declared = await js.get_last_msg("DEVICES", subject)
            except NotFoundError:
                return False  # the outbox relay has not published it yet
            info = await js.consumer_info("DEVICES", "readings-devices")
            return bool(declared.seq is not None and info.ack_floor.stream_seq >= declared.seq)
        finally:
            await nc.close()

    assert eventually(lambda: asyncio.run(caught_up()), timeout=60), "readings never learnt it"


def declare(
    http: httpx.Client, key: str, device_id: str, sensor: str, low: float, high: float
) -> dict[str, Any]:
    made = http.post(
        "/api/v1/sensors",
        json={
            "deviceId": device_id,
            "key": sensor,
            "valueType": "NUMBER",
            "validRange": {"min": low, "max": high},
        },
        headers=bearer(key),
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def readings_of(http: httpx.Client, key: str, device_id: str) -> list[dict[str, Any]]:
    page = http.get(
        "/api/v1/readings", params={"deviceId": device_id, "limit": 100}, headers=bearer(key)
    )
    assert page.status_code == 200, page.text
    return list(page.json()["data"])


def test_a_batch_with_good_and_bad_items(
    http: httpx.Client, tenants: Any, raise_limits: Any, stack: DevStack
) -> None:
    org, other = tenants.org("batch"), tenants.org("batch-other")
    raise_limits(org["id"])
    key, other_key = tenants.key(org["id"])["key"], tenants.key(other["id"])["key"]
    device = new_device(http, key, "meter-1")
    foreign = new_device(http, other_key, "meter-x")
    declare(http, key, device["id"], "temp", -40, 85)
    # The readings service's registry learns of the sensor from the devices service's events.
    registry_knows_sensor(stack, org["id"])

    far = (datetime.now(UTC) + timedelta(days=2)).isoformat().replace("+00:00", "Z")
    body = {
        "readings": [
            {"deviceId": device["id"], "sensor": "temp", "ts": ts(1), "value": 21.5},
            {"deviceId": device["id"], "sensor": "temp", "ts": ts(2), "value": 500},
            {"deviceId": foreign["id"], "sensor": "temp", "ts": ts(3), "value": 1},
            {"deviceId": device["id"], "sensor": "temp", "ts": far, "value": 1},
            {"deviceId": device["id"], "sensor": "temp", "ts": ts(4), "value": "warm"},
            {"deviceId": "not-a-uuid", "sensor": "temp", "ts": ts(5), "value": 1},
            {"deviceId": device["id"], "sensor": "temp", "ts": ts(6), "value": 22.5},
        ]
    }

    def send() -> dict[str, Any]:
        resp = http.post(BATCH, json=body, headers=bearer(key))
        assert resp.status_code == 202, resp.text
        return dict(resp.json())

    answer = eventually(lambda: (a := send())["rejected"][1:2] and a)  # the registry caught up
    reasons = {r["index"]: r["reason"] for r in answer["rejected"]}
    assert answer["accepted"] == 2
    assert reasons == {
        1: "out_of_range",
        2: "unknown_device",  # another organization's device: refused, never stored
        3: "ts_in_future",
        4: "wrong_type",
        5: "invalid_item",
    }
    stored = eventually(lambda: len(r := readings_of(http, key, device["id"])) >= 2 and r)
    assert [(r["ts"], r["value"]) for r in stored] == [(ts(1), 21.5), (ts(6), 22.5)]

    # The same request again (a client's retry): accepted again, stored once.
    assert send()["accepted"] == 2
    time.sleep(2.0)
    assert len(readings_of(http, key, device["id"])) == 2
    # Nothing of the other organization's device was stored, and its owner sees that.
    assert readings_of(http, other_key, foreign["id"]) == []


def test_batch_bounds_and_scope(http: httpx.Client, tenants: Any) -> None:
    org = tenants.org("batch-bounds")
    key = tenants.key(org["id"])["key"]
    too_many = {"readings": [{}] * 10_001}
    resp = http.post(BATCH, json=too_many, headers=bearer(key))
    assert resp.status_code == 400 and resp.json()["type"] == "validation_error", resp.text
    assert "readings" in [f["name"] for f in resp.json()["fields"]]
    reader = tenants.key(org["id"], ["readings:read", "devices:read"])["key"]
    resp = http.post(BATCH, json={"readings": []}, headers=bearer(reader))
    assert resp.status_code == 403 and resp.json()["type"] == "access_denied"
    resp = http.post(BATCH, json={"readings": []}, headers=bearer(key))
    assert resp.status_code == 202 and resp.json() == {"accepted": 0, "rejected": []}


def test_quarantine_replay_discard_and_seq_gaps_on_health(
    http: httpx.Client, tenants: Any, raise_limits: Any, stack: DevStack
) -> None:
    org = tenants.org("quarantine")
    raise_limits(org["id"])
    key = tenants.key(org["id"])["key"]
    device = new_device(http, key, "meter-q")
    sensor = declare(http, key, device["id"], "temp", 0, 10)
    registry_knows_sensor(stack, org["id"])  # from devices' events

    # The device's telemetry over the broker: seq 1, 2, 5 (3 and 4 never came); 50 and 60
    # are outside the sensor's range and are quarantined.
    async def publish() -> None:
        nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
        js = nc.jetstream()
        subject = subjects.telemetry(org["id"], device["id"])
        for seq, second, value in ((1, 1, 5), (2, 2, 50), (5, 5, 60)):
            message = {
                "seq": seq,
                "readings": [{"sensor": "temp", "ts": ts(second), "value": value}],
            }
            await js.publish(subject, msgspec.json.encode(message))
        await nc.close()

    asyncio.run(publish())

    def quarantined() -> list[dict[str, Any]]:
        page = http.get(
            "/api/v1/admin/quarantine", params={"deviceId": device["id"]}, headers=bearer(key)
        )
        assert page.status_code == 200, page.text
        assert page.json()["object"] == "list"
        return list(page.json()["data"])

    rows = eventually(lambda: len(q := quarantined()) == 2 and q)
    assert rows, "nothing was quarantined"
    assert {r["reason"] for r in rows} == {"out_of_range"}
    by_ts = {r["ts"]: r for r in rows}
    # The collection conventions: field filters, OData, totalCount.
    counted = http.get(
        "/api/v1/admin/quarantine",
        params={"reason__in": "out_of_range,unknown_sensor", "include": "totalCount"},
        headers=bearer(key),
    ).json()
    assert counted["totalCount"] == 2 and len(counted["data"]) == 2
    odata = http.get(
        "/api/v1/admin/quarantine",
        params={"$filter": f"deviceId eq '{device['id']}' and ts gt {ts(3)}", "$top": "5"},
        headers=bearer(key),
    )
    assert odata.status_code == 200, odata.text
    assert [r["ts"] for r in odata.json()["data"]] == [ts(5)]
    unknown = http.get("/api/v1/admin/quarantine", params={"payload": "x"}, headers=bearer(key))
    assert unknown.status_code == 400 and unknown.json()["type"] == "validation_error"

    health = eventually(
        lambda: (
            (
                h := http.get(f"/api/v1/devices/{device['id']}/health", headers=bearer(key)).json()
            ).get("seqGaps")
            == 2
            and h
        )
    )
    assert health, "the device's health never showed the seq gap"
    assert (health["lastSeq"], health["quarantined"]) == (5, 2)

    # Another organization neither sees nor touches them.
    stranger = tenants.key(tenants.org("quarantine-other")["id"])["key"]
    theirs = http.get("/api/v1/admin/quarantine", headers=bearer(stranger))
    assert theirs.status_code == 200 and theirs.json()["data"] == []
    ids = {"ids": [r["id"] for r in rows]}
    for action in ("replay", "discard"):
        resp = http.post(f"/api/v1/admin/quarantine/{action}", json=ids, headers=bearer(stranger))
        assert resp.status_code == 200 and resp.json()["notFound"] == 2, resp.text
    assert len(quarantined()) == 2

    # Widen the range so that 50 is valid, then replay that row: it is stored.
    patched = http.patch(
        f"/api/v1/sensors/{sensor['id']}",
        json={"validRange": {"min": 0, "max": 55}},
        headers=bearer(key),
    )
    assert patched.status_code == 200, patched.text

    def replay() -> dict[str, Any]:
        resp = http.post(
            "/api/v1/admin/quarantine/replay",
            json={"ids": [by_ts[ts(2)]["id"]]},
            headers=bearer(key),
        )
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    replayed = eventually(lambda: (r := replay())["stored"] == 1 and r)
    assert replayed, "the replay never stored the reading"
    values = [(r["ts"], r["value"]) for r in readings_of(http, key, device["id"])]
    assert values == [(ts(1), 5), (ts(2), 50)]

    # 60 is still out of range: discard it.
    resp = http.post(
        "/api/v1/admin/quarantine/discard",
        json={"ids": [by_ts[ts(5)]["id"]]},
        headers=bearer(key),
    )
    assert resp.status_code == 200 and resp.json()["discarded"] == 1, resp.text
    assert quarantined() == []
    health = http.get(f"/api/v1/devices/{device['id']}/health", headers=bearer(key)).json()
    assert (health["seqGaps"], health["quarantined"]) == (2, 0)


def test_a_full_batch_of_ten_thousand_readings(
    http: httpx.Client, tenants: Any, raise_limits: Any
) -> None:
    org = tenants.org("batch-full")
    raise_limits(org["id"])
    key = tenants.key(org["id"])["key"]
    device = new_device(http, key, "logger-1")
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)

    def at(i: int) -> str:
        return (base + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")

    body = {
        "readings": [
            {"deviceId": device["id"], "sensor": "load", "ts": at(i), "value": i % 100}
            for i in range(10_000)
        ]
    }
    answer = eventually(
        lambda: (
            (r := http.post(BATCH, json=body, headers=bearer(key))).status_code == 202
            and r.json()["accepted"] == 10_000
            and r.json()
        )
    )
    assert answer and answer["rejected"] == [], answer

    def newest() -> list[dict[str, Any]]:
        page = http.get(
            "/api/v1/readings",
            params={"deviceId": device["id"], "order": "DESC", "limit": 1},
            headers=bearer(key),
        )
        return list(page.json()["data"])

    last = eventually(lambda: (n := newest()) and n[0]["ts"] == at(9_999) and n)
    assert last, "the batch's newest reading never became readable"
    # Readings sent over HTTP are not the device seen on the broker (presence flushes every
    # 5 s): it stays offline and never seen; its seq numbering is untouched.
    time.sleep(6)
    health = http.get(f"/api/v1/devices/{device['id']}/health", headers=bearer(key)).json()
    assert (health["online"], health["lastSeenAt"]) == (False, None), health
    assert (health["lastSeq"], health["seqGaps"]) == (None, 0), health
