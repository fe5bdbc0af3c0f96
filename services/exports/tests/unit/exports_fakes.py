"""Exports' fakes, written once for the unit tests of the use cases (cosmicpython's
FakeUnitOfWork): ``FakeExports`` is the ``ExportsUnitOfWork`` port held in memory, with an
event store, the projection ``adapters/projections.py`` keeps (read model, work queue,
expiry schedule, runs), the outbox's work items and a clock the test moves. A transaction
works on a copy and replaces the world only on ``commit()``, so leaving it rolls back as
Postgres would. The Postgres adapter (``adapters/store.py``) is what the integration tests
cover; these fakes let a use case's decisions be tested without it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import exports as api
from outpost_contracts.envelope import EventEnvelope, RequestContext
from outpost_contracts.query import ListQuery, Page
from outpost_devkit.testing.fakes import (
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    FakeWorld,
    first_page,
)
from outpost_exports.app.ports import Lease, Queued, Stored


@dataclass
class Run:
    org_id: UUID
    attempt: int
    worker: str
    lease_until: datetime
    rows_written: int = 0
    rows_estimated: int | None = None
    updated_at: datetime | None = None


@dataclass
class Row:
    org_id: UUID
    view: api.ExportView
    object_name: str | None = None


@dataclass
class WorkItem:
    org_id: UUID
    export_id: UUID
    msg_id: str


@dataclass
class World(FakeWorld):
    rows: dict[UUID, Row] = field(default_factory=dict)
    queue: dict[UUID, tuple[UUID, datetime]] = field(default_factory=dict)
    expiries: dict[UUID, tuple[UUID, datetime]] = field(default_factory=dict)
    runs: dict[UUID, Run] = field(default_factory=dict)
    outbox: list[WorkItem] = field(default_factory=list)


def _project(w: World, e: EventEnvelope) -> None:
    """What ``ExportsProjector`` does in SQL, on the world."""
    data, key, at = e.data, e.stream_id, e.occurred_at
    if isinstance(data, api.ExportRequested):
        w.rows[key] = Row(
            org_id=e.org_id,
            view=api.ExportView(
                id=key,
                scope_type=data.scope_type,
                scope_id=data.scope_id,
                from_=data.from_,
                to=data.to,
                includes=list(data.includes),
                format=data.format,
                status=api.ExportStatus.PENDING,
                requested_by=data.requested_by,
                created_at=at,
                updated_at=at,
                version=e.version,
            ),
        )
        w.queue.setdefault(key, (e.org_id, at))
        return
    row = w.rows.get(key)
    if isinstance(data, api.ExportDeleted):
        w.rows.pop(key, None)
    elif row is not None:
        changes: dict[str, Any] = {}
        if isinstance(data, api.ExportStarted):
            changes = {"status": api.ExportStatus.RUNNING, "attempt": data.attempt}
            changes["started_at"] = at
        elif isinstance(data, api.ExportCompleted):
            changes = {
                "status": api.ExportStatus.READY,
                "completed_at": at,
                "expires_at": data.expires_at,
                "size_bytes": data.size_bytes,
                "reading_count": data.reading_count,
                "annotation_count": data.annotation_count,
            }
            row.object_name = data.object_name
            w.expiries[key] = (e.org_id, data.expires_at)
        elif isinstance(data, api.ExportFailed):
            changes = {"status": api.ExportStatus.FAILED, "completed_at": at}
            changes["reason"] = data.reason
        elif isinstance(data, api.ExportCancelled):
            changes = {"status": api.ExportStatus.CANCELLED, "completed_at": at}
            changes["reason"] = "cancelled"
        elif isinstance(data, api.ExportExpired):
            changes = {"status": api.ExportStatus.EXPIRED}
            row.object_name = None
        changes.update(version=e.version, updated_at=at)
        row.view = msgspec.structs.replace(row.view, **changes)
    if isinstance(data, api.ExportExpired | api.ExportDeleted):
        w.expiries.pop(key, None)
    if isinstance(
        data, api.ExportCompleted | api.ExportFailed | api.ExportCancelled | api.ExportDeleted
    ):
        w.queue.pop(key, None)
    if isinstance(data, api.ExportDeleted | api.ExportCancelled | api.ExportFailed):
        w.runs.pop(key, None)


class FakeTx(FakeUnitOfWork[World]):
    """One transaction of ``FakeExports``; ``tenant`` plays the tenant's row-level security."""

    def project(self, envelope: EventEnvelope) -> None:
        _project(self.w, envelope)

    def _row(self, export_id: UUID) -> Row | None:
        row = self.w.rows.get(export_id)
        if row is None or not self.visible(row.org_id):
            return None
        return row

    async def find(self, export_id: UUID) -> Stored | None:
        row = self._row(export_id)
        if row is None:
            return None
        view = row.view
        run = self.w.runs.get(export_id)
        if view.status == api.ExportStatus.RUNNING:
            progress = api.ExportProgress(rows_written=0)
            if run is not None and run.attempt == view.attempt:
                progress = api.ExportProgress(
                    rows_written=run.rows_written,
                    rows_estimated=run.rows_estimated,
                    updated_at=run.updated_at,
                )
            view = msgspec.structs.replace(view, progress=progress)
        return Stored(view, row.object_name)

    async def page(self, query: ListQuery) -> Page[api.ExportView]:
        found = [await self.find(i) for i in self.w.rows]
        views = [s.view for s in found if s is not None]
        return first_page(views, query, key=lambda v: v.id)

    async def status(self, export_id: UUID, *, lock: bool = False) -> str | None:
        row = self._row(export_id)
        return None if row is None else row.view.status.value

    async def lock_creations(self, org_id: UUID) -> None:
        return None  # one test task at a time: nothing races

    async def count_active(self) -> int:
        active = (api.ExportStatus.PENDING, api.ExportStatus.RUNNING)
        return sum(
            1 for i in self.w.rows if (r := self._row(i)) is not None and r.view.status in active
        )

    async def enqueue(
        self, org_id: UUID, export_id: UUID, event_id: UUID, msg_id: str | None = None
    ) -> None:
        self.w.outbox.append(WorkItem(org_id, export_id, msg_id or f"work-{export_id}"))

    async def due_requeues(self, cutoff: datetime, batch: int) -> list[tuple[UUID, UUID]]:
        due = sorted((at, i, org) for i, (org, at) in self.w.queue.items() if at <= cutoff)
        return [(i, org) for _, i, org in due[:batch]]

    async def queued(self, export_id: UUID) -> Queued | None:
        row = self._row(export_id)
        if row is None:
            return None
        run = self.w.runs.get(export_id)
        return Queued(row.view.status.value, run.lease_until if run else None)

    async def drop_queued(self, export_id: UUID) -> None:
        self.w.queue.pop(export_id, None)

    async def touch_queued(self, export_id: UUID, now: datetime) -> None:
        if export_id in self.w.queue:
            self.w.queue[export_id] = (self.w.queue[export_id][0], now)

    async def due_expiries(self, now: datetime, batch: int) -> list[tuple[UUID, UUID]]:
        due = sorted((at, i, org) for i, (org, at) in self.w.expiries.items() if at <= now)
        return [(i, org) for _, i, org in due[:batch]]

    async def drop_expiry(self, export_id: UUID) -> None:
        self.w.expiries.pop(export_id, None)

    async def lease(self, export_id: UUID) -> Lease | None:
        run = self.w.runs.get(export_id)
        if run is None:
            return None
        return Lease(run.worker, (run.lease_until - self.w.now).total_seconds())

    async def open_run(
        self, org_id: UUID, export_id: UUID, attempt: int, worker: str, lease_seconds: float
    ) -> None:
        until = self.w.now + timedelta(seconds=lease_seconds)
        self.w.runs[export_id] = Run(org_id, attempt, worker, until, updated_at=self.w.now)

    async def renew_run(
        self,
        export_id: UUID,
        attempt: int,
        rows: int,
        estimate: int | None,
        lease_seconds: float,
    ) -> bool:
        run, row = self.w.runs.get(export_id), self._row(export_id)
        if (
            run is None
            or row is None
            or run.attempt != attempt
            or row.view.attempt != attempt
            or row.view.status != api.ExportStatus.RUNNING
        ):
            return False
        run.rows_written, run.rows_estimated, run.updated_at = rows, estimate, self.w.now
        run.lease_until = self.w.now + timedelta(seconds=lease_seconds)
        return True

    async def release_run(self, export_id: UUID, attempt: int) -> None:
        run = self.w.runs.get(export_id)
        if run is not None and run.attempt == attempt:
            run.lease_until = self.w.now

    async def end_run(self, export_id: UUID) -> None:
        self.w.runs.pop(export_id, None)


class FakeExports(FakeUnitOfWorkFactory[World, FakeTx]):
    """The ``ExportsUnitOfWork`` of the unit tests: ``world`` is what Postgres would hold."""

    def __init__(self) -> None:
        super().__init__(World(), FakeTx)


class FakeArtifacts:
    """An ``ArtifactStore`` that keeps names only."""

    bucket = "fake-exports"

    def __init__(self) -> None:
        self.objects: dict[str, int] = {}
        self.deleted: list[str] = []

    async def start(self) -> None:
        return None

    async def put(self, name: str, path: Path) -> int:
        self.objects[name] = await asyncio.to_thread(os.path.getsize, path)
        return self.objects[name]

    async def delete(self, name: str) -> None:
        self.deleted.append(name)
        self.objects.pop(name, None)

    async def names(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self.objects if n.startswith(prefix))

    async def presign(self, name: str, file_name: str) -> str | None:
        return None


class FakeSources:
    """``Sources`` for use cases that only check a scope (every scope exists)."""

    async def check_scope(self, ctx: RequestContext, scope: api.ScopeType, id: UUID | None) -> None:
        return None

    async def devices(
        self, ctx: RequestContext, scope: api.ScopeType, id: UUID | None
    ) -> list[UUID]:
        return []

    async def readings(self, *args: Any) -> Any:
        raise NotImplementedError

    async def _nothing(self) -> AsyncIterator[list[Any]]:
        return
        yield []  # an async generator

    def annotations(self, *args: Any) -> AsyncIterator[list[Any]]:
        return self._nothing()

    def alerts(self, *args: Any) -> AsyncIterator[list[Any]]:
        return self._nothing()

    def events(self, *args: Any) -> AsyncIterator[list[Any]]:
        return self._nothing()
