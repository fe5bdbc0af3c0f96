"""Exports: jobs from request to a signed, expiring download (docs/api.md "Exports"; decision 65).

Owned by the exports service; its events go to the EXPORTS stream, and each new job is one
message of the EXPORT_JOBS work queue (``ExportWork``), fed from the same outbox."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Empty, Event, Instant, Request, wire_tag
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.rpc import Operation

SERVICE = "exports"

# The archive's layout version (``manifest.json``'s ``formatVersion``).
FORMAT_VERSION = 1
Reason = Annotated[str, msgspec.Meta(max_length=1024)]


class ExportScopeType(enum.StrEnum):
    DEVICE = "DEVICE"
    GROUP = "GROUP"
    SITE = "SITE"
    ORGANIZATION = "ORGANIZATION"


# Its own name in the OpenAPI document (alerting has a ScopeType too); ``ScopeType`` here.
ScopeType = ExportScopeType


class Include(enum.StrEnum):
    READINGS = "READINGS"
    ANNOTATIONS = "ANNOTATIONS"
    ALERTS = "ALERTS"
    EVENTS = "EVENTS"


# What this version of the service writes: all of them (decision 65). ALERTS are the scope's
# devices' alerts opened in ``[from, to)``; EVENTS their timeline entries in ``[from, to)``.
SUPPORTED_INCLUDES = (Include.READINGS, Include.ANNOTATIONS, Include.ALERTS, Include.EVENTS)


class Format(enum.StrEnum):
    CSV = "CSV"
    NDJSON = "NDJSON"


class ExportStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    READY = "READY"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


FINISHED = (
    ExportStatus.READY,
    ExportStatus.FAILED,
    ExportStatus.CANCELLED,
    ExportStatus.EXPIRED,
)


class CreateExport(Request, kw_only=True, frozen=True):
    """``POST /api/v1/exports``. ``scopeId`` names the device, group or site (absent for
    ORGANIZATION); ``[from, to)`` is the time range; ``includes`` defaults to READINGS and
    ``format`` to CSV."""

    scope_type: ScopeType
    scope_id: UUID | None = None
    from_: Instant = msgspec.field(name="from")
    to: Instant
    includes: Annotated[list[Include], msgspec.Meta(min_length=1, max_length=4)] = msgspec.field(
        default_factory=lambda: [Include.READINGS]
    )
    format: Format = Format.CSV


class ExportProgress(Contract, kw_only=True, frozen=True):
    """While RUNNING: rows written so far, and the planner's estimate of the rows to write
    (an estimate: it may be off either way)."""

    rows_written: int
    rows_estimated: int | None = None
    updated_at: datetime | None = None


class ExportView(Contract, kw_only=True, frozen=True):
    id: UUID
    scope_type: ScopeType
    scope_id: UUID | None
    from_: datetime = msgspec.field(name="from")
    to: datetime
    includes: list[Include]
    format: Format
    status: ExportStatus
    requested_by: UUID | None
    created_at: datetime
    updated_at: datetime
    version: int
    attempt: int = 0
    started_at: datetime | None = None
    progress: ExportProgress | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    size_bytes: int | None = None
    reading_count: int | None = None
    annotation_count: int | None = None
    reason: str | None = None
    # A fresh, time-limited link to the archive, on every GET of a READY export: the
    # gateway's own signed URL, or the object store's presigned one (S3).
    download_url: str | None = None
    object: str = "export"


# --- events -----------------------------------------------------------------------------


class ExportRequested(
    Event, tag=wire_tag(SERVICE, "ExportRequested", 1), kw_only=True, frozen=True
):
    scope_type: ScopeType
    scope_id: UUID | None
    from_: datetime = msgspec.field(name="from")
    to: datetime
    includes: list[Include]
    format: Format
    requested_by: UUID | None = None


class ExportStarted(Event, tag=wire_tag(SERVICE, "ExportStarted", 1), kw_only=True, frozen=True):
    """A worker took the job (``attempt`` counts from 1; a restart after a lost worker is the
    next attempt, and only the latest attempt may complete)."""

    attempt: int
    worker: str


class ExportCompleted(
    Event, tag=wire_tag(SERVICE, "ExportCompleted", 1), kw_only=True, frozen=True
):
    attempt: int
    object_name: str
    size_bytes: int
    sha256: str
    reading_count: int
    annotation_count: int
    expires_at: datetime


class ExportFailed(Event, tag=wire_tag(SERVICE, "ExportFailed", 1), kw_only=True, frozen=True):
    attempt: int
    reason: str


class ExportCancelled(
    Event, tag=wire_tag(SERVICE, "ExportCancelled", 1), kw_only=True, frozen=True
):
    """Cancelled while PENDING or RUNNING (``DELETE``); a running worker stops within its
    next progress check."""

    by: UUID | None = None


class ExportExpired(Event, tag=wire_tag(SERVICE, "ExportExpired", 1), kw_only=True, frozen=True):
    """The artifact's lifetime ended: it was deleted."""


class ExportDeleted(Event, tag=wire_tag(SERVICE, "ExportDeleted", 1), kw_only=True, frozen=True):
    """A finished export was deleted (``DELETE``), with its artifact."""

    by: UUID | None = None


EVENT_TYPES: tuple[type[Event], ...] = (
    ExportRequested,
    ExportStarted,
    ExportCompleted,
    ExportFailed,
    ExportCancelled,
    ExportExpired,
    ExportDeleted,
)


class ExportWork(Contract, kw_only=True, frozen=True):
    """One message of the EXPORT_JOBS work queue: run this job."""

    org_id: UUID
    export_id: UUID


# --- requests and operations ------------------------------------------------------------


class ExportById(Request, kw_only=True, frozen=True):
    id: UUID


class DeleteExport(Request, kw_only=True, frozen=True):
    id: UUID
    expected_version: int | None = None  # from If-Match


class ListExports(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class ArtifactLocation(Contract, kw_only=True, frozen=True):
    """Where a READY export's archive is, for the gateway's download route."""

    id: UUID
    bucket: str
    object_name: str
    size_bytes: int
    file_name: str


CREATE_EXPORT = Operation(SERVICE, "CreateExport", CreateExport, ExportView)
GET_EXPORT = Operation(SERVICE, "GetExport", ExportById, ExportView)
LIST_EXPORTS = Operation(SERVICE, "ListExports", ListExports, Page[ExportView])
DELETE_EXPORT = Operation(SERVICE, "DeleteExport", DeleteExport, Empty)
GET_ARTIFACT = Operation(SERVICE, "GetExportArtifact", ExportById, ArtifactLocation)
