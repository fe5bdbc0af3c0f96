"""What goes on an organization's timeline (``/events``) and how each entry reads: alert
transitions from alerting's own events, from the DEVICES stream registration, connects and
disconnects, provisioning, activation and decommissioning, and commands, and from the FLEET
stream a device's configuration drifting (ADR 0093). Pure."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import alerting as api
from outpost_contracts import commands, devices, fleet, presence, provisioning
from outpost_contracts.base import Event
from outpost_contracts.envelope import EventEnvelope


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    summary: str
    device_id: UUID | None = None
    alert_id: UUID | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)


# The devices stream's events the timeline keeps (alerting's own are all kept).
DEVICE_EVENT_TYPES: tuple[type[Event], ...] = (
    devices.DeviceRegistered,  # since ADR 0096: `outpost watch devices` sees a new device
    presence.DeviceConnected,
    presence.DeviceDisconnected,
    provisioning.DeviceProvisioned,
    provisioning.DeviceCertificateRevoked,
    devices.DeviceActivated,
    devices.DeviceDecommissioned,
    commands.CommandCreated,
    commands.CommandSucceeded,
    commands.CommandFailed,
    commands.CommandExpired,
)

# The fleet stream's events the timeline keeps (ADR 0093).
FLEET_EVENT_TYPES: tuple[type[Event], ...] = (fleet.DeviceConfigDrifted,)


def _by(by: UUID | None, comment: str | None) -> str:
    text = f" by {by}" if by is not None else ""
    return f"{text}: {comment}" if comment else text


def entry(e: EventEnvelope, device_id: UUID | None = None) -> Entry | None:
    """The timeline entry of an event, or None when the timeline does not keep it.
    ``device_id``: the alert's device, for alert events after the first (theirs do not
    carry it)."""
    data = e.data
    if isinstance(data, api.AlertOpened):
        return Entry(
            summary=f"{data.severity.value} alert opened: {data.trigger.condition}",
            device_id=data.device_id,
            alert_id=e.stream_id,
            data={"ruleId": str(data.rule_id), "value": data.trigger.value},
        )
    if isinstance(data, api.AlertAcknowledged):
        return Entry(
            summary=f"alert acknowledged{_by(data.by, data.comment)}",
            device_id=device_id,
            alert_id=e.stream_id,
        )
    if isinstance(data, api.AlertResolved):
        if data.resolution == api.Resolution.MANUAL:
            summary = f"alert resolved{_by(data.by, data.comment)}"
        elif data.value is not None:
            summary = f"alert cleared at {data.value:g}"
        else:
            summary = "alert cleared"
        return Entry(summary=summary, device_id=device_id, alert_id=e.stream_id)
    if isinstance(data, presence.DeviceConnected):
        return Entry(
            summary=f"device connected over {data.protocol}",
            device_id=e.stream_id,
            data={"protocol": str(data.protocol)},
        )
    if isinstance(data, presence.DeviceDisconnected):
        reason = f" ({data.reason})" if data.reason else ""
        return Entry(summary=f"device disconnected{reason}", device_id=e.stream_id)
    if isinstance(data, devices.DeviceRegistered):
        return Entry(
            summary=f"device {data.name!r} registered",
            device_id=e.stream_id,
            data={"name": data.name},
        )
    if isinstance(data, provisioning.DeviceProvisioned):
        return Entry(summary="device provisioned", device_id=e.stream_id)
    if isinstance(data, provisioning.DeviceCertificateRevoked):
        return Entry(summary="device certificate revoked", device_id=e.stream_id)
    if isinstance(data, devices.DeviceActivated):
        return Entry(summary="device activated", device_id=e.stream_id)
    if isinstance(data, devices.DeviceDecommissioned):
        return Entry(summary="device decommissioned", device_id=e.stream_id)
    if isinstance(data, commands.CommandCreated):
        return Entry(
            summary=f"command {data.name!r} created",
            device_id=data.device_id,
            data={"commandId": str(e.stream_id), "name": data.name},
        )
    if isinstance(
        data, commands.CommandSucceeded | commands.CommandFailed | commands.CommandExpired
    ):
        outcome = type(data).__name__.removeprefix("Command").lower()
        return Entry(
            summary=f"command {outcome}",
            device_id=data.device_id,
            data={"commandId": str(e.stream_id)},
        )
    if isinstance(data, fleet.DeviceConfigDrifted):
        keys = ", ".join(data.pointers) or "its reported state"
        return Entry(
            summary=f"device configuration drifted: {keys}",
            device_id=data.device_id,
            data={"pointers": list(data.pointers), "digest": data.digest},
        )
    return None
