"""Registry routes beside devices: sites, device groups (fleets), components and sensors.

Each resource has the same five routes as a device: create, list (API.md "Collections"),
get (``$select``, ``ETag``), PATCH (JSON merge patch, ``If-Match``) and DELETE."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, Response, delete, get, patch, post
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, JSONBody

from outpost_contracts.registry import (
    ADD_COMPONENT,
    CREATE_GROUP,
    CREATE_SITE,
    DECLARE_SENSOR,
    DELETE_GROUP,
    DELETE_SITE,
    GET_COMPONENT,
    GET_GROUP,
    GET_SENSOR,
    GET_SITE,
    LIST_COMPONENTS,
    LIST_GROUPS,
    LIST_SENSORS,
    LIST_SITES,
    REMOVE_COMPONENT,
    REMOVE_SENSOR,
    UPDATE_COMPONENT,
    UPDATE_GROUP,
    UPDATE_SENSOR,
    UPDATE_SITE,
    AddComponent,
    ComponentPatch,
    ComponentView,
    CreateDeviceGroup,
    CreateSite,
    DeclareSensor,
    Delete,
    DeviceGroupPatch,
    DeviceGroupView,
    Get,
    ListRegistry,
    SensorPatch,
    SensorView,
    SitePatch,
    SiteView,
    UpdateComponent,
    UpdateDeviceGroup,
    UpdateSensor,
    UpdateSite,
)
from outpost_gateway.domain.query import parse_list_request, parse_single_request
from outpost_gateway.entrypoints.devices import IfMatch, parse_if_match
from outpost_gateway.entrypoints.params import (
    DEFAULT,
    After,
    Include,
    Limit,
    Order,
)
from outpost_gateway.entrypoints.rendering import ListOf, render_list, render_one, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


# --- sites ---

SITE = resource_of(SiteView)
SITE_ETAG = [ResponseHeader(name="ETag", description="The site's version", documentation_only=True)]


@post("/api/v1/sites", tags=["sites"])
async def create_site(data: JSONBody[CreateSite], ctx: Ctx, backend: BackendDep) -> SiteView:
    return await backend.call(CREATE_SITE, ctx, data)


@get("/api/v1/sites", tags=["sites"])
async def list_sites(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[SiteView]:
    query, shape = parse_list_request(list(request.query_params.multi_items()), SITE)
    page = await backend.call(LIST_SITES, ctx, ListRegistry(query=query))
    return render_list(page, query, shape)


@get("/api/v1/sites/{id:uuid}", tags=["sites"], response_headers=SITE_ETAG)
async def get_site(
    id: FromPath[UUID],
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
) -> Response[SiteView]:
    shape = parse_single_request(list(request.query_params.multi_items()), SITE)
    view = await backend.call(GET_SITE, ctx, Get(id=id))
    return Response(render_one(view, shape), headers=_etag(view.version))


@patch("/api/v1/sites/{id:uuid}", tags=["sites"], response_headers=SITE_ETAG)
async def update_site(
    id: FromPath[UUID],
    data: JSONBody[SitePatch],
    ctx: Ctx,
    backend: BackendDep,
    if_match: IfMatch = None,
) -> Response[SiteView]:
    cmd = UpdateSite(id=id, patch=data, expected_version=parse_if_match(if_match))
    view = await backend.call(UPDATE_SITE, ctx, cmd)
    return Response(view, headers=_etag(view.version))


@delete("/api/v1/sites/{id:uuid}", tags=["sites"], summary="Delete a site no device uses")
async def delete_site(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep, if_match: IfMatch = None
) -> None:
    await backend.call(DELETE_SITE, ctx, Delete(id=id, expected_version=parse_if_match(if_match)))


# --- device-groups ---

DEVICE_GROUP = resource_of(DeviceGroupView)
DEVICE_GROUP_ETAG = [
    ResponseHeader(name="ETag", description="The device group's version", documentation_only=True)
]


@post("/api/v1/device-groups", tags=["device-groups"])
async def create_device_group(
    data: JSONBody[CreateDeviceGroup], ctx: Ctx, backend: BackendDep
) -> DeviceGroupView:
    return await backend.call(CREATE_GROUP, ctx, data)


@get("/api/v1/device-groups", tags=["device-groups"])
async def list_device_groups(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[DeviceGroupView]:
    query, shape = parse_list_request(list(request.query_params.multi_items()), DEVICE_GROUP)
    page = await backend.call(LIST_GROUPS, ctx, ListRegistry(query=query))
    return render_list(page, query, shape)


@get("/api/v1/device-groups/{id:uuid}", tags=["device-groups"], response_headers=DEVICE_GROUP_ETAG)
async def get_device_group(
    id: FromPath[UUID],
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
) -> Response[DeviceGroupView]:
    shape = parse_single_request(list(request.query_params.multi_items()), DEVICE_GROUP)
    view = await backend.call(GET_GROUP, ctx, Get(id=id))
    return Response(render_one(view, shape), headers=_etag(view.version))


@patch(
    "/api/v1/device-groups/{id:uuid}", tags=["device-groups"], response_headers=DEVICE_GROUP_ETAG
)
async def update_device_group(
    id: FromPath[UUID],
    data: JSONBody[DeviceGroupPatch],
    ctx: Ctx,
    backend: BackendDep,
    if_match: IfMatch = None,
) -> Response[DeviceGroupView]:
    cmd = UpdateDeviceGroup(id=id, patch=data, expected_version=parse_if_match(if_match))
    view = await backend.call(UPDATE_GROUP, ctx, cmd)
    return Response(view, headers=_etag(view.version))


@delete(
    "/api/v1/device-groups/{id:uuid}",
    tags=["device-groups"],
    summary="Delete a device group no device is in",
)
async def delete_device_group(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep, if_match: IfMatch = None
) -> None:
    await backend.call(DELETE_GROUP, ctx, Delete(id=id, expected_version=parse_if_match(if_match)))


# --- components ---

COMPONENT = resource_of(ComponentView)
COMPONENT_ETAG = [
    ResponseHeader(name="ETag", description="The component's version", documentation_only=True)
]


@post("/api/v1/components", tags=["components"])
async def create_component(
    data: JSONBody[AddComponent], ctx: Ctx, backend: BackendDep
) -> ComponentView:
    return await backend.call(ADD_COMPONENT, ctx, data)


@get("/api/v1/components", tags=["components"])
async def list_components(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[ComponentView]:
    query, shape = parse_list_request(list(request.query_params.multi_items()), COMPONENT)
    page = await backend.call(LIST_COMPONENTS, ctx, ListRegistry(query=query))
    return render_list(page, query, shape)


@get("/api/v1/components/{id:uuid}", tags=["components"], response_headers=COMPONENT_ETAG)
async def get_component(
    id: FromPath[UUID],
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
) -> Response[ComponentView]:
    shape = parse_single_request(list(request.query_params.multi_items()), COMPONENT)
    view = await backend.call(GET_COMPONENT, ctx, Get(id=id))
    return Response(render_one(view, shape), headers=_etag(view.version))


@patch("/api/v1/components/{id:uuid}", tags=["components"], response_headers=COMPONENT_ETAG)
async def update_component(
    id: FromPath[UUID],
    data: JSONBody[ComponentPatch],
    ctx: Ctx,
    backend: BackendDep,
    if_match: IfMatch = None,
) -> Response[ComponentView]:
    cmd = UpdateComponent(id=id, patch=data, expected_version=parse_if_match(if_match))
    view = await backend.call(UPDATE_COMPONENT, ctx, cmd)
    return Response(view, headers=_etag(view.version))


@delete("/api/v1/components/{id:uuid}", tags=["components"], summary="Remove a component")
async def delete_component(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep, if_match: IfMatch = None
) -> None:
    await backend.call(
        REMOVE_COMPONENT, ctx, Delete(id=id, expected_version=parse_if_match(if_match))
    )


# --- sensors ---

SENSOR = resource_of(SensorView)
SENSOR_ETAG = [
    ResponseHeader(name="ETag", description="The sensor's version", documentation_only=True)
]


@post("/api/v1/sensors", tags=["sensors"])
async def create_sensor(data: JSONBody[DeclareSensor], ctx: Ctx, backend: BackendDep) -> SensorView:
    return await backend.call(DECLARE_SENSOR, ctx, data)


@get("/api/v1/sensors", tags=["sensors"])
async def list_sensors(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[SensorView]:
    query, shape = parse_list_request(list(request.query_params.multi_items()), SENSOR)
    page = await backend.call(LIST_SENSORS, ctx, ListRegistry(query=query))
    return render_list(page, query, shape)


@get("/api/v1/sensors/{id:uuid}", tags=["sensors"], response_headers=SENSOR_ETAG)
async def get_sensor(
    id: FromPath[UUID],
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
) -> Response[SensorView]:
    shape = parse_single_request(list(request.query_params.multi_items()), SENSOR)
    view = await backend.call(GET_SENSOR, ctx, Get(id=id))
    return Response(render_one(view, shape), headers=_etag(view.version))


@patch("/api/v1/sensors/{id:uuid}", tags=["sensors"], response_headers=SENSOR_ETAG)
async def update_sensor(
    id: FromPath[UUID],
    data: JSONBody[SensorPatch],
    ctx: Ctx,
    backend: BackendDep,
    if_match: IfMatch = None,
) -> Response[SensorView]:
    cmd = UpdateSensor(id=id, patch=data, expected_version=parse_if_match(if_match))
    view = await backend.call(UPDATE_SENSOR, ctx, cmd)
    return Response(view, headers=_etag(view.version))


@delete("/api/v1/sensors/{id:uuid}", tags=["sensors"], summary="Remove a sensor")
async def delete_sensor(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep, if_match: IfMatch = None
) -> None:
    await backend.call(REMOVE_SENSOR, ctx, Delete(id=id, expected_version=parse_if_match(if_match)))


ROUTES = [
    create_site,
    list_sites,
    get_site,
    update_site,
    delete_site,
    create_device_group,
    list_device_groups,
    get_device_group,
    update_device_group,
    delete_device_group,
    create_component,
    list_components,
    get_component,
    update_component,
    delete_component,
    create_sensor,
    list_sensors,
    get_sensor,
    update_sensor,
    delete_sensor,
]
