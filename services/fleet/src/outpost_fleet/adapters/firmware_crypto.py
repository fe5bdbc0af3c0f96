"""Firmware signing keys and image signatures: Ed25519 from ``cryptography`` (ADR 0094).

The domain (``domain.firmware_signing``) decides which key signs and which keys devices trust;
this is the cryptography it leaves outside. A key pair's private half is kept as PKCS#8 PEM
encrypted with Fernet under the fleet service's key-encryption key (as identity keeps its
token signing keys, ADR 0026); the public half is published as base64 of its 32 raw bytes
and named by its ``kid``, derived from it (``fw-`` and 16 hex digits of its SHA-256), so the
same key always has the same name.

A signature covers ``outpost_contracts.firmware.signed_message`` (the image's SHA-256, size
and version), never the bytes themselves: the bytes are hashed once while they stream in
(``Measure``), so an image of any size is signed without being held in memory, and a device
checks the digest of what it downloaded and the signature of the digest.
``cryptography`` comes with ``outpost-kit``, which every service depends on.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from outpost_contracts.firmware import signed_message


@dataclass(frozen=True)
class FirmwareKeyPair:
    kid: str
    public_key: str  # base64 of the raw 32 bytes
    private_key_enc: str  # Fernet token of the PKCS#8 PEM


def kid_of(public_key: str) -> str:
    return "fw-" + hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:16]


class FirmwareKeyVault:
    """Makes key pairs and signs with their private halves, opened with the key-encryption
    key."""

    def __init__(self, key_encryption_key: str) -> None:
        self._fernet = Fernet(key_encryption_key.encode())

    def generate(self) -> FirmwareKeyPair:
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        public = base64.b64encode(raw).decode()
        return FirmwareKeyPair(kid_of(public), public, self._fernet.encrypt(pem).decode())

    def _open(self, private_key_enc: str) -> Ed25519PrivateKey:
        try:
            pem = self._fernet.decrypt(private_key_enc.encode())
        except InvalidToken as exc:
            raise RuntimeError("a firmware key does not decrypt with this encryption key") from exc
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    def sign(self, private_key_enc: str, *, sha256: str, size_bytes: int, version: str) -> str:
        """The base64 signature of the image's ``signed_message``."""
        message = signed_message(sha256=sha256, size_bytes=size_bytes, version=version)
        return base64.b64encode(self._open(private_key_enc).sign(message)).decode()


def verify(public_key: str, signature: str, *, sha256: str, size_bytes: int, version: str) -> bool:
    """Whether ``signature`` is the key's over the image's ``signed_message`` (what a device
    does before installing)."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        key.verify(
            base64.b64decode(signature),
            signed_message(sha256=sha256, size_bytes=size_bytes, version=version),
        )
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass
class Measure:
    """The size and SHA-256 of bytes that stream through, chunk by chunk (an upload of any
    size in constant memory)."""

    size_bytes: int = 0
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256)

    def update(self, chunk: bytes) -> None:
        self.size_bytes += len(chunk)
        self._hash.update(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()
