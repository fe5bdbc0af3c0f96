"""The organization aggregate as a decider: decide(state, command, now) → events;
evolve(state, event) → state. No I/O, no clock, no ids made here."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound
from outpost_contracts.identity import (
    CreateOrganization,
    OrganizationCreated,
    OrganizationReinstated,
    OrganizationStatus,
    OrganizationSuspended,
)

STREAM_TYPE = "organization"


class Organization(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    status: OrganizationStatus
    version: int


class SuspendOrganization(msgspec.Struct, frozen=True, kw_only=True):
    reason: str = ""


class ReinstateOrganization(msgspec.Struct, frozen=True, kw_only=True):
    """Lift the suspension (decision 76)."""


Command = CreateOrganization | SuspendOrganization | ReinstateOrganization


def decide(state: Organization | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, CreateOrganization):
        if state is not None:
            raise Conflict("the organization already exists")
        return [OrganizationCreated(name=command.name.strip())]
    if state is None:
        raise NotFound("no such organization")
    if isinstance(command, ReinstateOrganization):
        if state.status is not OrganizationStatus.SUSPENDED:
            return []
        return [OrganizationReinstated()]
    if state.status is OrganizationStatus.SUSPENDED:
        return []
    return [OrganizationSuspended(reason=command.reason)]


def evolve(state: Organization | None, event: Event, stream_id: UUID) -> Organization | None:
    if isinstance(event, OrganizationCreated):
        return Organization(
            id=stream_id, name=event.name, status=OrganizationStatus.ACTIVE, version=1
        )
    assert state is not None, "an organization's first event creates it"
    if isinstance(event, OrganizationSuspended):
        return msgspec.structs.replace(
            state, status=OrganizationStatus.SUSPENDED, version=state.version + 1
        )
    if isinstance(event, OrganizationReinstated):
        return msgspec.structs.replace(
            state, status=OrganizationStatus.ACTIVE, version=state.version + 1
        )
    return msgspec.structs.replace(state, version=state.version + 1)
