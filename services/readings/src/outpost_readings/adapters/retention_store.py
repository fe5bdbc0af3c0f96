"""Retention's SQL: the partitions there are, the tenants and their settings, dropping a day
partition (through ``drop_readings_partition``, the one definer function that may) and
deleting an organization's expired rows in batches under its own tenant (RLS)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from outpost_kit.db.uow import UnitOfWork
from outpost_readings.domain.retention import partition_day


@dataclass(frozen=True)
class Expiring:
    """A table whose rows expire with their organization's retention. ``column`` is the
    row's time; ``by_partition``: the table is partitioned by UTC day like ``readings``, so
    dropping a day partition removes its rows, and only organizations keeping fewer days
    than the longest retention need their rows deleted (the edges)."""

    table: str
    column: str
    by_partition: bool
    # A column leading an index with ``column`` (``(device_id, ts)`` on readings): the delete
    # walks that index for each of the tenant's devices rather than scanning whole
    # partitions of every tenant's rows. None: the table has an index on (org_id, column).
    device_column: str | None = None


# Every table retention deletes from, in one place.
EXPIRING: tuple[Expiring, ...] = (
    Expiring("readings", "ts", by_partition=True, device_column="device_id"),
    # The rollups (decision 60) go with the readings they sum, by bucket start; not
    # partitioned, so every organization's expired buckets are deleted, through the primary
    # key ``(device_id, sensor, bucket)``.
    Expiring("readings_1m", "bucket", by_partition=False, device_column="device_id"),
    Expiring("readings_1h", "bucket", by_partition=False, device_column="device_id"),
    # Refused readings go with the readings they would have been: by when they arrived.
    Expiring("quarantine", "received_at", by_partition=False),
)

# The drop function's own floor (migration 0004): a partition younger than this is refused.
MIN_DROPPABLE_AGE_DAYS = 2


async def lock_round(uow: UnitOfWork) -> bool:
    """Whether this transaction holds the retention round's lock (one replica at a time;
    the others skip the round). Held until the transaction ends."""
    sql = "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.retention'))"
    return bool((await uow.execute(sql)).scalar_one())


async def partition_days(uow: UnitOfWork) -> list[date]:
    """The UTC days of ``readings``' partitions, oldest first."""
    result = await uow.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'readings'::regclass"
    )
    days = [partition_day(row.relname) for row in result]
    return sorted(day for day in days if day is not None)


async def tenants(uow: UnitOfWork) -> list[UUID]:
    """Every organization with devices or settings here (``retention_tenants``)."""
    result = await uow.execute("SELECT tenant FROM retention_tenants ORDER BY tenant")
    return [row.tenant for row in result]


async def own_retention(uow: UnitOfWork) -> int | None:
    """The current tenant's own retention, None for the default (or no row)."""
    row = (await uow.execute("SELECT retention_days FROM org_settings")).first()
    return None if row is None else row.retention_days


async def drop_partition(uow: UnitOfWork, day: date) -> bool:
    """Drop the partition of ``day``; False if there was none."""
    result = await uow.execute("SELECT drop_readings_partition(:d) AS dropped", {"d": day})
    return bool(result.scalar_one())


async def tenant_devices(uow: UnitOfWork) -> list[UUID]:
    """The current tenant's devices in readings' registry (every reading has one)."""
    return [row.id for row in await uow.execute("SELECT id FROM devices ORDER BY id")]


async def delete_expired(
    uow: UnitOfWork,
    expiring: Expiring,
    cutoff: datetime,
    batch: int,
    devices: list[UUID],
) -> int:
    """Delete up to ``batch`` of the current tenant's rows of ``expiring`` older than
    ``cutoff`` (RLS keeps it to the tenant set on the transaction); how many went."""
    table, column = expiring.table, expiring.column
    where = f"{column} < :cutoff"
    if expiring.device_column is not None:
        if not devices:
            return 0
        where = f"{expiring.device_column} = ANY(:devices) AND {where}"
    result = await uow.execute(
        f"DELETE FROM {table} WHERE {where} AND (tableoid, ctid) IN"
        f" (SELECT tableoid, ctid FROM {table} WHERE {where} LIMIT :n)",
        {"cutoff": cutoff, "devices": devices, "n": batch},
    )
    return int(result.rowcount)
