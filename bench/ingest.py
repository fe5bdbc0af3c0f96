"""bench/ingest: readings/s and messages/s from TELEMETRY into queryable rows, through the
readings service's own ingest loop, beside a raw pipeline measured in the same run (issue 5).

What runs: one nats-server (plain, JetStream) and one Postgres (durable settings), both
private; the readings schema migrated and provisioned as the service's own; devices
registered through readings' own device-event handler. Each consumer runs in its own process
on uvloop, as a service does:

- **platform**: ``outpost_readings.entrypoints.telemetry.run`` with the service's ``Deps``
  (decode, validation against the registry, auto-declared sensors, seq state, quarantine,
  COPY into a staging table, INSERT … ON CONFLICT DO NOTHING into the partitioned, RLS-forced
  ``readings``, ack after commit), on the service's consumer spec and batch size;
- **raw (baseline)**: nats-py pull ``fetch`` of the same stream → msgspec decode → asyncpg
  COPY into a table with the same columns, the same day partitions, primary key and index
  (no RLS, no validation, no deduplication) → commit → ack.

Two measurements per shape (100 readings per message, 1 per message):

- **consume + store**: the messages are published into TELEMETRY first; the timer starts
  when the consumer process is told to go and stops when the consumer has nothing pending
  and nothing unacknowledged (ack follows commit, so every row is queryable);
- **publish → queryable**: the consumer runs first; one publisher (pipelined JetStream
  publish, acks awaited) publishes with the wall-clock time in each reading's ``ts``; the
  timer runs from the first publish to the last ack; latency is ``received_at - ts`` of the
  stored rows (``received_at`` is taken when the batch is stored, just before the commit).

Every run ends with ``SELECT count(*)`` of the rows stored for its organization: the bench
fails if anything is missing or stored twice.

Run: ``uv run python bench/ingest.py [--readings 500000] [--messages 100000]``;
``--profile DIR`` records the platform consumer with py-spy (raw format) during the
consume + store runs.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats

RAW_SCHEMA = "bench_raw"
SENSORS = 10
BATCH = 1000  # messages per fetch, the service's default (ingest_batch_messages)


def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


# -- consumer processes -------------------------------------------------------------------


class RawReading(msgspec.Struct, frozen=True):
    sensor: str
    value: float | int | bool | str
    ts: datetime | None = None


class RawMessage(msgspec.Struct, frozen=True):
    seq: int
    readings: list[RawReading]


async def _raw_consumer(nats_url: str, dsn: str, durable: str, pipe: Connection) -> None:
    """The baseline: fetch, decode, COPY, commit, ack; nothing else."""
    from outpost_contracts import subjects

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    sub = await js.pull_subscribe_bind(durable, stream="TELEMETRY")
    conn = await asyncpg.connect(dsn)
    decoder = msgspec.json.Decoder(RawMessage)
    columns = ("org_id", "device_id", "sensor", "ts", "kind", "num", "txt", "seq", "received_at")
    pipe.send("ready")
    await asyncio.to_thread(pipe.recv)
    stop = asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    cpu = time.process_time()
    while not stop.done():
        try:
            msgs = await sub.fetch(BATCH, timeout=0.5)
        except TimeoutError:
            continue
        now = datetime.now(UTC)
        rows = []
        for msg in msgs:
            org, device = subjects.parse_telemetry(msg.subject)
            body = decoder.decode(msg.data)
            for r in body.readings:
                rows.append((org, device, r.sensor, r.ts or now, 0, r.value, None, body.seq, now))
        async with conn.transaction():
            await conn.copy_records_to_table(
                "readings", schema_name=RAW_SCHEMA, records=rows, columns=columns
            )
        for msg in msgs:
            await msg.ack()
    used = time.process_time() - cpu
    await sub.unsubscribe()
    await nc.close()
    await conn.close()
    pipe.send(used)


async def _platform_consumer(nats_url: str, dsn: str, durable: str, pipe: Connection) -> None:
    """The readings service's ingest loop with the service's dependencies."""
    from outpost_contracts import streams
    from outpost_kit.db.engine import create_engine
    from outpost_kit.db.eventstore import EventCodec
    from outpost_kit.db.uow import UnitOfWorkFactory
    from outpost_readings.app import handlers
    from outpost_readings.domain.readings import Limits
    from outpost_readings.entrypoints import telemetry

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    engine = create_engine(dsn, "readings", pool_size=4)

    async def exists(ctx: Any, device_id: uuid.UUID) -> bool:
        return False

    deps = handlers.Deps(
        uow=UnitOfWorkFactory(engine, EventCodec(handlers.DEVICE_EVENT_TYPES)),
        limits=Limits(),
        device_exists=exists,
    )
    spec = msgspec.structs.replace(streams.consumer("readings-telemetry"), name=durable)
    pipe.send("ready")
    await asyncio.to_thread(pipe.recv)
    stop = asyncio.Event()
    cpu = time.process_time()
    task = asyncio.create_task(telemetry.run(deps, js, spec, BATCH, stop))
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    stop.set()
    await task
    used = time.process_time() - cpu
    await nc.close()
    await engine.dispose()
    pipe.send(used)


def _consumer_main(kind: str, nats_url: str, dsn: str, durable: str, pipe: Connection) -> None:
    target = _raw_consumer if kind == "raw" else _platform_consumer
    _run(target(nats_url, dsn, durable, pipe))


# -- the parent ---------------------------------------------------------------------------


def _start_py_spy(pid: int | None, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` into ``out`` (raw format) until it receives SIGINT."""
    return subprocess.Popen(
        [
            *("py-spy", "record", "--pid", str(pid), "--format", "raw", "-o", str(out)),
            *("--rate", "200", "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@dataclass
class Result:
    label: str
    shape: str
    mode: str
    readings: int
    messages: int
    seconds: float
    consumer_cpu: float
    stored: int
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def rps(self) -> float:
        return self.readings / self.seconds

    @property
    def mps(self) -> float:
        return self.messages / self.seconds

    def row(self) -> str:
        lat = (
            f"{self.p50_ms:8.0f} {self.p99_ms:8.0f}"
            if self.p50_ms is not None
            else f"{'-':>8} {'-':>8}"
        )
        ok = "ok" if self.stored == self.readings else f"STORED {self.stored}!"
        cpu_us = self.consumer_cpu / self.readings * 1e6
        return (
            f"{self.shape:>9} {self.mode:<18} {self.label:<9} {self.readings:>9,}"
            f" {self.seconds:7.2f}"
            f" {self.rps:>10,.0f} {self.mps:>9,.0f} {cpu_us:8.2f} {lat} {ok}"
        )


HEADER = (
    f"{'per msg':>9} {'mode':<18} {'consumer':<9} {'readings':>9} {'seconds':>7}"
    f" {'readings/s':>10} {'msgs/s':>9} {'cpu us/r':>8} {'p50 ms':>8} {'p99 ms':>8} count"
)


class Bench:
    def __init__(self, nats_url: str, admin_dsn: str, app_dsn: str, profile: Path | None) -> None:
        self.nats_url = nats_url
        self.admin_dsn = admin_dsn
        self.app_dsn = app_dsn
        self.profile = profile
        self.nc: Any = None
        self.js: Any = None

    async def setup(self) -> None:
        from outpost_contracts import streams
        from outpost_kit import messaging

        self.nc = await nats.connect(self.nats_url)
        self.js = self.nc.jetstream()
        await messaging.apply_streams(self.js, [streams.stream("TELEMETRY")], [])
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            today = datetime.now(UTC).date()
            await conn.execute(
                f"CREATE SCHEMA {RAW_SCHEMA};"
                f" CREATE TABLE {RAW_SCHEMA}.readings (org_id uuid NOT NULL,"
                " device_id uuid NOT NULL, sensor text NOT NULL, ts timestamptz NOT NULL,"
                " kind smallint NOT NULL, num double precision, txt text, seq bigint,"
                " received_at timestamptz NOT NULL, PRIMARY KEY (device_id, sensor, ts))"
                " PARTITION BY RANGE (ts);"
                f" CREATE INDEX ON {RAW_SCHEMA}.readings (device_id, ts)"
            )
            for n in range(-1, 2):
                day = today + timedelta(days=n)
                await conn.execute(
                    f"CREATE TABLE {RAW_SCHEMA}.readings_p{day:%Y%m%d} PARTITION OF"
                    f" {RAW_SCHEMA}.readings FOR VALUES FROM ('{day}') TO"
                    f" ('{day + timedelta(days=1)}')"
                )
            await conn.execute(f"GRANT USAGE ON SCHEMA {RAW_SCHEMA} TO PUBLIC")
        finally:
            await conn.close()

    async def devices(self, org: uuid.UUID, count: int) -> list[uuid.UUID]:
        """Register ``count`` devices in readings' registry as the DEVICES stream would."""
        from outpost_contracts.devices import DeviceRegistered
        from outpost_contracts.envelope import EventEnvelope
        from outpost_kit import ids
        from outpost_kit.db.engine import create_engine
        from outpost_kit.db.eventstore import EventCodec
        from outpost_kit.db.uow import UnitOfWorkFactory
        from outpost_readings.app import handlers

        engine = create_engine(self.app_dsn, "readings", pool_size=1)
        uows = UnitOfWorkFactory(engine, EventCodec(handlers.DEVICE_EVENT_TYPES))
        made = [ids.new_id() for _ in range(count)]
        try:
            async with uows(org) as uow:
                for device in made:
                    await handlers.on_device_event(
                        uow,
                        EventEnvelope(
                            id=ids.new_id(),
                            org_id=org,
                            stream_id=device,
                            stream_type="device",
                            version=1,
                            occurred_at=ids.now(),
                            data=DeviceRegistered(name=f"bench-{device}"),
                        ),
                    )
                await uow.commit()
        finally:
            await engine.dispose()
        return made

    async def consumer(self, name: str, org: uuid.UUID) -> None:
        from outpost_contracts import streams, subjects
        from outpost_kit import messaging

        spec = msgspec.structs.replace(
            streams.consumer("readings-telemetry"),
            name=name,
            filter_subjects=(f"{subjects.PREFIX}.tel.{org}.>",),
        )
        await messaging.apply_streams(self.js, [streams.stream("TELEMETRY")], [spec])

    async def publish(
        self,
        org: uuid.UUID,
        devices: list[uuid.UUID],
        messages: int,
        per: int,
        base: datetime | None,
    ) -> float:
        """Publish ``messages`` messages of ``per`` readings, round robin over ``devices``,
        pipelined; ``base`` None stamps each reading with the wall clock at publish."""
        from outpost_contracts import subjects

        subs = [subjects.telemetry(org, d) for d in devices]
        encoder = msgspec.json.Encoder()
        seqs = [0] * len(devices)
        window: list[Any] = []
        started = time.monotonic()
        step = timedelta(microseconds=1)
        for n in range(messages):
            d = n % len(devices)
            seqs[d] += 1
            seq = seqs[d]
            if base is None:
                t0 = datetime.now(UTC)
            else:
                t0 = base + timedelta(milliseconds=(seq - 1) * ((per + SENSORS - 1) // SENSORS))
            readings = [
                RawReading(
                    sensor=f"s{i % SENSORS}",
                    value=float(i) + 0.5,
                    ts=t0 + step * (i // SENSORS)
                    if base is None
                    else t0 + timedelta(milliseconds=i // SENSORS),
                )
                for i in range(per)
            ]
            data = encoder.encode(RawMessage(seq=seq, readings=readings))
            window.append(self.js.publish(subs[d], data))
            if len(window) >= 1000:
                await asyncio.gather(*window)
                window = []
        if window:
            await asyncio.gather(*window)
        return time.monotonic() - started

    async def wait_drained(self, durable: str, deadline: float = 600) -> float:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            info = await self.js.consumer_info("TELEMETRY", durable)
            if info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq:
                return time.monotonic()
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{durable} not drained in {deadline} s")

    async def count(self, kind: str, org: uuid.UUID) -> tuple[int, float | None, float | None]:
        table = "readings.readings" if kind == "platform" else f"{RAW_SCHEMA}.readings"
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            row = await conn.fetchrow(
                "SELECT count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY lat) AS p50,"
                " percentile_cont(0.99) WITHIN GROUP (ORDER BY lat) AS p99 FROM ("
                "SELECT extract(epoch FROM received_at - ts) * 1000 AS lat"
                f" FROM {table} WHERE org_id = $1) l",
                org,
            )
        finally:
            await conn.close()
        return int(row["n"]), row["p50"], row["p99"]

    async def one(self, kind: str, shape: int, mode: str, messages: int) -> Result:
        from outpost_kit import ids

        org = ids.new_id()
        devices = await self.devices(org, 100)
        durable = f"bench-{kind}-{secrets.token_hex(4)}"
        await self.consumer(durable, org)
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        dsn = self.app_dsn if kind == "platform" else self.admin_dsn
        proc = ctx.Process(target=_consumer_main, args=(kind, self.nats_url, dsn, durable, child))
        prepub = mode == "consume+store"
        base = datetime.now(UTC) - timedelta(minutes=30)
        if prepub:
            await self.publish(org, devices, messages, shape, base)
        proc.start()
        await asyncio.to_thread(parent.recv)
        spy = None
        if prepub and self.profile is not None and kind == "platform":
            out = self.profile / f"platform-{shape}.txt"
            spy = _start_py_spy(proc.pid, out)
            await asyncio.sleep(1.0)
        started = time.monotonic()
        parent.send("go")
        if not prepub:
            await self.publish(org, devices, messages, shape, None)
        ended = await self.wait_drained(durable)
        parent.send("stop")
        cpu = await asyncio.to_thread(parent.recv)
        proc.join(30)
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        stored, p50, p99 = await self.count(kind, org)
        await self.js.delete_consumer("TELEMETRY", durable)
        return Result(
            label=kind,
            shape=str(shape),
            mode=mode,
            readings=messages * shape,
            messages=messages,
            seconds=ended - started,
            consumer_cpu=cpu,
            stored=stored,
            p50_ms=None if prepub else p50,
            p99_ms=None if prepub else p99,
        )


async def _main(args: argparse.Namespace, nats_url: str, admin_dsn: str) -> list[Result]:
    from outpost_kit.cli import migrations_dir
    from outpost_kit.db.migrate import upgrade
    from outpost_kit.db.provision import provision_service
    from outpost_readings import bootstrap

    app_dsn = await provision_service(admin_dsn, "readings", secrets.token_urlsafe(16))
    await upgrade(admin_dsn, "readings", migrations_dir(bootstrap.__file__))
    bench = Bench(nats_url, admin_dsn, app_dsn, Path(args.profile) if args.profile else None)
    await bench.setup()
    results = []
    wanted = {int(s) for s in args.shapes.split(",")}
    shapes = [(s, n) for s, n in ((100, args.readings // 100), (1, args.messages)) if s in wanted]
    for shape, messages in shapes:
        for mode in args.modes.split(","):
            for kind in ("raw", "platform"):
                if args.only and kind != args.only:
                    continue
                r = await bench.one(kind, shape, mode, messages)
                print(r.row(), flush=True)
                results.append(r)
    await bench.nc.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=500_000, help="at 100 per message")
    parser.add_argument("--messages", type=int, default=100_000, help="at 1 per message")
    parser.add_argument("--profile", help="directory for py-spy raw profiles of the platform")
    parser.add_argument("--only", choices=("raw", "platform"))
    parser.add_argument("--modes", default="consume+store,publish->queryable")
    parser.add_argument("--shapes", default="100,1", help="readings per message to run")
    args = parser.parse_args()

    from outpost_devkit.infra import NatsServer, PostgresCluster

    base = Path(tempfile.mkdtemp(prefix="outpost-bench-ingest-"))
    nats_server = pg = None
    try:
        nats_server = NatsServer.start(base / "nats")
        pg = PostgresCluster.start(base / "pg")
        print(
            f"nats-server + Postgres (durable) + one consumer process, {os.cpu_count()} cores"
            f" shared; load average before: {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        print(HEADER, flush=True)
        results = _run(_main(args, nats_server.url, pg.admin_dsn))
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        by = {(r.shape, r.mode, r.label): r for r in results}
        print()
        for shape in ("100", "1"):
            for mode in ("consume+store", "publish->queryable"):
                raw, plat = by.get((shape, mode, "raw")), by.get((shape, mode, "platform"))
                if raw is None or plat is None:
                    continue
                print(
                    f"{shape:>3}/msg {mode:<18}: platform {plat.rps:>9,.0f} readings/s"
                    f" {plat.mps:>8,.0f} msgs/s; raw {raw.rps:>9,.0f}; ratio"
                    f" {plat.rps / raw.rps:.2f}x (target >= 0.60x)"
                )
        print(
            "targets: >= 150,000 readings/s at 100 per message, >= 25,000 messages/s at 1 per"
            " message (publish -> queryable)"
        )
        if any(r.stored != r.readings for r in results):
            sys.exit("stored counts differ from published: readings lost or duplicated")
    finally:
        if pg is not None:
            pg.stop()
        if nats_server is not None:
            nats_server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
