"""The integration aggregate (issue 23, ADR 0097): broker credentials an organization's own
service reads the organization's events with. The password is made outside (randomness is
I/O) and reaches the decider only as its SHA-256 hash; the broker subjects come from
``outpost_contracts.integrations`` (pure), so a bad filter is refused here, before anything
is stored."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts import integrations
from outpost_contracts.base import Event
from outpost_contracts.errors import NotFound, validation_error
from outpost_contracts.identity import (
    DeliverPolicy,
    IntegrationCreated,
    IntegrationCredentialRotated,
    IntegrationRevoked,
)

STREAM_TYPE = "integration"


class Integration(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    user: str
    password_hash: str
    consumers: tuple[str, ...]
    revoked: bool
    version: int


class IssueIntegration(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    org_id: UUID
    name: str
    password_hash: str
    subjects: tuple[str, ...]
    deliver_policy: DeliverPolicy
    start_time: datetime | None = None
    groups: tuple[str, ...] = (integrations.DEFAULT_GROUP,)
    created_by: UUID | None = None


class RotateCredential(msgspec.Struct, frozen=True, kw_only=True):
    password_hash: str


class RevokeIntegration(msgspec.Struct, frozen=True, kw_only=True):
    pass


Command = IssueIntegration | RotateCredential | RevokeIntegration


def decide(state: Integration | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, IssueIntegration):
        return [_issue(state, command, now)]
    if state is None or state.revoked:
        raise NotFound("no such integration")
    if isinstance(command, RotateCredential):
        return [IntegrationCredentialRotated(user=state.user, password_hash=command.password_hash)]
    return [IntegrationRevoked(user=state.user)]


def _issue(state: Integration | None, command: IssueIntegration, now: datetime) -> Event:
    if state is not None:
        raise validation_error("id", "the integration already exists")
    if command.deliver_policy is DeliverPolicy.BY_START_TIME:
        if command.start_time is None:
            raise validation_error("startTime", "BY_START_TIME needs a startTime")
        if command.start_time > now:
            raise validation_error("startTime", "the start time is in the future")
    elif command.start_time is not None:
        raise validation_error("startTime", "only BY_START_TIME takes a startTime")
    groups = tuple(dict.fromkeys(command.groups))
    if len(groups) != len(command.groups):
        raise validation_error("groups", "a group is named twice")
    subjects = tuple(dict.fromkeys(command.subjects))
    return IntegrationCreated(
        name=command.name,
        user=integrations.user(command.id),
        password_hash=command.password_hash,
        subjects=subjects,
        filters=integrations.filters(command.org_id, subjects),
        deliver_policy=command.deliver_policy,
        start_time=command.start_time,
        consumers=tuple(integrations.consumer(command.id, g) for g in groups),
        created_by=command.created_by,
    )


def evolve(state: Integration | None, event: Event, stream_id: UUID) -> Integration | None:
    if isinstance(event, IntegrationCreated):
        return Integration(
            id=stream_id,
            user=event.user,
            password_hash=event.password_hash,
            consumers=tuple(event.consumers),
            revoked=False,
            version=1,
        )
    if state is None:  # another aggregate's stream: no integration
        return None
    if isinstance(event, IntegrationCredentialRotated):
        return msgspec.structs.replace(
            state, password_hash=event.password_hash, version=state.version + 1
        )
    if isinstance(event, IntegrationRevoked):
        return msgspec.structs.replace(state, revoked=True, version=state.version + 1)
    return msgspec.structs.replace(state, version=state.version + 1)


def groups_of(consumers: tuple[str, ...] | list[str], integration_id: UUID) -> dict[str, str]:
    """{group: consumer} of an integration's consumer names."""
    prefix = integrations.consumer(integration_id, "")
    return {name.removeprefix(prefix): name for name in consumers}
