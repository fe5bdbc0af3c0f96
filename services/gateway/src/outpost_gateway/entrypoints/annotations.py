"""Annotations' lists and an organization's readings settings (decision 61).

Annotation classes and annotations are resource groups (``domain/resources.py``), but the
annotations' list is written here: it also takes the window ``from``/``to`` an annotation's
range must overlap; a device's annotations are the same list at
``/devices/{id}/annotations``. Settings are one object per organization: ``GET`` and ``PUT``
with ``If-Match``."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Response, get, put
from litestar.params import FromPath, JSONBody, QueryParameter

from outpost_contracts.annotations import (
    GET_READINGS_SETTINGS,
    QUERY_ANNOTATIONS,
    SET_READINGS_SETTINGS,
    AnnotationView,
    GetReadingsSettings,
    PutReadingsSettings,
    QueryAnnotations,
    ReadingsSettings,
    SetReadingsSettings,
)
from outpost_contracts.errors import validation_error
from outpost_gateway.app.ports import Backend
from outpost_gateway.domain.query import parse_list_request
from outpost_gateway.domain.query.field_filters import normalise_value
from outpost_gateway.domain.resources import group_at
from outpost_gateway.entrypoints.params import (
    IfMatch,
    Listing,
    QueryItems,
    etag,
    etag_header,
    parse_if_match,
)
from outpost_gateway.entrypoints.rendering import ListOf, render_list, shape_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

TIMESTAMP = "RFC 3339 UTC, or the truncated form 20161130T162512Z"
ANNOTATION = shape_of(group_at("/api/v1/annotations"))
WINDOW = frozenset({"from", "to"})
ETAG = etag_header("The version")


def _instant(params: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in params if k == name]
    if len(values) > 1:
        raise validation_error(name, "may be given only once")
    return normalise_value(values[0]) if values else None


async def _list(
    params: QueryItems, backend: Backend, ctx: Any, device_id: UUID | None
) -> ListOf[Any]:
    """The annotations collection: the conventions, and ``from``/``to`` as the window the
    annotation's range overlaps (``from__gte`` and the like filter on its own ``from``)."""
    query, shape = parse_list_request(params, ANNOTATION, ignore=WINDOW)
    window = {"from": _instant(params, "from"), "to": _instant(params, "to")}
    try:
        given = {k: v for k, v in window.items() if v is not None}
        body = msgspec.convert(given, QueryAnnotations, strict=False)
    except msgspec.ValidationError as exc:
        field = "from" if "from" in str(exc) else "to"
        raise validation_error(field, "must be an RFC 3339 timestamp with an offset") from None
    body = msgspec.structs.replace(body, query=query, device_id=device_id)
    page = await backend.call(QUERY_ANNOTATIONS, ctx, body)
    return render_list(page, query, shape)


WINDOW_DOC = (
    " `from` and `to` keep the annotations whose range `[from, to]` overlaps the window"
    " `[from, to)` (an instant annotation has `from` = `to`); field filters and OData filter"
    " on `id`, `deviceId`, `classId`, `sensor`, `from`, `to`, `text`, `createdAt`,"
    " `updatedAt` and `tags` (`tags/any(t: t/key eq 'shift')`)."
)


@get("/api/v1/annotations", tags=["annotations"], description="Annotations." + WINDOW_DOC)
async def list_annotations(
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
    from_: Annotated[str | None, QueryParameter(name="from", description=TIMESTAMP)] = None,
    to: Annotated[str | None, QueryParameter(description=TIMESTAMP)] = None,
) -> ListOf[AnnotationView]:
    return await _list(listing, backend, ctx, None)


@get(
    "/api/v1/devices/{id:uuid}/annotations",
    tags=["annotations"],
    summary="A device's annotations",
    description="The device's annotations (404 if it is not this organization's)." + WINDOW_DOC,
)
async def list_device_annotations(
    id: FromPath[UUID],
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
    from_: Annotated[str | None, QueryParameter(name="from", description=TIMESTAMP)] = None,
    to: Annotated[str | None, QueryParameter(description=TIMESTAMP)] = None,
) -> ListOf[AnnotationView]:
    return await _list(listing, backend, ctx, id)


@get(
    "/api/v1/readings/settings",
    tags=["readings"],
    response_headers=ETAG,
    summary="The organization's readings settings",
    description=(
        "`autoDeclareSensors`: a reading of a sensor the device has not declared declares it"
        " (else it is quarantined as `unknown_sensor`); `retentionDays`: how many days of"
        " readings are kept (`retentionDefault` true when it is the deployment's default)."
        " `ETag` is the settings' version, 0 before the first change."
    ),
)
async def get_readings_settings(ctx: Ctx, backend: BackendDep) -> Response[ReadingsSettings]:
    view = await backend.call(GET_READINGS_SETTINGS, ctx, GetReadingsSettings())
    return Response(view, headers=etag(view.version))


@put(
    "/api/v1/readings/settings",
    tags=["readings"],
    response_headers=ETAG,
    summary="Replace the organization's readings settings",
    description=(
        "Both fields are required; `retentionDays` 1-3650, or null for the deployment's"
        " default. Ingest applies `autoDeclareSensors` from its next batch, retention"
        " `retentionDays` at its next run (hourly by default)."
    ),
)
async def put_readings_settings(
    data: JSONBody[PutReadingsSettings], ctx: Ctx, backend: BackendDep, if_match: IfMatch = None
) -> Response[ReadingsSettings]:
    cmd = SetReadingsSettings(settings=data, expected_version=parse_if_match(if_match))
    view = await backend.call(SET_READINGS_SETTINGS, ctx, cmd)
    return Response(view, headers=etag(view.version))


ROUTES = [
    list_annotations,
    list_device_annotations,
    get_readings_settings,
    put_readings_settings,
]
