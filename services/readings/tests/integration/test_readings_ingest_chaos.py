"""Chaos for telemetry ingest, with the session's real nats-server and Postgres processes
(docs/design/reliability.md nats-kill, pg-restart, consumer-crash; issue 5's proof):

1. devices keep publishing numbered readings with JetStream publish acks while
   nats-server is SIGKILLed and restarted on its store, while Postgres stops immediately
   (``pg_ctl stop -m immediate``) and restarts, and while both are down at once;
2. the ingest process is SIGKILLed while its batch's transaction is open (seen in
   ``pg_stat_activity`` running its COPY or INSERT), then another consumer takes over;
3. Postgres stays down longer than the consumer's redelivery budget
   (``max_deliver`` x ack wait).

Afterwards every reading whose publish was acknowledged is in Postgres exactly once, and
nothing else is there. These tests kill the session's servers, so they run last
(``outpost_devkit.testing.fixtures``); ``make chaos`` runs them alone.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import secrets
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext
from prometheus_client import REGISTRY

from outpost_contracts import streams, subjects
from outpost_contracts.devices import DeviceRegistered
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.streams import ConsumerSpec
from outpost_devkit.infra import NatsServer, PostgresCluster
from outpost_kit import ids, messaging
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine, plain_dsn
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import provision_service
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_readings import bootstrap
from outpost_readings.app import handlers
from outpost_readings.domain.readings import Limits
from outpost_readings.entrypoints import telemetry

pytestmark = pytest.mark.integration

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
HELD_METRIC = "outpost_readings_ingest_unavailable_total"


def _ts(seq: int, i: int) -> str:
    """Reading ``i`` of message ``seq``: a distinct instant per (seq, i)."""
    at = BASE + timedelta(milliseconds=seq, microseconds=i)
    return at.isoformat().replace("+00:00", "Z")


def _held() -> float:
    return REGISTRY.get_sample_value(HELD_METRIC) or 0.0


async def until(probe: Callable[[], Awaitable[bool] | bool], what: str, within: float = 60) -> None:
    """Poll ``probe`` until it is true; fail naming ``what`` after ``within`` seconds (a
    minute by default: the CI machine can be several times slower hour to hour)."""
    deadline = time.monotonic() + within

    async def check() -> bool:
        got = probe()
        return await got if inspect.isawaitable(got) else bool(got)

    while not await check():
        assert time.monotonic() < deadline, f"not within {within:.0f}s: {what}"
        await asyncio.sleep(0.05)


@dataclass
class Device:
    """A device that numbers its messages and resends one until the broker acks it."""

    js: JetStreamContext
    org: uuid.UUID
    id: uuid.UUID
    per_message: int
    interval: float = 0.02  # between messages: a device's pace, not a flat-out benchmark
    sent: set[int] = field(default_factory=set)  # published at least once (acked or not)
    acked: set[int] = field(default_factory=set)
    failures: int = 0

    def body(self, seq: int) -> bytes:
        readings = [
            {"sensor": "t", "ts": _ts(seq, i), "value": seq + i / 1000}
            for i in range(self.per_message)
        ]
        return msgspec.json.encode({"seq": seq, "readings": readings})

    async def run(self, stop: asyncio.Event) -> None:
        subject = subjects.telemetry(self.org, self.id)
        seq = 0
        while not stop.is_set():
            seq += 1
            body = self.body(seq)
            while not stop.is_set():
                self.sent.add(seq)
                try:
                    await self.js.publish(subject, body, timeout=1.0)
                except Exception:  # no ack: the broker is down or restarting; send it again
                    self.failures += 1
                    await asyncio.sleep(0.1)
                    continue
                self.acked.add(seq)
                break
            await asyncio.sleep(self.interval)


class Chaos:
    def __init__(
        self,
        admin_dsn: str,
        deps: handlers.Deps,
        dsn: str,
        nats_url: str,
        nc: NATS,
        nats_server: NatsServer,
        pg: PostgresCluster,
    ) -> None:
        self.admin_dsn = admin_dsn
        self.deps = deps
        self.dsn = dsn
        self.nats_url = nats_url
        self.nc = nc
        self.js = nc.jetstream()
        self.nats = nats_server
        self.pg = pg

    async def device(self, org: uuid.UUID) -> uuid.UUID:
        device = ids.new_id()
        envelope = EventEnvelope(
            id=ids.new_id(),
            org_id=org,
            stream_id=device,
            stream_type="device",
            version=1,
            occurred_at=ids.now(),
            data=DeviceRegistered(name=f"d-{device}"),
        )
        async with self.deps.uow(org) as uow:
            await handlers.on_device_event(uow, envelope)
            await uow.commit()
        return device

    async def consumer(self, org: uuid.UUID, *, ack_wait: float, max_deliver: int) -> ConsumerSpec:
        """A durable consumer of this organization's telemetry, like readings-telemetry."""
        spec = ConsumerSpec(
            stream="TELEMETRY",
            name=f"chaos-{secrets.token_hex(6)}",
            owner="readings",
            filter_subjects=(f"{subjects.PREFIX}.tel.{org}.>",),
            ack_wait_seconds=ack_wait,
            max_deliver=max_deliver,
        )
        await messaging.apply_streams(self.js, [streams.stream("TELEMETRY")], [spec])
        return spec

    async def settled(self, spec: ConsumerSpec) -> bool:
        """Nothing left to deliver or to ack (the broker may be restarting: not yet)."""
        try:
            info = await self.js.consumer_info(spec.stream, spec.name, timeout=1.0)
        except Exception:
            return False
        return info.num_pending == 0 and info.num_ack_pending == 0

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(plain_dsn(self.admin_dsn))

    async def stored(self, org: uuid.UUID) -> dict[tuple[uuid.UUID, int], int]:
        """Rows per (device, seq) of ``org`` (the superuser sees every tenant's rows)."""
        conn = await self.admin()
        try:
            rows = await conn.fetch(
                "SELECT device_id, seq, count(*) AS n FROM readings.readings"
                " WHERE org_id = $1 GROUP BY device_id, seq",
                org,
            )
            return {(r["device_id"], r["seq"]): r["n"] for r in rows}
        finally:
            await conn.close()

    async def check_exactly_once(self, org: uuid.UUID, devices: list[Device]) -> int:
        """Every acknowledged message's readings are stored, each once; nothing that was
        never published is; no reading twice; nothing quarantined, no seq gap counted."""
        stored = await self.stored(org)
        per = {d.id: d.per_message for d in devices}
        acked = {(d.id, s) for d in devices for s in d.acked}
        sent = {(d.id, s) for d in devices for s in d.sent}
        assert acked <= set(stored), f"acknowledged, not stored: {sorted(acked - set(stored))}"
        assert set(stored) <= sent, f"stored, never sent: {sorted(set(stored) - sent)}"
        wrong = {key: n for key, n in stored.items() if n != per[key[0]]}
        assert wrong == {}, f"(device, seq) stored with a wrong number of readings: {wrong}"
        conn = await self.admin()
        try:
            total, distinct = await conn.fetchrow(
                "SELECT count(*), count(DISTINCT (device_id, sensor, ts))"
                " FROM readings.readings WHERE org_id = $1",
                org,
            )
            assert total == distinct == sum(stored.values())
            quarantined = await conn.fetchval(
                "SELECT count(*) FROM readings.quarantine WHERE org_id = $1", org
            )
            assert quarantined == 0
            dead = await conn.fetchval(
                "SELECT count(*) FROM readings.dead_letters WHERE subject LIKE $1",
                f"{subjects.PREFIX}.tel.{org}.%",
            )
            assert dead == 0
            seqs = await conn.fetch(
                "SELECT device_id, last_seq, gaps, resets FROM readings.device_seq"
                " WHERE org_id = $1",
                org,
            )
        finally:
            await conn.close()
        highest = {d: max(s for (dd, s) in stored if dd == d) for d, _ in stored}
        assert {r["device_id"]: (r["last_seq"], r["gaps"], r["resets"]) for r in seqs} == {
            d: (h, 0, 0) for d, h in highest.items()
        }
        return int(total)


@pytest.fixture
async def chaos(
    postgres_dsn: str,
    nats_url: str,
    nats_server: NatsServer,
    postgres_cluster: PostgresCluster,
) -> AsyncIterator[Chaos]:
    dsn = await provision_service(postgres_dsn, "readings", secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, "readings", migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, "readings", pool_size=4)
    nc = await messaging.connect(nats_url, "readings-chaos")  # reconnects forever

    async def exists(ctx: Any, device_id: uuid.UUID) -> bool:
        return False

    deps = handlers.Deps(
        uow=UnitOfWorkFactory(engine, EventCodec(handlers.DEVICE_EVENT_TYPES)),
        limits=Limits(),
        device_exists=exists,
    )
    try:
        yield Chaos(postgres_dsn, deps, dsn, nats_url, nc, nats_server, postgres_cluster)
    finally:
        # Whatever happened, leave both servers running for what comes after.
        if not postgres_cluster.running:
            await asyncio.to_thread(postgres_cluster.restart)
        if not nats_server.running:
            await asyncio.to_thread(nats_server.restart)
        await nc.close()
        await engine.dispose()


async def _consume(chaos: Chaos, spec: ConsumerSpec, stop: asyncio.Event) -> None:
    """The real ingest loop on a connection of its own that reconnects forever."""
    nc = await messaging.connect(chaos.nats_url, "readings-chaos-ingest")
    try:
        await telemetry.run(chaos.deps, nc.jetstream(), spec, 1000, stop, hold_backoff_max=0.5)
    finally:
        await nc.close()


async def test_publishing_through_broker_kills_and_database_stops_loses_and_doubles_nothing(
    chaos: Chaos,
) -> None:
    """nats-kill and pg-restart: four devices publish all along; nats-server is killed -9
    and restarted, then Postgres is stopped immediately and restarted, then both at once.
    Every acknowledged message is stored once; every outage really happened (publishes
    failed; ingest found the database unavailable and kept its batch)."""
    org = ids.new_id()
    devices = [Device(chaos.js, org, await chaos.device(org), per_message=20) for _ in range(4)]
    spec = await chaos.consumer(org, ack_wait=5, max_deliver=5)
    stop_ingest, stop_devices = asyncio.Event(), asyncio.Event()
    ingest = asyncio.create_task(_consume(chaos, spec, stop_ingest))
    # Devices publish on a connection of their own, like devices do.
    dev_nc = await messaging.connect(chaos.nats_url, "readings-chaos-devices")
    for d in devices:
        d.js = dev_nc.jetstream()
    publishing = [asyncio.create_task(d.run(stop_devices)) for d in devices]

    async def more_acked(n: int) -> None:
        marks = {d.id: len(d.acked) for d in devices}

        async def probe() -> bool:
            assert not ingest.done(), "the ingest loop stopped"
            return all(len(d.acked) >= marks[d.id] + n for d in devices)

        await until(probe, f"{n} more acknowledged messages per device")

    missing: list[tuple[uuid.UUID, int]] = []

    async def stored_catches_up() -> None:
        async def probe() -> bool:
            want = {(d.id, s) for d in devices for s in d.acked}
            missing[:] = sorted(want - set(await chaos.stored(org)))
            return not missing

        try:
            await until(probe, "ingest storing what was acknowledged")
        except AssertionError:
            info = await chaos.js.consumer_info(spec.stream, spec.name)
            raise AssertionError(f"acknowledged, not stored: {missing}; {info}") from None

    try:
        await more_acked(10)
        await stored_catches_up()

        # 1. nats-server killed -9 mid-publish, down for a moment, restarted on its store.
        failures = sum(d.failures for d in devices)
        await asyncio.to_thread(chaos.nats.kill)
        # The outage lasts until a device's publish failed in it (forced, not a guessed
        # second that a slow machine's devices may spend without publishing).
        await until(lambda: sum(d.failures for d in devices) > failures, "a publish failing")
        await asyncio.to_thread(chaos.nats.restart)
        await more_acked(10)
        assert sum(d.failures for d in devices) > failures, "no publish failed: no outage?"
        await stored_catches_up()

        # 2. Postgres stopped immediately (no checkpoint: crash recovery at start).
        held = _held()
        await asyncio.to_thread(chaos.pg.kill)
        await more_acked(10)  # the broker keeps acknowledging while the database is down
        await until(lambda: _held() > held, "ingest finding the database down")
        await asyncio.to_thread(chaos.pg.restart)
        await stored_catches_up()

        # 3. Both at once.
        held, failures = _held(), sum(d.failures for d in devices)
        await asyncio.to_thread(chaos.pg.kill)
        await asyncio.to_thread(chaos.nats.kill)
        await until(lambda: sum(d.failures for d in devices) > failures, "a publish failing")
        await asyncio.to_thread(chaos.nats.restart)
        await more_acked(5)
        await until(lambda: _held() > held, "ingest finding the database down")
        await asyncio.to_thread(chaos.pg.restart)
        assert sum(d.failures for d in devices) > failures
    finally:
        stop_devices.set()
        await asyncio.gather(*publishing)
        await dev_nc.close()
    await until(lambda: chaos.settled(spec), "the consumer settling every message")
    stop_ingest.set()
    await asyncio.wait_for(ingest, 15)
    total = await chaos.check_exactly_once(org, devices)
    assert total >= 4 * 35 * 20


# The real ingest loop in a process of its own, with a recognisable application_name, so
# the test sees its transaction in pg_stat_activity and kills the process in the middle.
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import nats
    from sqlalchemy.ext.asyncio import create_async_engine
    from outpost_contracts import streams
    from outpost_kit.db.engine import asyncpg_url
    from outpost_kit.db.eventstore import EventCodec
    from outpost_kit.db.uow import UnitOfWorkFactory
    from outpost_readings.app import handlers
    from outpost_readings.domain.readings import Limits
    from outpost_readings.entrypoints import telemetry

    async def main():
        dsn, url, name, app = sys.argv[1:5]
        engine = create_async_engine(
            asyncpg_url(dsn),
            pool_size=2,
            connect_args={"server_settings": {"search_path": "readings", "application_name": app}},
        )
        nc = await nats.connect(url)

        async def exists(ctx, device_id):
            return False

        deps = handlers.Deps(
            uow=UnitOfWorkFactory(engine, EventCodec(handlers.DEVICE_EVENT_TYPES)),
            limits=Limits(),
            device_exists=exists,
        )
        spec = streams.ConsumerSpec(stream="TELEMETRY", name=name, owner="readings")
        await telemetry.run(deps, nc.jetstream(), spec, 1000, asyncio.Event())

    asyncio.run(main())
    """
)

IN_BATCH = (
    "SELECT pid, left(query, 40) AS query FROM pg_stat_activity"
    " WHERE application_name = $1 AND state = 'active' AND backend_xid IS NOT NULL"
    " AND (query LIKE 'COPY%' OR query LIKE 'INSERT INTO readings %')"
)


async def test_a_consumer_killed_with_its_batch_transaction_open_loses_and_doubles_nothing(
    chaos: Chaos,
) -> None:
    """consumer-crash mid-batch: the ingest process is SIGKILLed while Postgres shows its
    transaction writing the batch (COPY into staging or the INSERT into readings). That
    transaction never commits; the next consumer stores every reading exactly once."""
    org = ids.new_id()
    device = Device(chaos.js, org, await chaos.device(org), per_message=100)
    spec = await chaos.consumer(org, ack_wait=2, max_deliver=5)
    messages = 400  # 40,000 readings in one fetched batch: a transaction that lasts
    for seq in range(1, messages + 1):
        await chaos.js.publish(subjects.telemetry(org, device.id), device.body(seq))
        device.sent.add(seq)
        device.acked.add(seq)
    app = f"readings-chaos-{secrets.token_hex(4)}"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, chaos.dsn, chaos.nats_url, spec.name, app, env=dict(os.environ)
    )
    conn = await chaos.admin()
    try:
        seen: list[Any] = []

        async def in_batch() -> bool:
            assert child.returncode is None, "the consumer exited on its own"
            seen[:] = await conn.fetch(IN_BATCH, app)
            return bool(seen)

        await until(in_batch, "the consumer's batch transaction writing")
        os.kill(child.pid, signal.SIGKILL)
        assert await asyncio.wait_for(child.wait(), 10) == -signal.SIGKILL

        async def gone() -> bool:
            return not await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app
            )

        await until(gone, "Postgres ending the killed consumer's sessions")
        committed = await conn.fetchval(
            "SELECT count(*) FROM readings.readings WHERE org_id = $1", org
        )
    finally:
        await conn.close()
    # The batch being written when the process died left nothing behind.
    assert committed < messages * 100, f"killed after everything was stored ({seen})"
    info = await chaos.js.consumer_info(spec.stream, spec.name)
    assert info.ack_floor.stream_seq < info.delivered.stream_seq or info.num_ack_pending > 0
    stop = asyncio.Event()
    ingest = asyncio.create_task(_consume(chaos, spec, stop))
    await until(lambda: chaos.settled(spec), "the next consumer settling every message")
    stop.set()
    await asyncio.wait_for(ingest, 15)
    assert await chaos.check_exactly_once(org, [device]) == messages * 100


async def test_a_database_outage_longer_than_the_redelivery_budget_loses_nothing(
    chaos: Chaos,
) -> None:
    """Postgres is down for over twice ``max_deliver`` x ack wait (3 x 1 s) while the
    broker holds 50 acknowledged messages: the consumer keeps its batch (renewing the ack
    wait), JetStream redelivers nothing, and everything is stored once when Postgres is
    back. Nak'ing instead would have spent the 3 deliveries in about a second, and
    JetStream would never have delivered those messages again."""
    org = ids.new_id()
    device = Device(chaos.js, org, await chaos.device(org), per_message=10)
    spec = await chaos.consumer(org, ack_wait=1, max_deliver=3)
    held = _held()
    await asyncio.to_thread(chaos.pg.kill)
    for seq in range(1, 51):  # all there before the consumer starts: one fetched batch
        await chaos.js.publish(subjects.telemetry(org, device.id), device.body(seq))
        device.sent.add(seq)
        device.acked.add(seq)
    stop = asyncio.Event()
    ingest = asyncio.create_task(_consume(chaos, spec, stop))
    try:

        async def all_delivered() -> bool:
            info = await chaos.js.consumer_info(spec.stream, spec.name)
            return info.delivered.stream_seq >= last

        last = (await chaos.js.stream_info("TELEMETRY")).state.last_seq
        await until(all_delivered, "the consumer fetching all 50 messages")
        started = time.monotonic()
        budget = spec.max_deliver * spec.ack_wait_seconds
        await asyncio.sleep(2 * budget)  # the outage: longer than the redelivery budget
        during = await chaos.js.consumer_info(spec.stream, spec.name)
        await asyncio.to_thread(chaos.pg.restart)
        assert time.monotonic() - started > budget
        await until(lambda: chaos.settled(spec), "the consumer storing the held batch")
    finally:
        stop.set()
        await asyncio.wait_for(ingest, 15)
    assert await chaos.check_exactly_once(org, [device]) == 500
    # How: the batch was kept and retried, its lease renewed, so no delivery was counted.
    assert _held() > held
    assert during.num_ack_pending == 50
    assert during.num_redelivered == 0
