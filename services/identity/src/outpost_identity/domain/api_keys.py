"""The API key aggregate. The key itself is made outside (randomness is I/O) and reaches the
decider only as its lookup prefix and hash."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.credentials import covers
from outpost_contracts.errors import NotFound, validation_error
from outpost_contracts.identity import ApiKeyCreated, ApiKeyRevoked

STREAM_TYPE = "api_key"


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    prefix: str
    scopes: tuple[str, ...]
    revoked: bool
    version: int


class IssueApiKey(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    prefix: str
    key_hash: str
    scopes: tuple[str, ...]
    granted: tuple[str, ...]  # what the creator holds: a key never gets more
    operator: bool = False
    expires_at: datetime | None = None
    created_by: UUID | None = None


class RevokeApiKey(msgspec.Struct, frozen=True, kw_only=True):
    pass


def decide(state: ApiKey | None, command: IssueApiKey | RevokeApiKey, now: datetime) -> list[Event]:
    if isinstance(command, IssueApiKey):
        if command.expires_at is not None and command.expires_at <= now:
            raise validation_error("expiresAt", "must be in the future")
        for scope in command.scopes:
            if not covers(command.granted, scope):
                raise validation_error("scopes", f"'{scope}' is more than the creator holds")
        return [
            ApiKeyCreated(
                name=command.name,
                prefix=command.prefix,
                key_hash=command.key_hash,
                scopes=command.scopes,
                operator=command.operator,
                expires_at=command.expires_at,
                created_by=command.created_by,
            )
        ]
    if state is None:
        raise NotFound("no such API key")
    if state.revoked:
        return []
    return [ApiKeyRevoked(prefix=state.prefix)]


def evolve(state: ApiKey | None, event: Event, stream_id: UUID) -> ApiKey | None:
    if isinstance(event, ApiKeyCreated):
        return ApiKey(
            id=stream_id, prefix=event.prefix, scopes=event.scopes, revoked=False, version=1
        )
    assert state is not None
    if isinstance(event, ApiKeyRevoked):
        return msgspec.structs.replace(state, revoked=True, version=state.version + 1)
    return msgspec.structs.replace(state, version=state.version + 1)
