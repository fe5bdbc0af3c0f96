"""bench/query: 1-minute aggregates of one device-week over a 10M-row readings table
(issue 5, target < 100 ms), beside the same answer computed from raw rows in the same run;
and what the rollups cost ingest (decision 60).

What runs: one private Postgres (durable settings), the readings schema migrated and
provisioned as the service's own. The table is built quickly: ``--devices`` devices with one
numeric sensor, a reading every ``--every`` seconds for ``--days`` days (24 x 6 s x 30 days
= 10.4M rows), generated in SQL (``INSERT … SELECT … generate_series`` as the cluster's
administrator, into the RLS-forced, day-partitioned table), then the rollups built from it
with the migration's own backfill statement.

Measured (each ``--runs`` times after one warm-up; median and p95):

- **service**: ``app.queries.get_aggregates`` as the responder runs it (bucket arithmetic,
  registry lookup, the rollup query in a tenant transaction, building the 10,080 views),
  for one device-week, interval 1m, all seven functions, ``limit`` 10,080 (one page);
- **rollup SQL**: the query alone (``adapters.queries.aggregates``);
- **raw (baseline)**: the same buckets computed from raw rows (``aggregates_raw``).

Both answers are compared bucket by bucket (counts equal, sums within 1e-9 relative).

Ingest cost: ``app.handlers.ingest`` of fresh batches (``--ingest-batches`` x 100 messages x
100 readings, 20 devices, 5 sensors) with the rollups, against the same with the rollup
statements switched off, alternated in the same run; and one redelivery of the whole set
(every reading already stored: the ON CONFLICT … RETURNING path).

Run: ``uv run python bench/query.py [--devices 24 --every 6 --days 30 --runs 15]``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg


def _pct(values: list[float], p: float) -> float:
    xs = sorted(values)
    return xs[min(len(xs) - 1, math.ceil(p * len(xs)) - 1)]


def _summary(label: str, ms: list[float]) -> str:
    return (
        f"{label:<34} median {statistics.median(ms):8.1f} ms   p95 {_pct(ms, 0.95):8.1f} ms"
        f"   min {min(ms):8.1f} ms   ({len(ms)} runs)"
    )


async def _build(
    admin_dsn: str, org: uuid.UUID, devices: list[uuid.UUID], start: datetime, days: int, every: int
) -> int:
    from outpost_kit.db.engine import plain_dsn

    conn = await asyncpg.connect(plain_dsn(admin_dsn))
    try:
        for d in range(days + 1):
            await conn.execute(
                "SELECT readings.ensure_readings_partition($1::date)",
                (start + timedelta(days=d)).date(),
            )
        for i, device in enumerate(devices):
            await conn.execute(
                "INSERT INTO readings.devices (org_id, id, name, status, version)"
                " VALUES ($1, $2, $3, 'REGISTERED', 1)",
                org,
                device,
                f"bench-{i}",
            )
        started = time.perf_counter()
        for device in devices:  # one statement per device keeps memory flat
            await conn.execute(
                "INSERT INTO readings.readings (org_id, device_id, sensor, ts, kind, num, seq,"
                " received_at) SELECT $1, $2, 'temp',"
                " $3::timestamptz + make_interval(secs => g * $4::int), 0,"
                " 20 + 10 * sin(g / 500.0) + random(), 0, now()"
                " FROM generate_series(0, $5 - 1) g",
                org,
                device,
                start,
                every,
                days * 86400 // every,
            )
        rows = await conn.fetchval("SELECT count(*) FROM readings.readings")
        print(f"readings: {rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
        started = time.perf_counter()
        await conn.execute("ALTER TABLE readings.readings NO FORCE ROW LEVEL SECURITY")
        for table, unit in (("readings_1m", "minute"), ("readings_1h", "hour")):
            await conn.execute(
                f"INSERT INTO readings.{table} (organization_id, device_id, sensor, bucket,"
                " count, sum, min, max, first_ts, first_value, last_ts, last_value)"
                f" SELECT org_id, device_id, sensor, date_trunc('{unit}', ts, 'UTC'), count(*),"
                " sum(num), min(num), max(num), min(ts), (array_agg(num ORDER BY ts))[1],"
                " max(ts), (array_agg(num ORDER BY ts DESC))[1] FROM readings.readings"
                f" GROUP BY org_id, device_id, sensor, date_trunc('{unit}', ts, 'UTC')"
            )
        await conn.execute("ALTER TABLE readings.readings FORCE ROW LEVEL SECURITY")
        await conn.execute("VACUUM ANALYZE readings.readings")
        await conn.execute("VACUUM ANALYZE readings.readings_1m")
        await conn.execute("VACUUM ANALYZE readings.readings_1h")
        minutes = await conn.fetchval("SELECT count(*) FROM readings.readings_1m")
        print(
            f"rollups: {minutes:,} per-minute rows in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        return int(rows)
    finally:
        await conn.close()


async def _queries(
    args: argparse.Namespace, deps: Any, org: uuid.UUID, device: uuid.UUID, week: datetime
) -> None:
    from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
    from outpost_contracts.readings import AGGREGATE_FUNCTIONS, GetAggregates
    from outpost_readings.adapters import queries as sql
    from outpost_readings.app import queries

    ctx = RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org,
        principal=Principal(kind=PrincipalKind.API_KEY, id=uuid.uuid4(), org_id=org, scopes=("*",)),
    )
    q = GetAggregates(
        device_id=device,
        from_=week,
        to=week + timedelta(days=7),
        interval="1m",
        fn=",".join(AGGREGATE_FUNCTIONS),
        limit=10_080,
    )
    grid, width = queries.plan_aggregates(q)
    assert len(grid) == 10_080 and width == 60

    async def service() -> Any:
        return await queries.get_aggregates(deps, ctx, q)

    async def rollup_sql() -> Any:
        async with deps.uow(org) as uow:
            return await sql.aggregates(
                uow,
                width=60,
                device_ids=[device],
                sensor=None,
                buckets=grid,
                dense=True,
                after=None,
                limit=10_081,
            )

    async def raw() -> Any:
        async with deps.uow(org) as uow:
            return await sql.aggregates_raw(
                uow, device_ids=[device], sensor=None, starts=grid.starts, end=grid.end
            )

    timings: dict[str, list[float]] = {"service": [], "rollup SQL": [], "raw (baseline)": []}
    answers: dict[str, Any] = {}
    fns = {"service": service, "rollup SQL": rollup_sql, "raw (baseline)": raw}
    for name, fn in fns.items():
        answers[name] = await fn()  # warm-up
    for _ in range(args.runs):  # interleaved, so drift in load hits all three alike
        for name, fn in fns.items():
            started = time.perf_counter()
            await fn()
            timings[name].append((time.perf_counter() - started) * 1000)
    page = answers["service"]
    base = answers["raw (baseline)"]
    assert len(page.data) == len(base) == 10_080, (len(page.data), len(base))
    for view, row in zip(page.data, base, strict=True):
        assert view.ts == row["ts"] and view.count == row["count"]
        assert math.isclose(view.sum, row["sum"], rel_tol=1e-9)
        assert view.first == row["first"] and view.last == row["last"]
    print("\n1-minute aggregates, one device-week (10,080 buckets, 7 functions):")
    for name, ms in timings.items():
        print(_summary(name, ms))
    ratio = statistics.median(timings["raw (baseline)"]) / statistics.median(timings["service"])
    print(
        f"service median is {ratio:.1f}x faster than raw rows; target < 100 ms:"
        f" {'met' if statistics.median(timings['service']) < 100 else 'NOT met'}"
    )


async def _ingest_cost(args: argparse.Namespace, deps: Any, org: uuid.UUID) -> None:
    from outpost_contracts.readings import TelemetryMessage, TelemetryReading
    from outpost_readings.adapters import store
    from outpost_readings.app import handlers

    devices = [uuid.uuid4() for _ in range(20)]
    async with deps.uow(org) as uow:
        for i, d in enumerate(devices):
            await store.upsert_device(uow, org, d, f"ingest-{i}", "REGISTERED", 1)
        await uow.commit()
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    counter = 0

    def batch() -> list[handlers.Incoming]:
        nonlocal counter
        items = []
        for m in range(100):
            device = devices[m % len(devices)]
            readings = []
            for r in range(100):
                counter += 1
                readings.append(
                    TelemetryReading(
                        sensor=f"s{r % 5}",
                        ts=base + timedelta(milliseconds=counter * 7),
                        value=float(counter % 1000),
                    )
                )
            items.append(
                handlers.Incoming(
                    org_id=org,
                    device_id=device,
                    message=TelemetryMessage(seq=counter, readings=readings),
                    arrival=datetime.now(UTC),
                    source="http",
                )
            )
        return items

    saved = store._ROLLUP_STAGED
    seconds = {"with rollups": 0.0, "without rollups": 0.0}
    everything: list[handlers.Incoming] = []
    await handlers.ingest(deps, batch(), datetime.now(UTC))  # warm-up (partitions, staging)
    for i in range(args.ingest_batches * 2):
        label = "with rollups" if i % 2 == 0 else "without rollups"
        store._ROLLUP_STAGED = saved if label == "with rollups" else []
        items = batch()
        if label == "with rollups":
            everything.extend(items)
        started = time.perf_counter()
        await handlers.ingest(deps, items, datetime.now(UTC))
        seconds[label] += time.perf_counter() - started
    store._ROLLUP_STAGED = saved
    n = args.ingest_batches * 100 * 100
    print("\ningest() of fresh batches (100 messages x 100 readings), alternated:")
    for label, s in seconds.items():
        print(f"{label:<34} {n / s:10,.0f} readings/s ({s:.2f} s for {n:,})")
    cost = seconds["with rollups"] / seconds["without rollups"] - 1
    print(f"rollups add {cost * 100:.0f}% to ingest() time on first delivery")
    redelivered = [
        handlers.Incoming(
            org_id=i.org_id,
            device_id=i.device_id,
            message=i.message,
            arrival=i.arrival,
            source="http",
            first_delivery=False,
        )
        for i in everything
    ]
    started = time.perf_counter()
    for k in range(0, len(redelivered), 100):
        await handlers.ingest(deps, redelivered[k : k + 100], datetime.now(UTC))
    s = time.perf_counter() - started
    print(f"{'redelivery (all stored already)':<34} {n / s:10,.0f} readings/s")
    async with deps.uow(org) as uow:
        driver = await store._driver(uow)
        counted = await driver.fetchval(
            "SELECT sum(count)::bigint FROM readings_1m WHERE device_id = ANY($1)", devices
        )
        stored = await driver.fetchval(
            "SELECT count(*) FROM readings WHERE device_id = ANY($1)", devices
        )
    # rows stored without rollups are not counted; with rollups + warm-up are, once each
    print(f"stored {stored:,}; counted in readings_1m {counted:,} (the rollup-less half excluded)")


async def _main(args: argparse.Namespace, admin_dsn: str) -> None:
    from outpost_contracts.envelope import RequestContext
    from outpost_kit.cli import migrations_dir
    from outpost_kit.db.engine import create_engine
    from outpost_kit.db.eventstore import EventCodec
    from outpost_kit.db.migrate import upgrade
    from outpost_kit.db.provision import provision_service
    from outpost_kit.db.uow import UnitOfWorkFactory
    from outpost_readings import bootstrap
    from outpost_readings.app import handlers
    from outpost_readings.domain.readings import Limits

    app_dsn = await provision_service(admin_dsn, "readings", secrets.token_urlsafe(16))
    await upgrade(admin_dsn, "readings", migrations_dir(bootstrap.__file__))
    org = uuid.uuid4()
    devices = [uuid.uuid4() for _ in range(args.devices)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    if not args.skip_query:
        await _build(admin_dsn, org, devices, start, args.days, args.every)
    engine = create_engine(app_dsn, "readings", pool_size=2)

    async def exists(ctx: RequestContext, device_id: uuid.UUID) -> bool:
        return True

    deps = handlers.Deps(
        uow=UnitOfWorkFactory(engine, EventCodec(handlers.DEVICE_EVENT_TYPES)),
        limits=Limits(max_past=timedelta(days=3650)),
        device_exists=exists,
    )
    try:
        if not args.skip_query:
            await _queries(
                args,
                deps,
                org,
                devices[len(devices) // 2],
                start + timedelta(days=max(0, (args.days - 7) // 2)),
            )
        await _ingest_cost(args, deps, uuid.uuid4())
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=24)
    parser.add_argument("--every", type=int, default=6, help="seconds between readings")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--ingest-batches", type=int, default=10)
    parser.add_argument("--skip-query", action="store_true", help="only the ingest cost")
    args = parser.parse_args()

    from outpost_devkit.infra import PostgresCluster

    base = Path(tempfile.mkdtemp(prefix="outpost-bench-query-"))
    pg = None
    try:
        pg = PostgresCluster.start(base / "pg")
        print(
            f"Postgres (durable), {os.cpu_count()} cores shared; load average before:"
            f" {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        asyncio.run(_main(args, pg.admin_dsn))
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
