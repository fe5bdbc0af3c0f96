"""Devices: the registry (register, get, list, update, decommission, guarded bulk changes)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Empty, Event, Request, whole, wire_tag
from outpost_contracts.query import ListQuery, Node, Page
from outpost_contracts.rpc import Operation

SERVICE = "devices"

DeviceName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=whole(r"[A-Za-z0-9][A-Za-z0-9._:-]*"))
]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class DeviceStatus(enum.StrEnum):
    REGISTERED = "REGISTERED"
    PROVISIONED = "PROVISIONED"
    ACTIVE = "ACTIVE"
    DECOMMISSIONED = "DECOMMISSIONED"


class Tag(Contract, kw_only=True, frozen=True):
    key: ShortText
    value: Annotated[str, msgspec.Meta(max_length=256)] = ""


# --- events -----------------------------------------------------------------------------


class DeviceRegistered(
    Event, tag=wire_tag(SERVICE, "DeviceRegistered", 1), kw_only=True, frozen=True
):
    name: str
    device_type: str | None = None
    site_id: UUID | None = None
    group_id: UUID | None = None
    tags: list[Tag] = msgspec.field(default_factory=list)
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    profile_id: UUID | None = None  # its device profile (fleet, issue 21)


class DeviceUpdated(Event, tag=wire_tag(SERVICE, "DeviceUpdated", 1), kw_only=True, frozen=True):
    """Some of a device's descriptive fields changed. ``changed`` names them (camelCase, as
    in the API); each named field carries its new value (``None`` clears it), the others are
    to be ignored."""

    changed: list[str]
    name: str | None = None
    device_type: str | None = None
    site_id: UUID | None = None
    group_id: UUID | None = None
    tags: list[Tag] = msgspec.field(default_factory=list)
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    profile_id: UUID | None = None  # when ``changed`` names ``profileId``


class DeviceActivated(
    Event, tag=wire_tag(SERVICE, "DeviceActivated", 1), kw_only=True, frozen=True
):
    """The provisioned device connected to the broker for the first time: ACTIVE from now
    on (until decommissioned)."""

    connected_at: datetime


class DeviceDecommissioned(
    Event, tag=wire_tag(SERVICE, "DeviceDecommissioned", 1), kw_only=True, frozen=True
):
    """The device is retired for good: its status is DECOMMISSIONED from now on."""


# --- requests ---------------------------------------------------------------------------


class CreateDevice(Request, kw_only=True, frozen=True):
    name: DeviceName
    device_type: ShortText | None = None
    site_id: UUID | None = None
    group_id: UUID | None = None
    tags: Annotated[list[Tag], msgspec.Meta(max_length=64)] = msgspec.field(default_factory=list)
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    profile_id: UUID | None = None  # created with what the device profile lists (ADR 0091)


class DevicePatch(Request, kw_only=True, frozen=True):
    """A JSON merge patch (RFC 7396) of a device's descriptive fields: an absent field is left
    as it is, ``null`` clears it, ``attributes`` merges key by key (``null`` deletes a key) and
    ``tags`` is replaced as a whole. Any other field (``status``, ``id``, ``version``,
    ``orgId``, ``createdAt``...) is a ``validation_error``."""

    name: DeviceName | msgspec.UnsetType = msgspec.UNSET
    device_type: ShortText | msgspec.UnsetType | None = msgspec.UNSET
    site_id: UUID | msgspec.UnsetType | None = msgspec.UNSET
    group_id: UUID | msgspec.UnsetType | None = msgspec.UNSET
    tags: Annotated[list[Tag], msgspec.Meta(max_length=64)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    attributes: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    # The device profile (fleet): setting one gives the device the components and sensors
    # the profile lists and it lacks; ``null`` clears it and keeps what the device has.
    profile_id: UUID | msgspec.UnsetType | None = msgspec.UNSET


class UpdateDevice(Request, kw_only=True, frozen=True):
    id: UUID
    patch: DevicePatch
    expected_version: int | None = None  # from If-Match


class DecommissionDevice(Request, kw_only=True, frozen=True):
    id: UUID
    expected_version: int | None = None  # from If-Match


MAX_BULK = 1000


class BulkUpdateDevices(Request, kw_only=True, frozen=True):
    """``PATCH /devices?<filter>``: the patch applies to every matching device, in one
    transaction, only when exactly ``expected_count`` devices match (X-Expected-Count)."""

    filter: Node | None
    expected_count: Annotated[int, msgspec.Meta(ge=0, le=MAX_BULK)]
    patch: DevicePatch


class BulkDecommissionDevices(Request, kw_only=True, frozen=True):
    """``DELETE /devices?<filter>``, guarded like ``BulkUpdateDevices``."""

    filter: Node | None
    expected_count: Annotated[int, msgspec.Meta(ge=0, le=MAX_BULK)]


class GetDevice(Request, kw_only=True, frozen=True):
    id: UUID


class GetDeviceByName(Request, kw_only=True, frozen=True):
    """The alternate key ``/devices(name='…')``: device names are unique in an organization."""

    name: str


class ListDevices(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


# --- replies ----------------------------------------------------------------------------


class DeviceView(Contract, kw_only=True, frozen=True):
    id: UUID
    name: str
    status: DeviceStatus
    created_at: datetime
    updated_at: datetime
    version: int
    device_type: str | None = None
    site_id: UUID | None = None
    group_id: UUID | None = None
    tags: list[Tag] = msgspec.field(default_factory=list)
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    profile_id: UUID | None = None  # its device profile (fleet, ADR 0091)
    # Presence (ADR 0055): not part of the version/ETag.
    online: bool = False
    last_seen_at: datetime | None = None
    last_connected_at: datetime | None = None
    last_disconnected_at: datetime | None = None
    object: str = "device"


class BulkResult(Contract, kw_only=True, frozen=True):
    matched: int
    changed: int


CREATE_DEVICE = Operation(SERVICE, "CreateDevice", CreateDevice, DeviceView)
GET_DEVICE = Operation(SERVICE, "GetDevice", GetDevice, DeviceView)
GET_DEVICE_BY_NAME = Operation(SERVICE, "GetDeviceByName", GetDeviceByName, DeviceView)
LIST_DEVICES = Operation(SERVICE, "ListDevices", ListDevices, Page[DeviceView])
UPDATE_DEVICE = Operation(SERVICE, "UpdateDevice", UpdateDevice, DeviceView)
DECOMMISSION_DEVICE = Operation(SERVICE, "DecommissionDevice", DecommissionDevice, Empty)
BULK_UPDATE_DEVICES = Operation(SERVICE, "BulkUpdateDevices", BulkUpdateDevices, BulkResult)
BULK_DECOMMISSION_DEVICES = Operation(
    SERVICE, "BulkDecommissionDevices", BulkDecommissionDevices, BulkResult
)
