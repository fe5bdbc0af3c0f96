"""Presence as a user sees it (ADR 0055): real devices over real TLS (nats-py and
paho-mqtt) flip ``online`` on the device and on ``/health``; DeviceConnected and
DeviceDisconnected reach the DEVICES stream; a quick reconnect stays online; telemetry moves
``lastSeenAt``; presence neither changes the device's ETag nor enters the audit log."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from outpost_contracts import subjects
from outpost_devkit.dev.stack import DevStack
from tests.e2e._devices import Device, bearer, connect, mqtt_session, provision

pytestmark = pytest.mark.e2e


@pytest.fixture
def org(tenants: Any, raise_limits: Any) -> tuple[str, dict[str, str]]:
    org = tenants.org("presence")
    raise_limits(org["id"])
    return org["id"], bearer(tenants.key(org["id"])["key"])


def poll(probe: Callable[[], Any], ok: Callable[[Any], bool], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        got = probe()
        if ok(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def device_of(http: httpx.Client, auth: dict[str, str], device: Device) -> dict[str, Any]:
    resp = http.get(f"/api/v1/devices/{device.id}", headers=auth)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def health_of(http: httpx.Client, auth: dict[str, str], device: Device) -> dict[str, Any]:
    resp = http.get(f"/api/v1/devices/{device.id}/health", headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.headers["etag"] == f'"{resp.json()["version"]}"'
    return dict(resp.json())


def wait_online(
    http: httpx.Client, auth: dict[str, str], device: Device, online: bool
) -> dict[str, Any]:
    view = poll(lambda: device_of(http, auth, device), lambda v: v["online"] is online)
    assert view["online"] is online, view
    return view


def presence_events(stack: DevStack, org_id: str, device_id: str) -> list[dict[str, Any]]:
    """The presence events of a device on the DEVICES stream, oldest first."""

    async def run() -> list[dict[str, Any]]:
        nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
        found: list[dict[str, Any]] = []
        try:
            js = nc.jetstream()
            for name in ("DeviceConnected", "DeviceDisconnected"):
                sub = await js.subscribe(
                    f"outpost.evt.devices.{org_id}.{name}.*", ordered_consumer=True
                )
                try:
                    while True:
                        msg = await sub.next_msg(timeout=0.5)
                        body = json.loads(msg.data)
                        if body["streamId"] == device_id:
                            found.append(body)
                except (TimeoutError, nats.errors.TimeoutError):
                    pass
                finally:
                    await sub.unsubscribe()
        finally:
            await nc.close()
        return sorted(found, key=lambda e: e["version"])

    return asyncio.run(run())


def test_a_nats_device_goes_online_and_offline(
    stack: DevStack,
    platform: dict[str, Any],
    http: httpx.Client,
    org: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    org_id, auth = org
    device = provision(http, auth, org_id, tmp_path)
    before = device_of(http, auth, device)
    assert before["online"] is False and before["lastConnectedAt"] is None
    assert before["status"] == "PROVISIONED"
    ca = platform["brokerCaFile"]

    async def connect_device() -> Any:
        return await connect(platform["natsUrl"], device.tls(ca))

    loop = asyncio.new_event_loop()
    try:
        nc = loop.run_until_complete(connect_device())
        wait_online(http, auth, device, True)
        # The first connection activates the device (once: a device event, one version), in
        # its own transaction after the presence fold's (ADR 0055): wait for it, not for
        # "online" alone, which can be seen a moment before.
        online = poll(lambda: device_of(http, auth, device), lambda v: v["status"] != "PROVISIONED")
        assert online["online"] is True
        assert online["lastConnectedAt"] is not None and online["lastSeenAt"] is not None
        assert online["status"] == "ACTIVE" and online["version"] == before["version"] + 1
        etag = http.get(f"/api/v1/devices/{device.id}", headers=auth).headers["etag"]
        health = health_of(http, auth, device)
        assert health["object"] == "deviceHealth" and health["deviceId"] == device.id
        assert health["online"] is True and health["connections"] == 1
        assert health["protocol"] == "NATS"
        assert health["lastConnectedAt"] == online["lastConnectedAt"]
        # Listed and filtered by presence.
        listed = http.get("/api/v1/devices", params={"online": "true"}, headers=auth).json()
        assert [d["id"] for d in listed["data"]] == [device.id]
        ordered = http.get("/api/v1/devices", params={"$orderby": "lastSeenAt desc"}, headers=auth)
        assert ordered.status_code == 200, ordered.text

        loop.run_until_complete(nc.close())
        offline = wait_online(http, auth, device, False)
        assert offline["lastDisconnectedAt"] is not None
        assert ts(offline["lastDisconnectedAt"]) >= ts(offline["lastConnectedAt"])
        health = health_of(http, auth, device)
        assert health["online"] is False and health["connections"] == 0
        # Presence is not a change to the device: same ETag, and a PATCH with it succeeds.
        assert http.get(f"/api/v1/devices/{device.id}", headers=auth).headers["etag"] == etag
        patched = http.patch(
            f"/api/v1/devices/{device.id}",
            json={"attributes": {"floor": 2}},
            headers={**auth, "If-Match": etag},
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["online"] is False and patched.json()["status"] == "ACTIVE"
    finally:
        loop.close()

    events = poll(
        lambda: presence_events(stack, org_id, device.id), lambda e: len(e) >= 2, seconds=10
    )
    assert [e["data"]["type"] for e in events] == [
        "devices.DeviceConnected.v1",
        "devices.DeviceDisconnected.v1",
    ]
    assert events[0]["streamType"] == "presence" and events[0]["data"]["protocol"] == "NATS"
    # Presence events are on the stream, not in the audit log.
    audit = http.get(
        "/api/v1/audit-log", params={"streamId": device.id, "limit": 100}, headers=auth
    )
    assert audit.status_code == 200, audit.text
    types = {entry["type"] for entry in audit.json()["data"]}
    assert {"devices.DeviceRegistered.v1", "devices.DeviceActivated.v1"} <= types
    assert not types & {"devices.DeviceConnected.v1", "devices.DeviceDisconnected.v1"}


def test_an_mqtt_device_goes_online_and_offline(
    stack: DevStack,
    platform: dict[str, Any],
    http: httpx.Client,
    org: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    org_id, auth = org
    device = provision(http, auth, org_id, tmp_path)
    with mqtt_session(device, platform["brokerCaFile"], stack.mqtt_port) as client:
        wait_online(http, auth, device, True)
        assert health_of(http, auth, device)["protocol"] == "MQTT"
        seen = device_of(http, auth, device)["lastSeenAt"]
        # Telemetry moves lastSeenAt (flushed every few seconds).
        time.sleep(1.1)
        payload = json.dumps({"seq": 1, "readings": [{"sensor": "t", "value": 1}]})
        client.publish(subjects.mqtt_topic(device.telemetry), payload, qos=1).wait_for_publish(10)
        moved = poll(
            lambda: device_of(http, auth, device),
            lambda v: ts(v["lastSeenAt"]) > ts(seen),
            seconds=20,
        )
        assert ts(moved["lastSeenAt"]) > ts(seen) and moved["online"] is True
    offline = wait_online(http, auth, device, False)
    assert offline["lastDisconnectedAt"] is not None


def test_a_quick_reconnect_stays_online(
    stack: DevStack,
    platform: dict[str, Any],
    http: httpx.Client,
    org: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    """A second connection opens before the first closes (a device reconnecting quickly):
    the device is online throughout and no DeviceDisconnected is decided."""
    org_id, auth = org
    device = provision(http, auth, org_id, tmp_path)
    ca = platform["brokerCaFile"]
    loop = asyncio.new_event_loop()
    try:
        first = loop.run_until_complete(connect(platform["natsUrl"], device.tls(ca)))
        wait_online(http, auth, device, True)
        second = loop.run_until_complete(connect(platform["natsUrl"], device.tls(ca)))
        poll(lambda: health_of(http, auth, device), lambda h: h["connections"] == 2)
        loop.run_until_complete(first.close())
        health = poll(lambda: health_of(http, auth, device), lambda h: h["connections"] == 1)
        assert health["online"] is True and health["connections"] == 1
        assert device_of(http, auth, device)["online"] is True
        loop.run_until_complete(second.close())
        wait_online(http, auth, device, False)
    finally:
        loop.close()
    events = poll(
        lambda: presence_events(stack, org_id, device.id), lambda e: len(e) >= 2, seconds=10
    )
    assert [e["data"]["type"] for e in events] == [
        "devices.DeviceConnected.v1",
        "devices.DeviceDisconnected.v1",
    ]
