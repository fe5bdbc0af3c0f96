"""Rebuild a projection from the event store (docs/design/reliability.md, "replay").

The rebuild runs in the caller's unit of work, for the unit of work's tenant: row-level
security scopes both the reset and the events read, so one tenant is rebuilt at a time and
the rebuilt rows replace the old ones atomically when the caller commits.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_kit.db.eventstore import Projector
from outpost_kit.db.uow import UnitOfWork


class Rebuildable(Projector, Protocol):
    """A projector that can also forget the current tenant's rows."""

    async def reset(self, conn: AsyncConnection) -> None: ...


async def rebuild(uow: UnitOfWork, projector: Rebuildable, *, batch: int = 1000) -> int:
    """Reset ``projector``'s rows of the uow's tenant and re-apply every event in position
    order; returns the number of events applied. The caller commits."""
    if uow.org_id is None:
        raise ValueError("rebuild needs a unit of work with a tenant")
    await projector.reset(uow.conn)
    store = uow.events
    position, applied = 0, 0
    while True:
        page = await store.iter_all(after_position=position, batch=batch)
        for position, envelope in page:  # noqa: B007 - the last position is the next cursor
            await projector.apply(uow.conn, envelope)
            applied += 1
        if len(page) < batch:
            return applied
