"""The export job as a decider: requested, started (attempt n), completed, failed, cancelled,
expired, deleted. No I/O, no clock but the ``now`` passed in, no ids made here.

Fencing: a job is run by one attempt at a time; ``Start`` opens the next attempt, and only
the current attempt may complete or fail it, so a worker that lost its lease (and kept
running) can never overwrite what its successor did."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from outpost_contracts import exports as api
from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, validation_error

EXPORT = "export"
Status = api.ExportStatus


class Export(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    status: Status
    scope_type: api.ScopeType
    scope_id: UUID | None
    from_: datetime
    to: datetime
    includes: list[api.Include]
    format: api.Format
    requested_by: UUID | None = None
    attempt: int = 0
    object_name: str | None = None
    expires_at: datetime | None = None
    deleted: bool = False


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    max_range: timedelta
    artifact_ttl: timedelta


# --- commands ---------------------------------------------------------------------------


class Request(msgspec.Struct, frozen=True, kw_only=True):
    spec: api.CreateExport
    requested_by: UUID | None
    limits: Limits


class Start(msgspec.Struct, frozen=True, kw_only=True):
    worker: str
    max_attempts: int


class Complete(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    object_name: str
    size_bytes: int
    sha256: str
    reading_count: int
    annotation_count: int
    ttl: timedelta


class Fail(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    reason: str


class Cancel(msgspec.Struct, frozen=True, kw_only=True):
    """``DELETE``: cancel a job that has not finished, delete one that has."""

    by: UUID | None


class Expire(msgspec.Struct, frozen=True, kw_only=True):
    pass


Command = Request | Start | Complete | Fail | Cancel | Expire


class Stale(Conflict):
    """The command's attempt is not the job's current one, or the job is no longer running:
    the worker that sent it must stop and throw its work away."""


def check_request(spec: api.CreateExport, limits: Limits) -> None:
    """Everything about a request that needs no I/O; a ``validation_error`` naming the field."""
    if spec.scope_type == api.ScopeType.ORGANIZATION:
        if spec.scope_id is not None:
            raise validation_error("scopeId", "not allowed with ORGANIZATION")
    elif spec.scope_id is None:
        raise validation_error("scopeId", f"required with {spec.scope_type.value}")
    if spec.from_ >= spec.to:
        raise validation_error("from", "must be before 'to'")
    if spec.to - spec.from_ > limits.max_range:
        raise validation_error("to", f"the range may cover at most {limits.max_range.days} days")
    if len(set(spec.includes)) != len(spec.includes):
        raise validation_error("includes", "lists an item twice")
    for item in spec.includes:
        if item not in api.SUPPORTED_INCLUDES:
            raise validation_error("includes", f"{item.value} is not exported yet")


def decide(state: Export | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, Request):
        if state is not None:
            raise Conflict("the export exists")
        check_request(command.spec, command.limits)
        spec = command.spec
        return [
            api.ExportRequested(
                scope_type=spec.scope_type,
                scope_id=spec.scope_id,
                from_=spec.from_,
                to=spec.to,
                includes=list(spec.includes),
                format=spec.format,
                requested_by=command.requested_by,
            )
        ]
    if state is None or state.deleted:
        raise NotFound("no such export")
    if isinstance(command, Start):
        if state.status not in (Status.PENDING, Status.RUNNING):
            raise Stale(f"the export is {state.status.value}")
        if state.attempt >= command.max_attempts:
            return [
                api.ExportFailed(
                    attempt=state.attempt,
                    reason=f"gave up after {state.attempt} attempts (workers lost mid-export)",
                )
            ]
        return [api.ExportStarted(attempt=state.attempt + 1, worker=command.worker)]
    if isinstance(command, Complete | Fail):
        if state.status != Status.RUNNING or command.attempt != state.attempt:
            raise Stale("this attempt no longer runs the export")
        if isinstance(command, Fail):
            return [api.ExportFailed(attempt=command.attempt, reason=command.reason)]
        return [
            api.ExportCompleted(
                attempt=command.attempt,
                object_name=command.object_name,
                size_bytes=command.size_bytes,
                sha256=command.sha256,
                reading_count=command.reading_count,
                annotation_count=command.annotation_count,
                expires_at=now + command.ttl,
            )
        ]
    if isinstance(command, Cancel):
        if state.status in (Status.PENDING, Status.RUNNING):
            return [api.ExportCancelled(by=command.by)]
        return [api.ExportDeleted(by=command.by)]
    if isinstance(command, Expire):
        if state.status != Status.READY:
            return []
        return [api.ExportExpired()]
    raise TypeError(f"unknown command {command!r}")


def evolve(state: Export | None, event: Event, aggregate_id: UUID) -> Export:
    if isinstance(event, api.ExportRequested):
        return Export(
            id=aggregate_id,
            version=1,
            status=Status.PENDING,
            scope_type=event.scope_type,
            scope_id=event.scope_id,
            from_=event.from_,
            to=event.to,
            includes=list(event.includes),
            format=event.format,
            requested_by=event.requested_by,
        )
    assert state is not None
    version = state.version + 1
    replace = msgspec.structs.replace
    if isinstance(event, api.ExportStarted):
        return replace(state, version=version, status=Status.RUNNING, attempt=event.attempt)
    if isinstance(event, api.ExportCompleted):
        return replace(
            state,
            version=version,
            status=Status.READY,
            object_name=event.object_name,
            expires_at=event.expires_at,
        )
    if isinstance(event, api.ExportFailed):
        return replace(state, version=version, status=Status.FAILED)
    if isinstance(event, api.ExportCancelled):
        return replace(state, version=version, status=Status.CANCELLED)
    if isinstance(event, api.ExportExpired):
        return replace(state, version=version, status=Status.EXPIRED, object_name=None)
    if isinstance(event, api.ExportDeleted):
        return replace(state, version=version, deleted=True, object_name=None)
    return replace(state, version=version)


def object_name(org_id: UUID, export_id: UUID, attempt: int) -> str:
    """The archive's name in the store: one per job and attempt, so an attempt never writes
    over another's, and the completed attempt's is the one the job names."""
    return f"{org_id}/{export_id}/{attempt}.zip"


def file_name(export_id: UUID) -> str:
    return f"export-{export_id}.zip"
