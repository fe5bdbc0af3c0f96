"""The device aggregate as a decider: registration, descriptive changes (a JSON merge patch)
and decommissioning. No I/O, no clock, no ids made here."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.devices import (
    CreateDevice,
    DeviceActivated,
    DeviceDecommissioned,
    DevicePatch,
    DeviceRegistered,
    DeviceStatus,
    DeviceUpdated,
    Tag,
)
from outpost_contracts.errors import Conflict, Gone, NotFound, validation_error
from outpost_contracts.patch import merge_patch
from outpost_contracts.provisioning import (
    DeviceCertificateRenewed,
    DeviceCertificateRevoked,
    DeviceProvisioned,
)

STREAM_TYPE = "device"
MAX_ATTRIBUTES_BYTES = 16_384


class Device(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    status: DeviceStatus
    version: int
    device_type: str | None = None
    site_id: UUID | None = None
    group_id: UUID | None = None
    tags: tuple[Tag, ...] = ()
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    profile_id: UUID | None = None
    certificates: tuple[str, ...] = ()  # serials issued and not revoked (expired included)


class Decommission(msgspec.Struct, frozen=True, kw_only=True):
    """Retire the device (DELETE). Repeating it changes nothing."""


class ProvisionDevice(msgspec.Struct, frozen=True, kw_only=True):
    """Record the certificate issued on redeeming a registration token."""

    certificate_id: UUID
    serial: str
    not_before: datetime
    not_after: datetime
    token_id: UUID | None = None


class RenewCertificate(msgspec.Struct, frozen=True, kw_only=True):
    certificate_id: UUID
    serial: str
    not_before: datetime
    not_after: datetime
    previous_serial: str


class RevokeCertificate(msgspec.Struct, frozen=True, kw_only=True):
    serial: str


class Activate(msgspec.Struct, frozen=True, kw_only=True):
    """The device's first broker connection (presence saw it come online): a PROVISIONED
    device becomes ACTIVE. In any other status nothing changes."""

    connected_at: datetime


Command = (
    CreateDevice
    | DevicePatch
    | Decommission
    | ProvisionDevice
    | RenewCertificate
    | RevokeCertificate
    | Activate
)

# API name → state attribute, in the order ``DeviceUpdated.changed`` lists them.
PATCHABLE = {
    "name": "name",
    "deviceType": "device_type",
    "siteId": "site_id",
    "groupId": "group_id",
    "tags": "tags",
    "attributes": "attributes",
    "profileId": "profile_id",
}


def _check_tags_and_attributes(tags: Any, attributes: Any) -> None:
    keys = [t.key for t in tags]
    if len(keys) != len(set(keys)):
        raise validation_error("tags", "each tag key may appear once")
    if len(msgspec.json.encode(attributes)) > MAX_ATTRIBUTES_BYTES:
        raise validation_error("attributes", f"larger than {MAX_ATTRIBUTES_BYTES} bytes")


def decide(state: Device | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, CreateDevice):
        if state is not None:
            raise Conflict("the device already exists")
        _check_tags_and_attributes(command.tags, command.attributes)
        return [
            DeviceRegistered(
                name=command.name,
                device_type=command.device_type,
                site_id=command.site_id,
                group_id=command.group_id,
                tags=list(command.tags),
                attributes=dict(command.attributes),
                profile_id=command.profile_id,
            )
        ]
    if state is None:
        raise NotFound("no such device")
    if isinstance(command, Decommission):
        if state.status is DeviceStatus.DECOMMISSIONED:
            return []
        revocations: list[Event] = [
            DeviceCertificateRevoked(serial=serial, reason="decommissioned")
            for serial in state.certificates
        ]
        return [DeviceDecommissioned(), *revocations]
    if isinstance(command, ProvisionDevice | RenewCertificate):
        return _issue(state, command)
    if isinstance(command, Activate):
        if state.status is not DeviceStatus.PROVISIONED:
            return []
        return [DeviceActivated(connected_at=command.connected_at)]
    if isinstance(command, RevokeCertificate):
        if command.serial not in state.certificates:
            return []  # unknown or already revoked: the caller checked it exists
        return [DeviceCertificateRevoked(serial=command.serial)]
    return _update(state, command)


def _issue(state: Device, command: ProvisionDevice | RenewCertificate) -> list[Event]:
    if state.status is DeviceStatus.DECOMMISSIONED:
        raise Gone(f"device {state.id} is decommissioned")
    if isinstance(command, ProvisionDevice):
        return [
            DeviceProvisioned(
                certificate_id=command.certificate_id,
                serial=command.serial,
                not_before=command.not_before,
                not_after=command.not_after,
                token_id=command.token_id,
            )
        ]
    if command.previous_serial not in state.certificates:
        raise Gone("the certificate to renew has been revoked")
    return [
        DeviceCertificateRenewed(
            certificate_id=command.certificate_id,
            serial=command.serial,
            not_before=command.not_before,
            not_after=command.not_after,
            previous_serial=command.previous_serial,
        )
    ]


def _update(state: Device, patch: DevicePatch) -> list[Event]:
    if state.status is DeviceStatus.DECOMMISSIONED:
        raise Conflict(f"device {state.id} is decommissioned and can no longer change")
    new: dict[str, Any] = {}
    if patch.name is not msgspec.UNSET:
        new["name"] = patch.name
    for api_name, attr in (
        ("deviceType", "device_type"),
        ("siteId", "site_id"),
        ("groupId", "group_id"),
        ("profileId", "profile_id"),
    ):
        value = getattr(patch, attr)
        if value is not msgspec.UNSET:
            new[api_name] = value
    if patch.tags is not msgspec.UNSET:
        new["tags"] = tuple(patch.tags or ())
    if patch.attributes is not msgspec.UNSET:
        new["attributes"] = (
            {} if patch.attributes is None else merge_patch(state.attributes, patch.attributes)
        )
    _check_tags_and_attributes(new.get("tags", state.tags), new.get("attributes", state.attributes))
    changed = [
        api_name
        for api_name, attr in PATCHABLE.items()
        if api_name in new and new[api_name] != getattr(state, attr)
    ]
    if not changed:
        return []
    values = {PATCHABLE[k]: new[k] for k in changed}
    if "tags" in values:
        values["tags"] = list(values["tags"])
    return [DeviceUpdated(changed=changed, **values)]


def evolve(state: Device | None, event: Event, stream_id: UUID) -> Device | None:
    if isinstance(event, DeviceRegistered):
        return Device(
            id=stream_id,
            name=event.name,
            status=DeviceStatus.REGISTERED,
            version=1,
            device_type=event.device_type,
            site_id=event.site_id,
            group_id=event.group_id,
            tags=tuple(event.tags),
            attributes=dict(event.attributes),
            profile_id=event.profile_id,
        )
    assert state is not None, "a device's first event registers it"
    if isinstance(event, DeviceUpdated):
        values = {
            PATCHABLE[k]: getattr(event, PATCHABLE[k]) for k in event.changed if k in PATCHABLE
        }
        if "tags" in values:
            values["tags"] = tuple(values["tags"])
        if "attributes" in values:
            values["attributes"] = dict(values["attributes"])
        return msgspec.structs.replace(state, version=state.version + 1, **values)
    if isinstance(event, DeviceDecommissioned):
        return msgspec.structs.replace(
            state, status=DeviceStatus.DECOMMISSIONED, version=state.version + 1
        )
    if isinstance(event, DeviceActivated):
        return msgspec.structs.replace(state, status=DeviceStatus.ACTIVE, version=state.version + 1)
    if isinstance(event, DeviceProvisioned | DeviceCertificateRenewed):
        status = (
            DeviceStatus.PROVISIONED if state.status is DeviceStatus.REGISTERED else state.status
        )
        return msgspec.structs.replace(
            state,
            status=status,
            certificates=(*state.certificates, event.serial),
            version=state.version + 1,
        )
    if isinstance(event, DeviceCertificateRevoked):
        return msgspec.structs.replace(
            state,
            certificates=tuple(s for s in state.certificates if s != event.serial),
            version=state.version + 1,
        )
    return msgspec.structs.replace(state, version=state.version + 1)
