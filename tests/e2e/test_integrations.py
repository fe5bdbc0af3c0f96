"""Subscriptions over NATS (issue 23, ADR 0097), on the platform as ``make dev`` runs it.

An integration created through the API; a real nats-py subscriber connecting with its user
and password (checked by the devices service's auth callout) pulls its durable consumer of
the PUBLIC stream: its organization's device, alert and reading events, in order, never
another organization's and never an event with a private field; after a restart it resumes
where it acknowledged; two replicas share the consumer; subscribing to another
organization's subjects, publishing, and any JetStream API beyond its consumer are
permission violations; a rotated password is refused; a revoked integration is
disconnected within 5 s and refused after.

Transport: the broker's listener demands a client certificate (decision 54), so the
subscriber presents the platform's service certificate here; the password is what admits
it (ADR 0097, "Not done").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from outpost_contracts import asyncapi, integrations, subjects
from outpost_devkit import asyncapi as validator
from outpost_devkit.dev.stack import DevStack

pytestmark = pytest.mark.e2e

DISCONNECT_WITHIN_SECONDS = 5.0
_PRIVATE_NAMES = {
    name for event_type in asyncapi.PRIVATE_FIELDS for name in asyncapi.private_fields(event_type)
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class _Connection:
    """One subscriber connection and what the broker told it."""

    def __init__(self) -> None:
        self.nc: NATS | None = None
        self.errors: list[str] = []
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()

    async def on_error(self, error: Exception) -> None:
        self.errors.append(str(error).lower())
        self._changed.set()

    async def on_closed(self) -> None:
        self.closed.set()

    async def refused(self, kind: str, subject: str, seconds: float = 10.0) -> bool:
        """Whether nats-server reported a permissions violation for ``kind`` on ``subject``."""
        wanted = f'permissions violation for {kind} to "{subject.lower()}"'
        deadline = time.monotonic() + seconds
        while not any(wanted in e for e in self.errors):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True


async def _connect(stack: DevStack, issued: dict[str, Any], password: str | None = None) -> Any:
    conn = _Connection()
    assert stack.nats is not None
    conn.nc = await nats.connect(
        f"tls://127.0.0.1:{stack.nats.port}",
        tls=stack.nats_tls(),
        user=issued["user"],
        password=password or issued["password"],
        inbox_prefix=issued["inboxPrefix"].encode(),
        error_cb=conn.on_error,
        closed_cb=conn.on_closed,
        allow_reconnect=False,
        connect_timeout=5,
    )
    return conn


async def _admitted(stack: DevStack, issued: dict[str, Any], seconds: float = 5.0) -> Any:
    """A connection with a password just issued: the broker's auth callout learns it from
    identity's event, a moment after the API answered (ADR 0097)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await _connect(stack, issued)
        except nats.errors.Error as exc:
            if "authorization" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _pull(sub: Any, batch: int = 20, wait: float = 1.0) -> list[Msg]:
    """Up to ``batch`` messages, waiting at most ``wait`` seconds for the first."""
    try:
        msgs: list[Msg] = await sub.fetch(batch, timeout=wait)
    except (TimeoutError, nats.errors.TimeoutError):
        return []
    return msgs


def _tag(msg: Msg) -> str:
    payload = msgspec.json.decode(msg.data)
    data = payload.get("data") if isinstance(payload, dict) else None
    return data["type"] if isinstance(data, dict) else "telemetry"


async def _receive_until(
    sub: Any, want: set[str], seconds: float = 30.0, meanwhile: Any = None
) -> list[Msg]:
    """Messages pulled (and acked) until every tag of ``want`` was seen; ``meanwhile`` (a
    blocking callable) is called after each empty pull until then."""
    got: list[Msg] = []
    deadline = time.monotonic() + seconds
    while not want <= {_tag(m) for m in got} and time.monotonic() < deadline:
        pulled = await _pull(sub)
        for msg in pulled:
            await msg.ack_sync()
            got.append(msg)
        if not pulled and meanwhile is not None:
            await asyncio.to_thread(meanwhile)
    return got


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _activity(http: httpx.Client, key: str, name: str) -> str:
    """A device, an alert rule on it and a reading under its threshold: device, alert and
    reading events of the key's organization. The device's id."""
    device = http.post("/api/v1/devices", json={"name": name}, headers=bearer(key))
    assert device.status_code == 201, device.text
    device_id: str = device.json()["id"]
    rule = http.post(
        "/api/v1/alert-rules",
        json={
            "name": f"{name} too hot",
            "scope": {"type": "DEVICE", "id": device_id},
            "sensor": "temp",
            "condition": {"op": ">", "threshold": 90},
            "severity": "WARNING",
        },
        headers=bearer(key),
    )
    assert rule.status_code == 201, rule.text
    _reading(http, key, device_id, 20.5)
    return device_id


def _reading(http: httpx.Client, key: str, device_id: str, value: float) -> None:
    reading = {"deviceId": device_id, "sensor": "temp", "ts": _now(), "value": value}
    sent = http.post("/api/v1/readings/batch", json={"readings": [reading]}, headers=bearer(key))
    assert sent.status_code == 202 and sent.json()["rejected"] == [], sent.text


def _create(http: httpx.Client, key: str, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "warehouse")
    body.setdefault("subjects", ["alerts.>", "devices.>", "readings.>"])
    body.setdefault("deliverPolicy", "ALL")
    created = http.post("/api/v1/integrations", json=body, headers=bearer(key))
    assert created.status_code == 201, created.text
    issued: dict[str, Any] = created.json()
    return issued


def test_an_integration_reads_its_organization_only_in_order_and_resumes(
    http: httpx.Client, tenants: Any, stack: DevStack, raise_limits: Any
) -> None:
    org, other = tenants.org("integration"), tenants.org("integration-other")
    raise_limits(org["id"])
    raise_limits(other["id"])
    key, other_key = tenants.key(org["id"])["key"], tenants.key(other["id"])["key"]
    issued = _create(http, key)
    assert issued["password"].startswith("opi_") and issued["stream"] == "PUBLIC"
    consumer = issued["consumers"]["default"]
    listed = http.get(f"/api/v1/integrations/{issued['id']}", headers=bearer(key)).json()
    assert "password" not in listed and listed["consumers"] == issued["consumers"]
    assert (
        http.get(f"/api/v1/integrations/{issued['id']}", headers=bearer(other_key)).status_code
        == 404
    )
    theirs = _create(http, other_key)

    device_id = _activity(http, key, "pump")
    _activity(http, other_key, "their-pump")
    doc = http.get("/api/asyncapi").json()

    async def scenario() -> None:
        conn = await _admitted(stack, issued)
        assert conn.nc is not None
        js = conn.nc.jetstream()
        sub = await js.pull_subscribe_bind(consumer, "PUBLIC")
        want = {
            "devices.DeviceRegistered.v1",
            "alerting.AlertRuleCreated.v1",
            "alerting.AlertOpened.v1",
            "telemetry",
        }
        # a reading over the threshold until the alert opens (the rule's evaluator may not
        # have the rule yet when the first one arrives)
        got = await _receive_until(
            sub, want, meanwhile=lambda: _reading(http, key, device_id, 95.0)
        )
        assert want <= {_tag(m) for m in got}, {_tag(m) for m in got}
        sequences = [m.metadata.sequence.stream for m in got]
        assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
        for msg in got:
            assert org["id"] in msg.subject and other["id"] not in msg.subject, msg.subject
            assert validator.channel_of(doc, msg.subject) is not None, msg.subject
            payload = msgspec.json.decode(msg.data)
            data = payload.get("data") if isinstance(payload, dict) else None
            if isinstance(data, dict):
                assert not (_PRIVATE_NAMES & set(data)), (msg.subject, data)
                assert not msg.subject.startswith("outpost.evt.identity."), msg.subject
        last = sequences[-1]
        await conn.nc.close()

        # restarted: what comes next is after what was acknowledged, nothing again
        renamed = await asyncio.to_thread(
            http.patch,
            f"/api/v1/devices/{device_id}",
            json={"name": "pump-2"},
            headers=bearer(key),
        )
        assert renamed.status_code == 200, renamed.text
        conn = await _connect(stack, issued)
        assert conn.nc is not None
        sub = await conn.nc.jetstream().pull_subscribe_bind(consumer, "PUBLIC")
        after = await _receive_until(sub, {"devices.DeviceUpdated.v1"})
        assert after and all(m.metadata.sequence.stream > last for m in after)
        assert "devices.DeviceUpdated.v1" in {_tag(m) for m in after}

        # what it may not do: each a permissions violation
        conn2 = await _connect(stack, issued)
        assert conn2.nc is not None
        nc2 = conn2.nc
        foreign = subjects.organization_events("devices", other["id"])
        await nc2.subscribe(foreign)
        assert await conn2.refused("subscription", foreign)
        own_events = subjects.organization_events("devices", org["id"])
        await nc2.subscribe(own_events)  # not even its own, outside its consumer
        assert await conn2.refused("subscription", own_events)
        telemetry = subjects.telemetry(org["id"], device_id)
        await nc2.publish(telemetry, b"{}")
        assert await conn2.refused("publish", telemetry)
        for api_subject in (
            "$JS.API.STREAM.INFO.PUBLIC",
            "$JS.API.STREAM.NAMES",
            f"$JS.API.CONSUMER.MSG.NEXT.PUBLIC.{theirs['consumers']['default']}",
            f"$JS.API.CONSUMER.DELETE.PUBLIC.{consumer}",
            "$JS.API.CONSUMER.CREATE.PUBLIC",
        ):
            with contextlib.suppress(Exception):
                await nc2.request(api_subject, b"{}", timeout=0.5)
            assert await conn2.refused("publish", api_subject), api_subject
        await nc2.close()
        await conn.nc.close()

    asyncio.run(scenario())


def test_two_replicas_share_one_consumer(
    http: httpx.Client, tenants: Any, stack: DevStack, raise_limits: Any
) -> None:
    org = tenants.org("integration-replicas")
    raise_limits(org["id"])
    key = tenants.key(org["id"])["key"]
    issued = _create(http, key, subjects=["devices.DeviceRegistered"], groups=["workers"])
    consumer = issued["consumers"]["workers"]
    names = [f"unit-{i}" for i in range(6)]
    for name in names:
        assert (
            http.post("/api/v1/devices", json={"name": name}, headers=bearer(key)).status_code
            == 201
        )

    async def scenario() -> None:
        one, two = await _admitted(stack, issued), await _connect(stack, issued)
        assert one.nc is not None and two.nc is not None
        subs = [
            await one.nc.jetstream().pull_subscribe_bind(consumer, "PUBLIC"),
            await two.nc.jetstream().pull_subscribe_bind(consumer, "PUBLIC"),
        ]
        # every event is waiting before the replicas pull in turn (its own consumer's INFO
        # is one of the few things an integration may ask)
        js = one.nc.jetstream()
        deadline = time.monotonic() + 30
        while (await js.consumer_info("PUBLIC", consumer)).num_pending < len(names):
            assert time.monotonic() < deadline, "the events never reached PUBLIC"
            await asyncio.sleep(0.1)
        by_replica: list[list[str]] = [[], []]
        deadline = time.monotonic() + 30
        while sum(map(len, by_replica)) < len(names) and time.monotonic() < deadline:
            for i, sub in enumerate(subs):  # one at a time, in turn
                for msg in await _pull(sub, batch=1, wait=0.5):
                    by_replica[i].append(msgspec.json.decode(msg.data)["data"]["name"])
                    await msg.ack_sync()
        assert all(by_replica), by_replica  # each replica had a share
        assert sorted(by_replica[0] + by_replica[1]) == sorted(names)  # each once
        await one.nc.close()
        await two.nc.close()

    asyncio.run(scenario())


def test_a_rotated_password_is_refused_and_a_revoked_integration_disconnected(
    http: httpx.Client, tenants: Any, stack: DevStack, raise_limits: Any
) -> None:
    org = tenants.org("integration-revoke")
    raise_limits(org["id"])
    key = tenants.key(org["id"])["key"]
    issued = _create(http, key, deliverPolicy="NEW")
    rotated = http.post(f"/api/v1/integrations/{issued['id']}/rotate", headers=bearer(key))
    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()
    assert fresh["password"] != issued["password"] and fresh["user"] == issued["user"]

    async def scenario() -> None:
        conn = await _admitted(stack, fresh)  # once the broker knows the new password,
        assert conn.nc is not None and conn.nc.is_connected
        with pytest.raises(Exception, match=r"(?i)authorization"):
            await _connect(stack, issued)  # the old one is refused
        started = time.monotonic()
        revoked = await asyncio.to_thread(
            http.delete, f"/api/v1/integrations/{issued['id']}", headers=bearer(key)
        )
        assert revoked.status_code == 204, revoked.text
        await asyncio.wait_for(conn.closed.wait(), DISCONNECT_WITHIN_SECONDS)
        assert time.monotonic() - started < DISCONNECT_WITHIN_SECONDS
        with pytest.raises(Exception, match=r"(?i)authorization"):
            await _connect(stack, fresh)

    asyncio.run(scenario())
    listed = http.get(f"/api/v1/integrations/{issued['id']}", headers=bearer(key)).json()
    assert listed["revokedAt"] is not None
    assert integrations.integration_of(listed["user"]) == uuid.UUID(issued["id"])


def test_a_replay_from_a_time_starts_there(
    http: httpx.Client, tenants: Any, stack: DevStack, raise_limits: Any
) -> None:
    """``BY_START_TIME``: what PUBLIC stored before the time is not delivered, what after is."""
    org = tenants.org("integration-replay")
    raise_limits(org["id"])
    key = tenants.key(org["id"])["key"]
    watcher = _create(http, key, subjects=["devices.DeviceRegistered"])
    before = http.post("/api/v1/devices", json={"name": "before"}, headers=bearer(key))
    assert before.status_code == 201, before.text

    async def stored(issued: dict[str, Any], name: str) -> list[str]:
        """The device names the integration receives until ``name`` is among them."""
        conn = await _admitted(stack, issued)
        assert conn.nc is not None
        group = next(iter(issued["consumers"].values()))
        sub = await conn.nc.jetstream().pull_subscribe_bind(group, "PUBLIC")
        names: list[str] = []
        deadline = time.monotonic() + 30
        while name not in names and time.monotonic() < deadline:
            for msg in await _pull(sub):
                names.append(msgspec.json.decode(msg.data)["data"]["name"])
                await msg.ack_sync()
        await conn.nc.close()
        return names

    assert "before" in asyncio.run(stored(watcher, "before"))  # PUBLIC has it now
    start = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    after = http.post("/api/v1/devices", json={"name": "after"}, headers=bearer(key))
    assert after.status_code == 201, after.text
    replay = _create(
        http,
        key,
        subjects=["devices.DeviceRegistered"],
        deliverPolicy="BY_START_TIME",
        startTime=start,
    )
    assert replay["deliverPolicy"] == "BY_START_TIME"
    assert asyncio.run(stored(replay, "after")) == ["after"]
