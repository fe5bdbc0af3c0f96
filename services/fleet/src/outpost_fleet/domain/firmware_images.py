"""The firmware image aggregate (stream type ``firmware_image``, ADR 0094).

``UPLOADING`` when announced (name, semantic version, size, SHA-256); the bytes arrive through
a signed upload URL that accepts exactly that size, streamed to the object store while the
adapter counts and hashes them. The use case then hands the decider what it measured:

- the same size and digest: ``READY``, with the signature the organization's signing key
  made over ``signed_message`` (made outside; the decider checks it names the key that signs
  now);
- anything else: ``REJECTED`` with the reason (which of size or digest differs, both values);
- no bytes by ``uploadExpiresAt``: ``REJECTED`` ("upload expired").

A READY image can be signed again with another key (after a rotation), keeping every signature
by kid; ``signature_for`` picks the one a device is sent. A name and version pair is unique in an
organization (the use case looks for the other, the decider refuses with 409). An image used
by a rollout that has not ended, or reported running by a device, cannot be deleted: the use
case reads the uses, the decider refuses with 409 naming them.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, validation_error
from outpost_contracts.firmware import (
    MAX_IMAGE_BYTES,
    UPLOAD_WINDOW_SECONDS,
    FirmwareImageCreated,
    FirmwareImageDeleted,
    FirmwareImageReady,
    FirmwareImageRejected,
    FirmwareImageSigned,
    FirmwareStatus,
)
from outpost_fleet.domain import semver
from outpost_fleet.domain.firmware_signing import SigningKeys, signer, trusted

STREAM_TYPE = "firmware_image"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class FirmwareImage(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    firmware_version: str
    size_bytes: int
    sha256: str
    status: FirmwareStatus
    upload_expires_at: datetime
    signatures: dict[str, str]  # kid -> base64 signature
    signing_key_id: str | None = None  # the latest to sign
    rejected_reason: str | None = None
    deleted: bool = False
    version: int  # the stream's


class CreateImage(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    firmware_version: str
    size_bytes: int
    sha256: str
    device_profile_id: UUID | None = None
    hardware: tuple[str, ...] = ()
    release_notes: str | None = None
    existing_id: UUID | None = None  # another image with this name and version
    upload_window: timedelta = timedelta(seconds=UPLOAD_WINDOW_SECONDS)


class Signature(msgspec.Struct, frozen=True, kw_only=True):
    kid: str
    signature: str


class CompleteUpload(msgspec.Struct, frozen=True, kw_only=True):
    """What the adapter measured while streaming the bytes in, and the signature made when
    they matched (None when they did not: nothing is signed)."""

    size_bytes: int
    sha256: str
    signature: Signature | None = None
    keys: SigningKeys | None = None  # the organization's, to check the signature's key


class ExpireUpload(msgspec.Struct, frozen=True, kw_only=True):
    pass


class SignAgain(msgspec.Struct, frozen=True, kw_only=True):
    signature: Signature
    keys: SigningKeys | None = None


class DeleteImage(msgspec.Struct, frozen=True, kw_only=True):
    used_by: tuple[str, ...] = ()  # "rollout <id>", "device <id>"


Command = CreateImage | CompleteUpload | ExpireUpload | SignAgain | DeleteImage


def upload_problem(image: FirmwareImage, size_bytes: int, sha256: str) -> str | None:
    """Why uploaded bytes are not the announced image (None: they are)."""
    problems = []
    if size_bytes != image.size_bytes:
        problems.append(f"size {size_bytes} bytes, announced {image.size_bytes}")
    if sha256 != image.sha256:
        problems.append(f"sha256 {sha256}, announced {image.sha256}")
    return "; ".join(problems) or None


def signature_for(
    image: FirmwareImage, keys: SigningKeys | None, now: datetime
) -> Signature | None:
    """The signature sent to devices: the current signing key's if the image has it, else
    the newest one by a key devices still trust; None if none (sign it again first)."""
    current = signer(keys, now)
    if current is not None and current.kid in image.signatures:
        return Signature(kid=current.kid, signature=image.signatures[current.kid])
    trusted_kids = {k.kid for k in trusted(keys, now)}
    for kid in reversed(list(image.signatures)):
        if kid in trusted_kids:
            return Signature(kid=kid, signature=image.signatures[kid])
    return None


def _check_signer(signature: Signature | None, keys: SigningKeys | None, now: datetime) -> None:
    if signature is None:
        raise Conflict("the image's bytes are verified but nothing signed them")
    current = signer(keys, now)
    if current is None or current.kid != signature.kid:
        raise Conflict(
            f"key {signature.kid!r} does not sign now",
            details={"signingKey": current.kid if current else None},
        )


def decide(state: FirmwareImage | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, CreateImage):
        if state is not None:
            raise Conflict("the firmware image exists")
        if not command.name.strip():
            raise validation_error("name", "must not be blank")
        semver.parse(command.firmware_version)
        if not 1 <= command.size_bytes <= MAX_IMAGE_BYTES:
            raise validation_error("sizeBytes", f"must be from 1 to {MAX_IMAGE_BYTES}")
        if not _SHA256.fullmatch(command.sha256):
            raise validation_error("sha256", "must be 64 lowercase hexadecimal digits")
        if command.existing_id is not None:
            raise Conflict(
                f"firmware {command.name} {command.firmware_version} exists",
                details={"id": str(command.existing_id)},
            )
        return [
            FirmwareImageCreated(
                name=command.name,
                version=command.firmware_version,
                size_bytes=command.size_bytes,
                sha256=command.sha256,
                upload_expires_at=now + command.upload_window,
                device_profile_id=command.device_profile_id,
                hardware=list(command.hardware),
                release_notes=command.release_notes,
            )
        ]
    if state is None or state.deleted:
        raise NotFound("no such firmware image")
    if isinstance(command, CompleteUpload):
        if state.status is not FirmwareStatus.UPLOADING:
            raise Conflict(f"the image is {state.status}, not UPLOADING")
        if now >= state.upload_expires_at:
            return [FirmwareImageRejected(reason="upload expired")]
        problem = upload_problem(state, command.size_bytes, command.sha256)
        if problem is not None:
            return [FirmwareImageRejected(reason=f"uploaded bytes differ: {problem}")]
        _check_signer(command.signature, command.keys, now)
        assert command.signature is not None
        return [
            FirmwareImageReady(
                signing_key_id=command.signature.kid, signature=command.signature.signature
            )
        ]
    if isinstance(command, ExpireUpload):
        if state.status is FirmwareStatus.UPLOADING and now >= state.upload_expires_at:
            return [FirmwareImageRejected(reason="upload expired")]
        return []
    if isinstance(command, SignAgain):
        if state.status is not FirmwareStatus.READY:
            raise Conflict(f"the image is {state.status}, not READY")
        if command.signature.kid in state.signatures:
            return []
        _check_signer(command.signature, command.keys, now)
        return [
            FirmwareImageSigned(
                signing_key_id=command.signature.kid, signature=command.signature.signature
            )
        ]
    if command.used_by:
        raise Conflict("the firmware image is in use", details={"usedBy": list(command.used_by)})
    return [FirmwareImageDeleted()]


def evolve(state: FirmwareImage | None, event: Event, stream_id: UUID) -> FirmwareImage | None:
    if isinstance(event, FirmwareImageCreated):
        return FirmwareImage(
            id=stream_id,
            name=event.name,
            firmware_version=event.version,
            size_bytes=event.size_bytes,
            sha256=event.sha256,
            status=FirmwareStatus.UPLOADING,
            upload_expires_at=event.upload_expires_at,
            signatures={},
            version=1,
        )
    assert state is not None
    version = state.version + 1
    if isinstance(event, FirmwareImageReady | FirmwareImageSigned):
        return msgspec.structs.replace(
            state,
            status=FirmwareStatus.READY,
            signatures={**state.signatures, event.signing_key_id: event.signature},
            signing_key_id=event.signing_key_id,
            version=version,
        )
    if isinstance(event, FirmwareImageRejected):
        return msgspec.structs.replace(
            state, status=FirmwareStatus.REJECTED, rejected_reason=event.reason, version=version
        )
    if isinstance(event, FirmwareImageDeleted):
        return msgspec.structs.replace(state, deleted=True, version=version)
    return msgspec.structs.replace(state, version=version)
