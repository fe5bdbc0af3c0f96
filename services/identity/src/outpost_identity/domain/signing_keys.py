"""Signing keys for access tokens. Key material is made and encrypted outside (randomness and
cryptography are I/O here); the decider sees only the public half and the validity window."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.errors import NotFound, validation_error
from outpost_contracts.identity import SigningKeyPublished, SigningKeyRetired
from outpost_contracts.tokens import ALGORITHM

STREAM_TYPE = "signing_key"


class SigningKey(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    kid: str
    not_after: datetime
    retired: bool
    version: int


class PublishSigningKey(msgspec.Struct, frozen=True, kw_only=True):
    kid: str
    public_key_pem: str
    not_after: datetime


class RetireSigningKey(msgspec.Struct, frozen=True, kw_only=True):
    verify_until: datetime


def decide(
    state: SigningKey | None, command: PublishSigningKey | RetireSigningKey, now: datetime
) -> list[Event]:
    if isinstance(command, PublishSigningKey):
        if command.not_after <= now:
            raise validation_error("notAfter", "must be in the future")
        return [
            SigningKeyPublished(
                kid=command.kid,
                algorithm=ALGORITHM,
                public_key_pem=command.public_key_pem,
                not_before=now,
                not_after=command.not_after,
            )
        ]
    if state is None:
        raise NotFound("no such signing key")
    if state.retired:
        return []
    return [SigningKeyRetired(kid=state.kid, verify_until=max(now, command.verify_until))]


def evolve(state: SigningKey | None, event: Event, stream_id: UUID) -> SigningKey | None:
    if isinstance(event, SigningKeyPublished):
        return SigningKey(
            id=stream_id, kid=event.kid, not_after=event.not_after, retired=False, version=1
        )
    assert state is not None
    if isinstance(event, SigningKeyRetired):
        return msgspec.structs.replace(state, retired=True, version=state.version + 1)
    return msgspec.structs.replace(state, version=state.version + 1)
