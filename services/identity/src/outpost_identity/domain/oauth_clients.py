"""The OAuth2 client aggregate (client-credentials grant). The secret is made outside
(randomness is I/O) and reaches the decider only as its SHA-256 hash; checking a presented
secret is ``verify_secret`` (constant-time), also outside the event flow: a token grant
appends nothing."""

from __future__ import annotations

import hmac
from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.credentials import covers
from outpost_contracts.errors import NotFound, validation_error
from outpost_contracts.identity import (
    OAuthClientCreated,
    OAuthClientDeleted,
    OAuthClientSecretRotated,
)

STREAM_TYPE = "oauth_client"


class OAuthClient(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    client_id: str
    secret_hash: str
    scopes: tuple[str, ...]
    deleted: bool
    version: int


class RegisterClient(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    client_id: str
    secret_hash: str
    scopes: tuple[str, ...]
    granted: tuple[str, ...]  # what the creator holds: a client never gets more
    created_by: UUID | None = None


class RotateSecret(msgspec.Struct, frozen=True, kw_only=True):
    secret_hash: str


class DeleteClient(msgspec.Struct, frozen=True, kw_only=True):
    pass


Command = RegisterClient | RotateSecret | DeleteClient


def decide(state: OAuthClient | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, RegisterClient):
        if state is not None:
            raise validation_error("id", "the client already exists")
        if not command.scopes:
            raise validation_error("scopes", "a client needs at least one scope")
        for scope in command.scopes:
            if not covers(command.granted, scope):
                raise validation_error("scopes", f"'{scope}' is more than the creator holds")
        return [
            OAuthClientCreated(
                name=command.name,
                client_id=command.client_id,
                secret_hash=command.secret_hash,
                scopes=tuple(dict.fromkeys(command.scopes)),
                created_by=command.created_by,
            )
        ]
    if state is None or state.deleted:
        raise NotFound("no such OAuth client")
    if isinstance(command, RotateSecret):
        return [OAuthClientSecretRotated(secret_hash=command.secret_hash)]
    return [OAuthClientDeleted(client_id=state.client_id)]


def evolve(state: OAuthClient | None, event: Event, stream_id: UUID) -> OAuthClient | None:
    if isinstance(event, OAuthClientCreated):
        return OAuthClient(
            id=stream_id,
            client_id=event.client_id,
            secret_hash=event.secret_hash,
            scopes=tuple(event.scopes),
            deleted=False,
            version=1,
        )
    if state is None:  # another aggregate's stream (a forged client id): no client
        return None
    if isinstance(event, OAuthClientSecretRotated):
        return msgspec.structs.replace(
            state, secret_hash=event.secret_hash, version=state.version + 1
        )
    if isinstance(event, OAuthClientDeleted):
        return msgspec.structs.replace(state, deleted=True, version=state.version + 1)
    return msgspec.structs.replace(state, version=state.version + 1)


def verify_secret(state: OAuthClient | None, presented_hash: str) -> bool:
    """Whether a presented secret (as its SHA-256) is the live client's current one. The
    comparison runs (constant-time) even when there is no client, against a dummy hash."""
    expected = state.secret_hash if state is not None else "0" * 64
    ok = hmac.compare_digest(presented_hash, expected)
    return ok and state is not None and not state.deleted


def granted_scopes(state: OAuthClient, requested: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The scopes a token gets: all of the client's when none are asked for; the asked ones
    when each is covered by one of the client's; None (``invalid_scope``) otherwise."""
    if requested is None:
        return state.scopes
    if not requested:
        return None
    for scope in requested:
        if not covers(state.scopes, scope):
            return None
    return tuple(dict.fromkeys(requested))
