"""Retention against real Postgres, in a schema of its own (it drops partitions): partitions
older than the longest retention dropped and the others kept, the edges of organizations
keeping fewer days deleted under their own tenant while another's stay, quarantined rows
expiring too, the drop function refusing anything but an old partition of readings, and the
rls-audit still clean."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from alembic import command
from sqlalchemy.ext.asyncio import AsyncEngine

from outpost_contracts import annotations as api
from outpost_contracts.devices import DeviceRegistered
from outpost_contracts.envelope import EventEnvelope, Principal, PrincipalKind, RequestContext
from outpost_devkit.testing.audit import rls_violations
from outpost_kit import ids
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine, plain_dsn
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import _config, upgrade
from outpost_kit.db.provision import owner_role, provision_service
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_readings import bootstrap
from outpost_readings.adapters import retention_store, store
from outpost_readings.adapters.annotation_store import AnnotationsProjector, PgAnnotations
from outpost_readings.app import annotations as app
from outpost_readings.app import handlers
from outpost_readings.app.retention import apply_retention

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()


def ago(days: int, hour: int = 12) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days), datetime.min.time(), tzinfo=UTC) + (
        timedelta(hours=hour)
    )


@dataclass
class Env:
    service: str
    dsn: str
    admin_dsn: str
    engine: AsyncEngine
    uow: UnitOfWorkFactory

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
        async with self.uow(org) as uow:
            await handlers.on_device_event(uow, envelope)
            await uow.commit()
        return device

    async def readings(self, org: uuid.UUID, device: uuid.UUID, times: list[datetime]) -> None:
        async with self.uow(None) as uow:
            for day in {t.date() for t in times}:
                await store.ensure_partition(uow, day)
            await uow.commit()
        async with self.uow(org) as uow:
            for i, ts in enumerate(times):
                await uow.execute(
                    "INSERT INTO readings (org_id, device_id, sensor, ts, kind, num, received_at)"
                    " VALUES (:o, :d, 's', :ts, 0, :v, now())",
                    {"o": org, "d": device, "ts": ts, "v": i},
                )
            await uow.commit()

    async def rollups(self, org: uuid.UUID, device: uuid.UUID, times: list[datetime]) -> None:
        """One bucket per time in each rollup table, as ingest would have kept them."""
        async with self.uow(org) as uow:
            for table in ("readings_1m", "readings_1h"):
                for ts in times:
                    await uow.execute(
                        f"INSERT INTO {table} (organization_id, device_id, sensor, bucket,"
                        " count, sum, min, max, first_ts, first_value, last_ts, last_value)"
                        " VALUES (:o, :d, 's', :b, 1, 1, 1, 1, :b, 1, :b, 1)",
                        {"o": org, "d": device, "b": ts},
                    )
            await uow.commit()

    async def quarantined(self, org: uuid.UUID, device: uuid.UUID, received: datetime) -> None:
        async with self.uow(org) as uow:
            await uow.execute(
                "INSERT INTO quarantine (id, org_id, device_id, reason, detail, payload, source,"
                " reading_index, arrival, received_at) VALUES (:id, :o, :d, 'out_of_range', '',"
                " '\\x00', 'nats', 0, :t, :t)",
                {"id": ids.new_id(), "o": org, "d": device, "t": received},
            )
            await uow.commit()

    async def days_of(self, org: uuid.UUID, table: str = "readings") -> list[date]:
        column = {"readings": "ts", "quarantine": "received_at"}.get(table, "bucket")
        async with self.uow(org) as uow:
            rows = await uow.execute(
                f"SELECT DISTINCT ({column} AT TIME ZONE 'UTC')::date AS d FROM {table} ORDER BY d"
            )
            return [r.d for r in rows]

    async def partitions(self) -> list[date]:
        async with self.uow(None) as uow:
            return await retention_store.partition_days(uow)

    async def retention(self, org: uuid.UUID, days: int | None) -> None:
        principal = Principal(kind=PrincipalKind.API_KEY, id=ids.new_id(), org_id=org)
        ctx = RequestContext(request_id="r" * 32, org_id=org, principal=principal)
        deps = app.AnnotationDeps(uow=PgAnnotations.over(self.uow), device_exists=_never)
        body = api.PutReadingsSettings(auto_declare_sensors=True, retention_days=days)
        await app.set_settings(deps, ctx, api.SetReadingsSettings(settings=body))


async def _never(ctx: Any, device: uuid.UUID) -> bool:
    return False


@pytest.fixture
async def env(postgres_dsn: str) -> AsyncIterator[Env]:
    service = f"readings{secrets.token_hex(3)}"
    dsn = await provision_service(postgres_dsn, service, secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, service, migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, service, pool_size=4)
    uow = UnitOfWorkFactory(engine, EventCodec(api.EVENT_TYPES), (AnnotationsProjector(),))
    try:
        yield Env(service, dsn, postgres_dsn, engine, uow)
    finally:
        await engine.dispose()


async def test_partitions_dropped_and_kept_edges_deleted_per_tenant(env: Env) -> None:
    default = 60
    short, plain, long_ = ids.new_id(), ids.new_id(), ids.new_id()
    await env.retention(short, 30)  # fewer days than the longest: edges deleted
    await env.retention(long_, 120)  # the longest in force: partitions before it go whole
    devices = {org: await env.device(org) for org in (short, plain, long_)}
    ages = [400, 121, 119, 100, 40, 31, 29, 10, 0]
    for org, device in devices.items():
        await env.readings(org, device, [ago(n) for n in ages])
        await env.rollups(org, device, [ago(n) for n in ages])
        await env.quarantined(org, device, ago(45))
        await env.quarantined(org, device, ago(5))
    before = await env.partitions()
    assert {TODAY - timedelta(days=n) for n in ages} <= set(before)

    outcome = await apply_retention(env.uow, TODAY, default, batch=2)

    assert outcome.ran and outcome.plan is not None and outcome.plan.longest_days == 120
    # Partitions of days before today - 120 are gone, the others stay.
    assert outcome.dropped == [TODAY - timedelta(days=400), TODAY - timedelta(days=121)]
    after = await env.partitions()
    assert TODAY - timedelta(days=400) not in after and TODAY - timedelta(days=121) not in after
    assert {TODAY - timedelta(days=n) for n in (119, 100, 40, 31, 29, 10, 0)} <= set(after)

    def kept(*days: int) -> list[date]:
        return sorted(TODAY - timedelta(days=n) for n in days)

    # Each organization keeps its own number of days (and today).
    assert await env.days_of(long_) == kept(119, 100, 40, 31, 29, 10, 0)
    assert await env.days_of(plain) == kept(40, 31, 29, 10, 0)  # the default, 60
    assert await env.days_of(short) == kept(29, 10, 0)
    # Quarantined rows expire with the organization's retention, by when they arrived.
    assert await env.days_of(long_, "quarantine") == kept(45, 5)
    assert await env.days_of(plain, "quarantine") == kept(45, 5)
    assert await env.days_of(short, "quarantine") == kept(5)
    # Rollups expire with the readings they sum; not partitioned, so for every organization.
    for table in ("readings_1m", "readings_1h"):
        assert await env.days_of(long_, table) == kept(119, 100, 40, 31, 29, 10, 0)
        assert await env.days_of(plain, table) == kept(40, 31, 29, 10, 0)
        assert await env.days_of(short, table) == kept(29, 10, 0)
    # Deleted in batches of 2, each organization under its own tenant.
    rollups = {
        (str(org), table): n
        for table in ("readings_1m", "readings_1h")
        for org, n in ((long_, 2), (plain, 4), (short, 6))  # 400, 121 (119, 100 (40, 31))
    }
    assert outcome.deleted == {
        (str(short), "readings"): 4,  # 119, 100, 40, 31 days old
        (str(plain), "readings"): 2,  # 119, 100
        (str(short), "quarantine"): 1,
        **rollups,
    }
    # A second round finds nothing to do.
    again = await apply_retention(env.uow, TODAY, default, batch=2)
    assert again.dropped == [] and again.deleted == {}
    # Shortening the longest retention drops more whole partitions on the next round.
    await env.retention(long_, None)
    third = await apply_retention(env.uow, TODAY, default)
    assert third.dropped == sorted(TODAY - timedelta(days=n) for n in (119, 100))
    assert await env.days_of(long_) == kept(40, 31, 29, 10, 0)


async def test_the_drop_function_refuses_anything_but_an_old_readings_partition(
    env: Env,
) -> None:
    old = TODAY - timedelta(days=50)
    async with env.uow(None) as uow:
        for day in (old, TODAY - timedelta(days=1), TODAY):
            await store.ensure_partition(uow, day)
        await uow.commit()
    conn = await asyncpg.connect(plain_dsn(env.dsn))
    admin = await asyncpg.connect(plain_dsn(env.admin_dsn))
    try:
        # Today's, yesterday's and the day before's could hold readings someone keeps.
        for day in (TODAY, TODAY - timedelta(days=1), TODAY + timedelta(days=3)):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="too recent"):
                await conn.fetchval("SELECT drop_readings_partition($1)", day)
        # A table named like a partition that is not one of readings is refused.
        await admin.execute(f"SET ROLE {owner_role(env.service)}")
        await admin.execute(f"SET search_path = {env.service}")
        await admin.execute("CREATE TABLE readings_p19990101 (x int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="not a partition"):
            await conn.fetchval("SELECT drop_readings_partition('1999-01-01')")
        assert await admin.fetchval("SELECT to_regclass('readings_p19990101') IS NOT NULL")
        await admin.execute("DROP TABLE readings_p19990101")
        # No such partition: nothing to do. An old one: dropped.
        assert await conn.fetchval("SELECT drop_readings_partition('1998-01-01')") is False
        assert await conn.fetchval("SELECT drop_readings_partition($1)", old) is True
        assert old not in await env.partitions()
        # The app role may still not drop a table itself: it owns nothing.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"DROP TABLE readings_p{TODAY:%Y%m%d}")
        # The rls-audit admits the function (declared DDL-only, pinned, not PUBLIC) and finds
        # no bypass in the schema.
        assert await rls_violations(conn, env.service) == []
    finally:
        await conn.close()
        await admin.close()


async def test_a_second_replica_skips_the_round_while_one_runs(env: Env) -> None:
    async with env.uow(None) as holder:
        taken = await holder.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.retention'))"
        )
        assert taken.scalar_one()
        skipped = await apply_retention(env.uow, TODAY, 30)
        assert not skipped.ran and skipped.dropped == []
    assert (await apply_retention(env.uow, TODAY, 30)).ran


async def test_tenants_are_learnt_from_the_device_registry(env: Env) -> None:
    org = ids.new_id()
    await env.device(org)
    await env.device(org)
    async with env.uow(None) as uow:
        assert org in await retention_store.tenants(uow)
        # The list holds ids only; the rows behind them stay under RLS.
        assert (await uow.execute("SELECT count(*) FROM devices")).scalar_one() == 0


async def test_the_migration_learns_existing_tenants_and_goes_down_and_up_again(
    postgres_dsn: str,
) -> None:
    """0002 → 0004 fills retention_tenants from the devices already there (RLS forced on
    them again afterwards); 0004 → 0002 → 0004 round-trips."""
    service = f"readings{secrets.token_hex(3)}"
    dsn = await provision_service(postgres_dsn, service, secrets.token_urlsafe(16))
    where = migrations_dir(bootstrap.__file__)
    await upgrade(postgres_dsn, service, where, revision="0002")
    org = ids.new_id()
    conn = await asyncpg.connect(plain_dsn(dsn))
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('outpost.org_id', $1, true)", str(org))
            await conn.execute(
                "INSERT INTO devices (org_id, id, name, status, version)"
                " VALUES ($1, $2, 'd', 'REGISTERED', 1)",
                org,
                ids.new_id(),
            )
        await upgrade(postgres_dsn, service, where)
        assert await conn.fetchval("SELECT array_agg(tenant) FROM retention_tenants") == [org]
        assert await rls_violations(conn, service) == []
        config = _config(postgres_dsn, service, where)
        await asyncio.to_thread(command.downgrade, config, "0002")
        assert await conn.fetchval("SELECT to_regclass('annotations')") is None
        await upgrade(postgres_dsn, service, where)
        assert await conn.fetchval("SELECT to_regclass('annotations')") is not None
        assert await rls_violations(conn, service) == []
    finally:
        await conn.close()
