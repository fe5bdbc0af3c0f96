"""Readings' SQL: the local device and sensor registry, the partitioned readings table (COPY
into a staging table, then one INSERT … SELECT … ON CONFLICT DO NOTHING), the quarantine and
each device's ``seq`` state."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_kit.db.uow import UnitOfWork
from outpost_readings.domain.readings import Reading, SensorSpec, SeqState


async def upsert_device(
    uow: UnitOfWork,
    org_id: UUID,
    device_id: UUID,
    name: str,
    status: str,
    version: int,
    *,
    group_id: UUID | None = None,
    site_id: UUID | None = None,
) -> None:
    await uow.execute(
        "INSERT INTO devices (org_id, id, name, status, version, group_id, site_id)"
        " VALUES (:o, :i, :n, :s, :v, :g, :site)"
        " ON CONFLICT (org_id, id) DO UPDATE SET name = excluded.name, status = excluded.status,"
        " version = excluded.version, group_id = excluded.group_id, site_id = excluded.site_id"
        " WHERE devices.version < excluded.version",
        {
            "o": org_id,
            "i": device_id,
            "n": name,
            "s": status,
            "v": version,
            "g": group_id,
            "site": site_id,
        },
    )


# A DeviceUpdated's placement: a column is set only when the event names it (``None`` then
# clears it).
PLACEMENT_COLUMNS = frozenset({"group_id", "site_id"})


async def update_device(
    uow: UnitOfWork,
    org_id: UUID,
    device_id: UUID,
    version: int,
    *,
    name: str | None = None,
    status: str | None = None,
    placement: dict[str, UUID | None] | None = None,
) -> None:
    """A later event of a device the registry holds: keep its name and status (``None``
    leaves a column as it is) and the group/site ``placement`` names. An older event than
    the row's is skipped."""
    placement = placement or {}
    assert set(placement) <= PLACEMENT_COLUMNS
    sets = "".join(f", {column} = :{column}" for column in placement)
    await uow.execute(
        "UPDATE devices SET name = COALESCE(:n, name), status = COALESCE(:s, status),"
        f" version = :v{sets} WHERE org_id = :o AND id = :i AND version < :v",
        {"o": org_id, "i": device_id, "n": name, "s": status, "v": version, **placement},
    )


async def device_statuses(uow: UnitOfWork, device_ids: Iterable[UUID]) -> dict[UUID, str]:
    """The registry's status of each of ``device_ids`` it knows (the tenant's only)."""
    result = await uow.execute(
        "SELECT id, status FROM devices WHERE id = ANY(:ids)", {"ids": list(set(device_ids))}
    )
    return {row.id: row.status for row in result}


async def sensors_of(
    uow: UnitOfWork, device_ids: Iterable[UUID]
) -> dict[UUID, dict[str, SensorSpec]]:
    result = await uow.execute(
        "SELECT device_id, key, value_type, min, max, auto FROM sensors"
        " WHERE device_id = ANY(:ids)",
        {"ids": list(set(device_ids))},
    )
    found: dict[UUID, dict[str, SensorSpec]] = {}
    for row in result:
        found.setdefault(row.device_id, {})[row.key] = SensorSpec(
            value_type=row.value_type, min=row.min, max=row.max, auto=row.auto
        )
    return found


async def auto_declare_of(uow: UnitOfWork, org_id: UUID, default: bool) -> bool:
    row = (
        await uow.execute(
            "SELECT auto_declare_sensors FROM org_settings WHERE org_id = :o", {"o": org_id}
        )
    ).first()
    return default if row is None else bool(row.auto_declare_sensors)


async def declare_sensor(
    uow: UnitOfWork, org_id: UUID, device_id: UUID, key: str, spec: SensorSpec, *, replace: bool
) -> None:
    """Record a sensor. ``replace``: the devices service's declaration wins over what is
    there (e.g. an auto-declared row); otherwise an existing row is kept."""
    conflict = (
        "UPDATE SET value_type = excluded.value_type, min = excluded.min, max = excluded.max,"
        " auto = excluded.auto"
        if replace
        else "NOTHING"
    )
    await uow.execute(
        "INSERT INTO sensors (org_id, device_id, key, value_type, min, max, auto)"
        f" VALUES (:o, :d, :k, :t, :lo, :hi, :a) ON CONFLICT (device_id, key) DO {conflict}",
        {
            "o": org_id,
            "d": device_id,
            "k": key,
            "t": spec.value_type,
            "lo": spec.min,
            "hi": spec.max,
            "a": spec.auto,
        },
    )


SENSOR_COLUMNS = frozenset({"value_type", "min", "max"})


async def update_sensor(
    uow: UnitOfWork, device_id: UUID, key: str, changes: dict[str, Any]
) -> None:
    """Apply a SensorUpdated: ``changes`` maps a column (value_type, min, max) to its value."""
    if not changes:
        return
    assert set(changes) <= SENSOR_COLUMNS
    sets = ", ".join(f"{column} = :{column}" for column in changes)
    await uow.execute(
        f"UPDATE sensors SET {sets}, auto = false WHERE device_id = :d AND key = :k",
        {**changes, "d": device_id, "k": key},
    )


async def remove_sensor(uow: UnitOfWork, device_id: UUID, key: str) -> None:
    await uow.execute(
        "DELETE FROM sensors WHERE device_id = :d AND key = :k", {"d": device_id, "k": key}
    )


async def seq_states(uow: UnitOfWork, device_ids: Iterable[UUID]) -> dict[UUID, SeqState]:
    """The devices' ``seq`` state, locked until commit (replicas ingesting the same device
    at once apply their messages one after the other), in device order (no deadlock)."""
    result = await uow.execute(
        "SELECT device_id, last_seq, gaps, resets FROM device_seq WHERE device_id = ANY(:ids)"
        " ORDER BY device_id FOR UPDATE",
        {"ids": list(set(device_ids))},
    )
    return {
        row.device_id: SeqState(last_seq=row.last_seq, gaps=row.gaps, resets=row.resets)
        for row in result
    }


async def save_seq_states(
    uow: UnitOfWork, org_id: UUID, states: dict[UUID, SeqState], now: datetime
) -> None:
    if not states:
        return
    await (await _driver(uow)).execute(
        "INSERT INTO device_seq (org_id, device_id, last_seq, gaps, resets, updated_at)"
        " SELECT $1, d, l, g, r, $6 FROM unnest($2::uuid[], $3::bigint[], $4::bigint[],"
        " $5::int[]) AS s(d, l, g, r)"
        " ON CONFLICT (device_id) DO UPDATE SET last_seq = excluded.last_seq,"
        " gaps = excluded.gaps, resets = excluded.resets, updated_at = excluded.updated_at",
        org_id,
        list(states),
        [s.last_seq for s in states.values()],
        [s.gaps for s in states.values()],
        [s.resets for s in states.values()],
        now,
    )


async def _driver(uow: UnitOfWork) -> Any:
    """The asyncpg connection under the unit of work's transaction (COPY, array binds)."""
    raw = await uow.conn.get_raw_connection()
    return raw.driver_connection


async def ensure_partition(uow: UnitOfWork, day: date) -> bool:
    """Create the partition of UTC day ``day`` unless it exists; True if it was created."""
    result = await uow.execute("SELECT ensure_readings_partition(:d) AS made", {"d": day})
    return bool(result.scalar_one())


async def partitions(uow: UnitOfWork) -> list[str]:
    """The names of ``readings``' partitions, oldest first."""
    result = await uow.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'readings'::regclass ORDER BY c.relname"
    )
    return [row.relname for row in result]


STAGING_COLUMNS = ("org_id", "device_id", "sensor", "ts", "kind", "num", "txt", "seq")


# Driver connections whose session has the staging table (a temp table lives as long as
# its session): created once per connection, not once per batch. ``forget_staging`` after a
# failed transaction, whose rollback may have taken the table with it.
_staged_sessions: weakref.WeakSet[Any] = weakref.WeakSet()


def forget_staging() -> None:
    _staged_sessions.clear()


async def stage_readings(uow: UnitOfWork, rows: Sequence[Reading]) -> None:
    """COPY ``rows`` into this session's staging table (emptied at every commit)."""
    driver = await _driver(uow)
    if driver not in _staged_sessions:
        await driver.execute(
            "CREATE TEMP TABLE IF NOT EXISTS readings_staging ("
            " org_id uuid, device_id uuid, sensor text, ts timestamptz, kind smallint,"
            " num double precision, txt text, seq bigint) ON COMMIT DELETE ROWS"
        )
        _staged_sessions.add(driver)
    # Reading's fields are the staging columns in order (``kind`` an int subclass).
    await driver.copy_records_to_table(
        "readings_staging", records=map(msgspec.structs.astuple, rows), columns=STAGING_COLUMNS
    )


UNIQUE_VIOLATION = "23505"
_INSERT_STAGED = (
    "INSERT INTO readings (org_id, device_id, sensor, ts, kind, num, txt, seq, received_at)"
    " SELECT org_id, device_id, sensor, ts, kind, num, txt, seq, $2"
    " FROM readings_staging WHERE org_id = $1"
)

# The rollups (decision 60): per UTC minute and hour, of numeric readings (booleans as 0/1;
# text is not aggregated). Rows are upserted in key order, so two transactions touching the
# same buckets lock them in one order. first/last keep the value at the earliest/latest
# instant, so rollups merge exactly whichever order readings arrive in.


def _minutes(source: str, where: str) -> str:
    """Per-minute figures of numeric rows of ``source`` (the columns of a rollup row)."""
    return (
        "SELECT device_id, sensor, date_trunc('minute', ts, 'UTC') AS bucket, count(*) AS n,"
        " sum(num) AS s, min(num) AS lo, max(num) AS hi, min(ts) AS fts,"
        " (array_agg(num ORDER BY ts))[1] AS fv, max(ts) AS lts,"
        " (array_agg(num ORDER BY ts DESC))[1] AS lv"
        f" FROM {source} WHERE num IS NOT NULL{where} GROUP BY 1, 2, 3"
    )


# The hours from the minutes (sixty times fewer rows than grouping the readings again).
_HOURS = (
    "SELECT device_id, sensor, date_trunc('hour', bucket, 'UTC') AS bucket,"
    " sum(n)::bigint AS n, sum(s) AS s, min(lo) AS lo, max(hi) AS hi, min(fts) AS fts,"
    " (array_agg(fv ORDER BY fts))[1] AS fv, max(lts) AS lts,"
    " (array_agg(lv ORDER BY lts DESC))[1] AS lv FROM m GROUP BY 1, 2, 3"
)


def _upsert(table: str, source: str) -> str:
    return (
        f"INSERT INTO {table} AS t (organization_id, device_id, sensor, bucket, count, sum,"
        " min, max, first_ts, first_value, last_ts, last_value)"
        " SELECT $1::uuid, device_id, sensor, bucket, n, s, lo, hi, fts, fv, lts, lv"
        f" FROM {source} ORDER BY device_id, sensor, bucket"
        " ON CONFLICT (device_id, sensor, bucket) DO UPDATE SET"
        " count = t.count + excluded.count, sum = t.sum + excluded.sum,"
        " min = LEAST(t.min, excluded.min), max = GREATEST(t.max, excluded.max),"
        " first_ts = LEAST(t.first_ts, excluded.first_ts),"
        " first_value = CASE WHEN excluded.first_ts < t.first_ts"
        " THEN excluded.first_value ELSE t.first_value END,"
        " last_ts = GREATEST(t.last_ts, excluded.last_ts),"
        " last_value = CASE WHEN excluded.last_ts > t.last_ts"
        " THEN excluded.last_value ELSE t.last_value END"
    )


# First delivery, the plain INSERT went through: every staged row of the tenant is new, so
# the rollups are fed from the staging table (one statement for both).
_ROLLUP_STAGED = [
    f"WITH m AS ({_minutes('readings_staging', ' AND org_id = $1')}), h AS ({_HOURS}),"
    f" m1 AS ({_upsert('readings_1m', 'm')}) {_upsert('readings_1h', 'h')}"
]
# Otherwise one statement: the rows the INSERT … ON CONFLICT DO NOTHING really inserted
# (RETURNING) feed the rollups, so a redelivered reading is counted once.
_STORE_AND_ROLL_UP = (
    f"WITH ins AS ({_INSERT_STAGED} ON CONFLICT DO NOTHING"
    f" RETURNING device_id, sensor, ts, num), m AS ({_minutes('ins', '')}), h AS ({_HOURS}),"
    f" m1 AS ({_upsert('readings_1m', 'm')}), h1 AS ({_upsert('readings_1h', 'h')})"
    " SELECT count(*) FROM ins"
)


async def store_staged(
    uow: UnitOfWork, org_id: UUID, received_at: datetime, *, fresh: bool = False
) -> int:
    """Move the tenant's staged rows into ``readings`` and add them to the rollups,
    skipping readings already stored (a redelivery); returns how many were new.

    ``fresh``: every staged row comes from a message delivered for the first time, so a
    conflict is unlikely. A plain INSERT is tried first (cheaper than ON CONFLICT's
    speculative insertion), in a savepoint, and the rollups are fed from the staging table;
    should any row already be stored after all (a device sending a reading again in another
    message), the savepoint is rolled back and the rows go through ON CONFLICT DO NOTHING,
    the rollups fed from what it returned. Either way the primary key decides: nothing is
    stored, or counted in a rollup, twice."""
    driver = await _driver(uow)
    if fresh:
        await driver.execute("SAVEPOINT readings_fresh")
        try:
            status = await driver.execute(_INSERT_STAGED, org_id, received_at)
        except Exception as exc:
            if getattr(exc, "sqlstate", None) != UNIQUE_VIOLATION:
                raise
            await driver.execute("ROLLBACK TO SAVEPOINT readings_fresh")
        else:
            for sql in _ROLLUP_STAGED:
                await driver.execute(sql, org_id)
            await driver.execute("RELEASE SAVEPOINT readings_fresh")
            return int(status.rsplit(" ", 1)[-1])
    stored = await driver.fetchval(_STORE_AND_ROLL_UP, org_id, received_at)
    return int(stored)


class QuarantineRow(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    org_id: UUID
    device_id: UUID
    sensor: str | None
    ts: datetime | None
    reason: str
    detail: str
    payload: bytes
    source: str
    subject: str | None
    stream_seq: int | None
    reading_index: int
    arrival: datetime


async def quarantine(uow: UnitOfWork, rows: Sequence[QuarantineRow], received_at: datetime) -> None:
    """Record refused readings; a redelivered message's refusals are recorded once."""
    if not rows:
        return
    await (await _driver(uow)).executemany(
        "INSERT INTO quarantine (id, org_id, device_id, sensor, ts, reason, detail, payload,"
        " source, subject, stream_seq, reading_index, arrival, received_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        " ON CONFLICT (source, stream_seq, reading_index) DO NOTHING",
        [(*msgspec.structs.astuple(r), received_at) for r in rows],
    )


QUARANTINE_COLUMNS = (
    "id, org_id, device_id, sensor, ts, reason, detail, payload, source, subject, stream_seq,"
    " reading_index, arrival, received_at"
)


async def list_quarantine(
    uow: UnitOfWork,
    *,
    device_id: UUID | None,
    reason: str | None,
    after: UUID | None,
    descending: bool,
    limit: int,
) -> list[Any]:
    """The tenant's quarantine by id (UUIDv7: the order they were refused in)."""
    clauses = ["true"]
    params: dict[str, Any] = {"n": limit}
    if device_id is not None:
        clauses.append("device_id = :d")
        params["d"] = device_id
    if reason is not None:
        clauses.append("reason = :r")
        params["r"] = reason
    if after is not None:
        clauses.append(f"id {'<' if descending else '>'} :after")
        params["after"] = after
    order = "DESC" if descending else "ASC"
    result = await uow.execute(
        f"SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE {' AND '.join(clauses)}"
        f" ORDER BY id {order} LIMIT :n",
        params,
    )
    return list(result)


async def take_quarantined(uow: UnitOfWork, quarantine_ids: Sequence[UUID]) -> list[Any]:
    """Remove these rows from the quarantine (the tenant's only) and return them, oldest
    first; the caller puts back what is still refused, in the same transaction."""
    result = await uow.execute(
        f"DELETE FROM quarantine WHERE id = ANY(:ids) RETURNING {QUARANTINE_COLUMNS}",
        {"ids": list(set(quarantine_ids))},
    )
    return sorted(result, key=lambda row: (row.id, row.reading_index))


async def telemetry_health(uow: UnitOfWork, device_id: UUID) -> Any:
    """The device's ``seq`` state (NULLs if none) and how many of its rows are quarantined."""
    result = await uow.execute(
        "SELECT s.last_seq, s.gaps, s.resets, s.updated_at,"
        " (SELECT count(*) FROM quarantine q WHERE q.device_id = :d) AS quarantined"
        " FROM (SELECT 1) one LEFT JOIN device_seq s ON s.device_id = :d",
        {"d": device_id},
    )
    return result.one()


async def device_known(uow: UnitOfWork, device_id: UUID) -> bool:
    return (
        await uow.execute("SELECT 1 FROM devices WHERE id = :i", {"i": device_id})
    ).first() is not None
