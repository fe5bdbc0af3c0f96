"""The hot read path: one tenant's read-only queries over raw asyncpg connections.

``async with reads(org_id) as conn: row = await conn.fetchrow(sql, *args)``. Writes go
through the unit of work (SQLAlchemy, the event store, projections); reads of one object or
one page need none of that, and SQLAlchemy's per-statement machinery was most of the devices
service's time on ``GET /api/v1/devices/{id}`` (docs/benchmarks.md).

One round trip per read while a connection keeps serving the same tenant, two when it
changes (decision 57):
- each connection is opened read-only (``default_transaction_read_only``) with the
  service's ``search_path``; FORCEd RLS applies as in the unit of work;
- the tenant is a *session* setting (``set_config('outpost.org_id', <org>, false)``), set
  only when the connection last served another tenant. This class is the only user of its
  connections and sets the tenant before every use, so a stale tenant is never visible;
- a read whose statement failed forgets the connection's tenant (it is set again next
  time); a cancelled or broken connection is closed and replaced.

Each statement is its own snapshot (autocommit). A read that needs several statements in
one snapshot belongs in the unit of work.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg

from outpost_kit.db.ddl import TENANT_SETTING
from outpost_kit.db.engine import plain_dsn

SET_TENANT = f"SELECT set_config('{TENANT_SETTING}', $1, false)"


async def keep_session(_conn: asyncpg.Connection) -> None:
    """An asyncpg pool ``reset`` for connections that never change session state."""


class _Slot:
    __slots__ = ("conn", "org")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.org: UUID | None = None  # the tenant the session is set to, None if unknown


class TenantReads:
    """At most ``size`` read-only connections, handed out one reader at a time."""

    def __init__(self, dsn: str, schema: str, size: int = 10) -> None:
        self._dsn = plain_dsn(dsn)
        self._schema = schema
        self._size = size
        self._idle: list[_Slot] = []
        self._waiters: collections.deque[asyncio.Future[_Slot | None]] = collections.deque()
        self._open = 0
        self._closed = False

    @classmethod
    async def connect(cls, dsn: str, schema: str, *, size: int = 10) -> TenantReads:
        reads = cls(dsn, schema, size)
        reads._idle.append(await reads._new_slot())  # fail now if the database is unreachable
        return reads

    async def _new_slot(self) -> _Slot:
        self._open += 1
        try:
            conn = await asyncpg.connect(
                self._dsn,
                command_timeout=60,
                server_settings={
                    "search_path": self._schema,
                    "application_name": f"outpost-{self._schema}-r",
                    "default_transaction_read_only": "on",
                },
            )
        except BaseException:
            self._open -= 1
            raise
        return _Slot(conn)

    async def _take(self) -> _Slot:
        if self._closed:
            raise asyncpg.InterfaceError("the read pool is closed")
        if self._idle:
            return self._idle.pop()
        if self._open < self._size:
            return await self._new_slot()
        waiter: asyncio.Future[_Slot | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            slot = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and (given := waiter.result()):
                self._give(given)  # handed over just as the waiter was cancelled
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        return slot if slot is not None else await self._take()

    def _give(self, slot: _Slot | None) -> None:
        """Return ``slot`` (None: a connection was closed, its place is free again)."""
        if slot is not None and self._closed:
            slot.conn.terminate()
            self._open -= 1
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(slot)
                return
        if slot is not None:
            self._idle.append(slot)

    def _discard(self, slot: _Slot) -> None:
        slot.conn.terminate()
        self._open -= 1
        self._give(None)

    @asynccontextmanager
    async def __call__(self, org_id: UUID) -> AsyncIterator[asyncpg.Connection]:
        slot = await self._take()
        try:
            if slot.org != org_id:
                slot.org = None
                # str(UUID(...)): hex digits and hyphens, whatever object was passed in.
                await slot.conn.fetchval(SET_TENANT, str(UUID(str(org_id))))
                slot.org = org_id
            yield slot.conn
        except asyncpg.PostgresError:
            slot.org = None  # the statement failed: set the tenant again before the next use
            self._release(slot)
            raise
        except BaseException:  # cancelled mid-statement, or the connection broke
            self._discard(slot)
            raise
        else:
            self._release(slot)

    def _release(self, slot: _Slot) -> None:
        if slot.conn.is_closed() or slot.conn.is_in_transaction():
            self._discard(slot)
        else:
            self._give(slot)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for slot in idle:
            self._open -= 1
            await slot.conn.close()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the read pool is closed"))
