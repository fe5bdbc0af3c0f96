"""bench/alerting: from a reading published on TELEMETRY to its alert event on the ALERTING
stream, p50/p99, with 1,000 rules across 1,000 devices, idle and under steady telemetry
(issue 6), beside a raw pipeline measured in the same run.

What runs: one nats-server (plain, JetStream) and one Postgres (durable settings), both
private; the alerting schema migrated and provisioned as the service's own; 1,000 devices in
alerting's device view and 1,000 rules (one per device: ``temp > 50``, DEVICE scope), made
through the service's own handlers. Two child processes on uvloop, as services run:

- **platform**: alerting's evaluation loop (``entrypoints/telemetry.run``, the service's
  consumer spec and batch size) and its outbox relay: fetch → fold every (rule, device)
  watch → open/resolve alerts in one transaction → commit → ack, and the relay publishing
  ``AlertOpened``/``AlertResolved`` to the ALERTING stream as soon as ``pg_notify`` wakes it;
- **raw (baseline)**: nats-py pull ``fetch`` of the same stream → one INSERT per message
  into a table → commit → ack → a JetStream publish of a small event per message: the
  broker and database floor of the same shape, with no rules, watches or outbox.

Probes: every ``--every`` ms one of 20 probe devices gets a reading that flips it (60 when
it is cold, 40 when it is hot), stamped with the wall clock; a core-NATS subscriber of the
alert events notes when the device's ``AlertOpened``/``AlertResolved`` arrives. Latency =
arrival - publish. Under load, a third process publishes ``--load`` readings/s (100 per
message) for the other 980 devices with values that never fire, which both consumers must
evaluate too.

Delivery: a fourth process is a delivery replica (``OUTPOST_ALERTING_EVALUATE=false``): the
service's notifications consumer and delivery worker; the 20 probe devices' rules name a
webhook channel whose receiver (in the bench process) notes when each delivery arrives:
"webhook" rows, reading → webhook received (``--delivery replica``, the default; at a lower
CPU priority with ``--delivery-nice``). ``--delivery together`` runs them in the evaluation
process instead, as one replica running both does (``make dev``); ``--delivery none`` runs
no delivery at all (evaluation alone, as a deployment whose delivery replicas have CPUs of
their own would see it on this machine).

Run: ``uv run python bench/alerting.py [--probes 300] [--load 100000] [--every 20]``.
Prints p50/p95/p99 per pipeline and condition, and the rates reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats

DEVICES = 1_000
PROBES = 20  # probe devices, each flipped in turn; the rest take the load
RAW_SCHEMA = "bench_alert_raw"
RAW_EVENTS = "BENCHRAW"


def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


# -- pipelines (child processes) ---------------------------------------------------------


async def _platform(
    nats_url: str,
    dsn: str,
    durable: str,
    vault_key: str,
    evaluate: bool,
    deliver: bool,
    nice: int,
    pipe: Connection,
) -> None:
    """An alerting replica: with ``evaluate``, the evaluation loop and the outbox relay; with
    ``deliver``, the notifications consumer and the delivery worker (the service's
    ``OUTPOST_ALERTING_EVALUATE`` / ``_DELIVER``), at ``nice`` (``os.nice``)."""
    if nice:
        os.nice(nice)
    from outpost_alerting import bootstrap
    from outpost_alerting.adapters.resolver import StaticResolver
    from outpost_alerting.adapters.secrets import SecretVault
    from outpost_alerting.adapters.webhook import WebhookSender
    from outpost_alerting.app import notifications
    from outpost_alerting.domain import ssrf
    from outpost_alerting.entrypoints import telemetry
    from outpost_alerting.settings import AlertingSettings
    from outpost_contracts import streams
    from outpost_kit import messaging
    from outpost_kit.consumer import InboxConsumer
    from outpost_kit.db.engine import create_engine
    from outpost_kit.db.eventstore import EventCodec
    from outpost_kit.db.outbox import OutboxRelay
    from outpost_kit.db.uow import UnitOfWorkFactory

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    engine = create_engine(dsn, "alerting", pool_size=6)
    codec = EventCodec(bootstrap.EVENT_TYPES)
    uow = UnitOfWorkFactory(engine, codec, bootstrap.PROJECTORS)
    spec = msgspec.structs.replace(streams.consumer("alerting-telemetry"), name=durable)
    relay = OutboxRelay(dsn, "alerting", js)
    # The rule's webhook: the service's notifications consumer and delivery worker.
    deps = notifications.NotificationDeps(
        uow=uow,
        vault=SecretVault(vault_key),
        webhooks=WebhookSender(StaticResolver(), ssrf.Policy(allow_loopback=True)),
    )
    delivered = msgspec.structs.replace(
        streams.consumer("alerting-notifications"), name=f"{durable}-notify"
    )
    await messaging.apply_streams(js, [streams.stream("ALERTING")], [delivered])

    async def on_alert(u: Any, envelope: Any) -> None:
        await notifications.on_alert_event(deps, u, envelope)

    notifier = InboxConsumer(uow, js, delivered, on_alert, EventCodec(notifications.ALERT_EVENTS))
    stop = asyncio.Event()
    batch = AlertingSettings().evaluation_batch_messages
    pipe.send("ready")
    await asyncio.to_thread(pipe.recv)
    cpu = time.process_time()
    tasks = []
    if evaluate:
        tasks.append(asyncio.create_task(telemetry.run(uow, nc, spec, batch, stop)))
        tasks.append(asyncio.create_task(relay.run(stop)))
    if deliver:
        tasks.append(asyncio.create_task(notifier.run(stop)))
        tasks.append(asyncio.create_task(notifications.worker(deps, stop)))
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    stop.set()
    await asyncio.gather(*tasks)
    used = time.process_time() - cpu
    await nc.close()
    await engine.dispose()
    pipe.send(used)


async def _raw(nats_url: str, admin_dsn: str, durable: str, pipe: Connection) -> None:
    from outpost_contracts import subjects

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    sub = await js.pull_subscribe_bind(durable, stream="TELEMETRY")
    conn = await asyncpg.connect(admin_dsn)
    pipe.send("ready")
    await asyncio.to_thread(pipe.recv)
    stop = asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    cpu = time.process_time()
    while not stop.done():
        try:
            msgs = await sub.fetch(500, timeout=0.5)
        except TimeoutError:
            continue
        rows = []
        for msg in msgs:
            _org, device = subjects.parse_telemetry(msg.subject)
            rows.append((uuid.UUID(device), msg.data))
        async with conn.transaction():
            await conn.executemany(
                f"INSERT INTO {RAW_SCHEMA}.seen (device_id, payload) VALUES ($1, $2)", rows
            )
        for msg in msgs:
            await msg.ack()
        await asyncio.gather(*(js.publish(f"benchraw.{device}", b"{}") for device, _ in rows))
    used = time.process_time() - cpu
    await sub.unsubscribe()
    await nc.close()
    await conn.close()
    pipe.send(used)


async def _load(nats_url: str, org: str, devices: list[str], rate: int, pipe: Connection) -> None:
    """``rate`` readings/s of the rules' sensor, 100 per message (a microsecond apart),
    round robin over ``devices``, never firing: every one is folded into a watch."""
    from outpost_contracts import subjects

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    subs = [subjects.telemetry(org, d) for d in devices]
    per_tick = max(1, rate // 100 // 100)  # messages per 10 ms
    pipe.send("ready")
    stop = asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    sent = n = 0
    started = time.monotonic()
    while not stop.done():
        now = datetime.now(UTC)
        readings = [
            {"sensor": "temp", "value": 20 + i % 10, "ts": now + timedelta(microseconds=i)}
            for i in range(100)
        ]
        body = msgspec.json.encode({"seq": n, "readings": readings})
        acks = []
        for _ in range(per_tick):
            acks.append(js.publish(subs[n % len(subs)], body))
            n += 1
        await asyncio.gather(*acks)
        sent += per_tick * 100
        behind = started + sent / rate - time.monotonic()
        if behind > 0:
            await asyncio.sleep(behind)
    pipe.send(sent / (time.monotonic() - started))
    await nc.close()


def _child(kind: str, *args: Any) -> None:
    target: Any = {"platform": _platform, "raw": _raw, "load": _load}[kind]
    _run(target(*args))


# -- the parent --------------------------------------------------------------------------


class Receiver:
    """The rule's webhook: a stdlib HTTP server on loopback noting when each delivery
    arrives (a thread; the bench matches deliveries to probes as they come)."""

    def __init__(self, on_body: Any) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                on_body(time.perf_counter(), body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Bench:
    def __init__(self, nats_url: str, admin_dsn: str, app_dsn: str) -> None:
        from cryptography.fernet import Fernet

        self.nats_url, self.admin_dsn, self.app_dsn = nats_url, admin_dsn, app_dsn
        self.org = uuid.uuid4()
        self.devices: list[uuid.UUID] = []
        self.vault_key = Fernet.generate_key().decode()
        self.alert_devices: dict[str, str] = {}  # alert id -> device, from AlertOpened
        self.hook_waiting: dict[str, tuple[str, float]] = {}
        self.hooks: dict[str, list[float]] = {"opened": [], "resolved": []}
        self.lock = threading.Lock()
        self.receiver = Receiver(self._hook)

    def _hook(self, now: float, body: bytes) -> None:
        """A webhook delivery arrived (receiver thread): its probe's latency."""
        envelope = msgspec.json.decode(body)
        tag = envelope["data"]["type"]
        if "AlertOpened" in tag:
            device, kind = envelope["data"]["deviceId"], "opened"
        elif "AlertResolved" in tag:
            device, kind = self.alert_devices.get(envelope["streamId"], ""), "resolved"
        else:
            return
        with self.lock:
            pending = self.hook_waiting.get(device)
            if pending is not None and pending[0] == kind:
                del self.hook_waiting[device]
                self.hooks[kind].append((now - pending[1]) * 1000)

    async def setup(self) -> None:
        from outpost_alerting import bootstrap
        from outpost_alerting.adapters.resolver import StaticResolver
        from outpost_alerting.adapters.secrets import SecretVault
        from outpost_alerting.adapters.store import PgAlerting
        from outpost_alerting.adapters.webhook import WebhookSender
        from outpost_alerting.app import evaluation, handlers
        from outpost_alerting.app import notifications as notify
        from outpost_alerting.domain import ssrf
        from outpost_contracts import alerting, streams
        from outpost_contracts import notifications as notify_api
        from outpost_contracts.devices import DeviceRegistered
        from outpost_contracts.envelope import (
            EventEnvelope,
            Principal,
            PrincipalKind,
            RequestContext,
        )
        from outpost_kit import ids, messaging
        from outpost_kit.db.engine import create_engine
        from outpost_kit.db.eventstore import EventCodec
        from outpost_kit.db.uow import UnitOfWorkFactory

        nc = await nats.connect(self.nats_url)
        js = nc.jetstream()
        await messaging.apply_streams(
            js, [streams.stream("TELEMETRY"), streams.stream("ALERTING")], []
        )
        await js.add_stream(name=RAW_EVENTS, subjects=["benchraw.>"])
        await nc.close()
        conn = await asyncpg.connect(self.admin_dsn)
        await conn.execute(
            f"CREATE SCHEMA {RAW_SCHEMA}; CREATE TABLE {RAW_SCHEMA}.seen"
            " (id bigserial PRIMARY KEY, device_id uuid NOT NULL, payload bytea NOT NULL)"
        )
        await conn.close()
        engine = create_engine(self.app_dsn, "alerting", pool_size=2)
        codec = EventCodec((*bootstrap.EVENT_TYPES, *evaluation.DEVICE_EVENTS))
        uows = UnitOfWorkFactory(engine, codec, bootstrap.PROJECTORS)
        self.devices = [ids.new_id() for _ in range(DEVICES)]
        ctx = RequestContext(
            request_id="bench",
            org_id=self.org,
            principal=Principal(kind=PrincipalKind.USER, id=self.org, org_id=self.org),
        )
        deps = handlers.Deps(uow=PgAlerting.over(uows))
        channel = await notify.create_channel(
            notify.NotificationDeps(
                uow=uows,
                vault=SecretVault(self.vault_key),
                webhooks=WebhookSender(StaticResolver(), ssrf.Policy(allow_loopback=True)),
            ),
            ctx,
            notify_api.CreateNotificationChannel(
                type=notify_api.ChannelType.WEBHOOK,
                name="bench",
                url=self.receiver.url,
                secret="bench-webhook-secret-0123",
            ),
        )
        async with uows(self.org) as uow:
            for device in self.devices:
                await evaluation.on_device_event(
                    uow,
                    EventEnvelope(
                        id=ids.new_id(),
                        org_id=self.org,
                        stream_id=device,
                        stream_type="device",
                        version=1,
                        occurred_at=ids.now(),
                        data=DeviceRegistered(name=f"bench-{device}"),
                    ),
                )
            await uow.commit()
        for n, device in enumerate(self.devices):
            body = {
                "name": f"hot-{device}",
                "scope": {"type": "DEVICE", "id": str(device)},
                "sensor": "temp",
                "condition": {"op": ">", "threshold": 50},
                "severity": "MAJOR",
                # the probes' rules notify the webhook (the others never fire)
                "channelIds": [str(channel.id)] if n < PROBES else [],
            }
            await handlers.create_rule(deps, ctx, msgspec.convert(body, alerting.CreateAlertRule))
        await engine.dispose()
        # Statistics as autovacuum would have them a minute after the setup (not in the
        # middle of a measured phase).
        conn = await asyncpg.connect(self.admin_dsn)
        await conn.execute("ANALYZE")
        await conn.close()

    async def consumer(self, name: str) -> None:
        from outpost_contracts import streams, subjects
        from outpost_kit import messaging

        spec = msgspec.structs.replace(
            streams.consumer("alerting-telemetry"),
            name=name,
            filter_subjects=(f"{subjects.PREFIX}.tel.{self.org}.>",),
        )
        nc = await nats.connect(self.nats_url)
        await messaging.apply_streams(nc.jetstream(), [streams.stream("TELEMETRY")], [spec])
        await nc.close()

    async def probe(
        self, pipeline: str, probes: int, every_ms: float, warmup: int = 0
    ) -> dict[str, list[float]]:
        """Flip probe devices and time each flip to its alert event; the first ``warmup``
        flips are not counted (each pooled connection prepares its statements once)."""
        from outpost_contracts import subjects

        nc = await nats.connect(self.nats_url)
        js = nc.jetstream()
        waiting: dict[str, tuple[str, float]] = {}
        seen: dict[str, list[float]] = {"opened": [], "resolved": []}
        arrived = asyncio.Event()

        async def on_event(msg: Any) -> None:
            now = time.perf_counter()
            if pipeline == "raw":
                device = msg.subject.rsplit(".", 1)[1]
                kind = None
            else:
                envelope = msgspec.json.decode(msg.data)
                tag = envelope["data"]["type"]
                if "AlertOpened" in tag:
                    device, kind = envelope["data"]["deviceId"], "opened"
                    self.alert_devices[envelope["streamId"]] = device
                elif "AlertResolved" in tag:
                    device, kind = await self._device_of(envelope["streamId"]), "resolved"
                else:
                    return
            pending = waiting.pop(device, None)
            if pending is not None and (kind is None or kind == pending[0]):
                seen[pending[0]].append((now - pending[1]) * 1000)
                arrived.set()

        subject = "benchraw.>" if pipeline == "raw" else subjects.service_events("alerting")
        await nc.subscribe(subject, cb=on_event)
        hot: dict[str, bool] = {}
        probe_devices = [str(d) for d in self.devices[:PROBES]]
        for n in range(warmup + probes):
            if n == warmup:
                seen["opened"].clear()
                seen["resolved"].clear()
                with self.lock:
                    self.hooks = {"opened": [], "resolved": []}
                    self.hook_waiting.clear()  # a warm-up's late delivery is not counted
            device = probe_devices[n % PROBES]
            flip = not hot.get(device, False)
            hot[device] = flip
            body = msgspec.json.encode(
                {
                    "seq": n,
                    "readings": [
                        {
                            "sensor": "temp",
                            "value": 60 if flip else 40,
                            "ts": datetime.now(UTC).isoformat(),
                        }
                    ],
                }
            )
            kind_t0 = ("opened" if flip else "resolved", time.perf_counter())
            waiting[device] = kind_t0
            if pipeline == "platform":
                with self.lock:
                    self.hook_waiting[device] = kind_t0
            await js.publish(subjects.telemetry(self.org, uuid.UUID(device)), body)
            await asyncio.sleep(every_ms / 1000)
        deadline = time.monotonic() + 10
        while (waiting or self.hook_waiting) and time.monotonic() < deadline:
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), max(0.01, deadline - time.monotonic()))
        lost = len(waiting)
        await nc.close()
        if lost:
            print(f"  ({pipeline}: {lost} probes saw no event within 10 s)")
        return seen

    _alert_devices: dict[str, str] = {}

    async def _device_of(self, alert_id: str) -> str:
        """An alert's device (AlertResolved does not carry it): from alerting's table."""
        if alert_id not in self._alert_devices:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                row = await conn.fetchval(
                    "SELECT device_id FROM alerting.alerts WHERE id = $1", uuid.UUID(alert_id)
                )
            finally:
                await conn.close()
            self._alert_devices[alert_id] = str(row)
        return self._alert_devices[alert_id]


def _start(kind: str, *args: Any) -> tuple[Any, Connection]:
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("spawn").Process(
        target=_child, args=(kind, *args, child), daemon=True
    )
    proc.start()
    assert parent.recv() == "ready"
    return proc, parent


def _stats(values: list[float]) -> str:
    if not values:
        return f"{'-':>8} {'-':>8} {'-':>8} {0:>6}"
    values = sorted(values)
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return f"{statistics.median(values):8.1f} {q[94]:8.1f} {q[98]:8.1f} {len(values):>6}"


async def main_async(args: argparse.Namespace, nats_url: str, admin_dsn: str) -> None:
    from outpost_alerting import bootstrap
    from outpost_kit.cli import migrations_dir
    from outpost_kit.db.migrate import upgrade
    from outpost_kit.db.provision import provision_service

    app_dsn = await provision_service(admin_dsn, "alerting", secrets.token_urlsafe(16))
    await upgrade(admin_dsn, "alerting", migrations_dir(bootstrap.__file__))
    bench = Bench(nats_url, admin_dsn, app_dsn)
    started = time.monotonic()
    await bench.setup()
    print(
        f"setup: {DEVICES} devices, {DEVICES} rules in {time.monotonic() - started:.1f} s;"
        f" {args.probes} probes every {args.every} ms; load {args.load:,} readings/s"
    )
    print(
        f"{'pipeline':<9} {'load':<6} {'event':<9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        f" {'n':>6}  notes"
    )
    load_devices = [str(d) for d in bench.devices[PROBES:]]
    for load in (0, args.load):
        for pipeline in ("raw", "platform"):
            name = f"bench-{pipeline}-{secrets.token_hex(3)}"
            await bench.consumer(name)
            notifier = None
            if pipeline == "raw":
                proc, pipe = _start(pipeline, nats_url, admin_dsn, name)
            else:
                together = args.delivery == "together"
                proc, pipe = _start(
                    pipeline, nats_url, app_dsn, name, bench.vault_key, True, together, 0
                )
                if args.delivery == "replica":
                    notifier = _start(
                        *(pipeline, nats_url, app_dsn, name, bench.vault_key),
                        *(False, True, args.delivery_nice),
                    )
                    notifier[1].send("go")
            pipe.send("go")
            spy = None
            if args.profile is not None and pipeline == "platform":
                out = args.profile / f"platform-{load}.txt"
                spy = await asyncio.create_subprocess_exec(
                    *("py-spy", "record", "--pid", str(proc.pid), "--format", "raw"),
                    *("-o", str(out), "--rate", "200", "--nonblocking"),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            loader = None
            if load:
                loader = _start("load", nats_url, str(bench.org), load_devices, load)
                await asyncio.sleep(2)  # steady state first
            seen = await bench.probe(pipeline, args.probes, args.every, args.warmup)
            rate = ""
            if loader is not None:
                loader[1].send("stop")
                rate = f"load reached {loader[1].recv():,.0f} readings/s"
                loader[0].join()
            # let the consumer drain what the load left, then stop it
            await asyncio.sleep(1)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await spy.wait()
            pipe.send("stop")
            cpu = pipe.recv()
            proc.join()
            delivery_cpu = ""
            if notifier is not None:
                notifier[1].send("stop")
                delivery_cpu = f" delivery replica cpu {notifier[1].recv():.1f} s"
                notifier[0].join()
            label = f"{load // 1000}k" if load else "idle"
            for event in ("opened", "resolved"):
                print(
                    f"{pipeline:<9} {label:<6} {event:<9} {_stats(seen[event])}"
                    f"  consumer cpu {cpu:.1f} s{delivery_cpu} {rate}"
                )
            if pipeline == "platform" and args.delivery != "none":
                for event in ("opened", "resolved"):
                    print(f"{'webhook':<9} {label:<6} {event:<9} {_stats(bench.hooks[event])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=300)
    ap.add_argument("--every", type=float, default=20.0, help="ms between probes")
    ap.add_argument("--warmup", type=int, default=40, help="probes not counted, first")
    ap.add_argument("--load", type=int, default=100_000, help="readings/s of steady load")
    ap.add_argument("--profile", type=Path, help="py-spy the platform consumer into DIR")
    ap.add_argument(
        "--delivery-nice",
        type=int,
        default=0,
        help="the delivery replica's niceness (a lower CPU priority than evaluation's)",
    )
    ap.add_argument(
        "--delivery",
        choices=("replica", "together", "none"),
        default="replica",
        help="webhook delivery in a replica of its own, in the evaluation process, or not at all",
    )
    args = ap.parse_args()
    from outpost_devkit.infra import NatsServer, PostgresCluster

    base = Path(tempfile.mkdtemp(prefix="outpost-bench-alerting-"))
    nats_server = pg = None
    try:
        nats_server = NatsServer.start(base / "nats")
        pg = PostgresCluster.start(base / "pg")
        _run(main_async(args, nats_server.url, pg.admin_dsn))
    finally:
        if nats_server is not None:
            nats_server.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
