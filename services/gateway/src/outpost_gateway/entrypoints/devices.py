"""Device registry routes."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, JSONBody

from outpost_contracts.devices import (
    CREATE_DEVICE,
    GET_DEVICE,
    GET_DEVICE_BY_NAME,
    LIST_DEVICES,
    CreateDevice,
    DeviceView,
    GetDevice,
    GetDeviceByName,
    ListDevices,
    Tag,
)
from outpost_contracts.errors import validation_error
from outpost_gateway.domain.query import parse_list_request, parse_single_request
from outpost_gateway.domain.query.keys import ID, parse_key
from outpost_gateway.entrypoints.params import (
    DEFAULT,
    After,
    Count,
    Expand,
    Filter,
    Include,
    Limit,
    Order,
    OrderBy,
    Select,
    Skip,
    Top,
)
from outpost_gateway.entrypoints.rendering import ListOf, render_list, render_one, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]

# Tags are inline on every device: ``$expand=tags`` is accepted and changes nothing.
DEVICE = resource_of(DeviceView, {"tags": resource_of(Tag)})


@post("/api/v1/devices", tags=["devices"])
async def create_device(data: JSONBody[CreateDevice], ctx: Ctx, backend: BackendDep) -> DeviceView:
    return await backend.call(CREATE_DEVICE, ctx, data)


@get("/api/v1/devices", tags=["devices"])
async def list_devices(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
    filter_: Filter = None,
    select: Select = None,
    expand: Expand = None,
    orderby: OrderBy = None,
    top: Top = None,
    skip: Skip = None,
    count: Count = None,
) -> ListOf[DeviceView]:
    query, shape = parse_list_request(list(request.query_params.multi_items()), DEVICE)
    page = await backend.call(LIST_DEVICES, ctx, ListDevices(query=query))
    return render_list(page, query, shape)


@get(
    "/api/v1/devices/{id:uuid}",
    tags=["devices"],
    response_headers=[
        ResponseHeader(name="ETag", description="The device's version", documentation_only=True)
    ],
)
async def get_device(
    id: FromPath[UUID],
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    select: Select = None,
    expand: Expand = None,
) -> Response[DeviceView]:
    shape = parse_single_request(list(request.query_params.multi_items()), DEVICE)
    view = await backend.call(GET_DEVICE, ctx, GetDevice(id=id))
    return Response(render_one(view, shape), headers={"ETag": f'"{view.version}"'})


@get(
    "/api/v1/devices/by-key/{key:str}",
    tags=["devices"],
    summary="Get a device by key",
    description=(
        "Serves the OData key forms `/api/v1/devices(name='warehouse-gateway-01')` and"
        " `/api/v1/devices(<id>)`, which the gateway routes here; `key` is what is between"
        " the parentheses."
    ),
    response_headers=[
        ResponseHeader(name="ETag", description="The device's version", documentation_only=True)
    ],
)
async def get_device_by_key(
    key: FromPath[str],
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    select: Select = None,
    expand: Expand = None,
) -> Response[DeviceView]:
    shape = parse_single_request(list(request.query_params.multi_items()), DEVICE)
    name, value = parse_key(key, alternate=("name",))
    if name == ID:
        try:
            device_id = UUID(value)
        except ValueError:
            raise validation_error("key", f"'{value}' is not a device id") from None
        view = await backend.call(GET_DEVICE, ctx, GetDevice(id=device_id))
    else:
        view = await backend.call(GET_DEVICE_BY_NAME, ctx, GetDeviceByName(name=value))
    return Response(render_one(view, shape), headers={"ETag": f'"{view.version}"'})


ROUTES = [create_device, list_devices, get_device, get_device_by_key]
