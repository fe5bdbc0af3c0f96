"""Exports' fakes, written once for the unit tests of the use cases (cosmicpython's
FakeUnitOfWork): ``FakeExports`` is the ``ExportsUnitOfWork`` port held in memory, with an
event store, the projection ``adapters/projections.py`` keeps (read model, work queue,
expiry schedule, runs), the outbox's work items and a clock the test moves. A transaction
works on a copy and replaces the world only on ``commit()``, so leaving it rolls back as
Postgres would. The Postgres adapter (``adapters/store.py``) is what the integration tests
cover; these fakes let a use case's decisions be tested without it."""

from __future__ import annotations

import asyncio
import copy
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import exports as api
from outpost_contracts.base import Event
from outpost_contracts.envelope import EventEnvelope, Principal, RequestContext
from outpost_contracts.query import ListQuery, Page
from outpost_exports.app.ports import Lease, Queued, Stored
from outpost_kit import ids
from outpost_kit.db.eventstore import ConcurrencyConflict


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
class World:
    now: datetime = field(default_factory=lambda: datetime(2025, 1, 1, tzinfo=UTC))
    streams: dict[UUID, list[EventEnvelope]] = field(default_factory=dict)
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


class FakeEvents:
    def __init__(self, world: World) -> None:
        self._w = world

    async def load(self, stream_id: UUID) -> list[EventEnvelope]:
        return list(self._w.streams.get(stream_id, []))

    async def append(
        self,
        *,
        org_id: UUID,
        stream_id: UUID,
        stream_type: str,
        expected_version: int,
        events: Sequence[Event],
        actor: Principal | None = None,
        request_id: str | None = None,
    ) -> list[EventEnvelope]:
        stream = self._w.streams.setdefault(stream_id, [])
        if len(stream) != expected_version:
            raise ConcurrencyConflict(stream_id, expected_version, len(stream))
        envelopes = [
            EventEnvelope(
                id=ids.new_id(),
                org_id=org_id,
                stream_id=stream_id,
                stream_type=stream_type,
                version=expected_version + i,
                occurred_at=self._w.now,
                data=event,
                request_id=request_id,
                actor=actor,
            )
            for i, event in enumerate(events, start=1)
        ]
        for envelope in envelopes:
            stream.append(envelope)
            _project(self._w, envelope)
        return envelopes


class FakeTx:
    """One transaction of ``FakeExports``; ``org_id`` plays the tenant's row-level security."""

    def __init__(self, world: World, org_id: UUID | None) -> None:
        self._world = world
        self._org = org_id
        self._w = world
        self.committed = False

    async def __aenter__(self) -> FakeTx:
        self._w = copy.deepcopy(self._world)
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._w = self._world

    @property
    def events(self) -> FakeEvents:
        return FakeEvents(self._w)

    async def commit(self) -> None:
        self._world.__dict__.update(self._w.__dict__)
        self.committed = True

    def _row(self, export_id: UUID) -> Row | None:
        row = self._w.rows.get(export_id)
        if row is None or (self._org is not None and row.org_id != self._org):
            return None
        return row

    async def find(self, export_id: UUID) -> Stored | None:
        row = self._row(export_id)
        if row is None:
            return None
        view = row.view
        run = self._w.runs.get(export_id)
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
        if query.filter is not None or query.order_by or query.after or query.skip:
            raise NotImplementedError("the fake lists the first page, unfiltered, by id")
        found = [await self.find(i) for i in sorted(self._w.rows)]
        views = [s.view for s in found if s is not None]
        return Page(data=views[: query.limit], limit=query.limit, has_more=len(views) > query.limit)

    async def status(self, export_id: UUID, *, lock: bool = False) -> str | None:
        row = self._row(export_id)
        return None if row is None else row.view.status.value

    async def lock_creations(self, org_id: UUID) -> None:
        return None  # one test task at a time: nothing races

    async def count_active(self) -> int:
        active = (api.ExportStatus.PENDING, api.ExportStatus.RUNNING)
        return sum(
            1 for i in self._w.rows if (r := self._row(i)) is not None and r.view.status in active
        )

    async def enqueue(
        self, org_id: UUID, export_id: UUID, event_id: UUID, msg_id: str | None = None
    ) -> None:
        self._w.outbox.append(WorkItem(org_id, export_id, msg_id or f"work-{export_id}"))

    async def due_requeues(self, cutoff: datetime, batch: int) -> list[tuple[UUID, UUID]]:
        due = sorted((at, i, org) for i, (org, at) in self._w.queue.items() if at <= cutoff)
        return [(i, org) for _, i, org in due[:batch]]

    async def queued(self, export_id: UUID) -> Queued | None:
        row = self._row(export_id)
        if row is None:
            return None
        run = self._w.runs.get(export_id)
        return Queued(row.view.status.value, run.lease_until if run else None)

    async def drop_queued(self, export_id: UUID) -> None:
        self._w.queue.pop(export_id, None)

    async def touch_queued(self, export_id: UUID, now: datetime) -> None:
        if export_id in self._w.queue:
            self._w.queue[export_id] = (self._w.queue[export_id][0], now)

    async def due_expiries(self, now: datetime, batch: int) -> list[tuple[UUID, UUID]]:
        due = sorted((at, i, org) for i, (org, at) in self._w.expiries.items() if at <= now)
        return [(i, org) for _, i, org in due[:batch]]

    async def drop_expiry(self, export_id: UUID) -> None:
        self._w.expiries.pop(export_id, None)

    async def lease(self, export_id: UUID) -> Lease | None:
        run = self._w.runs.get(export_id)
        if run is None:
            return None
        return Lease(run.worker, (run.lease_until - self._w.now).total_seconds())

    async def open_run(
        self, org_id: UUID, export_id: UUID, attempt: int, worker: str, lease_seconds: float
    ) -> None:
        until = self._w.now + timedelta(seconds=lease_seconds)
        self._w.runs[export_id] = Run(org_id, attempt, worker, until, updated_at=self._w.now)

    async def renew_run(
        self,
        export_id: UUID,
        attempt: int,
        rows: int,
        estimate: int | None,
        lease_seconds: float,
    ) -> bool:
        run, row = self._w.runs.get(export_id), self._row(export_id)
        if (
            run is None
            or row is None
            or run.attempt != attempt
            or row.view.attempt != attempt
            or row.view.status != api.ExportStatus.RUNNING
        ):
            return False
        run.rows_written, run.rows_estimated, run.updated_at = rows, estimate, self._w.now
        run.lease_until = self._w.now + timedelta(seconds=lease_seconds)
        return True

    async def release_run(self, export_id: UUID, attempt: int) -> None:
        run = self._w.runs.get(export_id)
        if run is not None and run.attempt == attempt:
            run.lease_until = self._w.now

    async def end_run(self, export_id: UUID) -> None:
        self._w.runs.pop(export_id, None)


class FakeExports:
    """The ``ExportsUnitOfWork`` of the unit tests: ``world`` is what Postgres would hold."""

    def __init__(self) -> None:
        self.world = World()

    def __call__(self, org_id: UUID | None) -> FakeTx:
        return FakeTx(self.world, org_id)

    def advance(self, by: timedelta) -> None:
        self.world.now += by


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
