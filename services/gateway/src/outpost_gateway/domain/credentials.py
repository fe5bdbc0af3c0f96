"""The credential cache: what the gateway needs to authenticate API keys and session tokens
locally (key hashes, published signing keys, revoked sessions, deleted OAuth clients).

It is a projection of the IDENTITY stream, rebuilt on every start by applying ``evolve`` to
each event in order (docs/architecture.md: "revocation reaches it as an event"). Only lookup
prefixes and SHA-256 hashes are held, never a key.

``evolve`` updates the cache in place and returns it: a replica may hold many keys and replays
the whole stream at start, so copying the maps on every event would make replay quadratic.
The records themselves are frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.identity import (
    ApiKeyCreated,
    ApiKeyRevoked,
    OAuthClientDeleted,
    OrganizationCreated,
    OrganizationReinstated,
    OrganizationSuspended,
    SessionRevoked,
    SigningKeyPublished,
    SigningKeyRetired,
)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: UUID
    org_id: UUID
    prefix: str
    key_hash: str
    scopes: tuple[str, ...]
    operator: bool = False
    expires_at: datetime | None = None
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    kid: str
    algorithm: str
    public_key_pem: str
    not_before: datetime
    not_after: datetime
    verify_until: datetime | None = None  # set when retired: the overlap ends then

    def verifies_at(self, now: datetime) -> bool:
        """Whether tokens under this key may be accepted at ``now``."""
        if now >= self.not_after:
            return False
        return self.verify_until is None or now < self.verify_until


@dataclass(slots=True)
class CredentialCache:
    keys: dict[str, KeyRecord] = field(default_factory=dict)  # by lookup prefix
    signing_keys: dict[str, SigningKeyRecord] = field(default_factory=dict)  # by kid
    # Revoked session ids and when they were revoked. Identity issues no token for a revoked
    # session, so once every token issued before the revocation has expired (access tokens
    # live minutes) the entry is dropped: ``forget_revoked_sessions``.
    revoked_sessions: dict[UUID, datetime] = field(default_factory=dict)
    # Deleted OAuth clients (by stream id): their access tokens are refused from the event on.
    deleted_clients: set[UUID] = field(default_factory=set)
    organizations: set[UUID] = field(default_factory=set)
    suspended: set[UUID] = field(default_factory=set)
    applied: int = 0  # events applied so far (for logs and metrics)

    def key(self, prefix: str) -> KeyRecord | None:
        return self.keys.get(prefix)

    def signing_key(self, kid: str) -> SigningKeyRecord | None:
        return self.signing_keys.get(kid)

    def session_revoked(self, session_id: UUID) -> bool:
        return session_id in self.revoked_sessions

    def forget_revoked_sessions(self, revoked_before: datetime) -> int:
        """Drop sessions revoked before ``revoked_before``; returns how many."""
        old = [sid for sid, at in self.revoked_sessions.items() if at < revoked_before]
        for sid in old:
            del self.revoked_sessions[sid]
        return len(old)

    def client_deleted(self, client: UUID) -> bool:
        return client in self.deleted_clients

    def organization_exists(self, org_id: UUID) -> bool:
        return org_id in self.organizations

    def organization_suspended(self, org_id: UUID) -> bool:
        return org_id in self.suspended


def evolve(cache: CredentialCache, envelope: EventEnvelope) -> CredentialCache:
    """Apply one identity event. Events the gateway does not need are ignored."""
    event = envelope.data
    if isinstance(event, ApiKeyCreated):
        cache.keys[event.prefix] = KeyRecord(
            id=envelope.stream_id,
            org_id=envelope.org_id,
            prefix=event.prefix,
            key_hash=event.key_hash,
            scopes=tuple(event.scopes),
            operator=event.operator,
            expires_at=event.expires_at,
        )
    elif isinstance(event, ApiKeyRevoked):
        record = cache.keys.get(event.prefix)
        if record is not None:
            cache.keys[event.prefix] = KeyRecord(
                id=record.id,
                org_id=record.org_id,
                prefix=record.prefix,
                key_hash=record.key_hash,
                scopes=record.scopes,
                operator=record.operator,
                expires_at=record.expires_at,
                revoked=True,
            )
    elif isinstance(event, SigningKeyPublished):
        cache.signing_keys[event.kid] = SigningKeyRecord(
            kid=event.kid,
            algorithm=event.algorithm,
            public_key_pem=event.public_key_pem,
            not_before=event.not_before,
            not_after=event.not_after,
        )
    elif isinstance(event, SigningKeyRetired):
        key = cache.signing_keys.get(event.kid)
        if key is not None:
            cache.signing_keys[event.kid] = SigningKeyRecord(
                kid=key.kid,
                algorithm=key.algorithm,
                public_key_pem=key.public_key_pem,
                not_before=key.not_before,
                not_after=key.not_after,
                verify_until=event.verify_until,
            )
    elif isinstance(event, SessionRevoked):
        cache.revoked_sessions[envelope.stream_id] = envelope.occurred_at
    elif isinstance(event, OAuthClientDeleted):
        cache.deleted_clients.add(envelope.stream_id)
    elif isinstance(event, OrganizationCreated):
        cache.organizations.add(envelope.stream_id)
    elif isinstance(event, OrganizationSuspended):
        cache.suspended.add(envelope.stream_id)
    elif isinstance(event, OrganizationReinstated):
        cache.suspended.discard(envelope.stream_id)
    cache.applied += 1
    return cache
