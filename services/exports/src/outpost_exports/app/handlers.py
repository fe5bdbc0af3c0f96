"""Exports' use cases for people: create, get, list, cancel/delete an export, and where a
READY export's archive is (for the gateway's download route)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import exports as api
from outpost_contracts import subjects
from outpost_contracts.base import Empty, Event
from outpost_contracts.envelope import PLATFORM_ORG_ID, RequestContext
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_contracts.query import Page
from outpost_exports.adapters import queries
from outpost_exports.adapters.artifacts import ArtifactStore
from outpost_exports.adapters.sources import Sources
from outpost_exports.domain import exports as domain
from outpost_kit import ids
from outpost_kit.aggregate import Aggregate
from outpost_kit.db import outbox
from outpost_kit.db.listing import list_page
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory
from outpost_kit.messaging import MSG_ID

_log = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()


def _decide(state: Any, command: Any, now: datetime) -> list[Event]:
    return domain.decide(state, command, now)


EXPORTS = Aggregate(stream_type=domain.EXPORT, decide=_decide, evolve=domain.evolve)


@dataclass(frozen=True)
class Policy:
    """The limits of docs/runbook.md, from settings."""

    max_range: timedelta = timedelta(days=366)
    max_concurrent: int = 3
    artifact_ttl: timedelta = timedelta(days=1)
    max_attempts: int = 3

    @property
    def limits(self) -> domain.Limits:
        return domain.Limits(max_range=self.max_range, artifact_ttl=self.artifact_ttl)


@dataclass(frozen=True)
class Deps:
    uow: UnitOfWorkFactory
    sources: Sources
    store: ArtifactStore
    policy: Policy = Policy()


def _tenant(ctx: RequestContext) -> None:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise ValidationFailed("exports belong to an organization: name it with X-Organization")


async def _row(uow: UnitOfWork, export_id: UUID) -> Any:
    sql = f"SELECT {queries.EXPORTS.columns} FROM {queries.EXPORTS.table} WHERE id = :id"
    row = (await uow.execute(sql, {"id": export_id})).first()
    if row is None:
        raise NotFound("no such export")
    return row._mapping


async def enqueue(
    uow: UnitOfWork, org_id: UUID, export_id: UUID, event_id: UUID, msg_id: str | None = None
) -> None:
    """The job's work-queue message, through the outbox in this transaction: published
    with the rest, exactly once by ``Nats-Msg-Id`` (``work-<id>``; a republication by the
    sweep has its own)."""
    await outbox.write(
        uow.conn,
        [
            outbox.OutboxRow(
                event_id=event_id,
                subject=subjects.work(api.SERVICE, org_id, export_id),
                payload=_encoder.encode(api.ExportWork(org_id=org_id, export_id=export_id)),
                headers={MSG_ID: msg_id or f"work-{export_id}"},
            )
        ],
    )


async def create_export(deps: Deps, ctx: RequestContext, cmd: api.CreateExport) -> api.ExportView:
    _tenant(ctx)
    domain.check_request(cmd, deps.policy.limits)
    await deps.sources.check_scope(ctx, cmd.scope_type, cmd.scope_id)
    export_id = ids.new_id()
    async with deps.uow(ctx.org_id) as uow:
        # One organization's creations one at a time, so the limit holds under races.
        await uow.execute(
            "SELECT pg_advisory_xact_lock(hashtext('outpost.exports.' || :org))",
            {"org": str(ctx.org_id)},
        )
        active = (
            await uow.execute("SELECT count(*) FROM exports WHERE status IN ('PENDING', 'RUNNING')")
        ).scalar_one()
        if active >= deps.policy.max_concurrent:
            raise Conflict(
                f"the organization has {active} exports pending or running; at most"
                f" {deps.policy.max_concurrent} at once (wait for one to finish or cancel one)"
            )
        command = domain.Request(spec=cmd, requested_by=ctx.principal.id, limits=deps.policy.limits)
        _, envelopes = await EXPORTS.execute(
            uow, ctx, stream_id=export_id, command=command, org_id=ctx.org_id
        )
        await enqueue(uow, ctx.org_id, export_id, envelopes[0].id)
        view = queries.export_view(await _row(uow, export_id))
        await uow.commit()
    return view


async def get_export(deps: Deps, ctx: RequestContext, q: api.ExportById) -> api.ExportView:
    async with deps.uow(ctx.org_id) as uow:
        row = await _row(uow, q.id)
    view = queries.export_view(row)
    if view.status == api.ExportStatus.READY and row["object_name"]:
        url = await deps.store.presign(row["object_name"], domain.file_name(q.id))
        if url is not None:
            view = msgspec.structs.replace(view, download_url=url)
    return view


async def list_exports(deps: Deps, ctx: RequestContext, q: api.ListExports) -> Page[api.ExportView]:
    async with deps.uow(ctx.org_id) as uow:
        return await list_page(uow.conn, queries.EXPORTS, q.query, queries.export_view)


async def delete_export(deps: Deps, ctx: RequestContext, cmd: api.DeleteExport) -> Empty:
    """Cancel a job that has not finished (its worker stops within its next progress
    check); delete a finished one and its archive."""
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as uow:
        await _row(uow, cmd.id)  # 404 before anything else, If-Match included
        state, _ = await EXPORTS.execute(
            uow,
            ctx,
            stream_id=cmd.id,
            command=domain.Cancel(by=ctx.principal.id),
            org_id=ctx.org_id,
            expected_version=cmd.expected_version,
        )
        await uow.commit()
    if state is not None and state.deleted:
        await remove_artifacts(deps.store, ctx.org_id, cmd.id, state.attempt)
    return Empty()


async def remove_artifacts(
    store: ArtifactStore, org_id: UUID, export_id: UUID, attempts: int
) -> None:
    """Every archive any attempt of the job may have left, by name (no listing of the
    bucket). Best effort: a failure is logged, the export is already gone."""
    try:
        for attempt in range(1, attempts + 1):
            await store.delete(domain.object_name(org_id, export_id, attempt))
    except Exception as exc:
        _log.warning("deleting the archives of export %s failed: %r", export_id, exc)


async def get_artifact(deps: Deps, ctx: RequestContext, q: api.ExportById) -> api.ArtifactLocation:
    async with deps.uow(ctx.org_id) as uow:
        row = await _row(uow, q.id)
    if (
        row["status"] != api.ExportStatus.READY
        or not row["object_name"]
        or (row["expires_at"] is not None and row["expires_at"] <= ids.now())
    ):
        raise NotFound("the export has no archive to download")
    return api.ArtifactLocation(
        id=q.id,
        bucket=deps.store.bucket,
        object_name=row["object_name"],
        size_bytes=row["size_bytes"],
        file_name=domain.file_name(q.id),
    )


HANDLERS: dict[Any, Any] = {
    api.CREATE_EXPORT: create_export,
    api.GET_EXPORT: get_export,
    api.LIST_EXPORTS: list_exports,
    api.DELETE_EXPORT: delete_export,
    api.GET_ARTIFACT: get_artifact,
}
