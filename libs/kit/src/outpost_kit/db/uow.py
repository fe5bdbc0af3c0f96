"""The unit of work: one transaction, one tenant, explicit commit (docs/style.md).

``async with uow_factory(org_id) as uow: ...; await uow.commit()``. Leaving the block
without ``commit()`` rolls back. The tenant is set with ``set_config(..., true)`` — the
``SET LOCAL`` form — so it ends with the transaction and never leaks to the next user of a
pooled connection.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self
from uuid import UUID

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from outpost_kit.db.ddl import TENANT_SETTING
from outpost_kit.db.eventstore import EventCodec, EventStore, Projector


@functools.lru_cache(maxsize=4096)
def _text(sql: str) -> TextClause:
    """A statement's ``TextClause``, built once per text: building one parses its bind
    parameters with a regular expression, on every call otherwise (the compiled form is
    cached by SQLAlchemy either way). Clauses are immutable, so sharing them is safe."""
    return text(sql)


cached_text = _text  # for adapters that build statements from constant parts

_SET_TENANT = text("SELECT set_config(:name, :org, true)")


class UnitOfWork:
    def __init__(
        self,
        engine: AsyncEngine,
        codec: EventCodec,
        *,
        org_id: UUID | None,
        projectors: Sequence[Projector] = (),
    ) -> None:
        self._engine = engine
        self._codec = codec
        self._projectors = projectors
        self.org_id = org_id
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None
        self._committed = False

    @property
    def conn(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside 'async with'")
        return self._conn

    @property
    def events(self) -> EventStore:
        return EventStore(self.conn, self._codec, self._projectors)

    async def __aenter__(self) -> UnitOfWork:
        self._conn = await self._engine.connect()
        self._tx = await self._conn.begin()
        if self.org_id is not None:
            await self.set_tenant(self.org_id)
        return self

    async def set_tenant(self, org_id: UUID) -> None:
        """Switch the transaction's tenant (e.g. a consumer batch spanning organizations)."""
        self.org_id = org_id
        await self.conn.execute(_SET_TENANT, {"name": TENANT_SETTING, "org": str(org_id)})

    async def execute(self, sql: str, params: Any = None) -> Any:
        return await self.conn.execute(_text(sql), params)

    async def commit(self) -> None:
        assert self._tx is not None
        await self._tx.commit()
        self._committed = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tx is not None and not self._committed and self._tx.is_active:
                await self._tx.rollback()
        finally:
            if self._conn is not None:
                await self._conn.close()
            self._conn = self._tx = None


class UnitOfWorkFactory:
    """What a service's composition root hands to its handlers."""

    def __init__(
        self, engine: AsyncEngine, codec: EventCodec, projectors: Sequence[Projector] = ()
    ) -> None:
        self.engine = engine
        self.codec = codec
        self.projectors = projectors

    @classmethod
    def over(cls, factory: UnitOfWorkFactory) -> Self:
        """This factory on ``factory``'s engine, codec and projectors: a service's adapter
        (a subclass whose ``__call__`` makes its ``UnitOfWork`` subclass with the port's
        statements) over the runtime's factory (ADR 0085, 0086)."""
        return cls(factory.engine, factory.codec, factory.projectors)

    def __call__(self, org_id: UUID | None) -> UnitOfWork:
        return UnitOfWork(self.engine, self.codec, org_id=org_id, projectors=self.projectors)
