"""bench/notifications: webhook deliveries, from an alert event handled by the
``alerting-notifications`` consumer's code to the receiver (decision 64).

What runs: one private Postgres (durable settings), the alerting schema migrated and
provisioned as the service's own, one delivery worker in this process (as one alerting
replica runs it), and HTTP receivers on loopback (stdlib ``ThreadingHTTPServer``, one per
channel, answering 204) in threads of this process. No NATS: the consumer's handler
(``app.notifications.on_alert_event``) runs in its own transaction per event, as the inbox
consumer calls it.

- **latency**: ``--events`` alert events, one every ``--interval`` seconds, for one rule
  with one webhook channel; latency = receipt at the receiver - commit of the event's
  deliveries (what the worker could first see), p50/p99/max;
- **drain**: ``--burst`` events at once for a rule with ``--channels`` channels
  (events x channels deliveries) queued with the worker stopped, the per-channel limit at
  its default (4); deliveries/s from the worker's start to the last receipt.
- **through the consumer** (``--consumer-events``, 0 to skip): a private nats-server too;
  each alert event is appended to the event store and published to ALERTING as the outbox
  relay does, one every ``--interval``, and the ``alerting-notifications`` consumer (the
  kit's ``InboxConsumer``, as the runtime runs it) and the worker carry it to the receiver;
  latency from the publish to receipt, and the event loop thread's CPU per event less what
  the bench spent appending and publishing: what one delivery costs its replica.
- **CPU per delivery** (decision 70), a figure that does not depend on a quiet machine: the
  CPU time of the event loop's thread (``time.thread_time``: the worker, its SQL client
  side and httpx; not the receivers' threads, not Postgres) over the drain divided by the
  deliveries, and over the latency run (worker plus the handler making the deliveries) per
  event; the handler's own share is timed around it (``fire``), so the worker's is the rest.

Every delivery is checked: each receiver must get each event exactly once, signed.

Run: ``uv run python bench/notifications.py [--events 200] [--interval 0.02] [--burst 500]
[--channels 4] [--consumer-events 300]``.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
from cryptography.fernet import Fernet

SECRET = "bench-webhook-secret-0123456789"
_encode = msgspec.json.encode


class Receiver:
    def __init__(self) -> None:
        self.got: dict[str, float] = {}
        self.duplicates = 0
        self.bad_signatures = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                from outpost_alerting.domain.deliveries import verify

                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                event_id = self.headers.get("X-Outpost-Event-Id", "")
                ok = verify(SECRET, body, self.headers.get("X-Outpost-Signature", ""))
                with receiver._lock:
                    if not ok:
                        receiver.bad_signatures += 1
                    if event_id in receiver.got:
                        receiver.duplicates += 1
                    receiver.got.setdefault(event_id, at)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _run(args: argparse.Namespace, dsn: str, nats_url: str | None) -> None:
    from outpost_alerting import bootstrap
    from outpost_alerting.adapters.resolver import StaticResolver
    from outpost_alerting.adapters.secrets import SecretVault
    from outpost_alerting.adapters.webhook import WebhookSender
    from outpost_alerting.app import notifications as app
    from outpost_alerting.domain import ssrf
    from outpost_contracts import alerting as alert_api
    from outpost_contracts import notifications as api
    from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
    from outpost_kit.cli import migrations_dir
    from outpost_kit.db.engine import create_engine
    from outpost_kit.db.eventstore import EventCodec
    from outpost_kit.db.migrate import upgrade
    from outpost_kit.db.provision import provision_service
    from outpost_kit.db.reads import TenantReads
    from outpost_kit.db.uow import UnitOfWorkFactory

    service_dsn = await provision_service(dsn, "alerting", secrets.token_urlsafe(16))
    await upgrade(dsn, "alerting", migrations_dir(bootstrap.__file__))
    engine = create_engine(service_dsn, "alerting", pool_size=10)
    uow = UnitOfWorkFactory(engine, EventCodec(bootstrap.EVENT_TYPES), bootstrap.PROJECTORS)
    reads = await TenantReads.connect(service_dsn, "alerting")  # as a replica's runtime has
    org = uuid.uuid4()
    ctx = RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org,
        principal=Principal(kind=PrincipalKind.API_KEY, id=uuid.uuid4(), org_id=org, scopes=("*",)),
    )
    deps = app.NotificationDeps(
        uow=uow,
        reads=reads,
        vault=SecretVault(Fernet.generate_key().decode()),
        webhooks=WebhookSender(StaticResolver(), ssrf.Policy(allow_loopback=True)),
    )
    stop = asyncio.Event()
    worker: asyncio.Task[None] | None = None

    async def channels(n: int) -> tuple[list[Receiver], list[uuid.UUID]]:
        receivers = [Receiver() for _ in range(n)]
        ids = []
        for r in receivers:
            view = await app.create_channel(
                deps,
                ctx,
                api.CreateNotificationChannel(
                    type=api.ChannelType.WEBHOOK, name="bench", url=r.url, secret=SECRET
                ),
            )
            ids.append(view.id)
        return receivers, ids

    async def rule(channel_ids: list[uuid.UUID]) -> uuid.UUID:
        rule_id = uuid.uuid4()
        async with uow(org) as u:
            await u.execute(
                "INSERT INTO alert_rules (org_id, id, version, name, scope_type, sensor,"
                " condition, severity, for_seconds, enabled, channel_ids, created_at,"
                " updated_at) VALUES (:org, :id, 1, 'bench', 'ORGANIZATION', 't',"
                " CAST('{}' AS jsonb), 'MAJOR', 0, true, :ch, now(), now())",
                {"org": org, "id": rule_id, "ch": channel_ids},
            )
            await u.commit()
        return rule_id

    async def opened(rule_id: uuid.UUID, *, handled: bool = False) -> Any:
        """An AlertOpened appended (and committed) as evaluation does; with ``handled``, also
        handled as the consumer does, in the same transaction. Its envelope."""
        from datetime import UTC, datetime

        ts = datetime.now(UTC)
        event = alert_api.AlertOpened(
            rule_id=rule_id,
            rule_version=1,
            device_id=uuid.uuid4(),
            sensor="t",
            severity=alert_api.Severity.MAJOR,
            trigger=alert_api.AlertTrigger(
                value=1.0, ts=ts, since=ts, condition="t > 0", rule_version=1
            ),
        )
        async with uow(org) as u:
            [envelope] = await u.events.append(
                org_id=org,
                stream_id=uuid.uuid4(),
                stream_type="alert",
                expected_version=0,
                events=[event],
            )
            if handled:
                await app.on_alert_event(deps, u, envelope)
            await u.commit()
        return envelope

    async def fire(rule_id: uuid.UUID) -> tuple[str, float]:
        """One AlertOpened appended and handled as the consumer does, in one transaction;
        (event id, commit time)."""
        envelope = await opened(rule_id, handled=True)
        return str(envelope.id), time.time()

    async def wait_for(receivers: list[Receiver], ids: list[str], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if all(all(i in r.got for i in ids) for r in receivers):
                return
            await asyncio.sleep(0.01)
        raise SystemExit("not every delivery arrived in time")

    def check(receivers: list[Receiver], ids: list[str]) -> None:
        for r in receivers:
            assert r.duplicates == 0 and r.bad_signatures == 0, (r.duplicates, r.bad_signatures)
            assert set(r.got) == set(ids), "a receiver missed an event or got a stranger"

    async def through_consumer(nats_url: str) -> None:
        """Alert events published to ALERTING, consumed and delivered as a replica does."""
        import nats

        from outpost_alerting.entrypoints import notifications as entry
        from outpost_contracts import streams, subjects
        from outpost_kit import messaging
        from outpost_kit.consumer import InboxConsumer

        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        spec = streams.consumer(entry.CONSUMER)
        await messaging.apply_streams(js, [streams.stream("ALERTING")], [spec])
        receivers, channel_ids = await channels(1)
        rule_id = await rule(channel_ids)
        halt = asyncio.Event()
        # As ``entrypoints/notifications.register`` has the runtime run it.
        consumer = InboxConsumer(
            uow,
            js,
            spec,
            lambda u, e: entry.on_alert_event(deps, u, e),
            EventCodec(app.ALERT_EVENTS),
        )
        consuming = asyncio.create_task(consumer.run(halt))
        working = asyncio.create_task(app.worker(deps, halt))
        await asyncio.sleep(0.5)  # both started and idle
        published: dict[str, float] = {}
        bench_cpu = 0.0
        cpu0 = time.thread_time()
        try:
            for _ in range(args.consumer_events):
                f0 = time.thread_time()
                envelope = await opened(rule_id)
                at = time.time()
                await js.publish(
                    subjects.event(envelope.type, org),
                    _encode(envelope),
                    headers={messaging.MSG_ID: str(envelope.id)},
                )
                bench_cpu += time.thread_time() - f0
                published[str(envelope.id)] = at
                await asyncio.sleep(args.interval)
            await wait_for(receivers, list(published), 60)
            used = time.thread_time() - cpu0
        finally:
            halt.set()
            await asyncio.gather(consuming, working)
            await nc.close()
        check(receivers, list(published))
        latencies = [(receivers[0].got[e] - at) * 1000 for e, at in published.items()]
        n = args.consumer_events
        print(
            f"through the consumer, {n} events every"
            f" {args.interval * 1000:.0f} ms, 1 channel: publish -> receipt p50"
            f" {statistics.median(latencies):.1f} ms, p99 {_pct(latencies, 99):.1f} ms;"
            f" CPU of the consumer and the worker {(used - bench_cpu) * 1000 / n:.2f} ms per"
            f" delivery (event loop thread, the bench's appends and publishes left out)"
        )

    try:
        if nats_url is not None and args.consumer_events:
            await through_consumer(nats_url)
        # latency
        worker = asyncio.create_task(app.worker(deps, stop))
        receivers, channel_ids = await channels(1)
        rule_id = await rule(channel_ids)
        committed: dict[str, float] = {}
        fire_cpu = 0.0
        cpu0 = time.thread_time()
        for _ in range(args.events):
            f0 = time.thread_time()
            event_id, at = await fire(rule_id)
            fire_cpu += time.thread_time() - f0
            committed[event_id] = at
            await asyncio.sleep(args.interval)
        await wait_for(receivers, list(committed), 60)
        latency_cpu = time.thread_time() - cpu0
        check(receivers, list(committed))
        latencies = [(receivers[0].got[e] - at) * 1000 for e, at in committed.items()]
        print(
            f"latency, {args.events} events every {args.interval * 1000:.0f} ms, 1 channel:"
            f" p50 {statistics.median(latencies):.1f} ms, p99 {_pct(latencies, 99):.1f} ms,"
            f" max {max(latencies):.1f} ms"
        )
        print(
            f"  CPU (event loop thread): {latency_cpu * 1000 / args.events:.2f} ms per event,"
            f" of which making the delivery (append + handler, one transaction)"
            f" {fire_cpu * 1000 / args.events:.2f} ms, worker"
            f" {(latency_cpu - fire_cpu) * 1000 / args.events:.2f} ms per delivery"
        )
        # drain: queued with the worker stopped, then timed from the worker's start
        stop.set()
        assert worker is not None
        await worker
        receivers, channel_ids = await channels(args.channels)
        rule_id = await rule(channel_ids)
        began = time.time()
        fired = [await fire(rule_id) for _ in range(args.burst)]
        enqueue_s = time.time() - began
        ids = [e for e, _ in fired]
        stop = asyncio.Event()
        started = time.time()
        cpu0 = time.thread_time()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        worker = asyncio.create_task(app.worker(deps, stop))
        await wait_for(receivers, ids, 300)
        drain_cpu = time.thread_time() - cpu0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        process_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        check(receivers, ids)
        last = max(max(r.got.values()) for r in receivers)
        total = args.burst * args.channels
        print(
            f"drain, {args.burst} events x {args.channels} channels = {total} deliveries:"
            f" {total / (last - started):.0f} deliveries/s by one worker, all delivered once,"
            f" signed; making them took {enqueue_s * 1000 / args.burst:.1f} ms per event"
            f" ({args.channels} deliveries each, one transaction)"
        )
        print(
            f"  CPU per delivery over the drain: {drain_cpu * 1000 / total:.2f} ms (event loop"
            f" thread: the worker), {process_cpu * 1000 / total:.2f} ms (whole bench process,"
            f" with the receivers' threads)"
        )
    finally:
        stop.set()
        if worker is not None:
            await worker
        await deps.webhooks.close()
        await reads.close()
        await engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--burst", type=int, default=500)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--consumer-events", type=int, default=300)
    args = ap.parse_args()
    from outpost_devkit.infra import NatsServer, PostgresCluster

    with tempfile.TemporaryDirectory(prefix="outpost-bench-") as tmp:
        pg = PostgresCluster.start(Path(tmp) / "pg")
        broker = NatsServer.start(Path(tmp) / "nats") if args.consumer_events else None
        try:
            url = None if broker is None else broker.url
            try:
                import uvloop

                uvloop.run(_run(args, pg.admin_dsn, url))
            except ImportError:  # pragma: no cover
                asyncio.run(_run(args, pg.admin_dsn, url))
        finally:
            if broker is not None:
                broker.stop()
            pg.stop()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
