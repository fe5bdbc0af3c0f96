"""Users and memberships, two deciders.

A user is platform data (its stream lives in the platform tenant, its email is unique across
the platform); a membership ties a user to one organization with a role (its stream lives in
that organization's tenant), so a user can later belong to several organizations. The
password hash is made outside (argon2 is I/O-heavy and random) and never reaches an event.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.credentials import covers
from outpost_contracts.errors import AccessDenied, Conflict
from outpost_contracts.identity import MembershipGranted, UserCreated
from outpost_contracts.tokens import Role, scopes_of

USER_STREAM = "user"
MEMBERSHIP_STREAM = "membership"


class User(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    email: str
    version: int


class Membership(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    user_id: UUID
    role: Role
    version: int


class RegisterUser(msgspec.Struct, frozen=True, kw_only=True):
    email: str


class GrantMembership(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    email: str
    role: Role
    # The creator's role when the creator is a user (None for API keys and the operator) and
    # the creator's scopes (None for the operator): nobody makes a user who may do more.
    granted_by_role: Role | None = None
    granted_by_scopes: tuple[str, ...] | None = None


def normalize_email(email: str) -> str:
    return email.strip().lower()


def decide_user(state: User | None, command: RegisterUser, now: datetime) -> list[Event]:
    if state is not None:
        raise Conflict("the user already exists")
    return [UserCreated(email=normalize_email(command.email))]


def evolve_user(state: User | None, event: Event, stream_id: UUID) -> User | None:
    if isinstance(event, UserCreated):
        return User(id=stream_id, email=event.email, version=1)
    assert state is not None
    return msgspec.structs.replace(state, version=state.version + 1)


def may_grant(granter: Role | None, granter_scopes: tuple[str, ...] | None, role: Role) -> bool:
    """Only an owner (or a non-user credential) makes owners; an admin makes the other roles;
    members and viewers grant nothing. And no credential creates a user who could do more
    than the credential itself (an API key with ``users:write`` alone cannot make an owner,
    nor can any key or client an admin made: only ``*`` covers an owner's ``*``)."""
    if granter_scopes is not None and not all(
        covers(granter_scopes, wanted) for wanted in scopes_of(role)
    ):
        return False
    if granter is None or granter is Role.OWNER:
        return True
    if granter is Role.ADMIN:
        return role is not Role.OWNER
    return False


def decide_membership(
    state: Membership | None, command: GrantMembership, now: datetime
) -> list[Event]:
    if not may_grant(command.granted_by_role, command.granted_by_scopes, command.role):
        raise AccessDenied(f"this credential cannot grant the role {command.role}")
    if state is not None:
        raise Conflict("the user is already a member of this organization")
    return [
        MembershipGranted(
            user_id=command.user_id, email=normalize_email(command.email), role=command.role
        )
    ]


def evolve_membership(state: Membership | None, event: Event, stream_id: UUID) -> Membership | None:
    if isinstance(event, MembershipGranted):
        return Membership(id=stream_id, user_id=event.user_id, role=event.role, version=1)
    assert state is not None
    return msgspec.structs.replace(state, version=state.version + 1)
