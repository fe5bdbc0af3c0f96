"""Sites, device groups, components and sensors as deciders: create, change (a JSON merge
patch), delete. No I/O, no clock, no ids made here.

What needs other aggregates or the read model (a name free in the organization, a device
that exists, a site no device refers to) is checked by the handlers in the same transaction
(app/registry.py); the deciders keep each aggregate's own rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from outpost_contracts import patch
from outpost_contracts import registry as api
from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, validation_error
from outpost_contracts.patch import merge_patch
from outpost_devices.domain.devices import MAX_ATTRIBUTES_BYTES

SITE = "site"
DEVICE_GROUP = "device_group"
COMPONENT = "component"
SENSOR = "sensor"


class Delete(msgspec.Struct, frozen=True, kw_only=True):
    """Delete the resource (DELETE)."""


class Site(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    name: str
    address: str | None = None
    location: api.Location | None = None
    timezone: str | None = None
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    deleted: bool = False


class DeviceGroup(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    name: str
    description: str | None = None
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    deleted: bool = False


class Component(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    device_id: UUID
    name: str
    kind: str | None = None
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    deleted: bool = False


class Sensor(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    device_id: UUID
    key: str
    value_type: api.ValueType
    unit: str | None = None
    valid_range: api.ValidRange | None = None
    deleted: bool = False


S = TypeVar("S", Site, DeviceGroup, Component, Sensor)

# API name → state attribute, in the order ``…Updated.changed`` lists them.
SITE_FIELDS = {
    "name": "name",
    "address": "address",
    "location": "location",
    "timezone": "timezone",
    "attributes": "attributes",
}
GROUP_FIELDS = {"name": "name", "description": "description", "attributes": "attributes"}
COMPONENT_FIELDS = {"name": "name", "kind": "kind", "attributes": "attributes"}
SENSOR_FIELDS = {"unit": "unit", "valueType": "value_type", "validRange": "valid_range"}


def _check_attributes(attributes: Any) -> None:
    if len(msgspec.json.encode(attributes)) > MAX_ATTRIBUTES_BYTES:
        raise validation_error("attributes", f"larger than {MAX_ATTRIBUTES_BYTES} bytes")


def _merged_attributes(state: Any, value: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {} if value is None else merge_patch(state.attributes, value)
    _check_attributes(merged)
    return merged


_CONVERT = {"attributes": _merged_attributes}


def _apply(state: S, event: Any, fields: Mapping[str, str]) -> S:
    values = {fields[k]: getattr(event, fields[k]) for k in event.changed if k in fields}
    if "attributes" in values:
        values["attributes"] = dict(values["attributes"])
    return msgspec.structs.replace(state, version=state.version + 1, **values)


_DELETED = (api.SiteDeleted, api.DeviceGroupDeleted, api.ComponentRemoved, api.SensorRemoved)


def _bump(state: S | None, event: Event) -> S:
    assert state is not None, f"{type(event).__name__} before its aggregate was created"
    if isinstance(event, _DELETED):
        return msgspec.structs.replace(state, version=state.version + 1, deleted=True)
    return msgspec.structs.replace(state, version=state.version + 1)


# --- sites ------------------------------------------------------------------------------

SiteCommand = api.CreateSite | api.SitePatch | Delete


def decide_site(state: Site | None, command: SiteCommand, now: datetime) -> list[Event]:
    if isinstance(command, api.CreateSite):
        if state is not None:
            raise Conflict("the site already exists")
        _check_attributes(command.attributes)
        return [
            api.SiteCreated(
                name=command.name,
                address=command.address,
                location=command.location,
                timezone=command.timezone,
                attributes=dict(command.attributes),
            )
        ]
    site = patch.live(state, "site")
    if isinstance(command, Delete):
        return [api.SiteDeleted()]
    changes = patch.changes(site, command, SITE_FIELDS, _CONVERT)
    if not changes:
        return []
    values = {SITE_FIELDS[k]: v for k, v in changes.items()}
    return [api.SiteUpdated(changed=list(changes), **values)]


def evolve_site(state: Site | None, event: Event, stream_id: UUID) -> Site | None:
    if isinstance(event, api.SiteCreated):
        return Site(
            id=stream_id,
            version=1,
            name=event.name,
            address=event.address,
            location=event.location,
            timezone=event.timezone,
            attributes=dict(event.attributes),
        )
    if isinstance(event, api.SiteUpdated):
        assert state is not None
        return _apply(state, event, SITE_FIELDS)
    return _bump(state, event)


# --- device groups ----------------------------------------------------------------------

GroupCommand = api.CreateDeviceGroup | api.DeviceGroupPatch | Delete


def decide_group(state: DeviceGroup | None, command: GroupCommand, now: datetime) -> list[Event]:
    if isinstance(command, api.CreateDeviceGroup):
        if state is not None:
            raise Conflict("the device group already exists")
        _check_attributes(command.attributes)
        return [
            api.DeviceGroupCreated(
                name=command.name,
                description=command.description,
                attributes=dict(command.attributes),
            )
        ]
    group = patch.live(state, "device group")
    if isinstance(command, Delete):
        return [api.DeviceGroupDeleted()]
    changes = patch.changes(group, command, GROUP_FIELDS, _CONVERT)
    if not changes:
        return []
    return [
        api.DeviceGroupUpdated(
            changed=list(changes), **{GROUP_FIELDS[k]: v for k, v in changes.items()}
        )
    ]


def evolve_group(state: DeviceGroup | None, event: Event, stream_id: UUID) -> DeviceGroup | None:
    if isinstance(event, api.DeviceGroupCreated):
        return DeviceGroup(
            id=stream_id,
            version=1,
            name=event.name,
            description=event.description,
            attributes=dict(event.attributes),
        )
    if isinstance(event, api.DeviceGroupUpdated):
        assert state is not None
        return _apply(state, event, GROUP_FIELDS)
    return _bump(state, event)


# --- components -------------------------------------------------------------------------

ComponentCommand = api.AddComponent | api.ComponentPatch | Delete


def decide_component(
    state: Component | None, command: ComponentCommand, now: datetime
) -> list[Event]:
    if isinstance(command, api.AddComponent):
        if state is not None:
            raise Conflict("the component already exists")
        _check_attributes(command.attributes)
        return [
            api.ComponentAdded(
                device_id=command.device_id,
                name=command.name,
                kind=command.kind,
                attributes=dict(command.attributes),
            )
        ]
    component = patch.live(state, "component")
    if isinstance(command, Delete):
        return [api.ComponentRemoved(device_id=component.device_id)]
    changes = patch.changes(component, command, COMPONENT_FIELDS, _CONVERT)
    if not changes:
        return []
    return [
        api.ComponentUpdated(
            device_id=component.device_id,
            changed=list(changes),
            **{COMPONENT_FIELDS[k]: v for k, v in changes.items()},
        )
    ]


def evolve_component(state: Component | None, event: Event, stream_id: UUID) -> Component | None:
    if isinstance(event, api.ComponentAdded):
        return Component(
            id=stream_id,
            version=1,
            device_id=event.device_id,
            name=event.name,
            kind=event.kind,
            attributes=dict(event.attributes),
        )
    if isinstance(event, api.ComponentUpdated):
        assert state is not None
        return _apply(state, event, COMPONENT_FIELDS)
    return _bump(state, event)


# --- sensors ----------------------------------------------------------------------------

SensorCommand = api.DeclareSensor | api.SensorPatch | Delete


def check_range(value_type: api.ValueType, valid_range: api.ValidRange | None) -> None:
    """A valid range belongs to a NUMBER sensor only, and its ``min`` is below its ``max``."""
    if valid_range is None:
        return
    if value_type is not api.ValueType.NUMBER:
        raise validation_error("validRange", f"only a NUMBER sensor has one, not {value_type}")
    if not valid_range.min < valid_range.max:
        raise validation_error("validRange", "min must be less than max")


def decide_sensor(state: Sensor | None, command: SensorCommand, now: datetime) -> list[Event]:
    if isinstance(command, api.DeclareSensor):
        if state is not None:
            raise Conflict("the sensor already exists")
        check_range(command.value_type, command.valid_range)
        return [
            api.SensorDeclared(
                device_id=command.device_id,
                key=command.key,
                value_type=command.value_type,
                unit=command.unit,
                valid_range=command.valid_range,
            )
        ]
    sensor = patch.live(state, "sensor")
    if isinstance(command, Delete):
        return [api.SensorRemoved(device_id=sensor.device_id, key=sensor.key)]
    changes = patch.changes(sensor, command, SENSOR_FIELDS, _CONVERT)
    check_range(
        changes.get("valueType", sensor.value_type),
        changes.get("validRange", sensor.valid_range),
    )
    if not changes:
        return []
    return [
        api.SensorUpdated(
            device_id=sensor.device_id,
            key=sensor.key,
            changed=list(changes),
            **{SENSOR_FIELDS[k]: v for k, v in changes.items()},
        )
    ]


def evolve_sensor(state: Sensor | None, event: Event, stream_id: UUID) -> Sensor | None:
    if isinstance(event, api.SensorDeclared):
        return Sensor(
            id=stream_id,
            version=1,
            device_id=event.device_id,
            key=event.key,
            value_type=event.value_type,
            unit=event.unit,
            valid_range=event.valid_range,
        )
    if isinstance(event, api.SensorUpdated):
        assert state is not None
        return _apply(state, event, SENSOR_FIELDS)
    return _bump(state, event)
