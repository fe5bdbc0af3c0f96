"""The whole platform through a broker crash and a database crash (docs/design/reliability.md
nats-kill and pg-restart; issue 5's chaos proof).

Provisioned devices publish numbered telemetry over NATS with their TLS client
certificates, and a client posts batches to ``POST /api/v1/readings/batch``, all along,
while the dev stack's nats-server is killed with SIGKILL and restarted on its store, and
then its Postgres is stopped immediately (no checkpoint) and restarted. No service is
restarted by the test. Afterwards:

- every reading of a 202 answer, and every reading of a device message the broker
  acknowledged by storing it in TELEMETRY, is readable through the gateway exactly once,
  and nothing else is;
- every service answers ``/readyz`` and the batch route answers 202 again: they recovered
  on their own.

A device's message over core NATS gets no acknowledgment of its own (its permissions
allow no reply inbox, decision 54): what the broker acknowledged for it is what TELEMETRY
holds, which the test reads back from the stream. This module kills the session's
servers, so it runs last (``outpost_devkit.testing.fixtures``); ``make chaos`` runs it alone.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from outpost_devkit.dev.stack import DevStack
from tests.e2e._devices import Device, bearer, provision

pytestmark = pytest.mark.e2e

BATCH = "/api/v1/readings/batch"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
Key = tuple[str, str, datetime]  # (deviceId, sensor, ts)


def _ts(n: int, i: int) -> datetime:
    return START + timedelta(milliseconds=10 * n + i)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _until(probe: Callable[[], Awaitable[bool] | bool], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        got = probe()
        if await got if isinstance(got, Awaitable) else got:
            return
        assert time.monotonic() < deadline, f"not within {within:.0f}s: {what}"
        await asyncio.sleep(0.1)


class Sender:
    """Posts a batch of readings of one device every ``interval``; remembers what a 202
    accepted and how many attempts failed (a 5xx or no answer while something was down)."""

    def __init__(self, client: httpx.AsyncClient, key: str, device_id: str, per: int) -> None:
        self.client, self.key, self.device_id, self.per = client, key, device_id, per
        self.accepted: set[Key] = set()
        self.posted: set[Key] = set()
        self.ok = 0
        self.failed = 0

    async def run(self, stop: asyncio.Event, interval: float = 0.1) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            keys = [(self.device_id, "h", _ts(n, i)) for i in range(self.per)]
            body = {
                "readings": [
                    {"deviceId": d, "sensor": s, "ts": _iso(ts), "value": n + i / 100}
                    for i, (d, s, ts) in enumerate(keys)
                ]
            }
            self.posted.update(keys)
            try:
                resp = await self.client.post(BATCH, json=body, headers=bearer(self.key))
            except httpx.HTTPError:
                self.failed += 1
                await asyncio.sleep(interval)
                continue
            if resp.status_code == 202:
                answer = resp.json()
                assert answer == {"accepted": self.per, "rejected": []}, answer
                self.accepted.update(keys)
                self.ok += 1
            else:
                # The broker or the database is down: 503 to retry, never a 500; or 429
                # while the gateway's rate-limit store (Postgres) is down and each gateway
                # limits on its own at the default limit / replicas (decision 46).
                kind = {503: "service_unavailable", 429: "throttled"}.get(resp.status_code)
                assert kind is not None and resp.json()["type"] == kind, resp.text
                self.failed += 1
            await asyncio.sleep(interval)


async def _device_loop(
    device: Device, url: str, ca: str, stop: asyncio.Event, sent: set[Key], events: list[str]
) -> None:
    """A device over NATS with its certificate, one message every 50 ms. Its client
    reconnects after the broker restarts (buffering what it publishes meanwhile); should
    the broker refuse a reconnection (its auth callout, the devices service, not back on
    the new server yet), nats-py closes the client, and the device connects anew, as a
    device's firmware would."""

    async def on_error(exc: Exception) -> None:
        events.append(f"error {exc!r}")

    async def on_disconnect() -> None:
        events.append("disconnected")

    async def on_closed() -> None:
        events.append("closed")

    async def connect() -> Any:
        while True:
            try:
                return await nats.connect(
                    url,
                    tls=device.tls(ca),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.2,
                    connect_timeout=2,
                    error_cb=on_error,
                    disconnected_cb=on_disconnect,
                    closed_cb=on_closed,
                )
            except Exception as exc:  # refused, or the broker not listening yet
                events.append(f"connect {exc!r}")
                await asyncio.sleep(0.2)

    nc = await connect()
    try:
        seq = 0
        while not stop.is_set():
            if nc.is_closed:
                nc = await connect()
            seq += 1
            keys = [(device.id, "t", _ts(seq, i)) for i in range(5)]
            payload = {
                "seq": seq,
                "readings": [
                    {"sensor": s, "ts": _iso(ts), "value": seq + i / 10}
                    for i, (_, s, ts) in enumerate(keys)
                ],
            }
            try:
                await nc.publish(device.telemetry, json.dumps(payload).encode())
            except Exception:  # closed, or the reconnect buffer is full: not sent
                continue
            finally:
                await asyncio.sleep(0.05)
            sent.update(keys)
        # The broker admits the device again (the callout is back) and has what it sent.
        if nc.is_closed:
            nc = await asyncio.wait_for(connect(), 60)
        await _until(lambda: nc.is_connected, f"the device reconnected: {events}", 60)
        await nc.flush(timeout=5)
    finally:
        await nc.close()


async def _in_stream(stack: DevStack, devices: list[Device]) -> set[Key]:
    """The readings of every message of ``devices`` that TELEMETRY holds: what the broker
    acknowledged for them."""
    nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
    found: set[Key] = set()
    try:
        js = nc.jetstream()
        for device in devices:
            sub = await js.subscribe(device.telemetry, ordered_consumer=True)
            try:
                # Until the last message (num_pending 0), not until a pause: a loaded
                # machine may pause longer than a second between two deliveries.
                info = await js.stream_info("TELEMETRY", subjects_filter=device.telemetry)
                if not (info.state.subjects or {}).get(device.telemetry):
                    continue  # nothing of this device in the stream
                while True:
                    msg = await sub.next_msg(timeout=60)
                    for r in json.loads(msg.data)["readings"]:
                        ts = datetime.fromisoformat(r["ts"])
                        found.add((device.id, r["sensor"], ts))
                    if msg.metadata.num_pending == 0:
                        break
            finally:
                await sub.unsubscribe()
    finally:
        await nc.close()
    return found


async def _readable(client: httpx.AsyncClient, key: str, device_ids: list[str]) -> list[Key]:
    """Every reading of ``device_ids`` through ``GET /api/v1/readings``, page by page."""
    got: list[Key] = []
    for device_id in device_ids:
        after = None
        while True:
            params: dict[str, Any] = {"deviceId": device_id, "limit": 1000}
            if after:
                params["after"] = after
            page = await client.get("/api/v1/readings", params=params, headers=bearer(key))
            assert page.status_code == 200, page.text
            body = page.json()
            got.extend(
                (r["deviceId"], r["sensor"], datetime.fromisoformat(r["ts"])) for r in body["data"]
            )
            if not body["hasMore"]:
                break
            after = body["after"]
    return got


def test_readings_survive_a_broker_kill_and_a_database_crash_once_each(
    stack: DevStack,
    platform: dict[str, Any],
    http: httpx.Client,
    tenants: Any,
    raise_limits: Any,
    tmp_path: Path,
) -> None:
    org = tenants.org("chaos")
    raise_limits(org["id"])
    key = tenants.key(org["id"])["key"]
    auth = bearer(key)
    devices = [provision(http, auth, org["id"], tmp_path) for _ in range(2)]
    made = http.post("/api/v1/devices", json={"name": "http-meter"}, headers=auth)
    assert made.status_code == 201, made.text
    http_device = made.json()["id"]
    assert stack.nats is not None and stack.pg is not None
    nats_server, pg = stack.nats, stack.pg

    async def run() -> None:
        async with httpx.AsyncClient(base_url=platform["gatewayUrl"], timeout=10) as client:
            sender = Sender(client, key, http_device, per=10)
            sent: set[Key] = set()
            events: list[str] = []
            stop = asyncio.Event()
            tasks = [asyncio.create_task(sender.run(stop))]
            tasks += [
                asyncio.create_task(
                    _device_loop(
                        d, platform["natsUrl"], platform["brokerCaFile"], stop, sent, events
                    )
                )
                for d in devices
            ]

            async def more_202s(n: int, within: float = 60) -> None:
                mark = sender.ok
                await _until(lambda: sender.ok >= mark + n, f"{n} more 202 answers", within)

            try:
                await more_202s(5)  # the registry knows the HTTP device: batches accepted
                # 1. The broker dies at once and comes back on its store.
                await asyncio.to_thread(nats_server.kill)
                # The outage lasts until the devices noticed it (not a guessed second).
                await _until(lambda: "disconnected" in events, "the devices losing the broker", 60)
                await asyncio.to_thread(nats_server.restart)
                await more_202s(5)
                # 2. Postgres stops without a checkpoint (crash recovery when it starts).
                failed = sender.failed
                await asyncio.to_thread(pg.kill)
                await _until(lambda: sender.failed > failed, "a batch refused", 60)
                await asyncio.to_thread(pg.restart)
                await more_202s(5)  # the services use the database again, unaided
            finally:
                stop.set()
                await asyncio.gather(*tasks)
            assert stack.readiness() == {name: 200 for name in stack.readiness()}

            stored = await _in_stream(stack, devices)
            device_ids = [d.id for d in devices]
            assert stored <= sent, "the stream holds readings no device sent"
            expected = stored | sender.accepted
            assert len(stored) >= 2 * 5 * 20  # the devices really published throughout

            readable: list[Key] = []

            async def all_readable() -> bool:
                readable[:] = await _readable(client, key, [*device_ids, http_device])
                return set(readable) >= expected

            try:
                await _until(all_readable, "every acknowledged reading readable", 60)
            except AssertionError:
                missing = sorted(expected - set(readable))
                raise AssertionError(f"{len(missing)} not readable: {missing[:10]}") from None
            twice = [k for k, n in Counter(readable).items() if n > 1]
            assert twice == [], f"read twice: {twice[:10]}"
            # Nothing but what was sent: the devices' messages and the posted batches (a
            # batch whose answer was lost may be stored: it was sent, not acknowledged).
            assert set(readable) - expected <= sender.posted - sender.accepted

    asyncio.run(run())
