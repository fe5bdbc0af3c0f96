"""Device registry routes."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, delete, get, patch, post
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, HeaderParameter, JSONBody

from outpost_contracts.devices import (
    BULK_DECOMMISSION_DEVICES,
    BULK_UPDATE_DEVICES,
    CREATE_DEVICE,
    DECOMMISSION_DEVICE,
    GET_DEVICE,
    GET_DEVICE_BY_NAME,
    LIST_DEVICES,
    MAX_BULK,
    UPDATE_DEVICE,
    BulkDecommissionDevices,
    BulkResult,
    BulkUpdateDevices,
    CreateDevice,
    DecommissionDevice,
    DevicePatch,
    DeviceView,
    GetDevice,
    GetDeviceByName,
    Tag,
    UpdateDevice,
)
from outpost_contracts.errors import validation_error
from outpost_contracts.query import Node
from outpost_gateway.domain.query import PAGING_PARAMS, parse_list_request, parse_single_request
from outpost_gateway.domain.query.keys import ID, parse_key
from outpost_gateway.entrypoints.params import (
    DEFAULT,
    After,
    Filter,
    Include,
    Limit,
    Order,
)
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, render_one, resource_of
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
) -> ListOf[DeviceView]:
    params = list(request.query_params.multi_items())
    return await fetch_list(params, backend, ctx, LIST_DEVICES, DEVICE)


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


IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description='`"<version>"` from the ETag: the change applies only to that version',
    ),
]
ExpectedCount = Annotated[
    str | None,
    HeaderParameter(
        name="X-Expected-Count",
        description=f"Required: how many devices the filter matches (at most {MAX_BULK})",
    ),
]
ETAG = [ResponseHeader(name="ETag", description="The device's version", documentation_only=True)]


def _is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` is also true of '²', which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def parse_if_match(value: str | None) -> int | None:
    """The version an ``If-Match`` names (``"3"``, ``W/"3"``); None for no header or ``*``."""
    if value is None or value.strip() == "*":
        return None
    text = value.strip().removeprefix("W/").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not _is_number(text):
        raise validation_error("If-Match", 'must be an ETag of this resource, e.g. "3"')
    return int(text)


def parse_expected_count(value: str | None) -> int:
    if value is None:
        raise validation_error(
            "X-Expected-Count", "a bulk change needs the number of devices it expects to change"
        )
    text = value.strip()
    if not _is_number(text) or int(text) > MAX_BULK:
        raise validation_error(
            "X-Expected-Count", f"must be a whole number from 0 to {MAX_BULK} (the bulk limit)"
        )
    return int(text)


def bulk_filter(request: Req) -> Node | None:
    """The filter of a bulk change: field filters and ``$filter`` only (no paging, order or
    shape: the change applies to every match)."""
    params = list(request.query_params.multi_items())
    for name, _ in params:
        if name in PAGING_PARAMS or (name.startswith("$") and name != "$filter"):
            raise validation_error(name, "not allowed on a bulk change (it applies to all matches)")
    query, _shape = parse_list_request(params)
    return query.filter


@patch("/api/v1/devices/{id:uuid}", tags=["devices"], response_headers=ETAG)
async def update_device(
    id: FromPath[UUID],
    data: JSONBody[DevicePatch],
    ctx: Ctx,
    backend: BackendDep,
    if_match: IfMatch = None,
) -> Response[DeviceView]:
    cmd = UpdateDevice(id=id, patch=data, expected_version=parse_if_match(if_match))
    view = await backend.call(UPDATE_DEVICE, ctx, cmd)
    return Response(view, headers={"ETag": f'"{view.version}"'})


@delete("/api/v1/devices/{id:uuid}", tags=["devices"], summary="Decommission a device")
async def decommission_device(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep, if_match: IfMatch = None
) -> None:
    cmd = DecommissionDevice(id=id, expected_version=parse_if_match(if_match))
    await backend.call(DECOMMISSION_DEVICE, ctx, cmd)


@patch("/api/v1/devices", tags=["devices"], summary="Change every device a filter matches")
async def bulk_update_devices(
    request: Req,
    data: JSONBody[DevicePatch],
    ctx: Ctx,
    backend: BackendDep,
    expected_count: ExpectedCount = None,
    filter_: Filter = None,
) -> BulkResult:
    cmd = BulkUpdateDevices(
        filter=bulk_filter(request),
        expected_count=parse_expected_count(expected_count),
        patch=data,
    )
    return await backend.call(BULK_UPDATE_DEVICES, ctx, cmd)


@delete(
    "/api/v1/devices",
    tags=["devices"],
    summary="Decommission every device a filter matches",
    status_code=200,
)
async def bulk_decommission_devices(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    expected_count: ExpectedCount = None,
    filter_: Filter = None,
) -> BulkResult:
    cmd = BulkDecommissionDevices(
        filter=bulk_filter(request), expected_count=parse_expected_count(expected_count)
    )
    return await backend.call(BULK_DECOMMISSION_DEVICES, ctx, cmd)


ROUTES = [
    create_device,
    list_devices,
    get_device,
    get_device_by_key,
    update_device,
    decommission_device,
    bulk_update_devices,
    bulk_decommission_devices,
]
