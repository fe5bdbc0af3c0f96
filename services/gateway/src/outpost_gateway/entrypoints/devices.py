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
    LIST_DEVICES,
    CreateDevice,
    DeviceView,
    GetDevice,
    ListDevices,
)
from outpost_gateway.domain.query import parse_list_query
from outpost_gateway.entrypoints.params import DEFAULT, After, Include, Limit, Order
from outpost_gateway.entrypoints.rendering import ListOf, render_list
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]


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
) -> ListOf[DeviceView]:
    query = parse_list_query(list(request.query_params.multi_items()))
    page = await backend.call(LIST_DEVICES, ctx, ListDevices(query=query))
    return render_list(page, query)


@get(
    "/api/v1/devices/{id:uuid}",
    tags=["devices"],
    response_headers=[
        ResponseHeader(name="ETag", description="The device's version", documentation_only=True)
    ],
)
async def get_device(id: FromPath[UUID], ctx: Ctx, backend: BackendDep) -> Response[DeviceView]:
    view = await backend.call(GET_DEVICE, ctx, GetDevice(id=id))
    return Response(view, headers={"ETag": f'"{view.version}"'})


ROUTES = [create_device, list_devices, get_device]
