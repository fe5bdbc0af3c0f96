"""Commands to a device and its desired state, as deciders. No I/O, no clock, no ids.

A command's lifecycle (docs/api.md): PENDING → SENT → ACKNOWLEDGED → SUCCEEDED | FAILED, and
EXPIRED from any status that is not final once ``expires_at`` has passed. Delivery and the
device's acks may repeat and arrive late or out of order, so every transition that no longer
applies decides nothing (an empty list) instead of failing: a final status never moves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import commands as api
from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, validation_error
from outpost_contracts.patch import merge_patch
from outpost_contracts.presence import AckStatus, CommandStatus

COMMAND = "command"
DESIRED_STATE = "device_state"

FINAL = frozenset({CommandStatus.SUCCEEDED, CommandStatus.FAILED, CommandStatus.EXPIRED})
OPEN = frozenset({CommandStatus.PENDING, CommandStatus.SENT, CommandStatus.ACKNOWLEDGED})


def _size(field: str, value: Any) -> None:
    if len(msgspec.json.encode(value)) > api.MAX_DOCUMENT_BYTES:
        raise validation_error(field, f"larger than {api.MAX_DOCUMENT_BYTES} bytes")


# --- commands ---------------------------------------------------------------------------


class Command(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    device_id: UUID
    name: str
    params: dict[str, Any]
    expires_at: datetime
    status: CommandStatus = CommandStatus.PENDING


class Create(msgspec.Struct, frozen=True, kw_only=True):
    device_id: UUID
    name: str
    params: dict[str, Any]
    expires_at: datetime


class MarkSent(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery found a subscriber on the device's command subject."""


class Ack(msgspec.Struct, frozen=True, kw_only=True):
    """The device's answer (``CommandAck``)."""

    status: AckStatus
    result: Any = None


class Expire(msgspec.Struct, frozen=True, kw_only=True):
    """The sweeper's check: expire the command if ``expires_at`` has passed."""


CommandCommand = Create | MarkSent | Ack | Expire


def decide_command(state: Command | None, command: CommandCommand, now: datetime) -> list[Event]:
    if isinstance(command, Create):
        if state is not None:
            raise Conflict("the command already exists")
        _size("params", command.params)
        if command.expires_at <= now:
            raise validation_error("expiresAt", "must be in the future")
        return [
            api.CommandCreated(
                device_id=command.device_id,
                name=command.name,
                params=dict(command.params),
                expires_at=command.expires_at,
            )
        ]
    if state is None:
        raise NotFound("no such command")
    if state.status in FINAL:
        return []  # a late or repeated delivery, ack or expiry changes nothing
    device = state.device_id
    if now >= state.expires_at:
        # Past its expiry nothing but expiring applies: a late ack does not revive it.
        return [api.CommandExpired(device_id=device)]
    if isinstance(command, Expire):
        return []
    if isinstance(command, MarkSent):
        return [api.CommandSent(device_id=device)] if state.status is CommandStatus.PENDING else []
    # An ack: it proves delivery, so a PENDING command (the ack overtook the delivery's own
    # bookkeeping) is SENT first; ACKNOWLEDGED again, or after a final status, is nothing.
    events: list[Event] = []
    if state.status is CommandStatus.PENDING:
        events.append(api.CommandSent(device_id=device))
    if command.status is AckStatus.ACKNOWLEDGED:
        if state.status is not CommandStatus.ACKNOWLEDGED:
            events.append(api.CommandAcknowledged(device_id=device))
        return events
    _size("result", command.result)
    if command.status is AckStatus.SUCCEEDED:
        events.append(api.CommandSucceeded(device_id=device, result=command.result))
    else:
        events.append(api.CommandFailed(device_id=device, result=command.result))
    return events


_STATUS_OF: dict[type[Event], CommandStatus] = {
    api.CommandSent: CommandStatus.SENT,
    api.CommandAcknowledged: CommandStatus.ACKNOWLEDGED,
    api.CommandSucceeded: CommandStatus.SUCCEEDED,
    api.CommandFailed: CommandStatus.FAILED,
    api.CommandExpired: CommandStatus.EXPIRED,
}


def evolve_command(state: Command | None, event: Event, stream_id: UUID) -> Command | None:
    if isinstance(event, api.CommandCreated):
        return Command(
            id=stream_id,
            device_id=event.device_id,
            name=event.name,
            params=dict(event.params),
            expires_at=event.expires_at,
        )
    assert state is not None, f"{type(event).__name__} before CommandCreated"
    status = _STATUS_OF.get(type(event))
    return state if status is None else msgspec.structs.replace(state, status=status)


# --- desired state ----------------------------------------------------------------------


class DesiredState(msgspec.Struct, frozen=True, kw_only=True):
    device_id: UUID
    desired: dict[str, Any]


class ChangeDesired(msgspec.Struct, frozen=True, kw_only=True):
    device_id: UUID
    desired: dict[str, Any]
    replace: bool = False


def decide_desired(
    state: DesiredState | None, command: ChangeDesired, now: datetime
) -> list[Event]:
    current = {} if state is None else state.desired
    new = dict(command.desired) if command.replace else merge_patch(current, command.desired)
    if command.replace:
        new = merge_patch({}, new)  # null values in a replacement are no keys at all
    _size("desired", new)
    if state is not None and new == current:
        return []
    return [api.DesiredStateChanged(device_id=command.device_id, desired=new)]


def evolve_desired(state: DesiredState | None, event: Event, stream_id: UUID) -> DesiredState:
    assert isinstance(event, api.DesiredStateChanged)
    return DesiredState(device_id=event.device_id, desired=dict(event.desired))


def delta(desired: dict[str, Any], reported: dict[str, Any]) -> dict[str, Any]:
    """What of the desired state the device has not reported yet: the desired keys whose
    value differs from the reported one (objects compared key by key, recursively)."""
    out: dict[str, Any] = {}
    for key, want in desired.items():
        have = reported.get(key)
        if isinstance(want, dict) and isinstance(have, dict):
            inner = delta(want, have)
            if inner:
                out[key] = inner
        elif want != have or key not in reported:
            out[key] = want
    return out


def report(reported: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A device's ``StateReport`` applied to its reported state (merge; ``null`` deletes)."""
    merged = merge_patch(reported, patch)
    _size("reported", merged)
    return dict(merged)
