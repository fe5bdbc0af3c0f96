"""The hot read path: one tenant's read-only queries over a raw asyncpg pool.

``async with reads(org_id) as conn: row = await conn.fetchrow(sql, *args)``. Writes go
through the unit of work (SQLAlchemy, the event store, projections); reads of one object or
one page need none of that, and SQLAlchemy's per-statement machinery was most of the devices
service's time on ``GET /api/v1/devices/{id}`` (docs/benchmarks.md).

Three round trips per read, tenancy exactly as in the unit of work:
1. ``BEGIN READ ONLY`` and ``set_config('outpost.org_id', <org>, true)`` in one simple query
   (the ``SET LOCAL`` form: the tenant ends with the transaction, FORCEd RLS applies);
2. the query itself, a prepared statement asyncpg caches per connection;
3. ``ROLLBACK`` (nothing to commit in a read-only transaction).

The pool's reset-on-release query (``RESET ALL``, ``UNLISTEN *``… one more round trip) is
skipped: a reader changes no session state — the tenant is transaction-local — and asyncpg
still rolls back a transaction left open by a failed read before the connection is reused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg

from outpost_kit.db.ddl import TENANT_SETTING
from outpost_kit.db.engine import plain_dsn


async def keep_session(_conn: asyncpg.Connection) -> None:
    """A pool ``reset`` for connections that never change session state (see above)."""


class TenantReads:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, schema: str, *, size: int = 10) -> TenantReads:
        pool = await asyncpg.create_pool(
            plain_dsn(dsn),
            min_size=min(size, 2),
            max_size=size,
            command_timeout=60,
            reset=keep_session,
            server_settings={"search_path": schema, "application_name": f"outpost-{schema}-r"},
        )
        return cls(pool)

    @asynccontextmanager
    async def __call__(self, org_id: UUID) -> AsyncIterator[asyncpg.Connection]:
        # str(UUID(...)) is hex digits and hyphens only: safe to inline in the simple query.
        begin = (
            f"BEGIN READ ONLY; SELECT set_config('{TENANT_SETTING}', '{UUID(str(org_id))}', true)"
        )
        async with self.pool.acquire() as conn:
            await conn.execute(begin)
            try:
                yield conn
            finally:
                await conn.execute("ROLLBACK")

    async def close(self) -> None:
        await self.pool.close()
