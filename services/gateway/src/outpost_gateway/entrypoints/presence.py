"""Presence routes: a device's health as the broker reports it (ADR 0055),
with what readings' ingest saw of its telemetry numbering (decision 59): the gateway asks
both services at once and composes the answer; each keeps its own schema."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, Response, get
from litestar.params import FromPath

from outpost_contracts.errors import OutpostError
from outpost_contracts.presence import GET_DEVICE_HEALTH, DeviceHealth, GetDeviceHealth
from outpost_contracts.readings import GET_TELEMETRY_HEALTH, GetTelemetryHealth, TelemetryHealth
from outpost_gateway.domain.query import parse_single_request
from outpost_gateway.entrypoints.params import etag, etag_header
from outpost_gateway.entrypoints.rendering import render_one, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]
_log = logging.getLogger(__name__)


class DeviceHealthView(DeviceHealth, kw_only=True, frozen=True):
    """The devices service's ``DeviceHealth`` and readings' ``TelemetryHealth`` of one
    device. The telemetry fields are null when readings did not answer."""

    last_seq: int | None = None
    seq_gaps: int | None = None
    seq_resets: int | None = None
    quarantined: int | None = None


HEALTH = resource_of(DeviceHealthView)


async def _telemetry(backend: Any, ctx: Any, device_id: UUID) -> TelemetryHealth | None:
    try:
        health: TelemetryHealth = await backend.call(
            GET_TELEMETRY_HEALTH, ctx, GetTelemetryHealth(device_id=device_id)
        )
    except OutpostError as exc:  # presence still answers when readings does not
        _log.warning("telemetry health of %s unavailable: %s", device_id, exc)
        return None
    return health


@get(
    "/api/v1/devices/{id:uuid}/health",
    tags=["devices"],
    summary="A device's presence (online, connections, last seen) and telemetry numbering",
    description=(
        "`online` is true while the device holds at least one broker connection (NATS or"
        " MQTT); `lastSeenAt` also moves with its telemetry (written every few seconds)."
        " The ETag counts presence changes; it is not the device's version. `lastSeq`,"
        " `seqGaps` (telemetry `seq` numbers skipped, in all), `seqResets` (times the"
        " device started counting again) and `quarantined` (its refused readings) come from"
        " readings' ingest; they are null when that service did not answer in time."
    ),
    response_headers=etag_header("The device's presence version"),
)
async def get_device_health(
    id: FromPath[UUID],
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
) -> Response[DeviceHealthView]:
    shape = parse_single_request(list(request.query_params.multi_items()), HEALTH)
    presence, telemetry = await asyncio.gather(
        backend.call(GET_DEVICE_HEALTH, ctx, GetDeviceHealth(id=id)),
        _telemetry(backend, ctx, id),
    )
    fields = msgspec.structs.asdict(presence)
    if telemetry is not None:
        fields.update(
            last_seq=telemetry.last_seq,
            seq_gaps=telemetry.seq_gaps,
            seq_resets=telemetry.seq_resets,
            quarantined=telemetry.quarantined,
        )
    view = DeviceHealthView(**fields)
    return Response(render_one(view, shape), headers=etag(view.version))


ROUTES = [get_device_health]
