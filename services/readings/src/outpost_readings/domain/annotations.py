"""Annotation classes, annotations and an organization's readings settings as deciders:
create, change (a JSON merge patch), delete. No I/O, no clock, no ids made here.

What needs the read model (a class name free in the organization, a device and a class that
exist, a class no annotation uses) is checked by the handlers in the same transaction
(app/annotations.py); the deciders keep each aggregate's own rules.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

import msgspec

from outpost_contracts import annotations as api
from outpost_contracts import patch
from outpost_contracts.base import Event
from outpost_contracts.devices import Tag
from outpost_contracts.errors import Conflict, validation_error

ANNOTATION_CLASS = "annotation_class"
ANNOTATION = "annotation"
READINGS_SETTINGS = "readings_settings"

_SETTINGS_NAMESPACE = uuid.UUID("6f1c2a0e-5b7d-4c1e-9a3f-0d2e4b6c8a10")


def settings_stream(org_id: UUID) -> UUID:
    """The stream of an organization's settings aggregate: one per organization."""
    return uuid.uuid5(_SETTINGS_NAMESPACE, str(org_id))


class Delete(msgspec.Struct, frozen=True, kw_only=True):
    """Delete the resource (DELETE)."""


class AnnotationClass(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    name: str
    colour: str | None = None
    description: str | None = None
    deleted: bool = False


class Annotation(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    device_id: UUID
    class_id: UUID
    from_: datetime
    to: datetime
    sensor: str | None = None
    text: str | None = None
    tags: tuple[Tag, ...] = ()
    deleted: bool = False


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    auto_declare_sensors: bool
    retention_days: int | None = None


# API name → state attribute, in the order ``…Updated.changed`` lists them.
CLASS_FIELDS = {"name": "name", "colour": "colour", "description": "description"}
ANNOTATION_FIELDS = {
    "classId": "class_id",
    "from": "from_",
    "to": "to",
    "sensor": "sensor",
    "text": "text",
    "tags": "tags",
}


_CONVERT = {"tags": lambda _state, value: tuple(value or ())}


def in_utc(value: datetime, field: str) -> datetime:
    """``value`` in UTC; a ``validation_error`` naming ``field`` for an instant that has no
    UTC form (year 9999 at -14:00 is in year 10000)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise validation_error(field, "out of range") from None


def _check_range(start: datetime, end: datetime) -> None:
    if in_utc(start, "from") > in_utc(end, "to"):
        raise validation_error("from", "must not be after 'to'")


# --- annotation classes -----------------------------------------------------------------

ClassCommand = api.CreateAnnotationClass | api.AnnotationClassPatch | Delete


def decide_class(
    state: AnnotationClass | None, command: ClassCommand, now: datetime
) -> list[Event]:
    if isinstance(command, api.CreateAnnotationClass):
        if state is not None:
            raise Conflict("the annotation class already exists")
        return [
            api.AnnotationClassCreated(
                name=command.name, colour=command.colour, description=command.description
            )
        ]
    live = patch.live(state, "annotation class")
    if isinstance(command, Delete):
        return [api.AnnotationClassDeleted()]
    changes = patch.changes(live, command, CLASS_FIELDS, _CONVERT)
    if not changes:
        return []
    return [
        api.AnnotationClassUpdated(
            changed=list(changes), **{CLASS_FIELDS[k]: v for k, v in changes.items()}
        )
    ]


def evolve_class(
    state: AnnotationClass | None, event: Event, stream_id: UUID
) -> AnnotationClass | None:
    if isinstance(event, api.AnnotationClassCreated):
        return AnnotationClass(
            id=stream_id,
            version=1,
            name=event.name,
            colour=event.colour,
            description=event.description,
        )
    assert state is not None, f"{type(event).__name__} before its class was created"
    if isinstance(event, api.AnnotationClassUpdated):
        values = {CLASS_FIELDS[k]: getattr(event, CLASS_FIELDS[k]) for k in event.changed}
        return msgspec.structs.replace(state, version=state.version + 1, **values)
    if isinstance(event, api.AnnotationClassDeleted):
        return msgspec.structs.replace(state, version=state.version + 1, deleted=True)
    return msgspec.structs.replace(state, version=state.version + 1)


# --- annotations ------------------------------------------------------------------------

AnnotationCommand = api.CreateAnnotation | api.AnnotationPatch | Delete


def decide_annotation(
    state: Annotation | None, command: AnnotationCommand, now: datetime
) -> list[Event]:
    if isinstance(command, api.CreateAnnotation):
        if state is not None:
            raise Conflict("the annotation already exists")
        _check_range(command.from_, command.to)
        return [
            api.AnnotationCreated(
                device_id=command.device_id,
                class_id=command.class_id,
                from_=command.from_,
                to=command.to,
                sensor=command.sensor,
                text=command.text,
                tags=list(command.tags),
            )
        ]
    live: Annotation = patch.live(state, "annotation")
    if isinstance(command, Delete):
        return [api.AnnotationDeleted(device_id=live.device_id)]
    changes = patch.changes(live, command, ANNOTATION_FIELDS, _CONVERT)
    _check_range(changes.get("from", live.from_), changes.get("to", live.to))
    if not changes:
        return []
    values = {ANNOTATION_FIELDS[k]: v for k, v in changes.items()}
    if "tags" in values:
        values["tags"] = list(values["tags"])
    return [api.AnnotationUpdated(device_id=live.device_id, changed=list(changes), **values)]


def evolve_annotation(state: Annotation | None, event: Event, stream_id: UUID) -> Annotation | None:
    if isinstance(event, api.AnnotationCreated):
        return Annotation(
            id=stream_id,
            version=1,
            device_id=event.device_id,
            class_id=event.class_id,
            from_=event.from_,
            to=event.to,
            sensor=event.sensor,
            text=event.text,
            tags=tuple(event.tags),
        )
    assert state is not None, f"{type(event).__name__} before its annotation was created"
    if isinstance(event, api.AnnotationUpdated):
        values = {
            ANNOTATION_FIELDS[k]: getattr(event, ANNOTATION_FIELDS[k])
            for k in event.changed
            if k in ANNOTATION_FIELDS
        }
        if "tags" in values:
            values["tags"] = tuple(values["tags"])
        return msgspec.structs.replace(state, version=state.version + 1, **values)
    if isinstance(event, api.AnnotationDeleted):
        return msgspec.structs.replace(state, version=state.version + 1, deleted=True)
    return msgspec.structs.replace(state, version=state.version + 1)


# --- an organization's readings settings -------------------------------------------------


def decide_settings(
    state: Settings | None, command: api.PutReadingsSettings, now: datetime
) -> list[Event]:
    """A PUT replaces both settings. The first PUT records them whatever they are (there
    was nothing of the organization's own before); a later one only what changed."""
    new = {
        "autoDeclareSensors": command.auto_declare_sensors,
        "retentionDays": command.retention_days,
    }
    if state is None:
        changed = list(new)
    else:
        old = {
            "autoDeclareSensors": state.auto_declare_sensors,
            "retentionDays": state.retention_days,
        }
        changed = [k for k in new if new[k] != old[k]]
        if not changed:
            return []
    return [
        api.ReadingsSettingsChanged(
            changed=changed,
            auto_declare_sensors=command.auto_declare_sensors,
            retention_days=command.retention_days,
        )
    ]


def evolve_settings(state: Settings | None, event: Event, stream_id: UUID) -> Settings | None:
    if isinstance(event, api.ReadingsSettingsChanged):
        return Settings(
            version=(state.version if state is not None else 0) + 1,
            auto_declare_sensors=event.auto_declare_sensors,
            retention_days=event.retention_days,
        )
    assert state is not None
    return msgspec.structs.replace(state, version=state.version + 1)
