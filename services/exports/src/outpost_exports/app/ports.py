"""What exports' use cases need of storage, as ports: a unit of work opened per tenant that
carries the event stream (for the kit's ``Aggregate``) and the reads and writes of the read
model, the job queue, the expiry schedule and the workers' leases. Postgres implements it
in ``adapters/store.py``; unit tests use the fake in ``tests/unit/fakes.py``. No SQL and no
driver type here."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from outpost_contracts import exports as api
from outpost_contracts.query import ListQuery, Page
from outpost_kit.aggregate import EventStream


@dataclass(frozen=True)
class Stored:
    """An export as the read model holds it: its view, and its archive's name in the
    artifact store (which the view does not show)."""

    view: api.ExportView
    object_name: str | None


@dataclass(frozen=True)
class Lease:
    """The worker holding a job's run, and how many seconds its lease has left (≤ 0:
    lapsed)."""

    worker: str
    seconds_left: float


@dataclass(frozen=True)
class Queued:
    """A queued job's status and its run's lease end (``None`` without a run)."""

    status: str
    lease_until: datetime | None


class ExportsTx(Protocol):
    """One transaction in one tenant (or none, for the maintenance scans); leaving it
    without ``commit()`` rolls back."""

    @property
    def events(self) -> EventStream: ...

    async def commit(self) -> None: ...

    # --- the read model -----------------------------------------------------------------

    async def find(self, export_id: UUID) -> Stored | None: ...

    async def page(self, query: ListQuery) -> Page[api.ExportView]: ...

    async def status(self, export_id: UUID, *, lock: bool = False) -> str | None:
        """The job's status; ``lock``: hold its row until the transaction ends."""
        ...

    async def lock_creations(self, org_id: UUID) -> None:
        """One organization's creations one at a time, until the transaction ends."""
        ...

    async def count_active(self) -> int:
        """The tenant's exports PENDING or RUNNING."""
        ...

    # --- the work queue -----------------------------------------------------------------

    async def enqueue(
        self, org_id: UUID, export_id: UUID, event_id: UUID, msg_id: str | None = None
    ) -> None:
        """The job's work item, through the outbox, in this transaction."""
        ...

    async def due_requeues(self, cutoff: datetime, batch: int) -> list[tuple[UUID, UUID]]:
        """``(export_id, tenant_id)`` of queued jobs whose item went out by ``cutoff``."""
        ...

    async def queued(self, export_id: UUID) -> Queued | None:
        """The queued job (locked), or None if it is gone."""
        ...

    async def drop_queued(self, export_id: UUID) -> None: ...

    async def touch_queued(self, export_id: UUID, now: datetime) -> None: ...

    # --- the expiry schedule ------------------------------------------------------------

    async def due_expiries(self, now: datetime, batch: int) -> list[tuple[UUID, UUID]]:
        """``(export_id, tenant_id)`` of archives whose lifetime ended by ``now``."""
        ...

    async def drop_expiry(self, export_id: UUID) -> None: ...

    # --- the workers' runs (leases) -----------------------------------------------------

    async def lease(self, export_id: UUID) -> Lease | None: ...

    async def open_run(
        self, org_id: UUID, export_id: UUID, attempt: int, worker: str, lease_seconds: float
    ) -> None:
        """This worker runs ``attempt`` with a fresh lease and no progress."""
        ...

    async def renew_run(
        self,
        export_id: UUID,
        attempt: int,
        rows: int,
        estimate: int | None,
        lease_seconds: float,
    ) -> bool:
        """Write progress and renew the lease, fenced on ``attempt`` and RUNNING; False if
        the attempt no longer runs the job."""
        ...

    async def release_run(self, export_id: UUID, attempt: int) -> None:
        """Give ``attempt``'s lease back (it lapses now)."""
        ...

    async def end_run(self, export_id: UUID) -> None: ...


class ExportsUnitOfWork(Protocol):
    """``async with uow(org_id) as tx: ...; await tx.commit()``."""

    def __call__(self, org_id: UUID | None) -> AbstractAsyncContextManager[ExportsTx]: ...
