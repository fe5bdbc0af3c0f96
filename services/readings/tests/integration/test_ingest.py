"""Ingest against real nats-server and Postgres: partitions created ahead, COPY ingest,
quarantine with reasons, redelivery without duplicates, a consumer killed between commit and
ack, seq gaps, tenant isolation."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import nats
import pytest
from nats.js.client import JetStreamContext

from outpost_contracts import streams, subjects
from outpost_contracts.devices import DeviceDecommissioned, DeviceRegistered
from outpost_contracts.envelope import EventEnvelope, Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import NotFound
from outpost_contracts.identity import OrganizationReinstated, OrganizationSuspended
from outpost_contracts.query import Page
from outpost_contracts.readings import (
    DiscardQuarantine,
    GetTelemetryHealth,
    ListQuarantine,
    ListReadings,
    QuarantineOutcome,
    ReplayQuarantine,
    TelemetryMessage,
    TelemetryReading,
)
from outpost_contracts.registry import SensorDeclared, ValidRange, ValueType
from outpost_contracts.streams import ConsumerSpec
from outpost_devkit.testing.audit import rls_violations
from outpost_devkit.testing.suspensions import record_organization_event
from outpost_kit import ids, messaging
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine, plain_dsn
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import owner_role, provision_service
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_readings import bootstrap
from outpost_readings.adapters import store
from outpost_readings.app import handlers, queries
from outpost_readings.domain.readings import Limits
from outpost_readings.entrypoints import maintenance, telemetry

pytestmark = pytest.mark.integration


class Env:
    def __init__(self, deps: handlers.Deps, dsn: str, nats_url: str, js: JetStreamContext) -> None:
        self.deps = deps
        self.dsn = dsn
        self.nats_url = nats_url
        self.js = js

    async def device(self, org: uuid.UUID, *, decommissioned: bool = False) -> uuid.UUID:
        device = ids.new_id()
        await self.event(org, device, 1, DeviceRegistered(name=f"d-{device}"))
        if decommissioned:
            await self.event(org, device, 2, DeviceDecommissioned())
        return device

    async def event(self, org: uuid.UUID, stream: uuid.UUID, version: int, data: Any) -> None:
        envelope = EventEnvelope(
            id=ids.new_id(),
            org_id=org,
            stream_id=stream,
            stream_type="device",
            version=version,
            occurred_at=ids.now(),
            data=data,
        )
        async with self.deps.uow(org) as uow:
            await handlers.on_device_event(uow, envelope)
            await uow.commit()

    async def consumer(self, org: uuid.UUID, *, ack_wait: float = 30) -> ConsumerSpec:
        """A durable consumer of this organization's telemetry only, like readings-telemetry."""
        spec = ConsumerSpec(
            stream="TELEMETRY",
            name=f"test-{secrets.token_hex(6)}",
            owner="readings",
            filter_subjects=(f"{subjects.PREFIX}.tel.{org}.>",),
            ack_wait_seconds=ack_wait,
            max_deliver=5,
        )
        await messaging.apply_streams(self.js, [streams.stream("TELEMETRY")], [spec])
        return spec

    async def publish(self, org: uuid.UUID, device: uuid.UUID, body: Any) -> None:
        data = body if isinstance(body, bytes) else msgspec.json.encode(body)
        await self.js.publish(subjects.telemetry(org, device), data)

    async def rows(self, org: uuid.UUID, sql: str, *args: Any) -> list[Any]:
        async with self.deps.uow(org) as uow:
            driver = await store._driver(uow)
            return list(await driver.fetch(sql, *args))


@pytest.fixture
async def env(postgres_dsn: str, nats_url: str) -> AsyncIterator[Env]:
    dsn = await provision_service(postgres_dsn, "readings", secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, "readings", migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, "readings", pool_size=4)
    nc = await nats.connect(nats_url)

    async def exists(ctx: Any, device_id: uuid.UUID) -> bool:
        return False

    deps = handlers.Deps(
        uow=UnitOfWorkFactory(engine, EventCodec(handlers.DEVICE_EVENT_TYPES)),
        limits=Limits(),
        device_exists=exists,
    )
    try:
        yield Env(deps, dsn, nats_url, nc.jetstream())
    finally:
        await nc.close()
        await engine.dispose()


async def _drain(env: Env, spec: ConsumerSpec, expect: int, *, batch: int = 1000) -> None:
    """Run the real ingest loop until nothing is left to deliver or to ack, then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(telemetry.run(env.deps, env.js, spec, batch, stop))
    try:
        for _ in range(1200):  # up to a minute: the CI machine can be several times slower
            info = await env.js.consumer_info(spec.stream, spec.name)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{info.num_pending + info.num_ack_pending} of {expect} left")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


def _at(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def test_partitions_are_created_ahead_with_row_level_security(env: Env) -> None:
    today = datetime.now(UTC).date()
    made = await handlers.ensure_partitions_ahead(env.deps, today, 3)
    again = await handlers.ensure_partitions_ahead(env.deps, today, 3)
    fresh = handlers.Deps(
        uow=env.deps.uow, limits=env.deps.limits, device_exists=env.deps.device_exists
    )
    assert await handlers.ensure_partitions_ahead(fresh, today, 3) == 0  # they exist already
    async with env.deps.uow(None) as uow:
        names = await store.partitions(uow)
    wanted = [f"readings_p{(today + timedelta(days=n)):%Y%m%d}" for n in range(-1, 4)]
    assert set(wanted) <= set(names)
    assert made <= 5 and again == 0
    # Each partition has FORCEd RLS and a policy; the app role owns none and runs no other
    # SECURITY DEFINER function (the rls-audit, now with partitions in the schema).
    conn = await asyncpg.connect(plain_dsn(env.dsn))
    try:
        assert await rls_violations(conn, "readings") == []
    finally:
        await conn.close()


async def test_copy_ingest_quarantine_and_seq_gaps(env: Env) -> None:
    org = ids.new_id()
    device, gone = await env.device(org), await env.device(org, decommissioned=True)
    unknown = ids.new_id()
    await env.event(
        org,
        ids.new_id(),
        1,
        SensorDeclared(
            device_id=device,
            key="temp",
            value_type=ValueType.NUMBER,
            valid_range=ValidRange(min=-40, max=85),
        ),
    )
    spec = await env.consumer(org)
    far = (datetime.now(UTC) + timedelta(days=2)).isoformat().replace("+00:00", "Z")
    await env.publish(
        org,
        device,
        {
            "seq": 1,
            "readings": [
                {"sensor": "temp", "ts": _at(i), "value": 20 + i / 10} for i in range(200)
            ],
        },
    )
    await env.publish(
        org,
        device,
        {
            "seq": 2,
            "readings": [
                {"sensor": "temp", "ts": _at(300), "value": 99},  # out of range
                {"sensor": "temp", "ts": _at(301), "value": "hot"},  # wrong type
                {"sensor": "door", "ts": _at(302), "value": True},  # auto-declared
                {"sensor": "door", "ts": _at(303), "value": 1},  # wrong type now
                {"sensor": "temp", "ts": far, "value": 1},  # too far ahead
            ],
        },
    )
    await env.publish(org, device, {"seq": 6, "readings": [{"sensor": "temp", "value": 1}]})
    await env.publish(org, device, b"{not json")
    # A sensor key the contract refuses: the decoder lets it through (WireSensorKey), the
    # domain refuses the whole message in the decoder's words; it still counts as seq 7.
    bad_key = {
        "seq": 7,
        "readings": [{"sensor": "temp", "value": 1}, {"sensor": "a b", "value": 1}],
    }
    await env.publish(org, device, bad_key)
    await env.publish(org, gone, {"seq": 1, "readings": [{"sensor": "temp", "value": 1}]})
    # A device the registry does not know: retried, then quarantined at the last delivery.
    await env.publish(org, unknown, {"seq": 1, "readings": [{"sensor": "temp", "value": 1}]})
    await _drain(env, spec, 7)

    stored = await env.rows(org, "SELECT sensor, count(*) AS n FROM readings GROUP BY sensor")
    assert {r["sensor"]: r["n"] for r in stored} == {"temp": 201, "door": 1}
    quarantined = await env.rows(
        org,
        "SELECT device_id, reason, reading_index, sensor, payload, source, subject, stream_seq,"
        " detail FROM quarantine ORDER BY stream_seq, reading_index",
    )
    assert [(q["device_id"], q["reason"], q["reading_index"]) for q in quarantined] == [
        (device, "out_of_range", 0),
        (device, "wrong_type", 1),
        (device, "wrong_type", 3),
        (device, "ts_in_future", 4),
        (device, "invalid_payload", -1),
        (device, "invalid_payload", -1),
        (gone, "device_decommissioned", -1),
        (unknown, "unknown_device", -1),
    ]
    assert all(q["source"] == "nats" and q["stream_seq"] for q in quarantined)
    assert quarantined[0]["subject"] == subjects.telemetry(org, device)
    # A refused reading is kept as a message its device could send again (a replay).
    assert msgspec.json.decode(quarantined[0]["payload"]) == {
        "seq": 2,
        "readings": [{"sensor": "temp", "value": 99, "ts": _at(300)}],
    }
    assert quarantined[4]["payload"] == b"{not json"
    assert msgspec.json.decode(quarantined[5]["payload"]) == bad_key
    assert quarantined[5]["detail"] == (
        r"invalid telemetry payload: Expected `str` matching regex '^(?:[A-Za-z0-9_.:-]+)$(?!\\n)'"
        " - at `$.readings[1].sensor`"
    )
    sensors = await env.rows(org, "SELECT key, value_type, auto FROM sensors ORDER BY key")
    assert [tuple(s) for s in sensors] == [("door", "BOOLEAN", True), ("temp", "NUMBER", False)]
    seq = await env.rows(org, "SELECT device_id, last_seq, gaps FROM device_seq")
    assert {s["device_id"]: (s["last_seq"], s["gaps"]) for s in seq} == {
        device: (7, 3),
        gone: (1, 0),
    }
    health = await handlers.get_telemetry_health(
        env.deps, _ctx(org), GetTelemetryHealth(device_id=device)
    )
    assert (health.last_seq, health.seq_gaps, health.seq_resets, health.quarantined) == (7, 3, 0, 6)
    with pytest.raises(NotFound):  # another organization's device
        await handlers.get_telemetry_health(
            env.deps, _ctx(ids.new_id()), GetTelemetryHealth(device_id=device)
        )


async def test_auto_declare_off_for_an_organization_quarantines_unknown_sensors(
    env: Env,
) -> None:
    org = ids.new_id()
    device = await env.device(org)
    async with env.deps.uow(org) as uow:
        await uow.execute(
            "INSERT INTO org_settings (org_id, auto_declare_sensors) VALUES (:o, false)", {"o": org}
        )
        await uow.commit()
    spec = await env.consumer(org)
    await env.publish(org, device, {"seq": 1, "readings": [{"sensor": "x", "value": 1}]})
    await _drain(env, spec, 1)
    assert await env.rows(org, "SELECT count(*) AS n FROM readings") == [(0,)]
    assert [r["reason"] for r in await env.rows(org, "SELECT reason FROM quarantine")] == [
        "unknown_sensor"
    ]


async def test_redelivery_after_commit_without_ack_duplicates_nothing(env: Env) -> None:
    """The consumer stores a batch and dies before acking: every message comes again
    (num_delivered 2) and the next consumer stores nothing twice, quarantines nothing twice
    and counts no gap twice."""
    org = ids.new_id()
    device = await env.device(org)
    spec = await env.consumer(org, ack_wait=1)
    for seq in (1, 2, 5):
        await env.publish(
            org,
            device,
            {
                "seq": seq,
                "readings": [
                    {"sensor": "t", "ts": _at(seq * 100 + i), "value": i} for i in range(50)
                ]
                + [{"sensor": "t", "ts": _at(seq * 100), "value": "dup"}],
            },
        )
    sub = await env.js.pull_subscribe_bind(spec.name, stream=spec.stream)
    msgs = await sub.fetch(10, timeout=5)
    assert len(msgs) == 3
    await telemetry.ingest(
        env.deps, [telemetry._incoming(m, spec.max_deliver) for m in msgs], ids.now()
    )
    await sub.unsubscribe()  # "crash": committed, never acked
    first = await env.rows(org, "SELECT count(*) AS n FROM readings")
    assert first == [(150,)]
    await _drain(env, spec, 3)  # redelivered after ack_wait, acked this time
    assert await env.rows(org, "SELECT count(*) AS n FROM readings") == [(150,)]
    assert await env.rows(org, "SELECT count(*) AS n FROM quarantine") == [(3,)]
    assert [
        tuple(r) for r in await env.rows(org, "SELECT last_seq, gaps, resets FROM device_seq")
    ] == [(5, 2, 0)]


async def test_tenants_see_only_their_own_rows(env: Env) -> None:
    org_a, org_b = ids.new_id(), ids.new_id()
    dev_a, dev_b = await env.device(org_a), await env.device(org_b)
    spec_a, spec_b = await env.consumer(org_a), await env.consumer(org_b)
    for org, dev in ((org_a, dev_a), (org_b, dev_b)):
        await env.publish(
            org,
            dev,
            {
                "seq": 1,
                "readings": [
                    {"sensor": "t", "value": 1},
                    {"sensor": "t", "value": "x", "ts": _at(1)},
                ],
            },
        )
        await env.publish(
            org, dev, {"seq": 3, "readings": [{"sensor": "t", "value": 2, "ts": _at(2)}]}
        )
    await _drain(env, spec_a, 2)
    await _drain(env, spec_b, 2)
    day = f"readings_p{datetime.now(UTC):%Y%m%d}"
    for org, dev in ((org_a, dev_a), (org_b, dev_b)):
        for table in ("readings", day, "quarantine", "device_seq", "sensors", "devices"):
            column = "id" if table == "devices" else "device_id"
            got = await env.rows(org, f"SELECT DISTINCT {column} AS d FROM {table}")
            assert [r["d"] for r in got] == [dev], table
    # No tenant set: nothing at all, through the parent or a partition.
    async with env.deps.uow(None) as uow:
        driver = await store._driver(uow)
        for table in ("readings", day, "quarantine", "device_seq", "sensors"):
            assert await driver.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    # And a tenant cannot write another's rows.
    async with env.deps.uow(org_a) as uow:
        with pytest.raises(Exception, match="row-level security"):
            await uow.execute(
                "INSERT INTO readings (org_id, device_id, sensor, ts, kind, received_at)"
                " VALUES (:o, :d, 't', now(), 0, now())",
                {"o": org_b, "d": dev_b},
            )


# The real ingest loop in a process of its own that kills itself once a batch has committed.
CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    import nats
    from outpost_contracts import streams
    from outpost_kit.db.engine import create_engine
    from outpost_kit.db.eventstore import EventCodec
    from outpost_kit.db.uow import UnitOfWorkFactory
    from outpost_readings.app import handlers
    from outpost_readings.domain.readings import Limits
    from outpost_readings.entrypoints import telemetry

    async def main():
        dsn, url, name = sys.argv[1:4]
        engine = create_engine(dsn, "readings", pool_size=2)
        nc = await nats.connect(url)

        async def exists(ctx, device_id):
            return False

        deps = handlers.Deps(
            uow=UnitOfWorkFactory(engine, EventCodec(handlers.DEVICE_EVENT_TYPES)),
            limits=Limits(),
            device_exists=exists,
        )
        real = telemetry.ingest

        async def ingest_then_die(*args, **kwargs):
            await real(*args, **kwargs)  # committed
            os.kill(os.getpid(), signal.SIGKILL)  # before a single ack

        telemetry.ingest = ingest_then_die
        spec = streams.ConsumerSpec(stream="TELEMETRY", name=name, owner="readings")
        await telemetry.run(deps, nc.jetstream(), spec, 1000, asyncio.Event())

    asyncio.run(main())
    """
)


async def test_a_consumer_killed_between_commit_and_ack_duplicates_nothing(env: Env) -> None:
    """consumer-crash (docs/design/reliability.md) for telemetry: a consumer process is killed with
    SIGKILL after its batch committed and before any ack; the next consumer gets every
    message again and the table holds each reading exactly once."""
    org = ids.new_id()
    device = await env.device(org)
    spec = await env.consumer(org, ack_wait=2)
    sent = 0
    for seq in range(1, 21):
        readings = [{"sensor": "t", "ts": _at(seq + i / 1000), "value": i} for i in range(100)]
        await env.publish(org, device, {"seq": seq, "readings": readings})
        sent += len(readings)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, env.dsn, env.nats_url, spec.name, env=dict(os.environ)
    )
    code = await asyncio.wait_for(child.wait(), 60)
    assert code == -9  # it died by SIGKILL, after its commit
    committed = await env.rows(org, "SELECT count(*) AS n FROM readings")
    assert committed[0]["n"] > 0
    info = await env.js.consumer_info(spec.stream, spec.name)
    assert info.ack_floor.consumer_seq == 0  # nothing was acked
    await _drain(env, spec, 20)
    assert await env.rows(org, "SELECT count(*) AS n FROM readings") == [(sent,)]
    assert await env.rows(org, "SELECT last_seq, gaps FROM device_seq") == [(20, 0)]
    assert await env.rows(org, "SELECT count(*) AS n FROM quarantine") == [(0,)]


def _ctx(org: uuid.UUID) -> RequestContext:
    return RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org,
        principal=Principal(kind=PrincipalKind.API_KEY, id=uuid.uuid4(), org_id=org, scopes=("*",)),
    )


async def test_raw_readings_page_in_both_orders_across_partitions(env: Env) -> None:
    """ListReadings over readings either side of midnight UTC (two partitions), two
    sensors, pages of 3 followed by their cursor, ASC and DESC; another tenant sees none."""
    org = ids.new_id()
    device = await env.device(org)
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    times = [midnight + timedelta(seconds=s) for s in (-3, -2, -1, 0, 1, 2)]
    message = TelemetryMessage(
        seq=1,
        readings=[
            TelemetryReading(sensor=s, ts=t, value=i)
            for i, t in enumerate(times)
            for s in ("a", "b")
        ],
    )
    arrival = datetime.now(UTC)
    await handlers.ingest(
        env.deps,
        [handlers.Incoming(org_id=org, device_id=device, message=message, arrival=arrival)],
        arrival,
    )
    async with env.deps.uow(None) as uow:
        names = set(await store.partitions(uow))
    assert {f"readings_p{times[0]:%Y%m%d}", f"readings_p{times[-1]:%Y%m%d}"} <= names
    expected = [(t, s) for t in times for s in ("a", "b")]
    for order in ("ASC", "DESC"):
        got: list[tuple[datetime, str]] = []
        after = None
        while True:
            page = await queries.list_readings(
                env.deps,
                _ctx(org),
                ListReadings(device_id=device, limit=3, order=order, after=after),
            )
            got.extend((r.ts, r.sensor) for r in page.data)
            if not page.has_more:
                break
            after = page.after
        assert got == (expected if order == "ASC" else expected[::-1]), order
    only_a = await queries.list_readings(
        env.deps, _ctx(org), ListReadings(device_id=device, sensor="a", limit=100)
    )
    assert [r.value for r in only_a.data] == [0, 1, 2, 3, 4, 5]
    with pytest.raises(NotFound):
        await queries.list_readings(env.deps, _ctx(ids.new_id()), ListReadings(device_id=device))


async def test_the_maintenance_job_creates_partitions_ahead_at_start(env: Env) -> None:
    today = datetime.now(UTC).date()
    far = f"readings_p{today + timedelta(days=12):%Y%m%d}"
    stop = asyncio.Event()
    job = asyncio.create_task(maintenance.run(env.deps, 12, 3600, stop))
    try:
        for _ in range(600):  # up to 30 s: a loaded machine
            async with env.deps.uow(None) as uow:
                if far in await store.partitions(uow):
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{far} was not created")
    finally:
        stop.set()
        await asyncio.wait_for(job, 5)  # the job returns promptly when told to stop


async def test_the_migration_keeps_readings_stored_before_partitioning(postgres_dsn: str) -> None:
    """0001 → 0002 moves the unpartitioned table's rows into day partitions."""
    service = f"readings{secrets.token_hex(3)}"
    dsn = await provision_service(postgres_dsn, service, secrets.token_urlsafe(16))
    where = migrations_dir(bootstrap.__file__)
    await upgrade(postgres_dsn, service, where, revision="0001")
    org, device = ids.new_id(), ids.new_id()
    days = [datetime(2026, 1, 1, 23, 59, tzinfo=UTC), datetime(2026, 1, 2, 0, 1, tzinfo=UTC)]
    conn = await asyncpg.connect(plain_dsn(dsn))
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('outpost.org_id', $1, true)", str(org))
            await conn.executemany(
                "INSERT INTO readings (org_id, device_id, sensor, ts, kind, num, received_at)"
                " VALUES ($1, $2, 't', $3, 0, 1, now())",
                [(org, device, ts) for ts in days],
            )
        await upgrade(postgres_dsn, service, where)
        async with conn.transaction():
            await conn.execute("SELECT set_config('outpost.org_id', $1, true)", str(org))
            rows = await conn.fetch(
                "SELECT tableoid::regclass::text AS part, ts FROM readings ORDER BY ts"
            )
        assert [(r["part"], r["ts"]) for r in rows] == [
            ("readings_p20260101", days[0]),
            ("readings_p20260102", days[1]),
        ]
        assert await rls_violations(conn, service) == []
    finally:
        await conn.close()


async def test_quarantine_is_listed_replayed_after_a_fix_and_discarded(env: Env) -> None:
    org = ids.new_id()
    device = await env.device(org)
    async with env.deps.uow(org) as uow:
        await uow.execute(
            "INSERT INTO org_settings (org_id, auto_declare_sensors) VALUES (:o, false)", {"o": org}
        )
        await uow.commit()
    spec = await env.consumer(org)
    await env.publish(
        org,
        device,
        {
            "seq": 1,
            "readings": [
                {"sensor": "hum", "ts": _at(1), "value": 40},
                {"sensor": "hum", "value": 41},  # ts defaults to the arrival time
                {"sensor": "hum", "ts": _at(3), "value": 400},
                {"sensor": "mode", "ts": _at(4), "value": "eco"},
            ],
        },
    )
    await _drain(env, spec, 1)
    ctx = _ctx(org)
    first = await handlers.list_quarantine(env.deps, ctx, ListQuarantine(limit=3))
    second = await handlers.list_quarantine(
        env.deps, ctx, ListQuarantine(limit=3, after=first.after and uuid.UUID(first.after))
    )
    listed = first.data + second.data
    assert first.has_more and not second.has_more
    assert [(q.reading_index, q.reason) for q in listed] == [
        (i, "unknown_sensor") for i in range(4)
    ]
    assert await handlers.list_quarantine(env.deps, _ctx(ids.new_id()), ListQuarantine()) == Page(
        data=[], limit=50
    )
    # The sensor is declared with a range: three of the four come out on replay, two stored,
    # the third refused for its value now; "mode" is still unknown.
    await env.event(
        org,
        ids.new_id(),
        1,
        SensorDeclared(
            device_id=device,
            key="hum",
            value_type=ValueType.NUMBER,
            valid_range=ValidRange(min=0, max=100),
        ),
    )
    outcome = await handlers.replay_quarantine(
        env.deps, ctx, ReplayQuarantine(ids=[q.id for q in listed] + [ids.new_id()])
    )
    assert outcome == QuarantineOutcome(stored=2, still_refused=2, not_found=1)
    stored = await env.rows(org, "SELECT ts, num FROM readings ORDER BY num")
    arrival = (await env.rows(org, "SELECT arrival FROM quarantine LIMIT 1"))[0]["arrival"]
    assert [(r["ts"], r["num"]) for r in stored] == [
        (BASE + timedelta(seconds=1), 40),
        (arrival, 41),  # the original arrival, not the replay's time
    ]
    left = (await handlers.list_quarantine(env.deps, ctx, ListQuarantine())).data
    assert [(q.id, q.reading_index, q.reason) for q in left] == [
        (listed[2].id, 2, "out_of_range"),
        (listed[3].id, 3, "unknown_sensor"),
    ]
    # Replaying again stores nothing twice.
    again = await handlers.replay_quarantine(env.deps, ctx, ReplayQuarantine(ids=[listed[0].id]))
    assert again == QuarantineOutcome(not_found=1)
    # Another tenant cannot discard them; the owner can.
    other = await handlers.discard_quarantine(
        env.deps, _ctx(ids.new_id()), DiscardQuarantine(ids=[q.id for q in left])
    )
    assert other == QuarantineOutcome(not_found=2)
    gone = await handlers.discard_quarantine(
        env.deps, ctx, DiscardQuarantine(ids=[q.id for q in left])
    )
    assert gone == QuarantineOutcome(discarded=2)
    assert (await handlers.list_quarantine(env.deps, ctx, ListQuarantine())).data == []


async def test_concurrent_batches_of_one_device_count_its_seq_once(env: Env) -> None:
    """Two replicas' batches of one device commit in either order: seq 2 and 3 after 1
    leave no gap either way (the device's row is locked, a late seq fills its gap)."""
    org = ids.new_id()
    device = await env.device(org)
    arrival = datetime.now(UTC)

    def batch(seq: int) -> list[handlers.Incoming]:
        reading = TelemetryReading(sensor="t", ts=BASE + timedelta(seconds=seq), value=seq)
        message = TelemetryMessage(seq=seq, readings=[reading])
        return [handlers.Incoming(org_id=org, device_id=device, message=message, arrival=arrival)]

    await handlers.ingest(env.deps, batch(1), arrival)
    for n in range(5):
        first, second = (2 + 2 * n, 3 + 2 * n) if n % 2 else (3 + 2 * n, 2 + 2 * n)
        await asyncio.gather(
            handlers.ingest(env.deps, batch(first), arrival),
            handlers.ingest(env.deps, batch(second), arrival),
        )
    assert [
        tuple(r) for r in await env.rows(org, "SELECT last_seq, gaps, resets FROM device_seq")
    ] == [(11, 0, 0)]
    assert await env.rows(org, "SELECT count(*) AS n FROM readings") == [(11,)]


async def test_the_audit_admits_only_the_declared_ddl_definer(postgres_dsn: str) -> None:
    """The rls-audit lets ensure_readings_partition through, and still reports a SECURITY
    DEFINER function that is not declared DDL-only, has no pinned search path, or that
    PUBLIC may execute."""
    service = f"readings{secrets.token_hex(3)}"
    dsn = await provision_service(postgres_dsn, service, secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, service, migrations_dir(bootstrap.__file__))
    admin = await asyncpg.connect(plain_dsn(postgres_dsn))
    conn = await asyncpg.connect(plain_dsn(dsn))
    try:
        assert await rls_violations(conn, service) == []
        await admin.execute(f"SET ROLE {owner_role(service)}")
        await admin.execute(f"SET search_path = {service}")
        body = "LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'"
        await admin.execute(f"CREATE FUNCTION undeclared() RETURNS int {body}")
        await admin.execute(
            f"CREATE FUNCTION unpinned() RETURNS int {body};"
            " REVOKE ALL ON FUNCTION unpinned() FROM PUBLIC;"
            " COMMENT ON FUNCTION unpinned() IS 'outpost:ddl-only'"
        )
        await admin.execute(
            f"CREATE FUNCTION public_exec() RETURNS int {body} SET search_path FROM CURRENT;"
            " COMMENT ON FUNCTION public_exec() IS 'outpost:ddl-only'"
        )
        assert sorted(await rls_violations(conn, service)) == [
            f"function {name} is SECURITY DEFINER"
            for name in ("public_exec", "undeclared", "unpinned")
        ]
    finally:
        await admin.close()
        await conn.close()


async def test_a_first_delivery_repeating_stored_readings_stores_each_once(env: Env) -> None:
    """A message on its first delivery is stored with a plain INSERT; when it repeats
    readings already stored (another message, or two messages of one batch), the savepoint
    is rolled back and ON CONFLICT DO NOTHING stores only the new ones."""
    org = ids.new_id()
    device = await env.device(org)
    spec = await env.consumer(org)
    first = [{"sensor": "t", "ts": _at(i), "value": i} for i in range(10)]
    await env.publish(org, device, {"seq": 1, "readings": first})
    await _drain(env, spec, 1)
    again = [{"sensor": "t", "ts": _at(i), "value": i} for i in range(5, 15)]
    await env.publish(org, device, {"seq": 2, "readings": again})
    await env.publish(org, device, {"seq": 3, "readings": again})
    await _drain(env, spec, 2)
    assert await env.rows(org, "SELECT count(*) AS n FROM readings") == [(15,)]
    assert await env.rows(org, "SELECT count(*) AS n FROM quarantine") == [(0,)]


async def _organization(env: Env, org: uuid.UUID, version: int, data: Any) -> None:
    """What the consumer of identity's organization events does with one."""
    await record_organization_event(env.deps.uow, org, version, data)


async def test_a_suspended_organizations_telemetry_is_dropped_and_others_stored(env: Env) -> None:
    """docs/design/reliability.md ``suspension`` (decision 76): while its organization is suspended
    a device's telemetry is acknowledged and neither stored nor quarantined, in the same
    batches as another organization's, which is stored; after the suspension is lifted
    it is stored again, and a stale suspension redelivered does not undo the lifting."""
    suspended, other = ids.new_id(), ids.new_id()
    device, neighbour = await env.device(suspended), await env.device(other)
    spec = ConsumerSpec(
        stream="TELEMETRY",
        name=f"test-{secrets.token_hex(6)}",
        owner="readings",
        filter_subjects=tuple(f"{subjects.PREFIX}.tel.{o}.>" for o in (suspended, other)),
        max_deliver=5,
    )
    await messaging.apply_streams(env.js, [streams.stream("TELEMETRY")], [spec])
    await _organization(env, suspended, 2, OrganizationSuspended(reason="unpaid"))
    for seq in (1, 2):
        await env.publish(
            suspended, device, {"seq": seq, "readings": [{"sensor": "t", "value": seq}]}
        )
        await env.publish(
            other, neighbour, {"seq": seq, "readings": [{"sensor": "t", "value": seq}]}
        )
    await env.publish(suspended, device, b"{not json")  # not even quarantined
    await _drain(env, spec, 5)
    count = "SELECT (SELECT count(*) FROM readings) AS r, (SELECT count(*) FROM quarantine) AS q"
    assert [tuple(r) for r in await env.rows(suspended, count)] == [(0, 0)]
    assert [tuple(r) for r in await env.rows(other, count)] == [(2, 0)]

    await _organization(env, suspended, 3, OrganizationReinstated())
    await _organization(env, suspended, 2, OrganizationSuspended())  # redelivered, older
    await env.publish(suspended, device, {"seq": 3, "readings": [{"sensor": "t", "value": 3}]})
    await _drain(env, spec, 1)
    assert [tuple(r) for r in await env.rows(suspended, count)] == [(1, 0)]
