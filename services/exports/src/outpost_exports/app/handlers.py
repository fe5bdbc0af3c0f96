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
from outpost_contracts.base import Empty, Event
from outpost_contracts.envelope import PLATFORM_ORG_ID, RequestContext
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_contracts.query import Page
from outpost_exports.adapters.artifacts import ArtifactStore
from outpost_exports.adapters.sources import Sources
from outpost_exports.app.ports import ExportsTx, ExportsUnitOfWork, Stored
from outpost_exports.domain import exports as domain
from outpost_kit import ids
from outpost_kit.aggregate import Aggregate

_log = logging.getLogger(__name__)


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
    uow: ExportsUnitOfWork
    sources: Sources
    store: ArtifactStore
    policy: Policy = Policy()


def _tenant(ctx: RequestContext) -> None:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise ValidationFailed("exports belong to an organization: name it with X-Organization")


async def _found(tx: ExportsTx, export_id: UUID) -> Stored:
    found = await tx.find(export_id)
    if found is None:
        raise NotFound("no such export")
    return found


async def create_export(deps: Deps, ctx: RequestContext, cmd: api.CreateExport) -> api.ExportView:
    _tenant(ctx)
    domain.check_request(cmd, deps.policy.limits)
    await deps.sources.check_scope(ctx, cmd.scope_type, cmd.scope_id)
    export_id = ids.new_id()
    async with deps.uow(ctx.org_id) as tx:
        # One organization's creations one at a time, so the limit holds under races.
        await tx.lock_creations(ctx.org_id)
        active = await tx.count_active()
        if active >= deps.policy.max_concurrent:
            raise Conflict(
                f"the organization has {active} exports pending or running; at most"
                f" {deps.policy.max_concurrent} at once (wait for one to finish or cancel one)"
            )
        command = domain.Request(spec=cmd, requested_by=ctx.principal.id, limits=deps.policy.limits)
        _, envelopes = await EXPORTS.execute(
            tx, ctx, stream_id=export_id, command=command, org_id=ctx.org_id
        )
        await tx.enqueue(ctx.org_id, export_id, envelopes[0].id)
        view = (await _found(tx, export_id)).view
        await tx.commit()
    return view


async def get_export(deps: Deps, ctx: RequestContext, q: api.ExportById) -> api.ExportView:
    async with deps.uow(ctx.org_id) as tx:
        found = await _found(tx, q.id)
    view = found.view
    if view.status == api.ExportStatus.READY and found.object_name:
        url = await deps.store.presign(found.object_name, domain.file_name(q.id))
        if url is not None:
            view = msgspec.structs.replace(view, download_url=url)
    return view


async def list_exports(deps: Deps, ctx: RequestContext, q: api.ListExports) -> Page[api.ExportView]:
    async with deps.uow(ctx.org_id) as tx:
        return await tx.page(q.query)


async def delete_export(deps: Deps, ctx: RequestContext, cmd: api.DeleteExport) -> Empty:
    """Cancel a job that has not finished (its worker stops within its next progress
    check); delete a finished one and its archive."""
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as tx:
        await _found(tx, cmd.id)  # 404 before anything else, If-Match included
        state, _ = await EXPORTS.execute(
            tx,
            ctx,
            stream_id=cmd.id,
            command=domain.Cancel(by=ctx.principal.id),
            org_id=ctx.org_id,
            expected_version=cmd.expected_version,
        )
        await tx.commit()
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
    async with deps.uow(ctx.org_id) as tx:
        found = await _found(tx, q.id)
    view = found.view
    if (
        view.status != api.ExportStatus.READY
        or not found.object_name
        or (view.expires_at is not None and view.expires_at <= ids.now())
    ):
        raise NotFound("the export has no archive to download")
    return api.ArtifactLocation(
        id=q.id,
        bucket=deps.store.bucket,
        object_name=found.object_name,
        size_bytes=view.size_bytes or 0,  # set on every READY export
        file_name=domain.file_name(q.id),
    )


HANDLERS: dict[Any, Any] = {
    api.CREATE_EXPORT: create_export,
    api.GET_EXPORT: get_export,
    api.LIST_EXPORTS: list_exports,
    api.DELETE_EXPORT: delete_export,
    api.GET_ARTIFACT: get_artifact,
}
