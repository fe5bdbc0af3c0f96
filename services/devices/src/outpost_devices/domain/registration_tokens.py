"""The registration token aggregate: created for one device, redeemed once or revoked, and
dead after ``expires_at``. The secret and its hash are made and kept outside the decider."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, Gone, NotFound
from outpost_contracts.provisioning import (
    RegistrationTokenCreated,
    RegistrationTokenRedeemed,
    RegistrationTokenRevoked,
    TokenStatus,
)

STREAM_TYPE = "registration_token"
GONE_MESSAGE = "the registration token is unknown, used, expired or revoked"


class RegistrationToken(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    device_id: UUID
    expires_at: datetime
    used: bool = False
    revoked: bool = False

    def status(self, now: datetime) -> TokenStatus:
        if self.used:
            return TokenStatus.USED
        if self.revoked:
            return TokenStatus.REVOKED
        return TokenStatus.EXPIRED if now >= self.expires_at else TokenStatus.ACTIVE


class Create(msgspec.Struct, frozen=True, kw_only=True):
    device_id: UUID
    device_name: str
    expires_at: datetime


class Redeem(msgspec.Struct, frozen=True, kw_only=True):
    certificate_serial: str


class Revoke(msgspec.Struct, frozen=True, kw_only=True):
    pass


Command = Create | Redeem | Revoke


def decide(state: RegistrationToken | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, Create):
        if state is not None:
            raise Conflict("the registration token already exists")
        return [
            RegistrationTokenCreated(
                device_id=command.device_id,
                device_name=command.device_name,
                expires_at=command.expires_at,
            )
        ]
    if isinstance(command, Redeem):
        if state is None or state.status(now) is not TokenStatus.ACTIVE:
            raise Gone(GONE_MESSAGE)
        return [
            RegistrationTokenRedeemed(
                device_id=state.device_id, certificate_serial=command.certificate_serial
            )
        ]
    if state is None:
        raise NotFound("no such registration token")
    if state.revoked:
        return []
    if state.used:
        raise Conflict("the registration token has already been used")
    return [RegistrationTokenRevoked()]


def evolve(
    state: RegistrationToken | None, event: Event, stream_id: UUID
) -> RegistrationToken | None:
    if isinstance(event, RegistrationTokenCreated):
        return RegistrationToken(
            id=stream_id, device_id=event.device_id, expires_at=event.expires_at
        )
    assert state is not None, "a token's first event creates it"
    if isinstance(event, RegistrationTokenRedeemed):
        return msgspec.structs.replace(state, used=True)
    if isinstance(event, RegistrationTokenRevoked):
        return msgspec.structs.replace(state, revoked=True)
    return state
