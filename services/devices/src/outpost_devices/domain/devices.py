"""The device aggregate as a decider (registration now; provisioning and the rest of the
lifecycle arrive with their issue)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.devices import CreateDevice, DeviceRegistered, DeviceStatus
from outpost_contracts.errors import Conflict, validation_error

STREAM_TYPE = "device"
MAX_ATTRIBUTES_BYTES = 16_384


class Device(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    status: DeviceStatus
    version: int


def decide(state: Device | None, command: CreateDevice, now: datetime) -> list[Event]:
    if state is not None:
        raise Conflict("the device already exists")
    keys = [t.key for t in command.tags]
    if len(keys) != len(set(keys)):
        raise validation_error("tags", "each tag key may appear once")
    if len(msgspec.json.encode(command.attributes)) > MAX_ATTRIBUTES_BYTES:
        raise validation_error("attributes", f"larger than {MAX_ATTRIBUTES_BYTES} bytes")
    return [
        DeviceRegistered(
            name=command.name,
            device_type=command.device_type,
            site_id=command.site_id,
            group_id=command.group_id,
            tags=list(command.tags),
            attributes=dict(command.attributes),
        )
    ]


def evolve(state: Device | None, event: Event, stream_id: UUID) -> Device | None:
    if isinstance(event, DeviceRegistered):
        return Device(id=stream_id, name=event.name, status=DeviceStatus.REGISTERED, version=1)
    assert state is not None, "a device's first event registers it"
    return msgspec.structs.replace(state, version=state.version + 1)
