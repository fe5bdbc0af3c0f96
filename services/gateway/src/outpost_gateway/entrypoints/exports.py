"""Export routes (docs/api.md "Exports"; decision 65): create, list, get (a fresh signed
``downloadUrl`` on every GET of a READY export), cancel/delete, and the download itself,
which needs no Authorization header: the signed URL is the credential."""

from __future__ import annotations

import time
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Stream

from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import ServiceUnavailable
from outpost_contracts.exports import (
    CREATE_EXPORT,
    GET_ARTIFACT,
    GET_EXPORT,
    CreateExport,
    ExportById,
    ExportStatus,
    ExportView,
)
from outpost_gateway.domain.query import parse_single_request
from outpost_gateway.entrypoints.errors import request_id_of
from outpost_gateway.entrypoints.params import etag, etag_header
from outpost_gateway.entrypoints.rendering import render_one, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx, gateway_state

Req = Request[Any, Any, Any]
EXPORT = resource_of(ExportView)
EXPORT_ETAG = etag_header("The export's version")
DOWNLOAD_PATH = "/api/v1/exports/{id}/download"


def _with_link(request: Req, ctx: RequestContext, view: ExportView) -> ExportView:
    """A READY export's fresh link: the store's own (S3) or the gateway's signed one."""
    if view.status != ExportStatus.READY or view.download_url is not None:
        return view
    state = gateway_state(request)
    base = state.public_url or str(request.base_url).rstrip("/")
    query = state.downloads.query(view.id, ctx.org_id, time.time())
    return msgspec.structs.replace(
        view, download_url=f"{base}{DOWNLOAD_PATH.format(id=view.id)}?{query}"
    )


@post(
    "/api/v1/exports",
    tags=["exports"],
    summary="Request an export (201 PENDING); poll GET until READY",
    description=(
        "`scopeType` DEVICE, GROUP, SITE (with `scopeId`) or ORGANIZATION; `[from, to)` at most"
        " the deployment's maximum range (366 days by default); `includes` any of READINGS,"
        " ANNOTATIONS, ALERTS (the alerts opened in the range) and EVENTS (the timeline's"
        " entries in the range), READINGS by default; `format`"
        " CSV (default) or NDJSON. An organization has at most a few exports pending or"
        " running at once (409 `conflict` beyond). CSV members are safe to open in a"
        " spreadsheet: a text cell starting with `=`, `+`, `-`, `@`, a tab, CR, LF, NUL or"
        " `'` gets one leading `'` (drop the first character of a text cell starting with"
        " `'` to read the stored value); numbers are written as numbers; cells with a"
        " comma, quote, CR or LF are quoted (RFC 4180). NDJSON lines carry values as stored."
    ),
    response_headers=EXPORT_ETAG,
)
async def create_export(
    data: JSONBody[CreateExport], ctx: Ctx, backend: BackendDep
) -> Response[ExportView]:
    view = await backend.call(CREATE_EXPORT, ctx, data)
    return Response(view, status_code=201, headers=etag(view.version))


@get(
    "/api/v1/exports/{id:uuid}",
    tags=["exports"],
    summary="Get an export: RUNNING with progress, READY with a fresh `downloadUrl`",
    description=(
        "`downloadUrl` is signed afresh on every GET and expires after the gateway's"
        " download-link lifetime (15 min by default); it needs no Authorization header."
    ),
    response_headers=EXPORT_ETAG,
)
async def get_export(
    id: FromPath[UUID], request: Req, ctx: Ctx, backend: BackendDep
) -> Response[ExportView]:
    shape = parse_single_request(list(request.query_params.multi_items()), EXPORT)
    view = _with_link(request, ctx, await backend.call(GET_EXPORT, ctx, ExportById(id=id)))
    return Response(render_one(view, shape), headers=etag(view.version))


@get(
    "/api/v1/exports/{id:uuid}/download",
    tags=["exports"],
    summary="Download an export's archive through its signed link (no Authorization header)",
    description=(
        "The link from `downloadUrl`. Expired, tampered or another export's signature: 403"
        " `access_denied`; an export with no archive (expired, deleted): 404 `not_found`."
    ),
    media_type="application/zip",
)
async def download_export(
    id: FromPath[UUID],
    request: Req,
    org: Annotated[str | None, QueryParameter(description="The export's organization")] = None,
    expires: Annotated[str | None, QueryParameter(description="Expiry, epoch seconds")] = None,
    kid: Annotated[str | None, QueryParameter(description="The signing key's id")] = None,
    signature: Annotated[str | None, QueryParameter(description="HMAC-SHA256, base64url")] = None,
) -> Stream:
    state = gateway_state(request)
    org_id = state.downloads.verify(
        id, org=org, expires=expires, kid=kid, signature=signature, now=time.time()
    )
    ctx = RequestContext(
        request_id=request_id_of(request.scope),
        org_id=org_id,
        principal=Principal(kind=PrincipalKind.ANONYMOUS, id=id, org_id=org_id),
    )
    where = await state.backend.call(GET_ARTIFACT, ctx, ExportById(id=id))
    if state.artifacts is None:
        raise ServiceUnavailable("the object store is not available to this gateway")
    chunks = await state.artifacts.open(where.bucket, where.object_name)
    return Stream(
        chunks,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{where.file_name}"',
            "Content-Length": str(where.size_bytes),
            "Cache-Control": "no-store",
        },
    )


ROUTES = [create_export, get_export, download_export]
