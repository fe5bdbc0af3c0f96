"""The session aggregate: one login and its refresh-token family.

Refresh tokens are single use. Presenting the current one rotates it; presenting one that was
already rotated means it leaked (someone else used it first), so the whole family is revoked
(OAuth 2.0 Security BCP, refresh token rotation). Tokens reach the decider only as SHA-256
hashes made outside.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.identity import SessionRefreshed, SessionRevoked, SessionStarted
from outpost_contracts.tokens import Role

STREAM_TYPE = "session"
REUSE = "refresh_token_reused"
LOGOUT = "logout"


class Session(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    user_id: UUID
    role: Role
    expires_at: datetime
    current_hash: str
    spent_hashes: frozenset[str]
    revoked: str | None  # the reason, once revoked
    version: int


class StartSession(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    role: Role
    refresh_token_hash: str
    expires_at: datetime


class RefreshSession(msgspec.Struct, frozen=True, kw_only=True):
    presented_hash: str
    new_hash: str


class RevokeSession(msgspec.Struct, frozen=True, kw_only=True):
    reason: str


Command = StartSession | RefreshSession | RevokeSession


def invalid_token() -> OutpostError:
    return OutpostError("the refresh token is not valid", type=ErrorType.INVALID_TOKEN)


def decide(state: Session | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, StartSession):
        if state is not None:
            raise OutpostError("the session already exists", type=ErrorType.CONFLICT)
        return [
            SessionStarted(
                user_id=command.user_id,
                role=command.role,
                refresh_token_hash=command.refresh_token_hash,
                expires_at=command.expires_at,
            )
        ]
    if state is None:
        raise invalid_token()
    if isinstance(command, RevokeSession):
        if state.revoked is not None:
            return []
        return [SessionRevoked(reason=command.reason, user_id=state.user_id)]
    if state.revoked is not None or state.expires_at <= now:
        raise invalid_token()
    if command.presented_hash == state.current_hash:
        return [SessionRefreshed(refresh_token_hash=command.new_hash)]
    if command.presented_hash in state.spent_hashes:
        return [SessionRevoked(reason=REUSE, user_id=state.user_id)]
    raise invalid_token()


def evolve(state: Session | None, event: Event, stream_id: UUID) -> Session | None:
    if isinstance(event, SessionStarted):
        return Session(
            id=stream_id,
            user_id=event.user_id,
            role=event.role,
            expires_at=event.expires_at,
            current_hash=event.refresh_token_hash,
            spent_hashes=frozenset(),
            revoked=None,
            version=1,
        )
    assert state is not None
    if isinstance(event, SessionRefreshed):
        return msgspec.structs.replace(
            state,
            current_hash=event.refresh_token_hash,
            spent_hashes=state.spent_hashes | {state.current_hash},
            version=state.version + 1,
        )
    if isinstance(event, SessionRevoked):
        return msgspec.structs.replace(state, revoked=event.reason, version=state.version + 1)
    return msgspec.structs.replace(state, version=state.version + 1)
