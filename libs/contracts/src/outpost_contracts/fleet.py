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

from outpost_contracts.alerting import Condition, ForSeconds, Severity
from outpost_contracts.base import Contract, Empty, Event, Request, whole, wire_tag
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.registry import SensorKey, ValidRange, ValueType
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


# --- sensor profiles, device profiles and packs (issue 21, ADR 0092) ---------------------
# ``/api/v1/sensor-profiles``, ``/api/v1/device-profiles`` and ``/api/v1/packs``
# (docs/design/fleet.md, "Profiles and packs"). Request types name their resource
# (``GetSensorProfile``, not a shared ``GetById``) so the fleet areas add theirs beside
# these without a clash.

ProfileName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
UnitCode = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Bound = Annotated[float, msgspec.Meta(ge=-1e300, le=1e300)]
Precision = Annotated[int, msgspec.Meta(ge=0, le=12)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Description = Annotated[str, msgspec.Meta(max_length=1024)]
# A device is expected to report at least this often: 1 s to 7 days.
MAX_EXPECTED_INTERVAL_SECONDS = 7 * 86_400
ExpectedInterval = Annotated[int, msgspec.Meta(ge=1, le=MAX_EXPECTED_INTERVAL_SECONDS)]
MAX_PROFILE_COMPONENTS = 100
MAX_PROFILE_SENSORS = 200
MAX_RULE_TEMPLATES = 50
MAX_PACK_ITEMS = 200
PackVersion = Annotated[
    str, msgspec.Meta(pattern=whole(r"(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})"))
]
PackItemKey = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class ProfileComponent(Request, kw_only=True, frozen=True):
    """A component every device of the profile has (devices' components: ``name``, ``kind``)."""

    name: ProfileName
    kind: ShortText | None = None


class ProfileSensor(Request, kw_only=True, frozen=True):
    """A sensor every device of the profile has, described by one of the organization's
    sensor profiles; ``component``: one of the profile's components, by name."""

    key: SensorKey
    sensor_profile_id: UUID
    component: ProfileName | None = None


class RuleTemplate(Request, kw_only=True, frozen=True):
    """An alert rule without its scope (alerting's ``CreateAlertRule``): the scope is the
    device a rule is made for. ``sensor``: one of the profile's sensor keys, required for
    every op but ``offline``. Stored as data here; alerting makes no rule of it yet."""

    name: ProfileName
    condition: Condition
    severity: Severity
    sensor: SensorKey | None = None
    for_seconds: ForSeconds = 0
    clear: Condition | None = None
    hysteresis: Annotated[float, msgspec.Meta(ge=0, le=1e300)] | None = None
    description: Description | None = None


# -- events --


class SensorProfileCreated(
    Event, tag=wire_tag(SERVICE, "SensorProfileCreated", 1), kw_only=True, frozen=True
):
    name: str
    unit: str
    value_type: ValueType
    key: str | None = None
    min: float | None = None
    max: float | None = None
    precision: int | None = None
    display_name: str | None = None


class SensorProfileChanged(
    Event, tag=wire_tag(SERVICE, "SensorProfileChanged", 1), kw_only=True, frozen=True
):
    """The sensor profile as it now is, whole; ``changed`` names the fields that moved."""

    changed: list[str]
    name: str
    unit: str
    value_type: ValueType
    key: str | None = None
    min: float | None = None
    max: float | None = None
    precision: int | None = None
    display_name: str | None = None


class SensorProfileDeleted(
    Event, tag=wire_tag(SERVICE, "SensorProfileDeleted", 1), kw_only=True, frozen=True
):
    """Gone; no device profile used it."""


class DeviceProfileCreated(
    Event, tag=wire_tag(SERVICE, "DeviceProfileCreated", 1), kw_only=True, frozen=True
):
    name: str
    components: list[ProfileComponent] = msgspec.field(default_factory=list)
    sensors: list[ProfileSensor] = msgspec.field(default_factory=list)
    rule_templates: list[RuleTemplate] = msgspec.field(default_factory=list)
    config_artefact_id: UUID | None = None
    expected_interval_seconds: int | None = None
    firmware_family: str | None = None
    description: str | None = None


class DeviceProfileChanged(
    Event, tag=wire_tag(SERVICE, "DeviceProfileChanged", 1), kw_only=True, frozen=True
):
    """The device profile as it now is, whole, at ``profile_version`` (its ETag: the stream's
    version after this event). ``changed`` names the fields that moved; ``sensorProfiles``
    means one of its sensor profiles changed (unit, type, range...), so what the profile
    resolves to (``RESOLVE_DEVICE_PROFILE``) changed with the same fields. The profile-change
    job applies the profile at this version to every device that has it."""

    changed: list[str]
    profile_version: int
    name: str
    components: list[ProfileComponent] = msgspec.field(default_factory=list)
    sensors: list[ProfileSensor] = msgspec.field(default_factory=list)
    rule_templates: list[RuleTemplate] = msgspec.field(default_factory=list)
    config_artefact_id: UUID | None = None
    expected_interval_seconds: int | None = None
    firmware_family: str | None = None
    description: str | None = None


class DeviceProfileDeleted(
    Event, tag=wire_tag(SERVICE, "DeviceProfileDeleted", 1), kw_only=True, frozen=True
):
    """Gone; no device had it."""


class PackOrigin(enum.StrEnum):
    """AUTHORED: made here from the organization's own items (``POST /packs``), exported to
    others; IMPORTED: installed from a pack document (``POST /packs/import``)."""

    AUTHORED = "AUTHORED"
    IMPORTED = "IMPORTED"


class PackItemKind(enum.StrEnum):
    """What a pack carries (domain ``packs.ItemKind``); rule templates travel inside their
    device profile (``ruleTemplates``), so RULE_TEMPLATE is reserved."""

    SENSOR_PROFILE = "SENSOR_PROFILE"
    CONFIG_ARTEFACT = "CONFIG_ARTEFACT"
    RULE_TEMPLATE = "RULE_TEMPLATE"
    DEVICE_PROFILE = "DEVICE_PROFILE"


class PackItemRef(Request, kw_only=True, frozen=True):
    """An item of the organization an authored pack carries."""

    kind: PackItemKind
    id: UUID


class InstalledPackItem(Contract, kw_only=True, frozen=True):
    """What an install created: the item's key in the pack, the resource made of it and the
    digest (SHA-256 of canonical JSON) of the content installed."""

    kind: PackItemKind
    key: str
    resource_id: UUID
    installed_digest: str


class PackCreated(Event, tag=wire_tag(SERVICE, "PackCreated", 1), kw_only=True, frozen=True):
    """An authored pack: a name, a version and the organization's items it carries."""

    name: str
    pack_version: str
    items: list[PackItemRef]
    description: str | None = None


class PackChanged(Event, tag=wire_tag(SERVICE, "PackChanged", 1), kw_only=True, frozen=True):
    """An authored pack as it now is, whole."""

    changed: list[str]
    name: str
    pack_version: str
    items: list[PackItemRef]
    description: str | None = None


class PackInstalled(Event, tag=wire_tag(SERVICE, "PackInstalled", 1), kw_only=True, frozen=True):
    """A pack document installed (first time) or upgraded: ``document`` as imported,
    ``items`` what the install holds now (created or upgraded, kept as conflicts),
    ``conflicts`` the keys left as users had them."""

    name: str
    pack_version: str
    digest: str
    document: dict[str, Any]
    items: list[InstalledPackItem]
    conflicts: list[str] = msgspec.field(default_factory=list)
    previous_version: str | None = None


class PackDeleted(Event, tag=wire_tag(SERVICE, "PackDeleted", 1), kw_only=True, frozen=True):
    """An authored pack deleted (its items stay) or an imported one uninstalled
    (``removed``: the resources the install created that it removed)."""

    removed: list[UUID] = msgspec.field(default_factory=list)


# -- requests --


class CreateSensorProfile(Request, kw_only=True, frozen=True):
    name: ProfileName
    unit: UnitCode
    value_type: ValueType = ValueType.NUMBER
    key: SensorKey | None = None
    min: Bound | None = None
    max: Bound | None = None
    precision: Precision | None = None
    display_name: DisplayName | None = None


class SensorProfilePatch(Request, kw_only=True, frozen=True):
    name: ProfileName | msgspec.UnsetType = msgspec.UNSET
    unit: UnitCode | msgspec.UnsetType = msgspec.UNSET
    value_type: ValueType | msgspec.UnsetType = msgspec.UNSET
    key: SensorKey | msgspec.UnsetType | None = msgspec.UNSET
    min: Bound | msgspec.UnsetType | None = msgspec.UNSET
    max: Bound | msgspec.UnsetType | None = msgspec.UNSET
    precision: Precision | msgspec.UnsetType | None = msgspec.UNSET
    display_name: DisplayName | msgspec.UnsetType | None = msgspec.UNSET


class UpdateSensorProfile(Request, kw_only=True, frozen=True):
    id: UUID
    patch: SensorProfilePatch
    expected_version: int | None = None  # from If-Match


class GetSensorProfile(Request, kw_only=True, frozen=True):
    id: UUID


class DeleteSensorProfile(Request, kw_only=True, frozen=True):
    id: UUID
    expected_version: int | None = None  # from If-Match


class ListSensorProfiles(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


Components = Annotated[list[ProfileComponent], msgspec.Meta(max_length=MAX_PROFILE_COMPONENTS)]
Sensors = Annotated[list[ProfileSensor], msgspec.Meta(max_length=MAX_PROFILE_SENSORS)]
RuleTemplates = Annotated[list[RuleTemplate], msgspec.Meta(max_length=MAX_RULE_TEMPLATES)]


class CreateDeviceProfile(Request, kw_only=True, frozen=True):
    name: ProfileName
    components: Components = msgspec.field(default_factory=list)
    sensors: Sensors = msgspec.field(default_factory=list)
    rule_templates: RuleTemplates = msgspec.field(default_factory=list)
    config_artefact_id: UUID | None = None
    expected_interval_seconds: ExpectedInterval | None = None
    firmware_family: ShortText | None = None
    description: Description | None = None


class DeviceProfilePatch(Request, kw_only=True, frozen=True):
    """A merge patch; a list given replaces the profile's whole list."""

    name: ProfileName | msgspec.UnsetType = msgspec.UNSET
    components: Components | msgspec.UnsetType = msgspec.UNSET
    sensors: Sensors | msgspec.UnsetType = msgspec.UNSET
    rule_templates: RuleTemplates | msgspec.UnsetType = msgspec.UNSET
    config_artefact_id: UUID | msgspec.UnsetType | None = msgspec.UNSET
    expected_interval_seconds: ExpectedInterval | msgspec.UnsetType | None = msgspec.UNSET
    firmware_family: ShortText | msgspec.UnsetType | None = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET


class UpdateDeviceProfile(Request, kw_only=True, frozen=True):
    id: UUID
    patch: DeviceProfilePatch
    expected_version: int | None = None  # from If-Match


class GetDeviceProfile(Request, kw_only=True, frozen=True):
    id: UUID


class DeleteDeviceProfile(Request, kw_only=True, frozen=True):
    id: UUID
    expected_version: int | None = None  # from If-Match


class ListDeviceProfiles(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


PackItemRefs = Annotated[list[PackItemRef], msgspec.Meta(min_length=1, max_length=MAX_PACK_ITEMS)]


class CreatePack(Request, kw_only=True, frozen=True):
    """Author a pack from the organization's items: a device profile brings the sensor
    profiles and the config artefact it names with it, so listing it alone is enough."""

    name: ProfileName
    version: PackVersion
    items: PackItemRefs
    description: Description | None = None


class PackPatch(Request, kw_only=True, frozen=True):
    """An authored pack's next version: ``items`` replaces the list."""

    name: ProfileName | msgspec.UnsetType = msgspec.UNSET
    version: PackVersion | msgspec.UnsetType = msgspec.UNSET
    items: PackItemRefs | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET


class UpdatePack(Request, kw_only=True, frozen=True):
    id: UUID
    patch: PackPatch
    expected_version: int | None = None  # from If-Match


class GetPack(Request, kw_only=True, frozen=True):
    id: UUID


class DeletePack(Request, kw_only=True, frozen=True):
    """An authored pack: deleted, its items stay. An imported one: uninstalled, which
    removes what the install created and still exists, and nothing else."""

    id: UUID
    expected_version: int | None = None  # from If-Match


class ListPacks(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class ExportPack(Request, kw_only=True, frozen=True):
    id: UUID


class PackDocumentItem(Request, kw_only=True, frozen=True):
    """``content`` by kind (docs/design/fleet.md, "Pack documents"): a sensor profile's or a
    device profile's fields as the API spells them, a device profile naming its sensor
    profiles (``sensors[].sensorProfile``) and artefact (``configArtefact``) by their keys in
    the pack; a config artefact's ``{name, document, schema?}`` (its latest version)."""

    kind: PackItemKind
    key: PackItemKey
    content: dict[str, Any]


PACK_FORMAT = "outpost.pack.v1"


class PackDocument(Request, kw_only=True, frozen=True):
    """The self-contained JSON of ``GET /packs/{id}/export``, which ``POST /packs/import``
    takes back in any organization."""

    format: Literal["outpost.pack.v1"] = "outpost.pack.v1"
    name: ProfileName
    version: PackVersion
    items: Annotated[list[PackDocumentItem], msgspec.Meta(max_length=MAX_PACK_ITEMS)]
    description: Description | None = None


class ImportPack(Request, kw_only=True, frozen=True):
    """``POST /packs/import``: the body is the pack document itself."""

    document: PackDocument


# -- replies --


class SensorProfileView(Contract, kw_only=True, frozen=True):
    id: UUID
    name: str
    unit: str
    value_type: ValueType
    version: int
    created_at: datetime
    updated_at: datetime
    key: str | None = None
    min: float | None = None
    max: float | None = None
    precision: int | None = None
    display_name: str | None = None
    object: str = "sensorProfile"


class DeviceProfileView(Contract, kw_only=True, frozen=True):
    """``impliedRuleTemplates``: the ``nodata`` and ``offline`` rules the expected interval
    implies (docs/design/fleet.md), beside the profile's own ``ruleTemplates``."""

    id: UUID
    name: str
    components: list[ProfileComponent]
    sensors: list[ProfileSensor]
    rule_templates: list[RuleTemplate]
    implied_rule_templates: list[RuleTemplate]
    version: int
    created_at: datetime
    updated_at: datetime
    config_artefact_id: UUID | None = None
    expected_interval_seconds: int | None = None
    firmware_family: str | None = None
    description: str | None = None
    object: str = "deviceProfile"


class PackItemView(Contract, kw_only=True, frozen=True):
    """An authored pack's item (``id``: the organization's resource), or an imported one's
    (``key`` in the pack, ``id`` the resource the install created)."""

    kind: PackItemKind
    id: UUID
    key: str | None = None


class PackView(Contract, kw_only=True, frozen=True):
    """``packVersion``: the pack's MAJOR.MINOR.PATCH; ``version``: this resource's (ETag).
    ``conflicts``: the keys the last import left as users had changed them."""

    id: UUID
    name: str
    pack_version: str
    origin: PackOrigin
    items: list[PackItemView]
    version: int
    created_at: datetime
    updated_at: datetime
    conflicts: list[str] = msgspec.field(default_factory=list)
    description: str | None = None
    object: str = "pack"


class PackStepView(Contract, kw_only=True, frozen=True):
    """One item of an import: CREATE, UPGRADE, UNCHANGED, CONFLICT (left as the user has
    it) or REMOVE (the new version dropped it)."""

    action: str
    kind: PackItemKind
    key: str
    resource_id: UUID | None = None


class PackImportView(Contract, kw_only=True, frozen=True):
    """``outcome``: INSTALLED (first time), UPGRADED (a newer version) or UNCHANGED (this
    version is installed: nothing was done)."""

    outcome: Literal["INSTALLED", "UPGRADED", "UNCHANGED"]
    pack: PackView
    steps: list[PackStepView]
    conflicts: list[PackStepView] = msgspec.field(default_factory=list)


# -- operations --

CREATE_SENSOR_PROFILE = Operation(
    SERVICE, "CreateSensorProfile", CreateSensorProfile, SensorProfileView
)
LIST_SENSOR_PROFILES = Operation(
    SERVICE, "ListSensorProfiles", ListSensorProfiles, Page[SensorProfileView]
)
GET_SENSOR_PROFILE = Operation(SERVICE, "GetSensorProfile", GetSensorProfile, SensorProfileView)
UPDATE_SENSOR_PROFILE = Operation(
    SERVICE, "UpdateSensorProfile", UpdateSensorProfile, SensorProfileView
)
DELETE_SENSOR_PROFILE = Operation(SERVICE, "DeleteSensorProfile", DeleteSensorProfile, Empty)
CREATE_DEVICE_PROFILE = Operation(
    SERVICE, "CreateDeviceProfile", CreateDeviceProfile, DeviceProfileView
)
LIST_DEVICE_PROFILES = Operation(
    SERVICE, "ListDeviceProfiles", ListDeviceProfiles, Page[DeviceProfileView]
)
GET_DEVICE_PROFILE = Operation(SERVICE, "GetDeviceProfile", GetDeviceProfile, DeviceProfileView)
UPDATE_DEVICE_PROFILE = Operation(
    SERVICE, "UpdateDeviceProfile", UpdateDeviceProfile, DeviceProfileView
)
DELETE_DEVICE_PROFILE = Operation(SERVICE, "DeleteDeviceProfile", DeleteDeviceProfile, Empty)
CREATE_PACK = Operation(SERVICE, "CreatePack", CreatePack, PackView)
LIST_PACKS = Operation(SERVICE, "ListPacks", ListPacks, Page[PackView])
GET_PACK = Operation(SERVICE, "GetPack", GetPack, PackView)
UPDATE_PACK = Operation(SERVICE, "UpdatePack", UpdatePack, PackView)
DELETE_PACK = Operation(SERVICE, "DeletePack", DeletePack, Empty)
EXPORT_PACK = Operation(SERVICE, "ExportPack", ExportPack, PackDocument)
IMPORT_PACK = Operation(SERVICE, "ImportPack", ImportPack, PackImportView)

EVENT_TYPES = (
    *EVENT_TYPES,
    SensorProfileCreated,
    SensorProfileChanged,
    SensorProfileDeleted,
    DeviceProfileCreated,
    DeviceProfileChanged,
    DeviceProfileDeleted,
    PackCreated,
    PackChanged,
    PackInstalled,
    PackDeleted,
)
# --- rollout, compliance and the profile-change job (ADR 0093) -----------------------------


class DeviceConfigDrifted(
    Event, tag=wire_tag(SERVICE, "DeviceConfigDrifted", 1), kw_only=True, frozen=True
):
    """A device that reported its effective desired state reported something else later (its
    stream is the device's id). A fact the fleet observed, for the timeline; ``pointers``
    are the JSON Pointers that differ (at most 20), ``digest`` the desired state's."""

    device_id: UUID
    digest: str
    pointers: list[str]
    reported_at: datetime


class ComplianceView(Contract, kw_only=True, frozen=True):
    """Of the devices a binding (or an artefact version) applies to: how many report the
    desired state (``inSync``), something else (``drifted``), nothing since it was
    delivered (``pending``). ``targeted`` is the sum."""

    targeted: int
    in_sync: int
    drifted: int
    pending: int
    binding_id: UUID | None = None
    artefact_id: UUID | None = None
    artefact_version: int | None = None
    computed_at: datetime | None = None


class GetBindingStatus(Request, kw_only=True, frozen=True):
    id: UUID


class GetArtefactVersionStatus(Request, kw_only=True, frozen=True):
    id: UUID
    version: int


class ApplicationStatus(enum.StrEnum):
    """A device profile's application to the devices that use it."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class ProfileApplicationView(Contract, kw_only=True, frozen=True):
    """The newest change of a device profile, applied to every device that uses it
    (asynchronous, resumable, in batches): ``done`` of ``total`` devices so far. A profile
    that never changed while devices used it has none (404)."""

    profile_id: UUID
    profile_version: int
    status: ApplicationStatus
    total: int
    done: int
    missing: int = 0
    error: str | None = None
    requested_at: datetime
    finished_at: datetime | None = None


class GetProfileApplication(Request, kw_only=True, frozen=True):
    id: UUID  # the device profile's


GET_BINDING_STATUS = Operation(SERVICE, "GetBindingStatus", GetBindingStatus, ComplianceView)
GET_ARTEFACT_VERSION_STATUS = Operation(
    SERVICE, "GetArtefactVersionStatus", GetArtefactVersionStatus, ComplianceView
)
GET_PROFILE_APPLICATION = Operation(
    SERVICE, "GetProfileApplication", GetProfileApplication, ProfileApplicationView
)

# Appended here, after its class, so the tuple above stays as it was agreed.
EVENT_TYPES = (*EVENT_TYPES, DeviceConfigDrifted)
