"""Fleet configuration (issue 21, ADR 0088): config artefacts and desired-state bindings.

Owned by the fleet service (ADR 0090); its events go to the FLEET stream. The requests,
views and operations of each resource group join this module with the group
(docs/design/fleet.md)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from outpost_contracts.base import Contract, Event, Request, wire_tag
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
