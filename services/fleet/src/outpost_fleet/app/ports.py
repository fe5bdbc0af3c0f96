"""What fleet's use cases need of storage, as ports (the shape of ADR 0089): a unit of work
opened per tenant that carries the event stream (for the kit's ``Aggregate``) and the reads
of the read models. Postgres implements them in ``adapters/``. No SQL and no driver type
here. Each area of the service (config artefacts and bindings; profiles and packs; the
device read model and jobs) has its own transaction port, so each one's statements stay in
its own adapter module."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol
from uuid import UUID

from outpost_kit.aggregate import EventStream


class ConfigTx(Protocol):
    """One transaction in one tenant over config artefacts and desired-state bindings;
    leaving it without ``commit()`` rolls back."""

    @property
    def events(self) -> EventStream: ...

    async def commit(self) -> None: ...


class ConfigUnitOfWork(Protocol):
    """``async with uow(org_id) as tx: ...; await tx.commit()``."""

    def __call__(self, org_id: UUID | None) -> AbstractAsyncContextManager[ConfigTx]: ...
