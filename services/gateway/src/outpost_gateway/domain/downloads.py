"""Signed download URLs of export archives (decision 65): HMAC-SHA256 over the export id,
its organization and the expiry, under a named key.

The URL is the credential (no Authorization header): ``/api/v1/exports/{id}/download?
org=…&expires=<epoch s>&kid=…&signature=<base64url>``. Keys rotate: the first key of the
list signs, every key verifies, so a key can be added first, then the old one dropped once
the longest URL signed with it has expired. A link that is incomplete, expired, signed with
an unknown key, or whose signature does not match (one flipped byte, another export's
signature) is 403 ``access_denied``; a good link to an export that no longer has an archive
is 404 ``not_found``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode
from uuid import UUID

from outpost_contracts.errors import AccessDenied


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: bytes


def parse_keys(text: str) -> list[SigningKey]:
    """``kid:secret,kid:secret`` (the first signs). Secrets of at least 32 characters."""
    keys: list[SigningKey] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kid, sep, secret = part.partition(":")
        if not sep or not kid or not kid.isalnum() or len(secret) < 32:
            raise ValueError(
                "download signing keys are 'kid:secret' pairs, comma-separated; kid"
                " alphanumeric, secret at least 32 characters"
            )
        keys.append(SigningKey(kid, secret.encode()))
    if not keys:
        raise ValueError("no download signing key")
    return keys


def _mac(key: SigningKey, export_id: UUID, org_id: UUID, expires: int) -> str:
    message = f"outpost.export-download.v1\n{export_id}\n{org_id}\n{expires}\n{key.kid}".encode()
    digest = hmac.new(key.secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class DownloadSigner:
    def __init__(self, keys: list[SigningKey], ttl_seconds: int = 900) -> None:
        if not keys:
            raise ValueError("no download signing key")
        self._keys = {k.kid: k for k in keys}
        self._current = keys[0]
        self.ttl_seconds = ttl_seconds

    def query(self, export_id: UUID, org_id: UUID, now: float) -> str:
        """The query string of a fresh link, valid ``ttl_seconds`` from ``now``."""
        expires = int(now) + self.ttl_seconds
        key = self._current
        return urlencode(
            {
                "org": str(org_id),
                "expires": str(expires),
                "kid": key.kid,
                "signature": _mac(key, export_id, org_id, expires),
            }
        )

    def verify(
        self,
        export_id: UUID,
        *,
        org: str | None,
        expires: str | None,
        kid: str | None,
        signature: str | None,
        now: float,
    ) -> UUID:
        """The organization a link was signed for; ``AccessDenied`` for any bad link."""
        if not (org and expires and kid and signature):
            raise AccessDenied("the download link is incomplete")
        try:
            org_id = UUID(org)
            until = int(expires)
        except ValueError:
            raise AccessDenied("the download link is malformed") from None
        key = self._keys.get(kid)
        if key is None:
            raise AccessDenied("the download link's key is not known (rotated out?)")
        # compare_digest raises on a str that is not ASCII: such a signature is simply wrong.
        if not signature.isascii() or not hmac.compare_digest(
            _mac(key, export_id, org_id, until), signature
        ):
            raise AccessDenied("the download link's signature does not match")
        if until <= now:
            raise AccessDenied("the download link has expired; GET the export for a fresh one")
        return org_id
