"""Where a device sits, as the fleet learns it from the DEVICES stream (ADR 0093): its
organization, site, group and device profile, enough to tell which bindings apply to it.

``fold`` applies a batch of one device's events to what the fleet knew, in stream order; an
event at or below the version already applied is a redelivery and changes nothing. A
decommissioned device is kept as a tombstone (``decommissioned``: no binding applies to it
any more, and a redelivered registration does not bring it back). ``moved`` says whether
its effective state must be computed again.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import msgspec

from outpost_contracts import devices as device_events
from outpost_contracts.envelope import EventEnvelope
from outpost_fleet.domain.desired_state import DeviceFacts
from outpost_fleet.domain.rollout import device_moved


class Placement(msgspec.Struct, frozen=True, kw_only=True):
    org_id: UUID
    id: UUID
    site_id: UUID | None = None
    group_id: UUID | None = None
    profile_id: UUID | None = None
    version: int = 0  # the device's last event applied
    decommissioned: bool = False

    def facts(self) -> DeviceFacts:
        return DeviceFacts(
            id=self.id,
            site_id=self.site_id,
            group_ids=frozenset() if self.group_id is None else frozenset({self.group_id}),
            profile_id=self.profile_id,
        )


class Folded(msgspec.Struct, frozen=True, kw_only=True):
    placement: Placement | None  # None: never known
    moved: bool  # registered, or its site, group or profile changed
    forgotten: bool  # decommissioned by these events


EVENTS = (
    device_events.DeviceRegistered,
    device_events.DeviceUpdated,
    device_events.DeviceDecommissioned,
)


def fold(known: Placement | None, events: Iterable[EventEnvelope]) -> Folded:
    """``events``: one device's, in stream order."""
    current = known
    moved = False
    forgotten = False
    replace = msgspec.structs.replace
    for envelope in events:
        data = envelope.data
        if current is not None and (envelope.version <= current.version or current.decommissioned):
            continue  # applied already, or the device is gone for good
        if isinstance(data, device_events.DeviceRegistered):
            current = Placement(
                org_id=envelope.org_id,
                id=envelope.stream_id,
                site_id=data.site_id,
                group_id=data.group_id,
                profile_id=data.profile_id,
                version=envelope.version,
            )
            moved = True
        elif isinstance(data, device_events.DeviceUpdated):
            if current is None:
                continue  # its registration was not seen
            changed = set(data.changed)
            current = replace(
                current,
                site_id=data.site_id if "siteId" in changed else current.site_id,
                group_id=data.group_id if "groupId" in changed else current.group_id,
                profile_id=data.profile_id if "profileId" in changed else current.profile_id,
                version=envelope.version,
            )
            moved = moved or device_moved(changed)
        elif isinstance(data, device_events.DeviceDecommissioned):
            current = Placement(
                org_id=envelope.org_id,
                id=envelope.stream_id,
                version=envelope.version,
                decommissioned=True,
            )
            forgotten = True
            moved = False
    return Folded(placement=current, moved=moved, forgotten=forgotten)
