"""Annotation classes, annotations and an organization's readings settings (decision 61).

Classes have the five routes of a registry resource (``registry_routes``: create, list with
every collection convention, get with ``$select`` and ``ETag``, PATCH and DELETE with
``If-Match``). Annotations have them too, hand-written because their list also takes the
window ``from``/``to`` an annotation's range must overlap; a device's annotations are the
same list at ``/devices/{id}/annotations``. Settings are one object per organization:
``GET`` and ``PUT`` with ``If-Match``."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, Response, delete, get, patch, post, put
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, JSONBody, QueryParameter

from outpost_contracts.annotations import (
    CREATE_ANNOTATION,
    CREATE_ANNOTATION_CLASS,
    DELETE_ANNOTATION,
    DELETE_ANNOTATION_CLASS,
    GET_ANNOTATION,
    GET_ANNOTATION_CLASS,
    GET_READINGS_SETTINGS,
    LIST_ANNOTATION_CLASSES,
    QUERY_ANNOTATIONS,
    SET_READINGS_SETTINGS,
    UPDATE_ANNOTATION,
    UPDATE_ANNOTATION_CLASS,
    AnnotationClassPatch,
    AnnotationClassView,
    AnnotationPatch,
    AnnotationView,
    CreateAnnotation,
    CreateAnnotationClass,
    DeleteById,
    GetById,
    GetReadingsSettings,
    PutReadingsSettings,
    QueryAnnotations,
    ReadingsSettings,
    SetReadingsSettings,
    UpdateAnnotation,
    UpdateAnnotationClass,
)
from outpost_contracts.devices import Tag
from outpost_contracts.errors import validation_error
from outpost_gateway.app.ports import Backend
from outpost_gateway.domain.query import parse_list_request, parse_single_request
from outpost_gateway.domain.query.field_filters import normalise_value
from outpost_gateway.entrypoints.devices import IfMatch, parse_if_match
from outpost_gateway.entrypoints.params import DEFAULT, After, Include, Limit, Order
from outpost_gateway.entrypoints.registry import RegistryResource, registry_routes
from outpost_gateway.entrypoints.rendering import ListOf, render_list, render_one, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]
TIMESTAMP = "RFC 3339 UTC, or the truncated form 20161130T162512Z"
ANNOTATION = resource_of(AnnotationView, {"tags": resource_of(Tag)})
WINDOW = frozenset({"from", "to"})
ETAG = [ResponseHeader(name="ETag", description="The version", documentation_only=True)]

CLASS_ROUTES = registry_routes(
    RegistryResource(
        path="/api/v1/annotation-classes",
        one="annotation_class",
        many="annotation_classes",
        view=AnnotationClassView,
        create_body=CreateAnnotationClass,
        patch_body=AnnotationClassPatch,
        update_command=UpdateAnnotationClass,
        create=CREATE_ANNOTATION_CLASS,
        list=LIST_ANNOTATION_CLASSES,
        get=GET_ANNOTATION_CLASS,
        update=UPDATE_ANNOTATION_CLASS,
        delete=DELETE_ANNOTATION_CLASS,
        delete_summary="Delete an annotation class no annotation has",
    )
)


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def _instant(params: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in params if k == name]
    if len(values) > 1:
        raise validation_error(name, "may be given only once")
    return normalise_value(values[0]) if values else None


async def _list(request: Req, backend: Backend, ctx: Any, device_id: UUID | None) -> ListOf[Any]:
    """The annotations collection: the conventions, and ``from``/``to`` as the window the
    annotation's range overlaps (``from__gte`` and the like filter on its own ``from``)."""
    params = list(request.query_params.multi_items())
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


@post("/api/v1/annotations", tags=["annotations"])
async def create_annotation(
    data: JSONBody[CreateAnnotation], ctx: Ctx, backend: BackendDep
) -> AnnotationView:
    return await backend.call(CREATE_ANNOTATION, ctx, data)


@get("/api/v1/annotations", tags=["annotations"], description="Annotations." + WINDOW_DOC)
async def list_annotations(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    from_: Annotated[str | None, QueryParameter(name="from", description=TIMESTAMP)] = None,
    to: Annotated[str | None, QueryParameter(description=TIMESTAMP)] = None,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[AnnotationView]:
    return await _list(request, backend, ctx, None)


@get(
    "/api/v1/devices/{id:uuid}/annotations",
    tags=["annotations"],
    summary="A device's annotations",
    description="The device's annotations (404 if it is not this organization's)." + WINDOW_DOC,
)
async def list_device_annotations(
    id: FromPath[UUID],
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    from_: Annotated[str | None, QueryParameter(name="from", description=TIMESTAMP)] = None,
    to: Annotated[str | None, QueryParameter(description=TIMESTAMP)] = None,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[AnnotationView]:
    return await _list(request, backend, ctx, id)


@get("/api/v1/annotations/{id:uuid}", tags=["annotations"], response_headers=ETAG)
async def get_annotation(
    id: FromPath[UUID], request: Req, ctx: Ctx, backend: BackendDep
) -> Response[AnnotationView]:
    shape = parse_single_request(list(request.query_params.multi_items()), ANNOTATION)
    view = await backend.call(GET_ANNOTATION, ctx, GetById(id=id))
    return Response(render_one(view, shape), headers=_etag(view.version))


@patch("/api/v1/annotations/{id:uuid}", tags=["annotations"], response_headers=ETAG)
async def update_annotation(
    id: FromPath[UUID],
    data: JSONBody[AnnotationPatch],
    ctx: Ctx,
    backend: BackendDep,
    if_match: IfMatch = None,
) -> Response[AnnotationView]:
    cmd = UpdateAnnotation(id=id, patch=data, expected_version=parse_if_match(if_match))
    view = await backend.call(UPDATE_ANNOTATION, ctx, cmd)
    return Response(view, headers=_etag(view.version))


@delete("/api/v1/annotations/{id:uuid}", tags=["annotations"])
async def delete_annotation(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep, if_match: IfMatch = None
) -> None:
    cmd = DeleteById(id=id, expected_version=parse_if_match(if_match))
    await backend.call(DELETE_ANNOTATION, ctx, cmd)


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
    return Response(view, headers=_etag(view.version))


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
    return Response(view, headers=_etag(view.version))


ROUTES = [
    *CLASS_ROUTES,
    create_annotation,
    list_annotations,
    list_device_annotations,
    get_annotation,
    update_annotation,
    delete_annotation,
    get_readings_settings,
    put_readings_settings,
]
