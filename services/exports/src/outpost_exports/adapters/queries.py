"""The exports collection: filterable fields and row → view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outpost_contracts import exports as api
from outpost_kit.db.listing import Collection, Field

_ENUM_OPS = frozenset({"eq", "ne", "in", "nin"})

EXPORTS = Collection(
    # The job with its current run's progress (only while RUNNING).
    table=(
        "(SELECT e.*, r.rows_written, r.rows_estimated, r.updated_at AS progress_at"
        " FROM exports e LEFT JOIN export_runs r ON r.org_id = e.org_id"
        " AND r.export_id = e.id AND r.attempt = e.attempt AND e.status = 'RUNNING') x"
    ),
    columns=(
        "id, version, scope_type, scope_id, from_ts, to_ts, includes, format, status,"
        " requested_by, attempt, started_at, completed_at, expires_at, object_name, size_bytes,"
        " reading_count, annotation_count, reason, created_at, updated_at, rows_written,"
        " rows_estimated, progress_at"
    ),
    fields={
        "id": Field("id", "uuid"),
        "status": Field("status", ops=_ENUM_OPS),
        "scopeType": Field("scope_type", ops=_ENUM_OPS),
        "scopeId": Field("scope_id", "uuid"),
        "format": Field("format", ops=_ENUM_OPS),
        "requestedBy": Field("requested_by", "uuid"),
        "from": Field("from_ts", "datetime"),
        "to": Field("to_ts", "datetime"),
        "createdAt": Field("created_at", "datetime"),
        "completedAt": Field("completed_at", "datetime"),
        "expiresAt": Field("expires_at", "datetime"),
    },
)


def export_view(row: Mapping[str, Any]) -> api.ExportView:
    progress = None
    if row["status"] == api.ExportStatus.RUNNING and row["rows_written"] is not None:
        progress = api.ExportProgress(
            rows_written=row["rows_written"],
            rows_estimated=row["rows_estimated"],
            updated_at=row["progress_at"],
        )
    elif row["status"] == api.ExportStatus.RUNNING:
        progress = api.ExportProgress(rows_written=0)
    return api.ExportView(
        id=row["id"],
        scope_type=api.ScopeType(row["scope_type"]),
        scope_id=row["scope_id"],
        from_=row["from_ts"],
        to=row["to_ts"],
        includes=[api.Include(i) for i in row["includes"]],
        format=api.Format(row["format"]),
        status=api.ExportStatus(row["status"]),
        requested_by=row["requested_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        attempt=row["attempt"],
        started_at=row["started_at"],
        progress=progress,
        completed_at=row["completed_at"],
        expires_at=row["expires_at"],
        size_bytes=row["size_bytes"],
        reading_count=row["reading_count"],
        annotation_count=row["annotation_count"],
        reason=row["reason"],
    )
