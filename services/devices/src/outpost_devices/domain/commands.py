"""Commands to a device and its desired state, as deciders. No I/O, no clock, no ids.

A command's lifecycle (docs/api.md): PENDING → SENT → ACKNOWLEDGED → SUCCEEDED | FAILED, and
EXPIRED from any status that is not final once ``expires_at`` has passed. Delivery and the
device's acks may repeat and arrive late or out of order, so every transition that no longer
applies decides nothing (an empty list) instead of failing: a final status never moves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import commands as api
from outpost_contracts.base import Event
from outpost_contracts.device_config import Source
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
#
# Two layers (ADR 0091): the fleet's document (``SetFleetDesiredStates``: the merge of the
# desired-state bindings that apply, with the binding behind each leaf and a digest) and the
# local layer, what users set through ``PATCH``/``PUT /devices/{id}/state``. The local layer is
# a merge patch over the fleet's document: ``desired = merge_patch(fleet, local)``; a ``null``
# in it removes a key the fleet sets, on this device only. With no fleet document the local
# layer is the desired state, as before.


class DesiredState(msgspec.Struct, frozen=True, kw_only=True):
    device_id: UUID
    desired: dict[str, Any]
    local: dict[str, Any] = msgspec.field(default_factory=dict)
    fleet: dict[str, Any] = msgspec.field(default_factory=dict)
    sources: dict[str, Source] = msgspec.field(default_factory=dict)
    digest: str = ""


class ChangeDesired(msgspec.Struct, frozen=True, kw_only=True):
    """A user's change of the local layer: a merge patch of it, or (``replace``) a new one."""

    device_id: UUID
    desired: dict[str, Any]
    replace: bool = False


class SetFleet(msgspec.Struct, frozen=True, kw_only=True):
    """The fleet's layer: its effective document for the device. The same digest again
    changes nothing; a desired state over the size limit is refused (``ValidationFailed``)."""

    device_id: UUID
    document: dict[str, Any]
    sources: dict[str, Source]
    digest: str


DesiredCommand = ChangeDesired | SetFleet


def compose(local: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` applied to a merge patch, keeping its ``null`` (each one still removes the
    key from what the result is applied to)."""
    out = dict(local)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = compose(out[key], value)
        else:
            out[key] = value
    return out


def trim(local: dict[str, Any], fleet: Any) -> dict[str, Any]:
    """The local layer without the ``null`` that remove nothing of ``fleet`` (so with no
    fleet document the local layer is exactly the desired state)."""
    out: dict[str, Any] = {}
    for key, value in local.items():
        under = fleet.get(key) if isinstance(fleet, dict) else None
        if value is None:
            if under is not None:
                out[key] = None
        elif isinstance(value, dict):
            out[key] = trim(value, under)
        else:
            out[key] = value
    return out


def decide_desired(
    state: DesiredState | None, command: DesiredCommand, now: datetime
) -> list[Event]:
    current = {} if state is None else state.desired
    local = {} if state is None else state.local
    fleet = {} if state is None else state.fleet
    if isinstance(command, SetFleet):
        if state is not None and state.digest == command.digest:
            return []
        new = merge_patch(command.document, local)
        _size("desired", new)
        layer = api.FleetLayer(
            document=dict(command.document), sources=dict(command.sources), digest=command.digest
        )
        return [
            api.DesiredStateChanged(
                device_id=command.device_id, desired=new, local=dict(local), fleet=layer
            )
        ]
    new_local = trim(command.desired if command.replace else compose(local, command.desired), fleet)
    new = merge_patch(fleet, new_local)
    _size("desired", new)
    if state is not None and new == current and new_local == local:
        return []
    return [api.DesiredStateChanged(device_id=command.device_id, desired=new, local=new_local)]


def evolve_desired(state: DesiredState | None, event: Event, stream_id: UUID) -> DesiredState:
    assert isinstance(event, api.DesiredStateChanged)
    # Events before ADR 0091 carry neither layer: their desired state was all local.
    local = dict(event.desired) if event.local is None else dict(event.local)
    if event.fleet is not None:
        return DesiredState(
            device_id=event.device_id,
            desired=dict(event.desired),
            local=local,
            fleet=dict(event.fleet.document),
            sources=dict(event.fleet.sources),
            digest=event.fleet.digest,
        )
    if state is None:
        return DesiredState(device_id=event.device_id, desired=dict(event.desired), local=local)
    return msgspec.structs.replace(state, desired=dict(event.desired), local=local)


def pointer(path: Iterable[str]) -> str:
    """RFC 6901: ``~`` is ``~0``, ``/`` is ``~1``."""
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in path)


def leaves(document: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The paths of the document's leaves: values that are not objects, and empty objects
    (as the fleet names them in ``sources``)."""
    for key, value in document.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            yield from leaves(value, path)
        else:
            yield path


def _set_locally(local: Any, path: tuple[str, ...]) -> bool:
    """Whether the local layer gives ``path`` its value (there or on an object above it)."""
    node = local
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
        if node is not None and not isinstance(node, dict):
            return True
    return isinstance(node, dict)


def explain(
    desired: dict[str, Any], local: dict[str, Any], sources: Mapping[str, Source]
) -> dict[str, api.KeySource]:
    """The source of each leaf of ``desired`` (``?explain=true``): the binding the fleet
    names for it, or the device when the local layer sets it (or the fleet names none)."""
    out: dict[str, api.KeySource] = {}
    for path in leaves(desired):
        key = pointer(path)
        source = None if _set_locally(local, path) else sources.get(key)
        if source is None:
            out[key] = api.KeySource(source="device")
        else:
            out[key] = api.KeySource(
                source="binding",
                binding_id=source.binding_id,
                artefact_id=source.artefact_id,
                artefact_version=source.artefact_version,
                target_type=source.target_type,
            )
    return out


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
