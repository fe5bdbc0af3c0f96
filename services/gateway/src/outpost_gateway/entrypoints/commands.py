"""A device's commands and desired/reported state (docs/api.md, "Device protocol"; decision 56):
``/devices/{id}/commands`` (create, list, get) and ``/devices/{id}/state`` (get; PATCH merges
into the desired state, PUT replaces it; both honour ``If-Match``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, Response, get, patch, post, put
from litestar.params import FromPath, JSONBody

from outpost_contracts.commands import (
    CHANGE_DESIRED_STATE,
    CREATE_COMMAND,
    GET_COMMAND,
    GET_DEVICE_STATE,
    LIST_COMMANDS,
    ChangeDesiredState,
    CommandBody,
    CommandView,
    CreateCommand,
    DesiredStatePatch,
    DeviceStateView,
    GetCommand,
    GetDeviceState,
)
from outpost_gateway.domain.query import parse_single_request
from outpost_gateway.entrypoints.params import (
    Explain,
    IfMatch,
    Listing,
    etag,
    etag_header,
    parse_if_match,
)
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, render_one, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]

COMMAND = resource_of(CommandView)
STATE_ETAG = etag_header("The desired state's version")
COMMAND_ETAG = etag_header("The command's version")
_LIFECYCLE = (
    "Status PENDING → SENT (offered while the device held its command subject) →"
    " ACKNOWLEDGED → SUCCEEDED | FAILED (the device's acks), or EXPIRED once `expiresAt` has"
    " passed without a final status. A command for an offline device waits PENDING and is"
    " delivered when the device connects. Delivery is at least once: devices dedupe by `id`."
)


@post(
    "/api/v1/devices/{id:uuid}/commands",
    tags=["commands"],
    summary="Send a command to a device",
    description=(
        "`expiresAt` or `ttlSeconds` (not both); without either the deployment's default"
        " expiry applies, and neither may exceed its maximum. A decommissioned device is 409"
        f" `conflict`. {_LIFECYCLE}"
    ),
)
async def create_command(
    id: FromPath[UUID], data: JSONBody[CommandBody], ctx: Ctx, backend: BackendDep
) -> CommandView:
    return await backend.call(CREATE_COMMAND, ctx, CreateCommand(device_id=id, command=data))


@get("/api/v1/devices/{id:uuid}/commands", tags=["commands"], description=_LIFECYCLE)
async def list_commands(
    id: FromPath[UUID],
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
) -> ListOf[CommandView]:
    return await fetch_list(listing, backend, ctx, LIST_COMMANDS, COMMAND, device_id=id)


@get(
    "/api/v1/devices/{id:uuid}/commands/{command_id:uuid}",
    tags=["commands"],
    response_headers=COMMAND_ETAG,
)
async def get_command(
    id: FromPath[UUID], command_id: FromPath[UUID], request: Req, ctx: Ctx, backend: BackendDep
) -> Response[CommandView]:
    shape = parse_single_request(list(request.query_params.multi_items()), COMMAND)
    view = await backend.call(GET_COMMAND, ctx, GetCommand(device_id=id, id=command_id))
    return Response(render_one(view, shape), headers=etag(view.version))


def _state(view: DeviceStateView) -> Response[DeviceStateView]:
    return Response(view, headers=etag(view.version))


@get(
    "/api/v1/devices/{id:uuid}/state",
    tags=["commands"],
    summary="A device's desired and reported state, and the delta between them",
    description=(
        "The desired state is the fleet's document (the desired-state bindings that apply"
        " to the device, merged) with what was set through PATCH/PUT on this route merged"
        " over it (ADR 0091). `?explain=true` adds `explain`: for each leaf of `desired`"
        " (a JSON Pointer), the binding that set it (`source` `binding`, with `bindingId`,"
        " `artefactId`, `artefactVersion`, `targetType`) or `source` `device` for a key set"
        " on the device itself."
    ),
    response_headers=STATE_ETAG,
)
async def get_device_state(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep, explain: Explain = False
) -> Response[DeviceStateView]:
    query = GetDeviceState(device_id=id, explain=explain)
    return _state(await backend.call(GET_DEVICE_STATE, ctx, query))


@patch(
    "/api/v1/devices/{id:uuid}/state",
    tags=["commands"],
    summary="Change a device's desired state (JSON merge patch)",
    description=(
        "`desired` is merged into the desired state as an RFC 7396 JSON merge patch (`null`"
        " deletes a key). The device receives the new desired state and its delta on its"
        " command subject (a command named `outpost.state`). `If-Match` names the version"
        " the change applies to (412 otherwise)."
    ),
    response_headers=STATE_ETAG,
)
async def patch_device_state(
    id: FromPath[UUID],
    data: JSONBody[DesiredStatePatch],
    ctx: Ctx,
    backend: BackendDep,
    if_match: IfMatch = None,
) -> Response[DeviceStateView]:
    cmd = ChangeDesiredState(
        device_id=id, desired=data.desired, expected_version=parse_if_match(if_match)
    )
    return _state(await backend.call(CHANGE_DESIRED_STATE, ctx, cmd))


@put(
    "/api/v1/devices/{id:uuid}/state",
    tags=["commands"],
    summary="Replace a device's desired state",
    description="`desired` replaces the desired state; otherwise as PATCH.",
    response_headers=STATE_ETAG,
)
async def put_device_state(
    id: FromPath[UUID],
    data: JSONBody[DesiredStatePatch],
    ctx: Ctx,
    backend: BackendDep,
    if_match: IfMatch = None,
) -> Response[DeviceStateView]:
    cmd = ChangeDesiredState(
        device_id=id,
        desired=data.desired,
        replace=True,
        expected_version=parse_if_match(if_match),
    )
    return _state(await backend.call(CHANGE_DESIRED_STATE, ctx, cmd))


ROUTES = [
    create_command,
    list_commands,
    get_command,
    get_device_state,
    patch_device_state,
    put_device_state,
]
