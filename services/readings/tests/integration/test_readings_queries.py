"""Reading queries against real Postgres (decision 60): aggregates from the rollups compared
with a brute-force computation in Python over random readings (every interval and function,
several time zones across clock changes, readings exactly on bucket edges), redelivery not
counted twice, statistics against Python's, latest, by group and site, the limits, tenant
isolation, and the migration's backfill."""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import statistics
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
import pytest

from outpost_contracts.devices import DeviceRegistered, DeviceUpdated
from outpost_contracts.envelope import EventEnvelope, Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import NotFound, ValidationFailed
from outpost_contracts.readings import (
    AGGREGATE_FUNCTIONS,
    GetAggregates,
    GetLatest,
    GetStats,
    ListReadings,
    TelemetryMessage,
    TelemetryReading,
)
from outpost_devkit.testing.audit import rls_violations
from outpost_kit import ids
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine, plain_dsn
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import provision_service
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_readings import bootstrap
from outpost_readings.app import handlers, queries
from outpost_readings.domain import buckets as b
from outpost_readings.domain.readings import Limits

pytestmark = pytest.mark.integration

# Fixed instants (clock changes of 2026), so validation's time window is opened wide.
LIMITS = Limits(max_future=timedelta(days=3650), max_past=timedelta(days=3650))


class Env:
    def __init__(self, deps: handlers.Deps, dsn: str) -> None:
        self.deps = deps
        self.dsn = dsn

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

    async def device(
        self, org: uuid.UUID, *, group: uuid.UUID | None = None, site: uuid.UUID | None = None
    ) -> uuid.UUID:
        device = ids.new_id()
        await self.event(
            org, device, 1, DeviceRegistered(name=f"d-{device}", group_id=group, site_id=site)
        )
        return device

    async def ingest(
        self,
        org: uuid.UUID,
        device: uuid.UUID,
        readings: list[tuple[str, datetime, Any]],
        *,
        first_delivery: bool = True,
    ) -> int:
        message = TelemetryMessage(
            seq=0,
            readings=[TelemetryReading(sensor=s, ts=ts, value=v) for s, ts, v in readings],
        )
        item = handlers.Incoming(
            org_id=org,
            device_id=device,
            message=message,
            arrival=ids.now(),
            source="http",
            first_delivery=first_delivery,
        )
        [outcome] = await handlers.ingest(self.deps, [item], ids.now())
        assert outcome.rejected == 0
        return outcome.stored

    async def fetch(self, org: uuid.UUID, sql: str, *args: Any) -> list[Any]:
        conn = await asyncpg.connect(plain_dsn(self.dsn))
        try:
            async with conn.transaction():
                await conn.execute("SELECT set_config('outpost.org_id', $1, true)", str(org))
                return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()


@pytest.fixture
async def env(postgres_dsn: str) -> AsyncIterator[Env]:
    dsn = await provision_service(postgres_dsn, "readings", secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, "readings", migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, "readings", pool_size=4)

    async def exists(ctx: Any, device_id: uuid.UUID) -> bool:
        return False

    deps = handlers.Deps(
        uow=UnitOfWorkFactory(engine, EventCodec(handlers.DEVICE_EVENT_TYPES)),
        limits=LIMITS,
        device_exists=exists,
    )
    try:
        yield Env(deps, dsn)
    finally:
        await engine.dispose()


def _ctx(org: uuid.UUID) -> RequestContext:
    return RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org,
        principal=Principal(kind=PrincipalKind.API_KEY, id=uuid.uuid4(), org_id=org, scopes=("*",)),
    )


# --- brute force ------------------------------------------------------------------------


def _offset(tz: ZoneInfo, t: datetime) -> int:
    off = t.astimezone(tz).utcoffset()
    assert off is not None
    return int(off.total_seconds())


def _scan_starts(tz: ZoneInfo, n: int, lo: datetime, hi: datetime) -> list[datetime]:
    """Bucket starts by the definition (ADR 0060), minute by minute: the local
    wall time is on a slot boundary, or its slot differs from the second before's."""
    out = []
    t = lo.replace(second=0, microsecond=0)
    while t < hi:
        wall = int(t.timestamp()) + _offset(tz, t)
        p = t - timedelta(seconds=1)
        prev = int(p.timestamp()) + _offset(tz, p)
        if wall % n == 0 or prev // n != wall // n:
            out.append(t)
        t += timedelta(minutes=1)
    return out


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None  # text is not aggregated


def brute_aggregates(
    readings: dict[tuple[uuid.UUID, str, datetime], Any],
    tz: ZoneInfo,
    interval: str,
    start: datetime,
    end: datetime,
) -> dict[tuple[datetime, uuid.UUID, str], dict[str, Any]]:
    n = b.SECONDS[b.Interval(interval)]
    margin = timedelta(days=2)
    starts = _scan_starts(tz, n, start - margin, end + margin)
    first = max(s for s in starts if s <= start)
    last_end = min(s for s in starts if s >= end)
    out: dict[tuple[datetime, uuid.UUID, str], list[tuple[datetime, float]]] = {}
    for (device, sensor, ts), value in readings.items():
        num = _numeric(value)
        if num is None or not first <= ts < last_end:
            continue
        bucket = max(s for s in starts if s <= ts)
        out.setdefault((bucket, device, sensor), []).append((ts, num))
    result = {}
    for key, points in out.items():
        points.sort()
        values = [v for _, v in points]
        result[key] = {
            "count": len(values),
            "sum": math.fsum(values),
            "avg": math.fsum(values) / len(values),
            "min": min(values),
            "max": max(values),
            "first": values[0],
            "last": values[-1],
        }
    return result


def percentile_cont(values: list[float], p: float) -> float:
    """Linear interpolation between the closest ranks (Postgres' percentile_cont)."""
    xs = sorted(values)
    pos = p * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


async def _all_aggregates(env: Env, org: uuid.UUID, **query: Any) -> list[Any]:
    rows: list[Any] = []
    after = None
    while True:
        page = await queries.get_aggregates(
            env.deps, _ctx(org), GetAggregates(**query, after=after, limit=997)
        )
        rows.extend(page.data)
        if not page.has_more:
            return rows
        after = page.after


def _close(a: float, b_: float) -> bool:
    return math.isclose(a, b_, rel_tol=1e-9, abs_tol=1e-9)


# Clock changes the data surrounds: Lord Howe spring (half hour), Paris autumn, St John's
# autumn (a -02:30 -> -03:30 zone).
CLUSTERS = [
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
    datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2026, 11, 1, 4, 30, tzinfo=UTC),
]
WINDOW = (datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
ZONES = ["UTC", "Europe/Paris", "Asia/Kolkata", "America/St_Johns", "Australia/Lord_Howe"]
# A range per interval (under 10,080 buckets), from a moment that is not a bucket edge.
SPANS = {
    "1m": timedelta(hours=20),
    "5m": timedelta(days=3),
    "15m": timedelta(days=6),
    "1h": timedelta(days=20),
    "1d": timedelta(days=31),
}


def _random_readings(
    rng: random.Random, devices: list[uuid.UUID]
) -> dict[tuple[uuid.UUID, str, datetime], Any]:
    lo, hi = WINDOW
    instants: list[datetime] = []
    span = (hi - lo).total_seconds()
    instants += [lo + timedelta(seconds=rng.uniform(0, span)) for _ in range(1500)]
    for c in CLUSTERS:  # dense around each clock change
        instants += [c + timedelta(seconds=rng.uniform(-7200, 7200)) for _ in range(700)]
    # exactly on bucket edges of every zone and interval near the clusters, and just before
    for name in ZONES:
        tz = ZoneInfo(name)
        for interval in ("5m", "15m", "1h", "1d"):
            for c in CLUSTERS:
                grid = b.buckets(
                    c - timedelta(hours=30), c + timedelta(hours=30), b.Interval(interval), tz
                )
                for edge in rng.sample(grid.starts, min(6, len(grid.starts))):
                    instants += [
                        edge,
                        edge - timedelta(microseconds=1),
                        edge + timedelta(milliseconds=1),
                    ]
    out: dict[tuple[uuid.UUID, str, datetime], Any] = {}
    for t in instants:
        device = rng.choice(devices)
        sensor = rng.choice(["temp", "temp", "temp", "on", "mode"])
        value: Any
        if sensor == "temp":
            value = round(rng.uniform(-40, 60), 3) if rng.random() < 0.8 else rng.randint(-5, 5)
        elif sensor == "on":
            value = rng.random() < 0.4
        else:
            value = rng.choice(["eco", "boost"])
        out[(device, sensor, t)] = value
    return out


async def _store(
    env: Env, org: uuid.UUID, data: dict[tuple[uuid.UUID, str, datetime], Any], rng: random.Random
) -> list[list[tuple[uuid.UUID, str, datetime, Any]]]:
    """Ingest in shuffled batches (rollup rows merged across transactions, out of order)."""
    items = [(d, s, t, v) for (d, s, t), v in data.items()]
    rng.shuffle(items)
    batches = [items[i : i + 800] for i in range(0, len(items), 800)]
    for batch in batches:
        per_device: dict[uuid.UUID, list[tuple[str, datetime, Any]]] = {}
        for d, s, t, v in batch:
            per_device.setdefault(d, []).append((s, t, v))
        for d, rows in per_device.items():
            assert await env.ingest(org, d, rows) == len(rows)
    return batches


async def test_aggregates_match_brute_force_in_every_zone_interval_and_function(env: Env) -> None:
    rng = random.Random(60)
    org, group, site = ids.new_id(), ids.new_id(), ids.new_id()
    devices = [await env.device(org, group=group), await env.device(org, group=group, site=site)]
    data = _random_readings(rng, devices)
    batches = await _store(env, org, data, rng)

    # A redelivered batch (not a first delivery: ON CONFLICT … RETURNING) and a device
    # sending readings again in a new message (first delivery: the plain INSERT fails over)
    # store nothing and count nothing twice in the rollups.
    for first_delivery in (False, True):
        d = batches[0][0][0]
        again = [(s2, t2, v2) for d2, s2, t2, v2 in batches[0] if d2 == d]
        await env.ingest(org, d, again, first_delivery=first_delivery)
        # one new reading among old ones: only it is counted
        new_t = datetime(2026, 10, 20, 12, 0, int(first_delivery), 123456, tzinfo=UTC)
        assert (d, "temp", new_t) not in data
        data[(d, "temp", new_t)] = 7.5
        mixed = [*again[:5], ("temp", new_t, 7.5)]
        await env.ingest(org, d, mixed, first_delivery=first_delivery)
    stored = await env.fetch(org, "SELECT count(*) AS n FROM readings")
    assert stored[0]["n"] == len(data)

    fns = ",".join(AGGREGATE_FUNCTIONS)
    checked = 0
    for name in ZONES:
        tz = ZoneInfo(name)
        for interval, span in SPANS.items():
            cluster = CLUSTERS[ZONES.index(name) % len(CLUSTERS)]
            start = max(WINDOW[0], cluster - span / 2) + timedelta(seconds=37)
            end = min(WINDOW[1], start + span)
            want = brute_aggregates(data, tz, interval, start, end)
            got = await _all_aggregates(
                env,
                org,
                group_id=group,
                from_=start,
                to=end,
                interval=interval,
                fn=fns,
                timezone=name,
            )
            keys = [(r.ts, r.device_id, r.sensor) for r in got]
            assert keys == sorted(want), (name, interval)
            for r in got:
                w = want[(r.ts, r.device_id, r.sensor)]
                assert r.count == w["count"], (name, interval, r)
                for fn in ("avg", "sum", "min", "max", "first", "last"):
                    assert _close(getattr(r, fn), w[fn]), (name, interval, fn, r, w)
            checked += len(got)
    assert checked > 5000

    # only the functions asked for are present; by device and by site: the subset
    start, end = datetime(2026, 10, 24, tzinfo=UTC), datetime(2026, 10, 26, tzinfo=UTC)
    one = await queries.get_aggregates(
        env.deps,
        _ctx(org),
        GetAggregates(
            device_id=devices[1], sensor="temp", from_=start, to=end, interval="1h", fn="max,count"
        ),
    )
    by_site = await queries.get_aggregates(
        env.deps,
        _ctx(org),
        GetAggregates(
            site_id=site, sensor="temp", from_=start, to=end, interval="1h", fn="max,count"
        ),
    )
    assert one.data and one.data == by_site.data
    assert {r.device_id for r in one.data} == {devices[1]}
    present = [
        {k for k in AGGREGATE_FUNCTIONS if getattr(r, k) is not msgspec.UNSET} for r in one.data
    ]
    assert all(p == {"max", "count"} for p in present)


async def test_rollups_hold_booleans_as_0_1_and_no_text(env: Env) -> None:
    org = ids.new_id()
    device = await env.device(org)
    t = datetime(2026, 10, 20, 10, 0, 5, tzinfo=UTC)
    await env.ingest(
        org,
        device,
        [
            ("on", t, True),
            ("on", t + timedelta(seconds=1), False),
            ("on", t + timedelta(seconds=2), True),
            ("mode", t, "eco"),
        ],
    )
    rows = await env.fetch(
        org, "SELECT sensor, count, sum, first_value, last_value FROM readings_1m ORDER BY sensor"
    )
    assert [
        (r["sensor"], r["count"], r["sum"], r["first_value"], r["last_value"]) for r in rows
    ] == [("on", 3, 2.0, 1.0, 1.0)]


async def test_stats_match_python(env: Env) -> None:
    rng = random.Random(7)
    org, group = ids.new_id(), ids.new_id()
    devices = [await env.device(org, group=group) for _ in range(2)]
    start = datetime(2026, 10, 10, tzinfo=UTC)
    data: dict[tuple[uuid.UUID, str, datetime], Any] = {}
    for d in devices:
        for _ in range(rng.randint(50, 400)):
            data[(d, "temp", start + timedelta(seconds=rng.uniform(0, 86400 * 3)))] = rng.gauss(
                20, 5
            )
        data[(d, "one", start + timedelta(hours=1))] = 4.25
        data[(d, "mode", start + timedelta(hours=2))] = "eco"
        await env.ingest(org, d, [(s, t, v) for (dd, s, t), v in data.items() if dd == d])
    end = start + timedelta(days=2)  # part of the data only
    page = await queries.get_stats(
        env.deps, _ctx(org), GetStats(group_id=group, from_=start, to=end)
    )
    assert [(r.device_id, r.sensor) for r in page.data] == sorted(
        (d, s) for d in devices for s in ("one", "temp")
    )
    for r in page.data:
        values = [
            v
            for (d, s, t), v in data.items()
            if d == r.device_id and s == r.sensor and start <= t < end
        ]
        assert r.count == len(values)
        assert _close(r.min, min(values)) and _close(r.max, max(values))
        assert _close(r.avg, statistics.fmean(values))
        if len(values) > 1:
            assert r.stddev is not None and _close(r.stddev, statistics.stdev(values))
        else:
            assert r.stddev is None
        for p, got in ((0.5, r.p50), (0.95, r.p95), (0.99, r.p99)):
            assert _close(got, percentile_cont(values, p)), (p, got)
    # Python's own "inclusive" quantiles are the same definition
    temp = next(r for r in page.data if r.sensor == "temp")
    values = [
        v
        for (d, s, t), v in data.items()
        if d == temp.device_id and s == "temp" and start <= t < end
    ]
    q = statistics.quantiles(values, n=100, method="inclusive")
    assert _close(temp.p95, q[94]) and _close(temp.p50, q[49])
    # paging: one row a page
    first = await queries.get_stats(
        env.deps, _ctx(org), GetStats(group_id=group, from_=start, to=end, limit=1)
    )
    second = await queries.get_stats(
        env.deps,
        _ctx(org),
        GetStats(group_id=group, from_=start, to=end, limit=1, after=first.after),
    )
    assert first.has_more and [*first.data, *second.data] == page.data[:2]


async def test_latest_per_device_and_sensor_across_partitions(env: Env) -> None:
    org, group, site = ids.new_id(), ids.new_id(), ids.new_id()
    a = await env.device(org, group=group)
    c = await env.device(org, group=group, site=site)
    t0 = datetime(2026, 10, 1, 23, 59, tzinfo=UTC)
    await env.ingest(
        org, a, [("temp", t0, 1.5), ("temp", t0 + timedelta(days=3), 2.5), ("mode", t0, "eco")]
    )
    await env.ingest(org, a, [("temp", t0 + timedelta(days=1), 9.0)])  # older than the newest
    await env.ingest(org, c, [("on", t0 + timedelta(minutes=2), True)])
    page = await queries.get_latest(env.deps, _ctx(org), GetLatest(group_id=group))
    got = {(r.device_id, r.sensor): (r.ts, r.value) for r in page.data}
    assert got == {
        (a, "temp"): (t0 + timedelta(days=3), 2.5),
        (a, "mode"): (t0, "eco"),
        (c, "on"): (t0 + timedelta(minutes=2), True),
    }
    by_site = await queries.get_latest(env.deps, _ctx(org), GetLatest(site_id=site))
    assert [(r.device_id, r.sensor) for r in by_site.data] == [(c, "on")]
    one = await queries.get_latest(env.deps, _ctx(org), GetLatest(device_id=a, sensor="temp"))
    assert [r.value for r in one.data] == [2.5]
    paged = await queries.get_latest(env.deps, _ctx(org), GetLatest(group_id=group, limit=2))
    rest = await queries.get_latest(
        env.deps, _ctx(org), GetLatest(group_id=group, limit=2, after=paged.after)
    )
    assert paged.has_more and not rest.has_more and [*paged.data, *rest.data] == page.data
    # The probe is an index lookup per sensor, not a scan.
    plan = await env.fetch(
        org,
        "EXPLAIN SELECT r.ts FROM sensors s CROSS JOIN LATERAL (SELECT ts FROM readings r"
        " WHERE r.device_id = s.device_id AND r.sensor = s.key ORDER BY ts DESC LIMIT 1) r"
        " WHERE s.device_id = $1",
        a,
    )
    text = "\n".join(r[0] for r in plan)
    assert "Index" in text and "Seq Scan on readings_p" not in text


async def test_group_and_site_follow_device_events_and_raw_pages(env: Env) -> None:
    org, group, other_group, site = ids.new_id(), ids.new_id(), ids.new_id(), ids.new_id()
    a = await env.device(org, group=group)
    c = await env.device(org, group=group)
    t0 = datetime(2026, 10, 20, 12, tzinfo=UTC)
    await env.ingest(org, a, [("temp", t0 + timedelta(seconds=i), float(i)) for i in range(5)])
    await env.ingest(org, c, [("temp", t0 + timedelta(seconds=i), float(-i)) for i in range(5)])
    window = {"from_": t0, "to": t0 + timedelta(hours=1)}
    rows: list[Any] = []
    after = None
    while True:
        page = await queries.list_readings(
            env.deps, _ctx(org), ListReadings(group_id=group, limit=3, after=after, **window)
        )
        rows.extend(page.data)
        if not page.has_more:
            break
        after = page.after
    assert [(r.ts, r.device_id) for r in rows] == sorted(
        (t0 + timedelta(seconds=i), d) for i in range(5) for d in (a, c)
    )
    # c moves to another group and to a site: queries follow the registry
    await env.event(
        org, c, 2, DeviceUpdated(changed=["groupId", "siteId"], group_id=other_group, site_id=site)
    )
    moved = await queries.list_readings(
        env.deps, _ctx(org), ListReadings(group_id=group, limit=100, **window)
    )
    assert {r.device_id for r in moved.data} == {a}
    at_site = await queries.list_readings(
        env.deps, _ctx(org), ListReadings(site_id=site, limit=100, **window)
    )
    assert {r.device_id for r in at_site.data} == {c}
    # a name change leaves the placement alone
    await env.event(org, c, 3, DeviceUpdated(changed=["name"], name="renamed"))
    still = await queries.list_readings(
        env.deps, _ctx(org), ListReadings(site_id=site, limit=100, **window)
    )
    assert {r.device_id for r in still.data} == {c}


async def _refused(call: Any) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        await call
    return [f.name for f in info.value.fields]


async def test_limits_are_validation_errors(env: Env) -> None:
    org, group = ids.new_id(), ids.new_id()
    device = await env.device(org, group=group)
    ctx, deps = _ctx(org), env.deps
    t0 = datetime(2026, 10, 1, tzinfo=UTC)

    def agg(**kw: Any) -> Any:
        fields = {
            "device_id": device,
            "from_": t0,
            "to": t0 + timedelta(days=1),
            "interval": "1m",
            **kw,
        }
        return queries.get_aggregates(deps, ctx, GetAggregates(**fields))

    assert await _refused(agg(to=t0 + timedelta(days=8))) == ["interval"]  # > 10,080 buckets
    assert await _refused(agg(to=t0)) == ["from"]
    assert await _refused(agg(timezone="Mars/Olympus")) == ["timezone"]
    # hours in Kolkata come from per-minute rollups: at most 105 days
    assert await _refused(
        agg(interval="1h", timezone="Asia/Kolkata", to=t0 + timedelta(days=106))
    ) == ["from"]
    await agg(interval="1h", timezone="UTC", to=t0 + timedelta(days=106))  # hourly rollup: fine
    assert await _refused(agg(device_id=None)) == ["deviceId"]
    assert await _refused(agg(group_id=group)) == ["deviceId"]  # two of them
    assert await _refused(agg(after="not-a-cursor")) == ["after"]
    stats = GetStats(device_id=device, from_=t0, to=t0 + timedelta(days=32))
    assert await _refused(queries.get_stats(deps, ctx, stats)) == ["from"]
    raw = ListReadings(group_id=group, from_=t0)
    assert await _refused(queries.list_readings(deps, ctx, raw)) == ["to"]
    raw = ListReadings(group_id=group, from_=t0, to=t0 + timedelta(days=8))
    assert await _refused(queries.list_readings(deps, ctx, raw)) == ["from"]


async def test_another_organization_sees_nothing(env: Env) -> None:
    org, other, group = ids.new_id(), ids.new_id(), ids.new_id()
    device = await env.device(org, group=group)
    t0 = datetime(2026, 10, 20, 12, tzinfo=UTC)
    await env.ingest(org, device, [("temp", t0, 1.0), ("temp", t0 + timedelta(hours=2), 2.0)])
    window = {"from_": t0, "to": t0 + timedelta(days=1)}
    mine = await queries.get_aggregates(
        env.deps, _ctx(org), GetAggregates(device_id=device, interval="1h", **window)
    )
    assert len(mine.data) == 2
    ctx = _ctx(other)
    for call in (
        queries.get_aggregates(
            env.deps, ctx, GetAggregates(device_id=device, interval="1h", **window)
        ),
        queries.get_stats(env.deps, ctx, GetStats(device_id=device, **window)),
        queries.get_latest(env.deps, ctx, GetLatest(device_id=device)),
        queries.list_readings(env.deps, ctx, ListReadings(device_id=device)),
    ):
        with pytest.raises(NotFound):
            await call
    assert (
        await queries.get_aggregates(
            env.deps, ctx, GetAggregates(group_id=group, interval="1h", **window)
        )
    ).data == []
    assert (await queries.get_stats(env.deps, ctx, GetStats(group_id=group, **window))).data == []
    assert (await queries.get_latest(env.deps, ctx, GetLatest(group_id=group))).data == []
    assert (
        await queries.list_readings(env.deps, ctx, ListReadings(group_id=group, **window))
    ).data == []
    for table in ("readings_1m", "readings_1h"):
        assert await env.fetch(other, f"SELECT * FROM {table}") == []
        assert len(await env.fetch(org, f"SELECT * FROM {table}")) == 2


async def test_the_migration_backfills_rollups_with_row_level_security(postgres_dsn: str) -> None:
    service = f"readings{secrets.token_hex(3)}"
    dsn = await provision_service(postgres_dsn, service, secrets.token_urlsafe(16))
    where = migrations_dir(bootstrap.__file__)
    await upgrade(postgres_dsn, service, where, revision="0002")
    org, device = ids.new_id(), ids.new_id()
    t0 = datetime(2026, 1, 1, 23, 59, 30, tzinfo=UTC)
    points = [(t0 + timedelta(seconds=20 * i), float(i)) for i in range(6)]  # across midnight
    conn = await asyncpg.connect(plain_dsn(dsn))
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('outpost.org_id', $1, true)", str(org))
            for day in ("2026-01-01", "2026-01-02"):
                await conn.execute(
                    "SELECT ensure_readings_partition($1::date)", datetime.fromisoformat(day).date()
                )
            await conn.executemany(
                "INSERT INTO readings (org_id, device_id, sensor, ts, kind, num, received_at)"
                " VALUES ($1, $2, 't', $3, 0, $4, now())",
                [(org, device, ts, v) for ts, v in points],
            )
            await conn.execute(
                "INSERT INTO readings (org_id, device_id, sensor, ts, kind, txt, received_at)"
                " VALUES ($1, $2, 'mode', $3, 2, 'eco', now())",
                org,
                device,
                t0,
            )
        await upgrade(postgres_dsn, service, where)
        async with conn.transaction():
            await conn.execute("SELECT set_config('outpost.org_id', $1, true)", str(org))
            minutes = await conn.fetch(
                "SELECT bucket, count, sum, min, max, first_value, last_value FROM readings_1m"
                " ORDER BY bucket"
            )
            hours = await conn.fetch("SELECT bucket, count, sum FROM readings_1h ORDER BY bucket")
        assert [tuple(r) for r in minutes] == [
            (datetime(2026, 1, 1, 23, 59, tzinfo=UTC), 2, 1.0, 0.0, 1.0, 0.0, 1.0),
            (datetime(2026, 1, 2, 0, 0, tzinfo=UTC), 3, 9.0, 2.0, 4.0, 2.0, 4.0),
            (datetime(2026, 1, 2, 0, 1, tzinfo=UTC), 1, 5.0, 5.0, 5.0, 5.0, 5.0),
        ]
        assert [tuple(r) for r in hours] == [
            (datetime(2026, 1, 1, 23, tzinfo=UTC), 2, 1.0),
            (datetime(2026, 1, 2, 0, tzinfo=UTC), 4, 14.0),
        ]
        # readings forces RLS again, the rollups too, and nobody else sees them
        assert await rls_violations(conn, service) == []
        assert await conn.fetch("SELECT * FROM readings_1m") == []
    finally:
        await conn.close()


async def test_concurrent_batches_into_the_same_buckets_add_up(env: Env) -> None:
    """Four transactions upserting the same minute and hour rows at once (replicas ingesting
    one device): each waits for the other's row lock, none deadlocks, every reading counts
    once."""
    org = ids.new_id()
    devices = [await env.device(org) for _ in range(3)]
    t0 = datetime(2026, 10, 20, 9, 0, tzinfo=UTC)
    batches = [
        {
            d: [("temp", t0 + timedelta(seconds=4 * i + k), float(k)) for i in range(600)]
            for d in devices
        }
        for k in range(4)
    ]

    async def one(batch: dict[uuid.UUID, list[tuple[str, datetime, Any]]]) -> None:
        items = [
            handlers.Incoming(
                org_id=org,
                device_id=d,
                message=TelemetryMessage(
                    seq=0, readings=[TelemetryReading(sensor=s, ts=t, value=v) for s, t, v in rows]
                ),
                arrival=ids.now(),
                source="http",
            )
            for d, rows in batch.items()
        ]
        await handlers.ingest(env.deps, items, ids.now())

    await asyncio.wait_for(asyncio.gather(*(one(b_) for b_ in batches)), 60)
    minutes = await env.fetch(
        org, "SELECT device_id, count, sum, first_value, last_value FROM readings_1m"
    )
    hours = await env.fetch(org, "SELECT device_id, sum(count) AS n FROM readings_1h GROUP BY 1")
    assert len(minutes) == 3 * 40  # 2,400 s of readings per device
    assert all(
        r["count"] == 60 and r["first_value"] == 0.0 and r["last_value"] == 3.0 for r in minutes
    )
    assert all(r["sum"] == 15 * 6.0 for r in minutes)  # 15 rounds of 0+1+2+3 per minute
    assert {r["device_id"]: r["n"] for r in hours} == {d: 2400 for d in devices}


# --- exports' chunks (decision 65) ------------------------------------------------------


async def test_stream_readings_pages_every_row_once_in_order_and_per_tenant(env: Env) -> None:
    from outpost_contracts.readings import StreamReadings

    org, other = uuid.uuid4(), uuid.uuid4()
    device = await env.device(org)
    theirs = await env.device(other)
    t0 = datetime(2026, 3, 28, 23, 59, 50, tzinfo=UTC)  # across a day (two partitions)
    sent = []
    for i in range(45):
        ts = t0 + timedelta(seconds=i, microseconds=250_000 if i % 3 == 0 else 0)
        sent += [("a.temp", ts, i * 0.5), ("b.door", ts, i % 2 == 0), ("c.note", ts, f"x,{i}")]
    await env.ingest(org, device, sent)
    await env.ingest(other, theirs, [("a.temp", t0, 1.0)])
    expected = sorted(sent, key=lambda r: (r[1], r[0]))
    got: list[tuple[str, str, Any]] = []
    after: tuple[datetime, str] | None = None
    chunks = 0
    while True:
        chunk = await queries.stream_readings(
            env.deps,
            _ctx(org),
            StreamReadings(
                device_id=device,
                from_=t0,
                to=t0 + timedelta(minutes=5),
                after_ts=after[0] if after else None,
                after_sensor=after[1] if after else None,
                limit=20,
                estimate=after is None,
            ),
        )
        chunks += 1
        if after is None:
            assert chunk.estimate is not None and chunk.estimate > 0
        got += [
            (chunk.sensors[i], t, v)
            for i, t, v in zip(chunk.sensor_index, chunk.ts, chunk.value, strict=True)
        ]
        if not chunk.next:
            break
        assert chunk.last_ts is not None and chunk.last_sensor is not None
        after = (chunk.last_ts, chunk.last_sensor)
    assert chunks == 7  # 135 rows in chunks of 20
    want = [
        (
            s,
            ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            int(v) if isinstance(v, float) and v.is_integer() else v,
        )
        for s, ts, v in expected
    ]
    assert got == want
    # Another organization's device has no readings for this tenant, and the range is [from, to).
    for c, dev, lo in ((_ctx(other), device, t0), (_ctx(org), device, t0 + timedelta(minutes=1))):
        empty = await queries.stream_readings(
            env.deps, c, StreamReadings(device_id=dev, from_=lo, to=lo + timedelta(minutes=5))
        )
        assert empty.ts == [] and empty.next is False
    with pytest.raises(ValidationFailed):
        await queries.stream_readings(
            env.deps, _ctx(org), StreamReadings(device_id=device, from_=t0, to=t0)
        )
