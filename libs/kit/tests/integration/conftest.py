"""Fixtures of the kit's integration tests: a fresh ``kitsvc`` schema per test module,
migrated, with its service role; the KITSVC stream on the session's nats-server."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest
from kitsvc import CODEC, MIGRATIONS, STREAM, CounterProjector, KitDb
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from outpost_kit import ids
from outpost_kit.db.engine import create_engine, plain_dsn
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import app_role, owner_role, provision_service
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_kit.messaging import apply_streams, connect


@pytest.fixture(scope="module")
async def kitsvc_db(postgres_dsn: str) -> AsyncIterator[KitDb]:
    """A freshly provisioned and migrated schema, private to the test module."""
    schema = f"kit_{secrets.token_hex(4)}"
    dsn = await provision_service(postgres_dsn, schema, secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, schema, MIGRATIONS)
    yield KitDb(postgres_dsn, dsn, schema)
    conn = await asyncpg.connect(plain_dsn(postgres_dsn))
    try:
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                app_role(schema),
            )
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
            for role in (app_role(schema), owner_role(schema)):
                await conn.execute(f"DROP OWNED BY {role}")
                await conn.execute(f"DROP ROLE {role}")
    finally:
        await conn.close()


@pytest.fixture
async def engine(kitsvc_db: KitDb) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(kitsvc_db.dsn, kitsvc_db.schema, pool_size=5, max_overflow=5)
    yield eng
    await eng.dispose()


@pytest.fixture
def projector() -> CounterProjector:
    return CounterProjector()


@pytest.fixture
def uow(engine: AsyncEngine, projector: CounterProjector) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(engine, CODEC, [projector])


@pytest.fixture
def org() -> UUID:
    """A fresh tenant per test, so tests sharing a schema or the stream never meet."""
    return ids.new_id()


@pytest.fixture(scope="session")
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    conn = await connect(nats_url, name="kit-tests")
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
async def js(nc: NATS) -> JetStreamContext:
    ctx = nc.jetstream()
    await apply_streams(ctx, [STREAM])
    return ctx
