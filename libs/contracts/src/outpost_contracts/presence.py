"""Devices: presence (online, last seen), desired and reported state, commands.

The events and the device-side messages are here; the requests and views of the HTTP routes
that read and change them are added beside them by the presence and commands work.

Device protocol (docs/api.md, "Device protocol"): commands arrive on the device's command subject
as ``CommandMessage``; the device answers on ``<commandSubject>.ack`` with ``CommandAck``,
or reports its state there with ``StateReport``. Desired-state changes arrive on the command
subject as a ``CommandMessage`` named ``STATE_COMMAND`` whose params are a ``DesiredState``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Event, Request, wire_tag
from outpost_contracts.rpc import Operation

SERVICE = "devices"
STATE_COMMAND = "outpost.state"  # the name a desired-state delivery carries on the command subject


class Protocol(enum.StrEnum):
    NATS = "NATS"
    MQTT = "MQTT"


# --- events -----------------------------------------------------------------------------


class DeviceConnected(
    Event, tag=wire_tag(SERVICE, "DeviceConnected", 1), kw_only=True, frozen=True
):
    """The device went from offline to online: its first live broker connection."""

    connected_at: datetime
    protocol: Protocol
    connection: str  # "<server id>/<client id>": the broker connection that is live


class DeviceDisconnected(
    Event, tag=wire_tag(SERVICE, "DeviceDisconnected", 1), kw_only=True, frozen=True
):
    """The device went from online to offline: its last live broker connection closed."""

    disconnected_at: datetime
    connection: str
    reason: str = ""


EVENT_TYPES: tuple[type[Event], ...] = (DeviceConnected, DeviceDisconnected)


# --- presence on the API ------------------------------------------------------------------


class GetDeviceHealth(Request, kw_only=True, frozen=True):
    id: UUID


class DeviceHealth(Contract, kw_only=True, frozen=True):
    """``GET /api/v1/devices/{id}/health``: the device's presence as the broker reports it.

    ``version`` (the ETag) counts presence changes; it is not the device's version."""

    device_id: UUID
    online: bool
    connections: int  # live broker connections of the device
    protocol: Protocol | None = None  # of its newest live connection
    last_seen_at: datetime | None = None
    last_connected_at: datetime | None = None
    last_disconnected_at: datetime | None = None
    version: int = 0
    object: str = "deviceHealth"


GET_DEVICE_HEALTH = Operation(SERVICE, "GetDeviceHealth", GetDeviceHealth, DeviceHealth)


# --- the device protocol ------------------------------------------------------------------


class CommandStatus(enum.StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


class CommandMessage(Contract, kw_only=True, frozen=True):
    """What a device receives on its command subject."""

    id: UUID
    name: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    expires_at: datetime | None = None


class AckStatus(enum.StrEnum):
    ACKNOWLEDGED = "ACKNOWLEDGED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class CommandAck(Contract, kw_only=True, frozen=True):
    """A device's answer to a command, on ``<commandSubject>.ack``."""

    id: UUID
    status: AckStatus
    result: Any = None


class ReportedState(Contract, kw_only=True, frozen=True):
    reported: dict[str, Any]


class StateReport(Contract, kw_only=True, frozen=True):
    """A device's report of its state, on ``<commandSubject>.ack`` (AWS IoT shadow's shape):
    ``{"state": {"reported": {...}}}``. Keys present replace the stored ones; ``null`` deletes."""

    state: ReportedState


class DesiredState(Contract, kw_only=True, frozen=True):
    """The params of a ``STATE_COMMAND``: the whole desired state, its version, and what of it
    differs from the last reported state."""

    version: int
    desired: dict[str, Any]
    delta: dict[str, Any]
