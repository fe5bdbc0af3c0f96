"""The device registry beside devices: sites, device groups (fleets), and each device's
components and sensors. Owned by the devices service; events go to the DEVICES stream."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Empty, Event, Request, whole, wire_tag
from outpost_contracts.devices import SERVICE, ShortText
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.rpc import Operation

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
LongText = Annotated[str, msgspec.Meta(max_length=1024)]
TimeZone = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=whole(r"[A-Za-z][A-Za-z0-9_+\-/]*"))
]
SensorKey = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=whole(r"[A-Za-z0-9][A-Za-z0-9._:-]*"))
]
Attributes = dict[str, Any]


class Location(Contract, kw_only=True, frozen=True):
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)]


class ValueType(enum.StrEnum):
    NUMBER = "NUMBER"
    BOOLEAN = "BOOLEAN"
    STRING = "STRING"


class ValidRange(Contract, kw_only=True, frozen=True):
    """Readings of a NUMBER sensor outside ``[min, max]`` are invalid; ``min < max``."""

    min: float
    max: float


# --- events -----------------------------------------------------------------------------
# ``…Updated`` events name their changed fields in ``changed`` (camelCase, as in the API);
# each named field carries its new value (``None`` clears it), the others are to be ignored.


class SiteCreated(Event, tag=wire_tag(SERVICE, "SiteCreated", 1), kw_only=True, frozen=True):
    name: str
    address: str | None = None
    location: Location | None = None
    timezone: str | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)


class SiteUpdated(Event, tag=wire_tag(SERVICE, "SiteUpdated", 1), kw_only=True, frozen=True):
    changed: list[str]
    name: str | None = None
    address: str | None = None
    location: Location | None = None
    timezone: str | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)


class SiteDeleted(Event, tag=wire_tag(SERVICE, "SiteDeleted", 1), kw_only=True, frozen=True):
    """The site is gone; no device referred to it when it was deleted."""


class DeviceGroupCreated(
    Event, tag=wire_tag(SERVICE, "DeviceGroupCreated", 1), kw_only=True, frozen=True
):
    name: str
    description: str | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)


class DeviceGroupUpdated(
    Event, tag=wire_tag(SERVICE, "DeviceGroupUpdated", 1), kw_only=True, frozen=True
):
    changed: list[str]
    name: str | None = None
    description: str | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)


class DeviceGroupDeleted(
    Event, tag=wire_tag(SERVICE, "DeviceGroupDeleted", 1), kw_only=True, frozen=True
):
    """The group is gone; no device was in it when it was deleted."""


class ComponentAdded(Event, tag=wire_tag(SERVICE, "ComponentAdded", 1), kw_only=True, frozen=True):
    device_id: UUID
    name: str
    kind: str | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)


class ComponentUpdated(
    Event, tag=wire_tag(SERVICE, "ComponentUpdated", 1), kw_only=True, frozen=True
):
    device_id: UUID
    changed: list[str]
    name: str | None = None
    kind: str | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)


class ComponentRemoved(
    Event, tag=wire_tag(SERVICE, "ComponentRemoved", 1), kw_only=True, frozen=True
):
    device_id: UUID


class SensorDeclared(Event, tag=wire_tag(SERVICE, "SensorDeclared", 1), kw_only=True, frozen=True):
    """A device has a sensor ``key`` (the ``sensor`` of its readings)."""

    device_id: UUID
    key: str
    value_type: ValueType
    unit: str | None = None
    valid_range: ValidRange | None = None


class SensorUpdated(Event, tag=wire_tag(SERVICE, "SensorUpdated", 1), kw_only=True, frozen=True):
    """``device_id`` and ``key`` are repeated so a consumer needs no state to apply it."""

    device_id: UUID
    key: str
    changed: list[str]
    unit: str | None = None
    value_type: ValueType | None = None
    valid_range: ValidRange | None = None


class SensorRemoved(Event, tag=wire_tag(SERVICE, "SensorRemoved", 1), kw_only=True, frozen=True):
    device_id: UUID
    key: str


EVENT_TYPES: tuple[type[Event], ...] = (
    SiteCreated,
    SiteUpdated,
    SiteDeleted,
    DeviceGroupCreated,
    DeviceGroupUpdated,
    DeviceGroupDeleted,
    ComponentAdded,
    ComponentUpdated,
    ComponentRemoved,
    SensorDeclared,
    SensorUpdated,
    SensorRemoved,
)

# --- requests ---------------------------------------------------------------------------
# Patches are JSON merge patches (RFC 7396): an absent field is left as it is, ``null``
# clears it, ``attributes`` merges key by key (``null`` deletes a key).


class CreateSite(Request, kw_only=True, frozen=True):
    name: Name
    address: LongText | None = None
    location: Location | None = None
    timezone: TimeZone | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)


class SitePatch(Request, kw_only=True, frozen=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    address: LongText | msgspec.UnsetType | None = msgspec.UNSET
    location: Location | msgspec.UnsetType | None = msgspec.UNSET
    timezone: TimeZone | msgspec.UnsetType | None = msgspec.UNSET
    attributes: Attributes | msgspec.UnsetType | None = msgspec.UNSET


class CreateDeviceGroup(Request, kw_only=True, frozen=True):
    name: Name
    description: LongText | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)


class DeviceGroupPatch(Request, kw_only=True, frozen=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: LongText | msgspec.UnsetType | None = msgspec.UNSET
    attributes: Attributes | msgspec.UnsetType | None = msgspec.UNSET


class AddComponent(Request, kw_only=True, frozen=True):
    device_id: UUID
    name: Name
    kind: ShortText | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)


class ComponentPatch(Request, kw_only=True, frozen=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    kind: ShortText | msgspec.UnsetType | None = msgspec.UNSET
    attributes: Attributes | msgspec.UnsetType | None = msgspec.UNSET


class DeclareSensor(Request, kw_only=True, frozen=True):
    device_id: UUID
    key: SensorKey
    value_type: ValueType = ValueType.NUMBER
    unit: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] | None = None
    valid_range: ValidRange | None = None


class SensorPatch(Request, kw_only=True, frozen=True):
    """The key and device of a sensor are its identity: they do not change."""

    unit: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    value_type: ValueType | msgspec.UnsetType = msgspec.UNSET
    valid_range: ValidRange | msgspec.UnsetType | None = msgspec.UNSET


class Update(Request, kw_only=True, frozen=True):
    id: UUID
    expected_version: int | None = None  # from If-Match


class UpdateSite(Update, kw_only=True, frozen=True):
    patch: SitePatch


class UpdateDeviceGroup(Update, kw_only=True, frozen=True):
    patch: DeviceGroupPatch


class UpdateComponent(Update, kw_only=True, frozen=True):
    patch: ComponentPatch


class UpdateSensor(Update, kw_only=True, frozen=True):
    patch: SensorPatch


class Delete(Request, kw_only=True, frozen=True):
    """DELETE of one registry resource (a site, group, component or sensor)."""

    id: UUID
    expected_version: int | None = None  # from If-Match


class Get(Request, kw_only=True, frozen=True):
    id: UUID


class ListRegistry(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


# --- replies ----------------------------------------------------------------------------


class SiteView(Contract, kw_only=True, frozen=True):
    id: UUID
    name: str
    created_at: datetime
    updated_at: datetime
    version: int
    address: str | None = None
    location: Location | None = None
    timezone: str | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)
    object: str = "site"


class DeviceGroupView(Contract, kw_only=True, frozen=True):
    id: UUID
    name: str
    created_at: datetime
    updated_at: datetime
    version: int
    description: str | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)
    object: str = "deviceGroup"


class ComponentView(Contract, kw_only=True, frozen=True):
    id: UUID
    device_id: UUID
    name: str
    created_at: datetime
    updated_at: datetime
    version: int
    kind: str | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)
    object: str = "component"


class SensorView(Contract, kw_only=True, frozen=True):
    id: UUID
    device_id: UUID
    key: str
    value_type: ValueType
    created_at: datetime
    updated_at: datetime
    version: int
    unit: str | None = None
    valid_range: ValidRange | None = None
    object: str = "sensor"


CREATE_SITE = Operation(SERVICE, "CreateSite", CreateSite, SiteView)
GET_SITE = Operation(SERVICE, "GetSite", Get, SiteView)
LIST_SITES = Operation(SERVICE, "ListSites", ListRegistry, Page[SiteView])
UPDATE_SITE = Operation(SERVICE, "UpdateSite", UpdateSite, SiteView)
DELETE_SITE = Operation(SERVICE, "DeleteSite", Delete, Empty)

CREATE_GROUP = Operation(SERVICE, "CreateDeviceGroup", CreateDeviceGroup, DeviceGroupView)
GET_GROUP = Operation(SERVICE, "GetDeviceGroup", Get, DeviceGroupView)
LIST_GROUPS = Operation(SERVICE, "ListDeviceGroups", ListRegistry, Page[DeviceGroupView])
UPDATE_GROUP = Operation(SERVICE, "UpdateDeviceGroup", UpdateDeviceGroup, DeviceGroupView)
DELETE_GROUP = Operation(SERVICE, "DeleteDeviceGroup", Delete, Empty)

ADD_COMPONENT = Operation(SERVICE, "AddComponent", AddComponent, ComponentView)
GET_COMPONENT = Operation(SERVICE, "GetComponent", Get, ComponentView)
LIST_COMPONENTS = Operation(SERVICE, "ListComponents", ListRegistry, Page[ComponentView])
UPDATE_COMPONENT = Operation(SERVICE, "UpdateComponent", UpdateComponent, ComponentView)
REMOVE_COMPONENT = Operation(SERVICE, "RemoveComponent", Delete, Empty)

DECLARE_SENSOR = Operation(SERVICE, "DeclareSensor", DeclareSensor, SensorView)
GET_SENSOR = Operation(SERVICE, "GetSensor", Get, SensorView)
LIST_SENSORS = Operation(SERVICE, "ListSensors", ListRegistry, Page[SensorView])
UPDATE_SENSOR = Operation(SERVICE, "UpdateSensor", UpdateSensor, SensorView)
REMOVE_SENSOR = Operation(SERVICE, "RemoveSensor", Delete, Empty)
