"""Tenant isolation in the database: no bypass anywhere (rls-audit), no leak through the
pool (rls-pool)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from uuid import UUID

import asyncpg
import pytest
from kitsvc import CODEC, STREAM_TYPE, CounterCreated, CounterProjector, KitDb
from sqlalchemy import text

from outpost_devkit.testing.audit import rls_violations
from outpost_kit import ids
from outpost_kit.db.engine import create_engine, plain_dsn
from outpost_kit.db.reads import TenantReads
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory

pytestmark = pytest.mark.integration


async def _create_counter(u: UnitOfWork, org: UUID, name: str) -> None:
    await u.events.append(
        org_id=org,
        stream_id=ids.new_id(),
        stream_type=STREAM_TYPE,
        expected_version=0,
        events=[CounterCreated(name=name)],
    )


async def _svc(db: KitDb) -> asyncpg.Connection:
    return await asyncpg.connect(plain_dsn(db.dsn), server_settings={"search_path": db.schema})


async def test_rls_audit_no_bypass(kitsvc_db: KitDb, uow: UnitOfWorkFactory, org: UUID) -> None:
    async with uow(org) as u:  # some rows, so "sees nothing" is not vacuous
        await _create_counter(u, org, "audited")
        await u.commit()
    conn = await _svc(kitsvc_db)
    try:
        assert await rls_violations(conn, kitsvc_db.schema) == []
        tenant_tables = await conn.fetch(
            "SELECT tablename FROM pg_policies WHERE schemaname = $1", kitsvc_db.schema
        )
        assert {r["tablename"] for r in tenant_tables} >= {"events", "counters"}

        # No tenant set: nothing is visible.
        assert await conn.fetchval("SELECT current_setting('outpost.org_id', true)") in (None, "")
        assert await conn.fetchval("SELECT count(*) FROM events") == 0
        assert await conn.fetchval("SELECT count(*) FROM counters") == 0

        # A tenant set: only its rows; another tenant's row is refused by WITH CHECK.
        async with conn.transaction():
            await conn.execute("SELECT set_config('outpost.org_id', $1, true)", str(org))
            assert await conn.fetchval("SELECT count(*) FROM counters") == 1
            assert await conn.fetchval("SELECT count(*) FROM counters WHERE org_id <> $1", org) == 0

        async def as_tenant(tenant: UUID | None, sql: str, *args: object) -> None:
            async with conn.transaction():
                if tenant:
                    await conn.execute("SELECT set_config('outpost.org_id', $1, true)", str(tenant))
                await conn.execute(sql, *args)

        insert = (
            "INSERT INTO counters (org_id, id, name, value, version) VALUES ($1, $2, 'x', 0, 1)"
        )
        for tenant in (None, org):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await as_tenant(tenant, insert, ids.new_id(), ids.new_id())
        # And a tenant cannot move its row to another tenant.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await as_tenant(org, "UPDATE counters SET org_id = $1", ids.new_id())
    finally:
        await conn.close()


class Boom(Exception):
    pass


async def test_rls_pool_mixed_tenants_never_leak(kitsvc_db: KitDb) -> None:
    engine = create_engine(kitsvc_db.dsn, kitsvc_db.schema, pool_size=5, max_overflow=0)
    uow = UnitOfWorkFactory(engine, CODEC, [CounterProjector()])
    tenants = [ids.new_id() for _ in range(10)]
    rng = random.Random(11)
    committed: dict[UUID, int] = dict.fromkeys(tenants, 0)
    leaks: list[tuple[UUID, UUID]] = []
    untenanted_seen: list[int] = []

    async def task(i: int) -> None:
        org = tenants[i % len(tenants)]
        fail = rng.random() < 0.25
        if i % 17 == 0:  # a user with no tenant sees nothing, whoever used the connection
            async with uow(None) as u:
                rows = (await u.execute("SELECT count(*) FROM counters")).scalar_one()
                untenanted_seen.append(rows)
            return
        try:
            async with uow(org) as u:
                await _create_counter(u, org, f"t{i}")
                await asyncio.sleep(rng.random() / 100)
                rows = (await u.execute("SELECT org_id FROM counters")).all()
                leaks.extend((org, r.org_id) for r in rows if r.org_id != org)
                ev = (await u.execute("SELECT DISTINCT org_id FROM events")).all()
                leaks.extend((org, r.org_id) for r in ev if r.org_id != org)
                if fail:
                    raise Boom(i)
                await u.commit()
                committed[org] += 1
        except Boom:
            pass

    try:
        await asyncio.gather(*(task(i) for i in range(200)))

        assert leaks == []
        assert untenanted_seen
        assert set(untenanted_seen) == {0}
        for org in tenants:
            async with uow(org) as u:
                count = (await u.execute("SELECT count(*) FROM counters")).scalar_one()
                assert count == committed[org]
    finally:
        await engine.dispose()


async def test_rls_pool_rollback_leaves_no_tenant_on_the_connection(kitsvc_db: KitDb) -> None:
    engine = create_engine(kitsvc_db.dsn, kitsvc_db.schema, pool_size=1, max_overflow=0)
    uow = UnitOfWorkFactory(engine, CODEC, [CounterProjector()])
    org = ids.new_id()
    try:
        async with uow(org) as u:
            await _create_counter(u, org, "kept")
            await u.commit()
        backend_pids = set()

        async def failing_command() -> None:
            async with uow(org) as u:
                backend_pids.add((await u.execute("SELECT pg_backend_pid()")).scalar_one())
                assert (await u.execute("SELECT count(*) FROM counters")).scalar_one() == 1
                raise Boom

        with pytest.raises(Boom):
            await failing_command()
        async with engine.connect() as conn:  # the same pooled connection, next user
            backend_pids.add((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            setting = (
                await conn.execute(text("SELECT current_setting('outpost.org_id', true)"))
            ).scalar_one()
            visible = (await conn.execute(text("SELECT count(*) FROM counters"))).scalar_one()
        assert len(backend_pids) == 1
        assert setting in (None, "")
        assert visible == 0
    finally:
        await engine.dispose()


async def test_tenant_reads_see_one_tenant_and_leave_nothing_on_the_connection(
    kitsvc_db: KitDb, uow: UnitOfWorkFactory
) -> None:
    """The raw read path (``TenantReads``) keeps the unit of work's guarantees: only the
    tenant's rows, read-only, and a failed read leaves neither a transaction nor a tenant
    for the next reader of the connection."""
    tenants = [ids.new_id() for _ in range(4)]
    for org in tenants:
        async with uow(org) as u:
            await _create_counter(u, org, f"read-{org}")
            await u.commit()
    reads = await TenantReads.connect(kitsvc_db.dsn, kitsvc_db.schema, size=2)
    leaks: list[tuple[UUID, UUID]] = []
    try:

        async def read(i: int) -> None:
            org = tenants[i % len(tenants)]
            with contextlib.suppress(asyncpg.UndefinedColumnError):
                async with reads(org) as conn:
                    rows = await conn.fetch("SELECT org_id FROM counters")
                    leaks.extend((org, r["org_id"]) for r in rows if r["org_id"] != org)
                    assert len(rows) == 1
                    if i % 5 == 0:  # a failing statement aborts the transaction
                        await conn.fetch("SELECT no_such_column FROM counters")

        await asyncio.gather(*(read(i) for i in range(60)))
        assert leaks == []

        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            async with reads(tenants[0]) as conn:
                await conn.execute("DELETE FROM counters")

        # A failed read forgets the connection's tenant; the next reader of that connection,
        # another tenant, sees its own rows only, outside any transaction.
        for org in (tenants[1], tenants[2], tenants[1]):
            async with reads(org) as conn:
                assert [r["org_id"] for r in await conn.fetch("SELECT org_id FROM counters")] == [
                    org
                ]
                assert not conn.is_in_transaction()
    finally:
        await reads.close()


async def test_tenant_reads_switch_tenants_on_one_connection_and_survive_cancellation(
    kitsvc_db: KitDb, uow: UnitOfWorkFactory
) -> None:
    """One connection, tenants alternating: every read sees its own tenant (the session's
    tenant is set whenever it changes). A read cancelled mid-statement closes its
    connection; the pool opens another and goes on."""
    tenants = [ids.new_id() for _ in range(2)]
    for org in tenants:
        async with uow(org) as u:
            await _create_counter(u, org, f"switch-{org}")
            await u.commit()
    reads = await TenantReads.connect(kitsvc_db.dsn, kitsvc_db.schema, size=1)
    try:
        for i in range(6):
            org = tenants[i % 2]
            async with reads(org) as conn:
                assert await conn.fetchval("SELECT org_id FROM counters") == org

        async def slow() -> None:
            async with reads(tenants[0]) as conn:
                await conn.execute("SELECT pg_sleep(5)")

        task = asyncio.create_task(slow())
        # Cancel mid-statement, certainly: once the server runs the sleep (not after a
        # guessed delay, which on a loaded machine may come before the statement starts).
        admin = await asyncpg.connect(plain_dsn(kitsvc_db.admin_dsn))
        try:
            for _ in range(600):
                if await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE state = 'active' AND query = 'SELECT pg_sleep(5)'"
                ):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the slow read never started")
        finally:
            await admin.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with reads(tenants[1]) as conn:
            assert await conn.fetchval("SELECT org_id FROM counters") == tenants[1]
    finally:
        await reads.close()
