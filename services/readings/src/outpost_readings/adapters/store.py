"""Readings' SQL: the local device registry and the readings table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from outpost_kit.db.uow import UnitOfWork
from outpost_readings.domain.readings import Reading


async def upsert_device(
    uow: UnitOfWork, org_id: UUID, device_id: UUID, name: str, status: str, version: int
) -> None:
    await uow.execute(
        "INSERT INTO devices (org_id, id, name, status, version) VALUES (:o, :i, :n, :s, :v)"
        " ON CONFLICT (org_id, id) DO UPDATE SET name = excluded.name, status = excluded.status,"
        " version = excluded.version WHERE devices.version < excluded.version",
        {"o": org_id, "i": device_id, "n": name, "s": status, "v": version},
    )


async def update_device(
    uow: UnitOfWork,
    org_id: UUID,
    device_id: UUID,
    version: int,
    *,
    name: str | None = None,
    status: str | None = None,
) -> None:
    """A later event of a device the registry holds: keep its name and status (``None``
    leaves a column as it is). An older event than the row's is skipped."""
    await uow.execute(
        "UPDATE devices SET name = COALESCE(:n, name), status = COALESCE(:s, status),"
        " version = :v WHERE org_id = :o AND id = :i AND version < :v",
        {"o": org_id, "i": device_id, "n": name, "s": status, "v": version},
    )


async def known_devices(uow: UnitOfWork, device_ids: Iterable[UUID]) -> set[UUID]:
    ids = list(set(device_ids))
    result = await uow.execute(
        "SELECT id FROM devices WHERE id = ANY(:ids) AND status <> 'DECOMMISSIONED'", {"ids": ids}
    )
    return {row.id for row in result}


async def insert_readings(uow: UnitOfWork, rows: Sequence[Reading], received_at: datetime) -> int:
    """Insert, skipping readings already stored (a redelivery); returns how many were new."""
    if not rows:
        return 0
    raw = await uow.conn.get_raw_connection()
    driver: Any = raw.driver_connection
    # One round trip for the whole batch: unnest arrays, ON CONFLICT DO NOTHING.
    status = await driver.execute(
        "INSERT INTO readings (org_id, device_id, sensor, ts, kind, num, txt, seq, received_at)"
        " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[],"
        " $5::smallint[], $6::float8[], $7::text[], $8::bigint[], $9::timestamptz[])"
        " ON CONFLICT DO NOTHING",
        [r.org_id for r in rows],
        [r.device_id for r in rows],
        [r.sensor for r in rows],
        [r.ts for r in rows],
        [int(r.kind) for r in rows],
        [r.num for r in rows],
        [r.txt for r in rows],
        [r.seq for r in rows],
        [received_at] * len(rows),
    )
    return int(status.rsplit(" ", 1)[-1])


async def device_known(uow: UnitOfWork, device_id: UUID) -> bool:
    return (
        await uow.execute("SELECT 1 FROM devices WHERE id = :i", {"i": device_id})
    ).first() is not None


async def select_readings(
    uow: UnitOfWork,
    *,
    device_id: UUID,
    sensor: str | None,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, str] | None,
    descending: bool,
    limit: int,
) -> list[Any]:
    clauses = ["device_id = :d"]
    params: dict[str, Any] = {"d": device_id, "n": limit}
    if sensor is not None:
        clauses.append("sensor = :s")
        params["s"] = sensor
    if start is not None:
        clauses.append("ts >= :from")
        params["from"] = start
    if end is not None:
        clauses.append("ts < :to")
        params["to"] = end
    if after is not None:
        clauses.append(f"(ts, sensor) {'<' if descending else '>'} (:ats, :asensor)")
        params["ats"], params["asensor"] = after
    order = "DESC" if descending else "ASC"
    result = await uow.execute(
        f"SELECT device_id, sensor, ts, kind, num, txt FROM readings WHERE {' AND '.join(clauses)}"
        f" ORDER BY ts {order}, sensor {order} LIMIT :n",
        params,
    )
    return list(result)
