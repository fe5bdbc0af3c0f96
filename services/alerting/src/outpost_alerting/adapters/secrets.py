"""Webhook secrets sealed at rest with Fernet (AES-128-CBC + HMAC-SHA256), as the devices
service seals CA keys. ``keys`` is one Fernet key or several separated by commas: the first
seals, every one opens (rotation: docs/runbook.md)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretVault:
    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ValueError("no secret encryption key")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(sealed)).decode()
        except InvalidToken as exc:
            raise RuntimeError("a webhook secret does not open with the configured keys") from exc

    def rotate(self, sealed: bytes) -> bytes:
        """``sealed`` re-encrypted under the first key."""
        return self._fernet.rotate(bytes(sealed))
