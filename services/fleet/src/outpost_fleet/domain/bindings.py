"""The desired-state binding aggregate: an artefact version (or "latest") attached to a target
with a priority (ADR 0088; precedence and merging are in ``desired_state``).

The use case checks what the domain cannot see and passes it in: the artefact's live versions
(none: no such artefact in this organization, 404) and whether the target exists."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts import patch
from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, validation_error
from outpost_contracts.fleet import (
    DesiredStateBindingChanged,
    DesiredStateBindingCreated,
    DesiredStateBindingRemoved,
    Target,
    TargetType,
)

STREAM_TYPE = "desired_state_binding"
MIN_PRIORITY = -1000
MAX_PRIORITY = 1000


class Binding(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    artefact_id: UUID
    artefact_version: int | None  # None: "latest"
    target: Target
    priority: int
    deleted: bool
    version: int


class CreateBinding(msgspec.Struct, frozen=True, kw_only=True):
    artefact_id: UUID
    target: Target
    priority: int = 0
    artefact_version: int | None = None
    artefact_versions: frozenset[int] = frozenset()  # the artefact's live versions
    target_exists: bool = True


class ChangeBinding(msgspec.Struct, frozen=True, kw_only=True):
    """A merge patch of the binding: ``UNSET`` leaves a field; ``artefact_version`` None
    follows "latest"."""

    priority: int | msgspec.UnsetType = msgspec.UNSET
    artefact_version: int | msgspec.UnsetType | None = msgspec.UNSET
    artefact_versions: frozenset[int] = frozenset()


class RemoveBinding(msgspec.Struct, frozen=True, kw_only=True):
    pass


Command = CreateBinding | ChangeBinding | RemoveBinding


# A change's fields: {API name: attribute} (``outpost_contracts.patch.changes``).
FIELDS = {"priority": "priority", "artefactVersion": "artefact_version"}


def _checked_priority(priority: int) -> int:
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise validation_error("priority", f"must be between {MIN_PRIORITY} and {MAX_PRIORITY}")
    return priority


def _checked_version(version: int | None, available: frozenset[int]) -> int | None:
    if version is not None and version not in available:
        raise validation_error("artefactVersion", f"the artefact has no version {version}")
    return version


def decide(state: Binding | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, CreateBinding):
        if state is not None:
            raise Conflict("the desired-state binding already exists")
        if not command.artefact_versions:
            raise NotFound("no such config artefact")
        if (command.target.type is TargetType.ORGANIZATION) != (command.target.id is None):
            raise validation_error(
                "target.id", "required for every target type but ORGANIZATION, which has none"
            )
        if not command.target_exists:
            raise NotFound(f"no such {command.target.type.lower()}")
        _checked_priority(command.priority)
        _checked_version(command.artefact_version, command.artefact_versions)
        return [
            DesiredStateBindingCreated(
                artefact_id=command.artefact_id,
                target=command.target,
                priority=command.priority,
                artefact_version=command.artefact_version,
            )
        ]
    binding = patch.live(state, "desired-state binding")
    if isinstance(command, RemoveBinding):
        return [DesiredStateBindingRemoved(artefact_id=binding.artefact_id)]
    available = command.artefact_versions
    changes = patch.changes(
        binding,
        command,
        FIELDS,
        {
            "priority": lambda _, p: _checked_priority(p),
            "artefact_version": lambda _, v: _checked_version(v, available),
        },
    )
    if not changes:
        return []
    new = msgspec.structs.replace(binding, **{FIELDS[k]: v for k, v in changes.items()})
    return [
        DesiredStateBindingChanged(
            changed=list(changes), priority=new.priority, artefact_version=new.artefact_version
        )
    ]


def evolve(state: Binding | None, event: Event, stream_id: UUID) -> Binding | None:
    if isinstance(event, DesiredStateBindingCreated):
        return Binding(
            id=stream_id,
            artefact_id=event.artefact_id,
            artefact_version=event.artefact_version,
            target=event.target,
            priority=event.priority,
            deleted=False,
            version=1,
        )
    assert state is not None
    version = state.version + 1
    if isinstance(event, DesiredStateBindingChanged):
        return msgspec.structs.replace(
            state,
            priority=event.priority,
            artefact_version=event.artefact_version,
            version=version,
        )
    if isinstance(event, DesiredStateBindingRemoved):
        return msgspec.structs.replace(state, deleted=True, version=version)
    return msgspec.structs.replace(state, version=version)
