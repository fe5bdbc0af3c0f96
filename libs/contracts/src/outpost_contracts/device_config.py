"""What the fleet service asks of devices, in bounded batches (issue 21): apply a device
profile to devices, set the fleet's part of their desired state; and the fact the fleet
learns compliance from, a device's reported state.

Devices serve these operations; fleet calls them (``access.CALLS``). A batch names at most
``MAX_BATCH`` devices: a change over 10,000 devices is twenty calls, each one transaction, never
one transaction per fleet (docs/design/fleet.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Event, Request, wire_tag
from outpost_contracts.fleet import DeviceProfileSpec, TargetType
from outpost_contracts.rpc import Operation

SERVICE = "devices"

MAX_BATCH = 500


class ApplyDeviceProfile(Request, kw_only=True, frozen=True):
    """Give each device what ``profile`` lists and it lacks (components, sensors; existing
    sensors aligned with their profile's unit, type and range), and set its ``profileId`` to
    ``profile.id``. Idempotent: applying again changes nothing."""

    profile: DeviceProfileSpec
    device_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_BATCH)]


class ApplyDeviceProfileResult(Contract, kw_only=True, frozen=True):
    applied: list[UUID]  # changed or already as the profile says
    missing: list[UUID]  # no such device in the organization, or decommissioned


class Source(Contract, kw_only=True, frozen=True):
    """The binding behind one key of the fleet's desired state (``?explain=true``)."""

    binding_id: UUID
    artefact_id: UUID
    artefact_version: int
    target_type: TargetType


class FleetDesiredState(Contract, kw_only=True, frozen=True):
    """A device's effective desired state as the fleet computed it: ``document`` is the merge
    of every binding that applies; ``sources`` maps each leaf's JSON Pointer to its binding;
    ``digest`` identifies the document (the same digest again changes nothing)."""

    device_id: UUID
    document: dict[str, Any]
    sources: dict[str, Source]
    digest: str


class SetFleetDesiredStates(Request, kw_only=True, frozen=True):
    items: Annotated[list[FleetDesiredState], msgspec.Meta(max_length=MAX_BATCH)]


class SetFleetDesiredStatesResult(Contract, kw_only=True, frozen=True):
    changed: list[UUID]  # a new desired state, delivered to the device as ``outpost.state``
    unchanged: list[UUID]  # already this digest
    missing: list[UUID]  # no such device in the organization, or decommissioned
    too_large: list[UUID]  # the desired state would exceed ``commands.MAX_DOCUMENT_BYTES``


class ReportedStateChanged(
    Event, tag=wire_tag(SERVICE, "ReportedStateChanged", 1), kw_only=True, frozen=True
):
    """A device reported its state. A fact, not a principal's change: published for the fleet's
    compliance counts, never in the audit log."""

    device_id: UUID
    reported: dict[str, Any]
    reported_at: datetime


APPLY_DEVICE_PROFILE = Operation(
    SERVICE, "ApplyDeviceProfile", ApplyDeviceProfile, ApplyDeviceProfileResult
)
SET_FLEET_DESIRED_STATES = Operation(
    SERVICE, "SetFleetDesiredStates", SetFleetDesiredStates, SetFleetDesiredStatesResult
)

EVENT_TYPES: tuple[type[Event], ...] = (ReportedStateChanged,)
