"""The device routes beyond the five of the devices' resource group (``domain/resources.py``):
a device by key (``/devices(name='…')``) and the guarded bulk change and decommission."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, delete, get, patch
from litestar.params import FromPath, HeaderParameter, JSONBody

from outpost_contracts.devices import (
    BULK_DECOMMISSION_DEVICES,
    BULK_UPDATE_DEVICES,
    GET_DEVICE,
    GET_DEVICE_BY_NAME,
    MAX_BULK,
    BulkDecommissionDevices,
    BulkResult,
    BulkUpdateDevices,
    DevicePatch,
    DeviceView,
    GetDevice,
    GetDeviceByName,
)
from outpost_contracts.errors import validation_error
from outpost_contracts.query import Node
from outpost_gateway.domain.query import PAGING_PARAMS, parse_list_request, parse_single_request
from outpost_gateway.domain.query.keys import ID, parse_key
from outpost_gateway.domain.resources import group_at
from outpost_gateway.entrypoints.params import Filter, etag, etag_header, is_number
from outpost_gateway.entrypoints.params import parse_if_match as parse_if_match  # its old home
from outpost_gateway.entrypoints.rendering import render_one, shape_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]

DEVICE = shape_of(group_at("/api/v1/devices"))


@get(
    "/api/v1/devices/by-key/{key:str}",
    tags=["devices"],
    summary="Get a device by key",
    description=(
        "Serves the OData key forms `/api/v1/devices(name='warehouse-gateway-01')` and"
        " `/api/v1/devices(<id>)`, which the gateway routes here; `key` is what is between"
        " the parentheses."
    ),
    response_headers=etag_header("The device's version"),
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
    return Response(render_one(view, shape), headers=etag(view.version))


ExpectedCount = Annotated[
    str | None,
    HeaderParameter(
        name="X-Expected-Count",
        description=f"Required: how many devices the filter matches (at most {MAX_BULK})",
    ),
]


def parse_expected_count(value: str | None) -> int:
    if value is None:
        raise validation_error(
            "X-Expected-Count", "a bulk change needs the number of devices it expects to change"
        )
    text = value.strip()
    if not is_number(text) or int(text) > MAX_BULK:
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
    get_device_by_key,
    bulk_update_devices,
    bulk_decommission_devices,
]
