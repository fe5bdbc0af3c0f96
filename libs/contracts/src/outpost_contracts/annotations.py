"""Readings: annotations, annotation classes and an organization's readings settings.

An annotation labels a time range of one device (optionally one of its sensors) with a class
(``/api/v1/annotation-classes``: a name unique per organization, a colour, a description)
and a text; exports include them. Both are aggregates of the readings service, their events
on the READINGS stream (ADR 0061).

Settings are one aggregate per organization: whether unknown sensors are declared by their
first reading (``autoDeclareSensors``) and how many days readings are kept
(``retentionDays``, null for the deployment's default).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Empty, Event, Instant, Request, whole, wire_tag
from outpost_contracts.devices import Tag
from outpost_contracts.query import DEFAULT_LIMIT, MAX_LIMIT, ListQuery, Page
from outpost_contracts.readings import SERVICE, SensorKey
from outpost_contracts.rpc import Operation

ClassName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
# ``#rrggbb``, as colour pickers and chart libraries take it.
Colour = Annotated[str, msgspec.Meta(pattern=whole(r"#[0-9A-Fa-f]{6}"))]
Description = Annotated[str, msgspec.Meta(max_length=1024)]
AnnotationText = Annotated[str, msgspec.Meta(max_length=4096)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=50)]

# Bounds of an organization's retention (a validation_error outside them).
MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 3650
RetentionDays = Annotated[int, msgspec.Meta(ge=MIN_RETENTION_DAYS, le=MAX_RETENTION_DAYS)]

# Devices per internal ListAnnotations request (exports page through a group or a site).
MAX_DEVICE_IDS = 1000

# --- events -----------------------------------------------------------------------------
# ``…Updated`` events name their changed fields in ``changed`` (camelCase, as in the API);
# each named field carries its new value (``None`` clears it), the others are to be ignored.


class AnnotationClassCreated(
    Event, tag=wire_tag(SERVICE, "AnnotationClassCreated", 1), kw_only=True, frozen=True
):
    name: str
    colour: str | None = None
    description: str | None = None


class AnnotationClassUpdated(
    Event, tag=wire_tag(SERVICE, "AnnotationClassUpdated", 1), kw_only=True, frozen=True
):
    changed: list[str]
    name: str | None = None
    colour: str | None = None
    description: str | None = None


class AnnotationClassDeleted(
    Event, tag=wire_tag(SERVICE, "AnnotationClassDeleted", 1), kw_only=True, frozen=True
):
    """The class is gone; no annotation had it when it was deleted."""


class AnnotationCreated(
    Event, tag=wire_tag(SERVICE, "AnnotationCreated", 1), kw_only=True, frozen=True
):
    device_id: UUID
    class_id: UUID
    from_: datetime = msgspec.field(name="from")
    to: datetime
    sensor: str | None = None
    text: str | None = None
    tags: list[Tag] = msgspec.field(default_factory=list)


class AnnotationUpdated(
    Event, tag=wire_tag(SERVICE, "AnnotationUpdated", 1), kw_only=True, frozen=True
):
    """``device_id`` is repeated so a consumer needs no state to apply it."""

    device_id: UUID
    changed: list[str]
    class_id: UUID | None = None
    from_: datetime | None = msgspec.field(default=None, name="from")
    to: datetime | None = None
    sensor: str | None = None
    text: str | None = None
    tags: list[Tag] = msgspec.field(default_factory=list)


class AnnotationDeleted(
    Event, tag=wire_tag(SERVICE, "AnnotationDeleted", 1), kw_only=True, frozen=True
):
    device_id: UUID


class ReadingsSettingsChanged(
    Event, tag=wire_tag(SERVICE, "ReadingsSettingsChanged", 1), kw_only=True, frozen=True
):
    """An organization's readings settings as they now are (``retention_days`` None: the
    deployment's default); ``changed`` names what differs from before."""

    changed: list[str]
    auto_declare_sensors: bool
    retention_days: int | None = None


EVENT_TYPES: tuple[type[Event], ...] = (
    AnnotationClassCreated,
    AnnotationClassUpdated,
    AnnotationClassDeleted,
    AnnotationCreated,
    AnnotationUpdated,
    AnnotationDeleted,
    ReadingsSettingsChanged,
)

# --- requests ---------------------------------------------------------------------------
# Patches are JSON merge patches (RFC 7396): an absent field is left as it is, ``null``
# clears it.


class CreateAnnotationClass(Request, kw_only=True, frozen=True):
    name: ClassName
    colour: Colour | None = None
    description: Description | None = None


class AnnotationClassPatch(Request, kw_only=True, frozen=True):
    name: ClassName | msgspec.UnsetType = msgspec.UNSET
    colour: Colour | msgspec.UnsetType | None = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET


class CreateAnnotation(Request, kw_only=True, frozen=True):
    """``from`` ≤ ``to``: a range, or an instant when they are equal."""

    device_id: UUID
    class_id: UUID
    from_: Instant = msgspec.field(name="from")
    to: Instant
    sensor: SensorKey | None = None
    text: AnnotationText | None = None
    tags: Tags = msgspec.field(default_factory=list)


class AnnotationPatch(Request, kw_only=True, frozen=True):
    """An annotation stays on its device (``deviceId`` is its identity)."""

    class_id: UUID | msgspec.UnsetType = msgspec.UNSET
    from_: Instant | msgspec.UnsetType = msgspec.field(default=msgspec.UNSET, name="from")
    to: Instant | msgspec.UnsetType = msgspec.UNSET
    sensor: SensorKey | msgspec.UnsetType | None = msgspec.UNSET
    text: AnnotationText | msgspec.UnsetType | None = msgspec.UNSET
    tags: Tags | msgspec.UnsetType | None = msgspec.UNSET


class UpdateAnnotationClass(Request, kw_only=True, frozen=True):
    id: UUID
    patch: AnnotationClassPatch
    expected_version: int | None = None  # from If-Match


class UpdateAnnotation(Request, kw_only=True, frozen=True):
    id: UUID
    patch: AnnotationPatch
    expected_version: int | None = None  # from If-Match


class DeleteById(Request, kw_only=True, frozen=True):
    id: UUID
    expected_version: int | None = None  # from If-Match


class GetById(Request, kw_only=True, frozen=True):
    id: UUID


class ListAnnotationClasses(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class QueryAnnotations(Request, kw_only=True, frozen=True):
    """``GET /api/v1/annotations`` and ``/api/v1/devices/{id}/annotations``: the collection
    conventions, and the window ``[from, to)`` an annotation's range must overlap."""

    query: ListQuery = msgspec.field(default_factory=ListQuery)
    device_id: UUID | None = None  # the device's own route: 404 if it is not this tenant's
    from_: Instant | None = msgspec.field(default=None, name="from")
    to: Instant | None = None


class ListAnnotations(Request, kw_only=True, frozen=True):
    """For the exports service: the annotations of ``device_ids`` overlapping ``[from, to)``,
    in id order, ``after`` the last id of the previous page. Devices that are not the
    tenant's simply have none."""

    device_ids: Annotated[list[UUID], msgspec.Meta(min_length=1, max_length=MAX_DEVICE_IDS)]
    from_: Instant = msgspec.field(name="from")
    to: Instant
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    after: UUID | None = None


class GetReadingsSettings(Request, kw_only=True, frozen=True):
    """The caller's organization's settings."""


class PutReadingsSettings(Request, kw_only=True, frozen=True):
    """Replace the organization's settings (``PUT``): both fields are required;
    ``retentionDays`` null returns to the deployment's default."""

    auto_declare_sensors: bool
    retention_days: RetentionDays | None


class SetReadingsSettings(Request, kw_only=True, frozen=True):
    settings: PutReadingsSettings
    expected_version: int | None = None  # from If-Match


# --- replies ----------------------------------------------------------------------------


class AnnotationClassView(Contract, kw_only=True, frozen=True):
    id: UUID
    name: str
    created_at: datetime
    updated_at: datetime
    version: int
    colour: str | None = None
    description: str | None = None
    object: str = "annotationClass"


class AnnotationView(Contract, kw_only=True, frozen=True):
    id: UUID
    device_id: UUID
    class_id: UUID
    from_: datetime = msgspec.field(name="from")
    to: datetime
    created_at: datetime
    updated_at: datetime
    version: int
    sensor: str | None = None
    text: str | None = None
    tags: list[Tag] = msgspec.field(default_factory=list)
    object: str = "annotation"


class ReadingsSettings(Contract, kw_only=True, frozen=True):
    """``retentionDays`` is what applies (the organization's own or the default);
    ``retentionDefault`` says which. ``version`` 0: never changed."""

    auto_declare_sensors: bool
    retention_days: int
    retention_default: bool
    version: int
    updated_at: datetime | None = None
    object: Literal["readingsSettings"] = "readingsSettings"


CREATE_ANNOTATION_CLASS = Operation(
    SERVICE, "CreateAnnotationClass", CreateAnnotationClass, AnnotationClassView
)
GET_ANNOTATION_CLASS = Operation(SERVICE, "GetAnnotationClass", GetById, AnnotationClassView)
LIST_ANNOTATION_CLASSES = Operation(
    SERVICE, "ListAnnotationClasses", ListAnnotationClasses, Page[AnnotationClassView]
)
UPDATE_ANNOTATION_CLASS = Operation(
    SERVICE, "UpdateAnnotationClass", UpdateAnnotationClass, AnnotationClassView
)
DELETE_ANNOTATION_CLASS = Operation(SERVICE, "DeleteAnnotationClass", DeleteById, Empty)

CREATE_ANNOTATION = Operation(SERVICE, "CreateAnnotation", CreateAnnotation, AnnotationView)
GET_ANNOTATION = Operation(SERVICE, "GetAnnotation", GetById, AnnotationView)
QUERY_ANNOTATIONS = Operation(SERVICE, "QueryAnnotations", QueryAnnotations, Page[AnnotationView])
UPDATE_ANNOTATION = Operation(SERVICE, "UpdateAnnotation", UpdateAnnotation, AnnotationView)
DELETE_ANNOTATION = Operation(SERVICE, "DeleteAnnotation", DeleteById, Empty)
# Internal (no HTTP route): the exports service pages through it.
LIST_ANNOTATIONS = Operation(SERVICE, "ListAnnotations", ListAnnotations, Page[AnnotationView])

GET_READINGS_SETTINGS = Operation(
    SERVICE, "GetReadingsSettings", GetReadingsSettings, ReadingsSettings
)
SET_READINGS_SETTINGS = Operation(
    SERVICE, "SetReadingsSettings", SetReadingsSettings, ReadingsSettings
)
