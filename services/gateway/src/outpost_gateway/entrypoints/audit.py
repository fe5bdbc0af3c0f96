"""The audit log: every service's event store, asked at once and merged."""

from __future__ import annotations

import asyncio

from litestar import get

from outpost_contracts.audit import LIST_AUDIT_LOG, AuditEntry, ListAuditLog
from outpost_gateway.domain.audit import merge_pages
from outpost_gateway.domain.query import parse_list_request
from outpost_gateway.entrypoints.params import Listing
from outpost_gateway.entrypoints.rendering import ListOf, render_list, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx


@get("/api/v1/audit-log", tags=["audit"])
async def list_audit_log(
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
) -> ListOf[AuditEntry]:
    """Every change in the organization (who, what, when, request id), from the event stores
    of every service, newest last by default; filter on ``type``, ``streamType``,
    ``streamId``, ``occurredAt``, ``requestId``, ``actorId``, ``actorKind``."""
    query, shape = parse_list_request(listing, AUDIT_ENTRY)
    body = ListAuditLog(query=query)
    pages = await asyncio.gather(*(backend.call(op, ctx, body) for op in LIST_AUDIT_LOG.values()))
    return render_list(merge_pages(pages, query), query, shape)


AUDIT_ENTRY = resource_of(AuditEntry)
ROUTES = [list_audit_log]
