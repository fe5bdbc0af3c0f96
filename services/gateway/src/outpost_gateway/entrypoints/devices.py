"""Device registry routes."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, Response, get, post
from litestar.datastructures import ResponseHeader

from outpost_contracts.devices import (
    CREATE_DEVICE,
    GET_DEVICE,
    LIST_DEVICES,
    CreateDevice,
    DeviceView,
    GetDevice,
    ListDevices,
)
from outpost_contracts.envelope import RequestContext
from outpost_gateway.app.ports import Backend
from outpost_gateway.domain.query import parse_list_query
from outpost_gateway.entrypoints.params import DEFAULT, After, Include, Limit, Order
from outpost_gateway.entrypoints.rendering import ListOf, render_list

Req = Request[Any, Any, Any]


@post("/api/v1/devices", tags=["devices"])
async def create_device(data: CreateDevice, ctx: RequestContext, backend: Backend) -> DeviceView:
    return await backend.call(CREATE_DEVICE, ctx, data)


@get("/api/v1/devices", tags=["devices"])
async def list_devices(
    request: Req,
    ctx: RequestContext,
    backend: Backend,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[DeviceView]:
    query = parse_list_query(request.query_params.multi_items())
    page = await backend.call(LIST_DEVICES, ctx, ListDevices(query=query))
    return render_list(page, query)


@get(
    "/api/v1/devices/{id:uuid}",
    tags=["devices"],
    response_headers=[
        ResponseHeader(name="ETag", description="The device's version", documentation_only=True)
    ],
)
async def get_device(id: UUID, ctx: RequestContext, backend: Backend) -> Response[DeviceView]:
    view = await backend.call(GET_DEVICE, ctx, GetDevice(id=id))
    return Response(view, headers={"ETag": f'"{view.version}"'})


ROUTES = [create_device, list_devices, get_device]
