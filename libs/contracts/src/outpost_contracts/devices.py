"""Devices: the registry (walking skeleton: register, get, list)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Event, Request, wire_tag
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.rpc import Operation

SERVICE = "devices"

DeviceName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
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


# --- requests ---------------------------------------------------------------------------


class CreateDevice(Request, kw_only=True, frozen=True):
    name: DeviceName
    device_type: ShortText | None = None
    site_id: UUID | None = None
    group_id: UUID | None = None
    tags: Annotated[list[Tag], msgspec.Meta(max_length=64)] = msgspec.field(default_factory=list)
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)


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
    object: str = "device"


CREATE_DEVICE = Operation(SERVICE, "CreateDevice", CreateDevice, DeviceView)
GET_DEVICE = Operation(SERVICE, "GetDevice", GetDevice, DeviceView)
GET_DEVICE_BY_NAME = Operation(SERVICE, "GetDeviceByName", GetDeviceByName, DeviceView)
LIST_DEVICES = Operation(SERVICE, "ListDevices", ListDevices, Page[DeviceView])
