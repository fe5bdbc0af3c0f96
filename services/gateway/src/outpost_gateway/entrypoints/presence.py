"""Presence routes: a device's health as the broker reports it (docs/decisions.md, 55)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, Response, get
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath

from outpost_contracts.presence import GET_DEVICE_HEALTH, DeviceHealth, GetDeviceHealth
from outpost_gateway.domain.query import parse_single_request
from outpost_gateway.entrypoints.rendering import render_one, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]

HEALTH = resource_of(DeviceHealth)


@get(
    "/api/v1/devices/{id:uuid}/health",
    tags=["devices"],
    summary="A device's presence: online, its broker connections, last seen",
    description=(
        "`online` is true while the device holds at least one broker connection (NATS or"
        " MQTT); `lastSeenAt` also moves with its telemetry (written every few seconds)."
        " The ETag counts presence changes; it is not the device's version."
    ),
    response_headers=[
        ResponseHeader(
            name="ETag", description="The device's presence version", documentation_only=True
        )
    ],
)
async def get_device_health(
    id: FromPath[UUID],
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
) -> Response[DeviceHealth]:
    shape = parse_single_request(list(request.query_params.multi_items()), HEALTH)
    view = await backend.call(GET_DEVICE_HEALTH, ctx, GetDeviceHealth(id=id))
    return Response(render_one(view, shape), headers={"ETag": f'"{view.version}"'})


ROUTES = [get_device_health]
