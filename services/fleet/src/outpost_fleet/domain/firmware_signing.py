"""An organization's firmware signing keys: which key signs, which keys devices trust (ADR 0094).

One aggregate per organization (stream type ``firmware_signing_keys``), Ed25519 keys. Key pairs
are made, sealed and used outside (randomness and cryptography are I/O here:
``outpost_fleet.adapters.firmware_crypto``); the decider sees the public halves and the
times. Rules:

- **Exactly one key signs at a time**, once there is one. The first key signs at once.
- **Rotation overlaps**: a new key is published (``GET /firmware/signing-keys``, trusted by
  devices) from the moment it is added, but signs only ``overlap`` later, so devices learn it
  before any image signed with it reaches them. At that instant the old key stops signing;
  it is still published for ``retain`` more (the time the service has to sign every READY
  image again with the new key), then devices may drop it. One rotation at a time: adding a
  key while another waits to sign is a 409.
- **Emergency revocation** ends a key's signing and its publication now; a key added after
  it (no signing key left to overlap with) signs at once.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, validation_error
from outpost_contracts.firmware import FirmwareSigningKeyAdded, FirmwareSigningKeyRetired

STREAM_TYPE = "firmware_signing_keys"
PUBLIC_KEY_BYTES = 32
DEFAULT_OVERLAP = timedelta(days=7)
_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class SigningKey(msgspec.Struct, frozen=True, kw_only=True):
    kid: str
    public_key: str  # base64, 32 raw bytes
    signs_from: datetime
    signs_until: datetime | None = None
    verify_until: datetime | None = None

    def signs_at(self, now: datetime) -> bool:
        return self.signs_from <= now and (self.signs_until is None or now < self.signs_until)

    def verifies_at(self, now: datetime) -> bool:
        return self.verify_until is None or now < self.verify_until


class SigningKeys(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID  # the organization's
    keys: dict[str, SigningKey]  # by kid, in the order they were added
    version: int


class AddKey(msgspec.Struct, frozen=True, kw_only=True):
    kid: str
    public_key: str
    overlap: timedelta = DEFAULT_OVERLAP  # published this long before it signs
    retain: timedelta | None = None  # the old key published this long after; None: overlap


class RevokeKey(msgspec.Struct, frozen=True, kw_only=True):
    kid: str


Command = AddKey | RevokeKey


def signer(state: SigningKeys | None, now: datetime) -> SigningKey | None:
    """The key that signs at ``now``: the latest to start signing among those that do."""
    if state is None:
        return None
    signing = [k for k in state.keys.values() if k.signs_at(now) and k.verifies_at(now)]
    return max(signing, key=lambda k: k.signs_from) if signing else None


def trusted(state: SigningKeys | None, now: datetime) -> list[SigningKey]:
    """The keys published at ``now`` for devices to verify with (waiting ones included)."""
    if state is None:
        return []
    return [k for k in state.keys.values() if k.verifies_at(now)]


def _pending(state: SigningKeys, now: datetime) -> SigningKey | None:
    waiting = [k for k in state.keys.values() if k.signs_from > now and k.verifies_at(now)]
    return waiting[0] if waiting else None


def check_public_key(text: str) -> None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise validation_error("publicKey", "must be base64") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise validation_error("publicKey", f"must be {PUBLIC_KEY_BYTES} bytes (raw Ed25519)")


def decide(state: SigningKeys | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, AddKey):
        if not _KID.fullmatch(command.kid):
            raise validation_error("kid", "must be 1 to 64 letters, digits, '.', '_' or '-'")
        check_public_key(command.public_key)
        if command.overlap < timedelta(0) or (command.retain or timedelta(0)) < timedelta(0):
            raise validation_error("overlap", "must not be negative")
        if state is not None and command.kid in state.keys:
            raise Conflict(f"signing key {command.kid!r} exists")
        current = signer(state, now)
        if state is not None:
            waiting = _pending(state, now)
            if waiting is not None:
                raise Conflict(
                    f"key {waiting.kid!r} starts signing at {waiting.signs_from.isoformat()}: "
                    "one rotation at a time",
                    details={"pending": waiting.kid},
                )
        if current is None:
            return [
                FirmwareSigningKeyAdded(
                    kid=command.kid, public_key=command.public_key, signs_from=now
                )
            ]
        starts = now + command.overlap
        retain = command.overlap if command.retain is None else command.retain
        return [
            FirmwareSigningKeyAdded(
                kid=command.kid, public_key=command.public_key, signs_from=starts
            ),
            FirmwareSigningKeyRetired(
                kid=current.kid, signs_until=starts, verify_until=starts + retain
            ),
        ]
    if state is None or command.kid not in state.keys:
        raise NotFound(f"no signing key {command.kid!r}")
    key = state.keys[command.kid]
    if not key.verifies_at(now):
        return []
    signs_until = now if key.signs_until is None else min(key.signs_until, now)
    return [FirmwareSigningKeyRetired(kid=key.kid, signs_until=signs_until, verify_until=now)]


def evolve(state: SigningKeys | None, event: Event, stream_id: UUID) -> SigningKeys | None:
    if state is None:
        state = SigningKeys(id=stream_id, keys={}, version=0)
    version = state.version + 1
    if isinstance(event, FirmwareSigningKeyAdded):
        key = SigningKey(kid=event.kid, public_key=event.public_key, signs_from=event.signs_from)
        return SigningKeys(id=state.id, keys={**state.keys, key.kid: key}, version=version)
    if isinstance(event, FirmwareSigningKeyRetired):
        old = state.keys[event.kid]
        retired = msgspec.structs.replace(
            old, signs_until=event.signs_until, verify_until=event.verify_until
        )
        return SigningKeys(id=state.id, keys={**state.keys, old.kid: retired}, version=version)
    return msgspec.structs.replace(state, version=version)
