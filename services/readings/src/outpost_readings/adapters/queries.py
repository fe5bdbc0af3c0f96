"""Readings' query SQL (decision 60): devices of a group or site, aggregates from the
rollups, statistics and raw pages from ``readings``, the latest reading per sensor. Every
statement runs in the caller's tenant transaction, under RLS."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from outpost_kit.db.uow import UnitOfWork
from outpost_readings.adapters.store import _driver
from outpost_readings.domain.buckets import Buckets

ROLLUP_TABLES = {60: "readings_1m", 3600: "readings_1h"}


async def devices_in(
    uow: UnitOfWork, *, group_id: UUID | None, site_id: UUID | None, limit: int
) -> list[UUID]:
    """The tenant's devices in the group or at the site, as readings' registry knows them
    (at most ``limit``: the caller refuses more)."""
    column, value = ("group_id", group_id) if group_id is not None else ("site_id", site_id)
    rows = await (await _driver(uow)).fetch(
        f"SELECT id FROM devices WHERE {column} = $1 ORDER BY id LIMIT $2", value, limit
    )
    return [row["id"] for row in rows]


class _Sql:
    """A statement built clause by clause with numbered parameters."""

    def __init__(self) -> None:
        self.args: list[Any] = []

    def arg(self, value: Any, cast: str = "") -> str:
        self.args.append(value)
        return f"${len(self.args)}{cast}"


def _devices_clause(sql: _Sql, column: str, device_ids: list[UUID]) -> str:
    if len(device_ids) == 1:
        return f"{column} = {sql.arg(device_ids[0], '::uuid')}"
    return f"{column} = ANY({sql.arg(device_ids, '::uuid[]')})"


async def aggregates(
    uow: UnitOfWork,
    *,
    width: int,
    device_ids: list[UUID],
    sensor: str | None,
    buckets: Buckets,
    dense: bool,
    after: tuple[datetime, UUID, str] | None,
    limit: int,
) -> list[Any]:
    """Per bucket, device and sensor, ordered so: count, sum, min, max, first, last, merged
    from the rollup of ``width`` seconds. ``dense``: the buckets are the rollup's own rows
    (read as they are); otherwise each rollup row goes to the bucket whose start is the
    greatest of ``starts`` at or before it (``width_bucket``, a binary search)."""
    sql = _Sql()
    table = ROLLUP_TABLES[width]
    end = buckets.end
    lo = buckets.first if after is None else max(buckets.first, after[0])
    where = [
        _devices_clause(sql, "device_id", device_ids),
        f"bucket >= {sql.arg(lo, '::timestamptz')}",
        f"bucket < {sql.arg(end, '::timestamptz')}",
    ]
    if sensor is not None:
        where.append(f"sensor = {sql.arg(sensor)}")
    if dense:
        select = (
            "SELECT bucket AS ts, device_id, sensor, count, sum, min, max,"
            " first_value AS first, last_value AS last"
            f" FROM {table} WHERE {' AND '.join(where)}"
        )
    else:
        edges = sql.arg(buckets.starts, "::timestamptz[]")
        select = (
            f"SELECT ({edges})[width_bucket(bucket, {edges})] AS ts, device_id, sensor,"
            " sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max,"
            " (array_agg(first_value ORDER BY first_ts))[1] AS first,"
            " (array_agg(last_value ORDER BY last_ts DESC))[1] AS last"
            f" FROM {table} WHERE {' AND '.join(where)} GROUP BY 1, device_id, sensor"
        )
    cursor = ""
    if after is not None:
        a_ts, a_dev, a_sensor = after
        cursor = (
            f" WHERE (ts, device_id, sensor) > ({sql.arg(a_ts, '::timestamptz')},"
            f" {sql.arg(a_dev, '::uuid')}, {sql.arg(a_sensor, '::text')})"
        )
    statement = (
        f"SELECT * FROM ({select}) a{cursor} ORDER BY ts, device_id, sensor"
        f" LIMIT {sql.arg(limit, '::int')}"
    )
    return list(await (await _driver(uow)).fetch(statement, *sql.args))


async def aggregates_raw(
    uow: UnitOfWork,
    *,
    device_ids: list[UUID],
    sensor: str | None,
    starts: list[datetime],
    end: datetime,
) -> list[Any]:
    """The same figures computed from raw rows: the baseline of ``bench/query.py``, and
    nothing the API serves."""
    sql = _Sql()
    edges = sql.arg(starts, "::timestamptz[]")
    where = [
        _devices_clause(sql, "device_id", device_ids),
        f"ts >= {sql.arg(starts[0], '::timestamptz')}",
        f"ts < {sql.arg(end, '::timestamptz')}",
        "num IS NOT NULL",
    ]
    if sensor is not None:
        where.append(f"sensor = {sql.arg(sensor)}")
    statement = (
        f"SELECT ({edges})[width_bucket(ts, {edges})] AS ts, device_id, sensor,"
        " count(*) AS count, sum(num) AS sum, min(num) AS min, max(num) AS max,"
        " (array_agg(num ORDER BY ts))[1] AS first,"
        " (array_agg(num ORDER BY ts DESC))[1] AS last"
        f" FROM readings WHERE {' AND '.join(where)} GROUP BY 1, device_id, sensor"
        " ORDER BY 1, device_id, sensor"
    )
    return list(await (await _driver(uow)).fetch(statement, *sql.args))


async def stats(
    uow: UnitOfWork,
    *,
    device_ids: list[UUID],
    sensor: str | None,
    start: datetime,
    end: datetime,
    after: tuple[UUID, str] | None,
    limit: int,
) -> list[Any]:
    """count, min, max, avg, sample stddev and the continuous 50th/95th/99th percentiles of
    numeric readings in ``[start, end)``, per device and sensor."""
    sql = _Sql()
    where = [
        _devices_clause(sql, "device_id", device_ids),
        f"ts >= {sql.arg(start, '::timestamptz')}",
        f"ts < {sql.arg(end, '::timestamptz')}",
        "num IS NOT NULL",
    ]
    if sensor is not None:
        where.append(f"sensor = {sql.arg(sensor)}")
    if after is not None:
        where.append(
            f"(device_id, sensor) > ({sql.arg(after[0], '::uuid')}, {sql.arg(after[1], '::text')})"
        )
    statement = (
        "SELECT device_id, sensor, count(*) AS count, min(num) AS min, max(num) AS max,"
        " avg(num) AS avg, stddev_samp(num) AS stddev,"
        " percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY num) AS p"
        f" FROM readings WHERE {' AND '.join(where)} GROUP BY device_id, sensor"
        f" ORDER BY device_id, sensor LIMIT {sql.arg(limit, '::int')}"
    )
    return list(await (await _driver(uow)).fetch(statement, *sql.args))


async def latest(
    uow: UnitOfWork,
    *,
    device_ids: list[UUID],
    sensor: str | None,
    after: tuple[UUID, str] | None,
    limit: int,
) -> list[Any]:
    """The newest reading of each sensor the registry knows of these devices: one index
    probe per sensor (LATERAL, newest first; the partitions are visited newest first and
    the first row found ends the probe), never a scan."""
    sql = _Sql()
    where = [_devices_clause(sql, "s.device_id", device_ids)]
    if sensor is not None:
        where.append(f"s.key = {sql.arg(sensor)}")
    if after is not None:
        where.append(
            f"(s.device_id, s.key) > ({sql.arg(after[0], '::uuid')}, {sql.arg(after[1], '::text')})"
        )
    statement = (
        "SELECT s.device_id, s.key AS sensor, r.ts, r.kind, r.num, r.txt FROM sensors s"
        " CROSS JOIN LATERAL (SELECT ts, kind, num, txt FROM readings r"
        " WHERE r.device_id = s.device_id AND r.sensor = s.key ORDER BY ts DESC LIMIT 1) r"
        f" WHERE {' AND '.join(where)} ORDER BY s.device_id, s.key"
        f" LIMIT {sql.arg(limit, '::int')}"
    )
    return list(await (await _driver(uow)).fetch(statement, *sql.args))


async def raw(
    uow: UnitOfWork,
    *,
    device_ids: list[UUID],
    sensor: str | None,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, UUID, str] | None,
    descending: bool,
    limit: int,
) -> list[Any]:
    """Raw readings of several devices in ``(ts, device, sensor)`` order (a group or site;
    the caller bounds device-days)."""
    sql = _Sql()
    where = [_devices_clause(sql, "device_id", device_ids)]
    if sensor is not None:
        where.append(f"sensor = {sql.arg(sensor)}")
    if start is not None:
        where.append(f"ts >= {sql.arg(start, '::timestamptz')}")
    if end is not None:
        where.append(f"ts < {sql.arg(end, '::timestamptz')}")
    if after is not None:
        where.append(
            f"(ts, device_id, sensor) {'<' if descending else '>'}"
            f" ({sql.arg(after[0], '::timestamptz')}, {sql.arg(after[1], '::uuid')},"
            f" {sql.arg(after[2], '::text')})"
        )
    order = "DESC" if descending else "ASC"
    statement = (
        f"SELECT device_id, sensor, ts, kind, num, txt FROM readings WHERE {' AND '.join(where)}"
        f" ORDER BY ts {order}, device_id {order}, sensor {order}"
        f" LIMIT {sql.arg(limit, '::int')}"
    )
    return list(await (await _driver(uow)).fetch(statement, *sql.args))


async def export_chunk(
    uow: UnitOfWork,
    *,
    device_id: UUID,
    start: datetime,
    end: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
) -> Any:
    """One chunk of a device's readings for an export, as columns (arrays aggregated by
    Postgres, so the driver decodes five arrays instead of ``limit`` records): a range scan
    of ``(device_id, ts)``, the cursor ``(ts, sensor)`` of the previous chunk's last row.
    ``ts`` is formatted by Postgres, RFC 3339 UTC with microseconds."""
    sql = _Sql()
    where = [
        f"device_id = {sql.arg(device_id, '::uuid')}",
        f"ts >= {sql.arg(start, '::timestamptz')}",
        f"ts < {sql.arg(end, '::timestamptz')}",
    ]
    if after is not None:
        where.append(
            f"(ts, sensor) > ({sql.arg(after[0], '::timestamptz')}, {sql.arg(after[1], '::text')})"
        )
    # The arrays keep the subquery's order (it is sorted and LIMITed; no join or grouping
    # reorders it): an ORDER BY inside each array_agg would sort every chunk five times more.
    statement = (
        "SELECT array_agg(sensor) AS sensor,"
        " array_agg(to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')) AS ts,"
        " array_agg(kind) AS kind, array_agg(num) AS num, array_agg(txt) AS txt"
        " FROM (SELECT sensor, ts, kind, num, txt"
        f" FROM readings WHERE {' AND '.join(where)} ORDER BY ts, sensor"
        f" LIMIT {sql.arg(limit, '::int')}) c"
    )
    return await (await _driver(uow)).fetchrow(statement, *sql.args)


async def export_estimate(
    uow: UnitOfWork, *, device_id: UUID, start: datetime, end: datetime
) -> int:
    """The planner's estimate of a device's readings in ``[start, end)`` (no scan)."""
    plan = await (await _driver(uow)).fetchval(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM readings WHERE device_id = $1::uuid"
        " AND ts >= $2::timestamptz AND ts < $3::timestamptz",
        device_id,
        start,
        end,
    )
    parsed = json.loads(plan) if isinstance(plan, str) else plan
    return int(parsed[0]["Plan"]["Plan Rows"])
