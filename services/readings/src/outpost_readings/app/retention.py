"""Retention: drop the day partitions of ``readings`` older than the longest retention in
force, then delete each organization's expired rows where a partition cannot take them
(organizations keeping fewer days, and tables not partitioned by day), in batches, each in
its own transaction under that organization's tenant (ADR 0061)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_readings.adapters import retention_store as store
from outpost_readings.domain.retention import RetentionPlan, plan

_log = logging.getLogger(__name__)


@dataclass
class RetentionOutcome:
    ran: bool = True
    dropped: list[date] = field(default_factory=list)
    # (organization, table) → rows deleted
    deleted: dict[tuple[str, str], int] = field(default_factory=dict)
    plan: RetentionPlan | None = None


async def make_plan(
    uow_factory: UnitOfWorkFactory, today: date, default_days: int
) -> RetentionPlan:
    async with uow_factory(None) as uow:
        days = await store.partition_days(uow)
        tenants = await store.tenants(uow)
        settings: dict[UUID, int | None] = {}
        for org in tenants:  # each organization's own row, under its own tenant
            await uow.set_tenant(org)
            settings[org] = await store.own_retention(uow)
    return plan(today, days, default_days, settings, tenants)


async def apply_retention(
    uow_factory: UnitOfWorkFactory,
    today: date,
    default_days: int,
    *,
    batch: int = 10_000,
    forget: set[date] | None = None,
) -> RetentionOutcome:
    """One round. ``forget``: the set of days this process believes have a partition
    (ingest's cache), from which dropped days are removed."""
    async with uow_factory(None) as guard:
        if not await store.lock_round(guard):  # one replica at a time; the others skip
            return RetentionOutcome(ran=False)
        the_plan = await make_plan(uow_factory, today, default_days)
        outcome = RetentionOutcome(plan=the_plan)
        for day in the_plan.drop_days:
            async with uow_factory(None) as uow:
                if await store.drop_partition(uow, day):
                    outcome.dropped.append(day)
                await uow.commit()
            if forget is not None:
                forget.discard(day)
        for expiry in the_plan.expiries:
            async with uow_factory(expiry.org_id) as uow:
                devices = await store.tenant_devices(uow)
            for table in store.EXPIRING:
                if table.by_partition and not expiry.edges:
                    continue  # dropping partitions takes them
                total = 0
                while True:
                    async with uow_factory(expiry.org_id) as uow:
                        n = await store.delete_expired(uow, table, expiry.cutoff, batch, devices)
                        await uow.commit()
                    total += n
                    if n < batch:
                        break
                if total:
                    outcome.deleted[(str(expiry.org_id), table.table)] = total
        await guard.commit()
    if outcome.dropped or outcome.deleted:
        _log.info(
            "retention: dropped %d partition(s) before %s, deleted %d row(s)",
            len(outcome.dropped),
            the_plan.drop_before,
            sum(outcome.deleted.values()),
        )
    return outcome
