"""Devices: commands to a device and its desired/reported state (docs/api.md, "Device protocol";
ADR 0056).

The device-side messages (``CommandMessage``, ``CommandAck``, ``StateReport``,
``DesiredState``) and ``CommandStatus`` are in ``outpost_contracts.presence``; the events,
requests and views of ``/devices/{id}/commands`` and ``/devices/{id}/state`` are here.

A command is an aggregate of its own (stream = the command's id); a device's desired state
is one too (stream = ``desired_state_stream(device id)``). Reported state is a fact the
device sends, kept in the read model and not an event (it is not a change by a principal
and would flood the audit log).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Event, Instant, Request, whole, wire_tag
from outpost_contracts.device_config import Source
from outpost_contracts.fleet import TargetType
from outpost_contracts.presence import CommandStatus
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.rpc import Operation

SERVICE = "devices"

CommandName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=whole(r"[A-Za-z0-9][A-Za-z0-9._:/-]*"))
]
TtlSeconds = Annotated[int, msgspec.Meta(ge=1, le=366 * 24 * 3600)]

# The size limit of a command's params, a result and a desired or reported state (JSON bytes).
MAX_DOCUMENT_BYTES = 16 * 1024

_STATE_NAMESPACE = UUID("6f1d3a52-5c1e-4f0b-9a63-0d2b8e7c4a10")


def desired_state_stream(device_id: UUID) -> UUID:
    """The stream id of a device's desired state (the device's own stream is its registry
    entry, whose version is the device's ETag)."""
    return uuid.uuid5(_STATE_NAMESPACE, str(device_id))


# --- events -----------------------------------------------------------------------------


class CommandCreated(Event, tag=wire_tag(SERVICE, "CommandCreated", 1), kw_only=True, frozen=True):
    device_id: UUID
    name: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    expires_at: datetime


class CommandSent(Event, tag=wire_tag(SERVICE, "CommandSent", 1), kw_only=True, frozen=True):
    """The broker held a subscription to the device's command subject when it was sent."""

    device_id: UUID


class CommandAcknowledged(
    Event, tag=wire_tag(SERVICE, "CommandAcknowledged", 1), kw_only=True, frozen=True
):
    device_id: UUID


class CommandSucceeded(
    Event, tag=wire_tag(SERVICE, "CommandSucceeded", 1), kw_only=True, frozen=True
):
    device_id: UUID
    result: Any = None


class CommandFailed(Event, tag=wire_tag(SERVICE, "CommandFailed", 1), kw_only=True, frozen=True):
    device_id: UUID
    result: Any = None


class CommandExpired(Event, tag=wire_tag(SERVICE, "CommandExpired", 1), kw_only=True, frozen=True):
    device_id: UUID


class FleetLayer(Contract, kw_only=True, frozen=True):
    """The fleet's part of a device's desired state (``SetFleetDesiredStates``, ADR 0091)."""

    document: dict[str, Any]
    sources: dict[str, Source] = msgspec.field(default_factory=dict)
    digest: str = ""


class DesiredStateChanged(
    Event, tag=wire_tag(SERVICE, "DesiredStateChanged", 1), kw_only=True, frozen=True
):
    """The device's whole desired state after the change (small: at most 16 KiB).

    Since ADR 0091 the desired state has two layers: ``desired`` is
    ``merge_patch(fleet.document, local)``. ``local`` is what users set through the API (a
    merge patch over the fleet's document: its ``null`` removes a fleet key on this device);
    ``fleet`` is there when the fleet's layer changed. Older events have neither: their
    ``desired`` was all local."""

    device_id: UUID
    desired: dict[str, Any]
    local: dict[str, Any] | None = None
    fleet: FleetLayer | None = None


EVENT_TYPES: tuple[type[Event], ...] = (
    CommandCreated,
    CommandSent,
    CommandAcknowledged,
    CommandSucceeded,
    CommandFailed,
    CommandExpired,
    DesiredStateChanged,
)


# --- requests ---------------------------------------------------------------------------


class CommandBody(Request, kw_only=True, frozen=True):
    """``POST /devices/{id}/commands``: ``expiresAt`` or ``ttlSeconds`` (not both); without
    either the command expires after the deployment's default, and never later than its
    maximum."""

    name: CommandName
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    expires_at: Instant | None = None
    ttl_seconds: TtlSeconds | None = None


class CreateCommand(Request, kw_only=True, frozen=True):
    device_id: UUID
    command: CommandBody


class GetCommand(Request, kw_only=True, frozen=True):
    device_id: UUID
    id: UUID


class ListCommands(Request, kw_only=True, frozen=True):
    device_id: UUID
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class GetDeviceState(Request, kw_only=True, frozen=True):
    device_id: UUID
    explain: bool = False  # ?explain=true: where each key of the desired state comes from


class DesiredStatePatch(Request, kw_only=True, frozen=True):
    """``PATCH /devices/{id}/state``: a JSON merge patch (RFC 7396) of the desired state
    (``null`` deletes a key); ``PUT`` replaces the desired state with ``desired``."""

    desired: dict[str, Any]


class ChangeDesiredState(Request, kw_only=True, frozen=True):
    device_id: UUID
    desired: dict[str, Any]
    replace: bool = False  # PUT replaces, PATCH merges
    expected_version: int | None = None  # from If-Match


# --- replies ----------------------------------------------------------------------------


class CommandView(Contract, kw_only=True, frozen=True):
    id: UUID
    device_id: UUID
    name: str
    params: dict[str, Any]
    status: CommandStatus
    created_at: datetime
    expires_at: datetime
    version: int
    sent_at: datetime | None = None
    acknowledged_at: datetime | None = None
    completed_at: datetime | None = None
    result: Any = None
    requested_by: str | None = None  # "<principal kind>:<principal id>"
    object: str = "command"


class KeySource(Contract, kw_only=True, frozen=True, omit_defaults=True):
    """Where one leaf of the desired state comes from (``?explain=true``): a desired-state
    binding of the fleet (``source`` "binding") or the device's own desired state, set
    through ``PATCH``/``PUT /devices/{id}/state`` (``source`` "device")."""

    source: str
    binding_id: UUID | None = None
    artefact_id: UUID | None = None
    artefact_version: int | None = None
    target_type: TargetType | None = None


class DeviceStateView(Contract, kw_only=True, frozen=True):
    device_id: UUID
    desired: dict[str, Any]
    reported: dict[str, Any]
    delta: dict[str, Any]
    version: int  # the desired state's version (the ETag); 0 before the first change
    desired_updated_at: datetime | None = None
    reported_updated_at: datetime | None = None
    # JSON Pointer of each leaf of ``desired`` -> its source; only with ``?explain=true``.
    explain: dict[str, KeySource] | None = None
    object: str = "deviceState"


CREATE_COMMAND = Operation(SERVICE, "CreateCommand", CreateCommand, CommandView)
GET_COMMAND = Operation(SERVICE, "GetCommand", GetCommand, CommandView)
LIST_COMMANDS = Operation(SERVICE, "ListCommands", ListCommands, Page[CommandView])
GET_DEVICE_STATE = Operation(SERVICE, "GetDeviceState", GetDeviceState, DeviceStateView)
CHANGE_DESIRED_STATE = Operation(SERVICE, "ChangeDesiredState", ChangeDesiredState, DeviceStateView)
