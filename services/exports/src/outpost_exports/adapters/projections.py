"""The ``exports`` read model and the expiry schedule, updated in the transaction that
appends the events."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts import exports as api
from outpost_contracts.envelope import EventEnvelope


class ExportsProjector:
    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        key = {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version}
        if isinstance(data, api.ExportRequested):
            await conn.execute(
                text(
                    "INSERT INTO exports (org_id, id, version, scope_type, scope_id, from_ts,"
                    " to_ts, includes, format, status, requested_by, created_at, updated_at)"
                    " VALUES (:org, :id, :v, :scope_type, :scope_id, :from_ts, :to_ts,"
                    " :includes, :format, 'PENDING', :by, :at, :at)"
                ),
                {
                    **key,
                    "scope_type": data.scope_type.value,
                    "scope_id": data.scope_id,
                    "from_ts": data.from_,
                    "to_ts": data.to,
                    "includes": [i.value for i in data.includes],
                    "format": data.format.value,
                    "by": data.requested_by,
                },
            )
            await conn.execute(
                text(
                    "INSERT INTO export_queue (export_id, tenant_id, enqueued_at)"
                    " VALUES (:id, :org, :at) ON CONFLICT (export_id) DO NOTHING"
                ),
                key,
            )
            return
        sets = ""
        params: dict[str, object] = dict(key)
        if isinstance(data, api.ExportStarted):
            sets = "status = 'RUNNING', attempt = :attempt, started_at = :at"
            params["attempt"] = data.attempt
        elif isinstance(data, api.ExportCompleted):
            sets = (
                "status = 'READY', completed_at = :at, expires_at = :expires, object_name = :obj,"
                " size_bytes = :size, sha256 = :sha, reading_count = :readings,"
                " annotation_count = :annotations"
            )
            params.update(
                expires=data.expires_at,
                obj=data.object_name,
                size=data.size_bytes,
                sha=data.sha256,
                readings=data.reading_count,
                annotations=data.annotation_count,
            )
            await conn.execute(
                text(
                    "INSERT INTO export_expiries (export_id, tenant_id, expires_at)"
                    " VALUES (:id, :org, :expires) ON CONFLICT (export_id)"
                    " DO UPDATE SET expires_at = EXCLUDED.expires_at"
                ),
                {"id": e.stream_id, "org": e.org_id, "expires": data.expires_at},
            )
        elif isinstance(data, api.ExportFailed):
            sets = "status = 'FAILED', completed_at = :at, reason = :reason"
            params["reason"] = data.reason
        elif isinstance(data, api.ExportCancelled):
            sets = "status = 'CANCELLED', completed_at = :at, reason = 'cancelled'"
        elif isinstance(data, api.ExportExpired):
            sets = "status = 'EXPIRED', object_name = NULL"
        elif isinstance(data, api.ExportDeleted):
            await conn.execute(text("DELETE FROM exports WHERE org_id = :org AND id = :id"), key)
        if isinstance(data, api.ExportExpired | api.ExportDeleted):
            await conn.execute(
                text("DELETE FROM export_expiries WHERE export_id = :id"), {"id": e.stream_id}
            )
        if isinstance(
            data, api.ExportCompleted | api.ExportFailed | api.ExportCancelled | api.ExportDeleted
        ):
            await conn.execute(
                text("DELETE FROM export_queue WHERE export_id = :id"), {"id": e.stream_id}
            )
        if isinstance(data, api.ExportDeleted | api.ExportCancelled | api.ExportFailed):
            await conn.execute(
                text("DELETE FROM export_runs WHERE org_id = :org AND export_id = :id"), key
            )
        if sets:
            await conn.execute(
                text(
                    f"UPDATE exports SET {sets}, version = :v, updated_at = :at"
                    " WHERE org_id = :org AND id = :id"
                ),
                params,
            )
