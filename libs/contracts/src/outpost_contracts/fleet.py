"""Fleet configuration (issue 21, ADR 0088): config artefacts and desired-state bindings.

Owned by the fleet service (ADR 0090); its events go to the FLEET stream. The requests,
views and operations of each resource group join this module with the group
(docs/design/fleet.md)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Empty, Event, Request, wire_tag
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.registry import ValidRange, ValueType
from outpost_contracts.rpc import Operation

SERVICE = "fleet"

# A config artefact's document, and its JSON Schema, encoded: at most 256 KiB each.
MAX_ARTEFACT_BYTES = 256 * 1024


class TargetType(enum.StrEnum):
    """What a desired-state binding applies to, from the least to the most specific
    (ADR 0088: a device profile's configuration is a default, so it ranks right after the
    organization)."""

    ORGANIZATION = "ORGANIZATION"
    PROFILE = "PROFILE"
    SITE = "SITE"
    GROUP = "GROUP"
    DEVICE = "DEVICE"


class Target(Contract, kw_only=True, frozen=True):
    """``{type, id?}``: ``id`` names the site, group, device profile or device; an
    ORGANIZATION target has none (the binding's own organization)."""

    type: TargetType
    id: UUID | None = None


class ConfigArtefactCreated(
    Event, tag=wire_tag(SERVICE, "ConfigArtefactCreated", 1), kw_only=True, frozen=True
):
    name: str


class ConfigArtefactVersionPublished(
    Event, tag=wire_tag(SERVICE, "ConfigArtefactVersionPublished", 1), kw_only=True, frozen=True
):
    """A new immutable version; ``schema`` is the JSON Schema it was checked against."""

    version: int
    document: dict[str, Any]
    schema: dict[str, Any] | None = None


class ConfigArtefactVersionDeleted(
    Event, tag=wire_tag(SERVICE, "ConfigArtefactVersionDeleted", 1), kw_only=True, frozen=True
):
    version: int


class ConfigArtefactDeleted(
    Event, tag=wire_tag(SERVICE, "ConfigArtefactDeleted", 1), kw_only=True, frozen=True
):
    pass


class DesiredStateBindingCreated(
    Event, tag=wire_tag(SERVICE, "DesiredStateBindingCreated", 1), kw_only=True, frozen=True
):
    """``artefact_version`` None: the artefact's latest version, whichever it is."""

    artefact_id: UUID
    target: Target
    priority: int
    artefact_version: int | None = None


class DesiredStateBindingChanged(
    Event, tag=wire_tag(SERVICE, "DesiredStateBindingChanged", 1), kw_only=True, frozen=True
):
    """The binding's whole new state; ``changed`` names the fields that moved."""

    changed: list[str]
    priority: int
    artefact_version: int | None = None


class DesiredStateBindingRemoved(
    Event, tag=wire_tag(SERVICE, "DesiredStateBindingRemoved", 1), kw_only=True, frozen=True
):
    artefact_id: UUID


EVENT_TYPES: tuple[type[Event], ...] = (
    ConfigArtefactCreated,
    ConfigArtefactVersionPublished,
    ConfigArtefactVersionDeleted,
    ConfigArtefactDeleted,
    DesiredStateBindingCreated,
    DesiredStateBindingChanged,
    DesiredStateBindingRemoved,
)


# --- config artefacts and desired-state bindings: the API (ADR 0090) -----------------------
# ``/api/v1/config-artefacts`` (create, list, get, delete) and its versions
# (``/api/v1/config-artefacts/{id}/versions``: publish, list, get, delete);
# ``/api/v1/desired-state-bindings`` (create, list, get, patch, delete).

ArtefactName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
# A binding's priority: higher is merged later (wins) among bindings of one target type.
Priority = Annotated[int, msgspec.Meta(ge=-1000, le=1000)]
# Version numbers are Postgres integers.
MAX_VERSION = 2**31 - 1
ArtefactVersionNumber = Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]
# A binding's artefact version: a number, or "latest" (whichever version is the newest).
LATEST: Literal["latest"] = "latest"
BoundVersion = ArtefactVersionNumber | Literal["latest"]


class CreateConfigArtefact(Request, kw_only=True, frozen=True):
    """Version 1 of a new artefact: ``document`` (a JSON object) must satisfy ``schema``
    (a JSON Schema, draft 2020-12 unless its ``$schema`` names another) when one is given."""

    name: ArtefactName
    document: dict[str, Any]
    schema: dict[str, Any] | None = None


class PublishConfigArtefactVersion(Request, kw_only=True, frozen=True):
    """``POST /config-artefacts/{id}/versions``: a new immutable version. ``schema`` absent
    keeps the latest version's schema, ``null`` drops it, an object replaces it. The same
    document and schema as the latest version publishes nothing (the latest is answered).
    ``expected_version`` (``If-Match``) is the artefact's latest version number."""

    id: UUID
    document: dict[str, Any]
    schema: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    expected_version: int | None = None


class PublishConfigArtefactVersionBody(Request, kw_only=True, frozen=True):
    """The body of ``POST /config-artefacts/{id}/versions``."""

    document: dict[str, Any]
    schema: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET


class GetConfigArtefact(Request, kw_only=True, frozen=True):
    id: UUID


class DeleteConfigArtefact(Request, kw_only=True, frozen=True):
    """Refused (409) while a binding uses any of its versions. ``expected_version``
    (``If-Match``) is the latest version number."""

    id: UUID
    expected_version: int | None = None


class ListConfigArtefacts(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class ListConfigArtefactVersions(Request, kw_only=True, frozen=True):
    id: UUID
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class GetConfigArtefactVersion(Request, kw_only=True, frozen=True):
    id: UUID
    version: ArtefactVersionNumber


class DeleteConfigArtefactVersion(Request, kw_only=True, frozen=True):
    """Refused (409) while it is in use (a binding pins it, or it is the latest and a
    binding follows "latest"), and for the last version (delete the artefact)."""

    id: UUID
    version: ArtefactVersionNumber


class ConfigArtefactView(Contract, kw_only=True, frozen=True):
    """``version`` is the latest version's number (and the ETag); ``document`` and
    ``schema`` are that version's. A list leaves ``document`` and ``schema`` out (a page of
    artefacts of 256 KiB each would be tens of MiB): ``GET /config-artefacts/{id}`` has
    them."""

    id: UUID
    name: str
    version: int
    version_count: int
    created_at: datetime
    updated_at: datetime
    # Absent in a list; ``schema`` null when the version has none.
    document: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    schema: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    object: Literal["configArtefact"] = "configArtefact"


class ConfigArtefactVersionView(Contract, kw_only=True, frozen=True):
    """One immutable version; a list of versions leaves ``document`` and ``schema`` out
    (``sizeBytes`` is the document's, encoded)."""

    artefact_id: UUID
    version: int
    size_bytes: int
    created_at: datetime
    document: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    schema: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    object: Literal["configArtefactVersion"] = "configArtefactVersion"


class TargetBody(Request, kw_only=True, frozen=True):
    """A binding's target as a request gives it (unknown fields refused)."""

    type: TargetType
    id: UUID | None = None


class CreateDesiredStateBinding(Request, kw_only=True, frozen=True):
    """The artefact must be the organization's (404 otherwise), the version one of its live
    versions; the target's id must name one of the organization's sites, groups, devices or
    device profiles (none for ORGANIZATION)."""

    artefact_id: UUID
    target: TargetBody
    artefact_version: BoundVersion = LATEST
    priority: Priority = 0


class DesiredStateBindingPatch(Request, kw_only=True, frozen=True):
    """What a binding may change; its artefact and target are its identity (delete it and
    bind again to move it)."""

    artefact_version: BoundVersion | msgspec.UnsetType = msgspec.UNSET
    priority: Priority | msgspec.UnsetType = msgspec.UNSET


class UpdateDesiredStateBinding(Request, kw_only=True, frozen=True):
    id: UUID
    patch: DesiredStateBindingPatch
    expected_version: int | None = None  # from If-Match


class GetDesiredStateBinding(Request, kw_only=True, frozen=True):
    id: UUID


class DeleteDesiredStateBinding(Request, kw_only=True, frozen=True):
    id: UUID
    expected_version: int | None = None  # from If-Match


class ListDesiredStateBindings(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class DesiredStateBindingView(Contract, kw_only=True, frozen=True):
    id: UUID
    artefact_id: UUID
    artefact_version: int | Literal["latest"]
    target: Target
    priority: int
    created_at: datetime
    updated_at: datetime
    version: int
    object: Literal["desiredStateBinding"] = "desiredStateBinding"


CREATE_CONFIG_ARTEFACT = Operation(
    SERVICE, "CreateConfigArtefact", CreateConfigArtefact, ConfigArtefactView
)
LIST_CONFIG_ARTEFACTS = Operation(
    SERVICE, "ListConfigArtefacts", ListConfigArtefacts, Page[ConfigArtefactView]
)
GET_CONFIG_ARTEFACT = Operation(SERVICE, "GetConfigArtefact", GetConfigArtefact, ConfigArtefactView)
DELETE_CONFIG_ARTEFACT = Operation(SERVICE, "DeleteConfigArtefact", DeleteConfigArtefact, Empty)
PUBLISH_CONFIG_ARTEFACT_VERSION = Operation(
    SERVICE,
    "PublishConfigArtefactVersion",
    PublishConfigArtefactVersion,
    ConfigArtefactVersionView,
)
LIST_CONFIG_ARTEFACT_VERSIONS = Operation(
    SERVICE,
    "ListConfigArtefactVersions",
    ListConfigArtefactVersions,
    Page[ConfigArtefactVersionView],
)
GET_CONFIG_ARTEFACT_VERSION = Operation(
    SERVICE, "GetConfigArtefactVersion", GetConfigArtefactVersion, ConfigArtefactVersionView
)
DELETE_CONFIG_ARTEFACT_VERSION = Operation(
    SERVICE, "DeleteConfigArtefactVersion", DeleteConfigArtefactVersion, Empty
)
CREATE_DESIRED_STATE_BINDING = Operation(
    SERVICE, "CreateDesiredStateBinding", CreateDesiredStateBinding, DesiredStateBindingView
)
LIST_DESIRED_STATE_BINDINGS = Operation(
    SERVICE,
    "ListDesiredStateBindings",
    ListDesiredStateBindings,
    Page[DesiredStateBindingView],
)
GET_DESIRED_STATE_BINDING = Operation(
    SERVICE, "GetDesiredStateBinding", GetDesiredStateBinding, DesiredStateBindingView
)
UPDATE_DESIRED_STATE_BINDING = Operation(
    SERVICE, "UpdateDesiredStateBinding", UpdateDesiredStateBinding, DesiredStateBindingView
)
DELETE_DESIRED_STATE_BINDING = Operation(
    SERVICE, "DeleteDesiredStateBinding", DeleteDesiredStateBinding, Empty
)

# --- a device profile as devices apply it (fleet serves it, devices call it) ------------------


class ResolvedComponent(Contract, kw_only=True, frozen=True):
    name: str
    kind: str | None = None


class ResolvedSensor(Contract, kw_only=True, frozen=True):
    """A profile's sensor with its sensor profile's unit, value type and range filled in."""

    key: str
    sensor_profile_id: UUID
    value_type: ValueType
    unit: str
    valid_range: ValidRange | None = None
    precision: int | None = None
    component: str | None = None  # the component's name, when the sensor belongs to one


class DeviceProfileSpec(Contract, kw_only=True, frozen=True):
    """What a device with this profile has: devices create what a device lacks (assignment
    and the profile-change job) and never remove what it has beyond it. ``version`` is the
    device profile's version (its ETag)."""

    id: UUID
    version: int
    name: str
    components: list[ResolvedComponent] = []
    sensors: list[ResolvedSensor] = []
    config_artefact_id: UUID | None = None
    expected_interval_seconds: int | None = None
    firmware_family: str | None = None


class ResolveDeviceProfile(Request, kw_only=True, frozen=True):
    """The organization's device profile ``id``, resolved: ``not_found`` when there is none."""

    id: UUID


RESOLVE_DEVICE_PROFILE = Operation(
    SERVICE, "ResolveDeviceProfile", ResolveDeviceProfile, DeviceProfileSpec
)
