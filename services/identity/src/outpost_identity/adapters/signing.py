"""Signing keys and access tokens: Ed25519 key pairs, their encryption at rest, and JWTs.

The private key is stored as PKCS#8 PEM encrypted with Fernet (AES-128-CBC + HMAC-SHA256,
from ``cryptography``) under ``OUTPOST_IDENTITY_KEY_ENCRYPTION_KEY``; only the public half is
published (``SigningKeyPublished``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import jwt
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from outpost_contracts import tokens


@dataclass(frozen=True)
class KeyPair:
    public_key_pem: str
    private_key_enc: str


class KeyVault:
    """Makes key pairs and opens their private halves with the key-encryption key."""

    def __init__(self, key_encryption_key: str) -> None:
        self._fernet = Fernet(key_encryption_key.encode())

    def generate(self) -> KeyPair:
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return KeyPair(public.decode(), self._fernet.encrypt(pem).decode())

    def open(self, private_key_enc: str) -> Ed25519PrivateKey:
        try:
            pem = self._fernet.decrypt(private_key_enc.encode())
        except InvalidToken as exc:
            raise RuntimeError("a signing key does not decrypt with this encryption key") from exc
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key


def sign_access_token(
    key: Ed25519PrivateKey,
    kid: str,
    *,
    user_id: UUID,
    org_id: UUID,
    role: str,
    session_id: UUID,
    issued_at: datetime,
    expires_at: datetime,
) -> str:
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "org": str(org_id),
        "role": role,
        "scope": " ".join(tokens.scopes_of(role)),
        "aud": tokens.AUDIENCE,
        "iss": tokens.ISSUER,
        "iat": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": secrets.token_hex(16),
        "sid": str(session_id),
    }
    return jwt.encode(claims, key, algorithm=tokens.ALGORITHM, headers={"kid": kid})


def sign_client_token(
    key: Ed25519PrivateKey,
    kid: str,
    *,
    client_uuid: UUID,
    client_id: str,
    org_id: UUID,
    scopes: tuple[str, ...],
    issued_at: datetime,
    expires_at: datetime,
) -> str:
    """An OAuth2 client-credentials access token: same key, audience and issuer as a session's
    token, an OAUTH_CLIENT principal's claims (``tokens.CLIENT_REQUIRED_CLAIMS``)."""
    claims: dict[str, Any] = {
        "sub": str(client_uuid),
        "org": str(org_id),
        "client_id": client_id,
        "scope": " ".join(scopes),
        "aud": tokens.AUDIENCE,
        "iss": tokens.ISSUER,
        "iat": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": secrets.token_hex(16),
    }
    return jwt.encode(claims, key, algorithm=tokens.ALGORITHM, headers={"kid": kid})


# --- OAuth2 client credentials --------------------------------------------------------------
# client id ``oc_<org hex><client hex>`` (public: it routes the grant to its tenant and
# stream, like a refresh token's ids); secret ``cs_<43 chars>`` (256 random bits). Only the
# secret's SHA-256 is stored: with that entropy a slow hash buys nothing.

CLIENT_ID_PREFIX = "oc_"
CLIENT_SECRET_PREFIX = "cs_"


def new_client_id(org_id: UUID, client_uuid: UUID) -> str:
    return f"{CLIENT_ID_PREFIX}{org_id.hex}{client_uuid.hex}"


def parse_client_id(client_id: str) -> tuple[UUID, UUID] | None:
    if not client_id.startswith(CLIENT_ID_PREFIX):
        return None
    body = client_id[len(CLIENT_ID_PREFIX) :]
    if len(body) != 64 or any(c not in "0123456789abcdef" for c in body):
        return None
    return UUID(body[:32]), UUID(body[32:])


def new_client_secret() -> str:
    return CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_client_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- refresh tokens -------------------------------------------------------------------------
# ``rt_<org hex><session hex>_<43 chars of secret>``: opaque to clients; the ids route the
# token to its tenant and session, the 256-bit secret is what is hashed and compared.

REFRESH_PREFIX = "rt_"


def new_refresh_token(org_id: UUID, session_id: UUID) -> str:
    return f"{REFRESH_PREFIX}{org_id.hex}{session_id.hex}_{secrets.token_urlsafe(32)}"


def parse_refresh_token(token: str) -> tuple[UUID, UUID] | None:
    if not token.startswith(REFRESH_PREFIX):
        return None
    ids_part, sep, secret = token[len(REFRESH_PREFIX) :].partition("_")
    if not sep or len(ids_part) != 64 or len(secret) < 40:
        return None
    try:
        return UUID(ids_part[:32]), UUID(ids_part[32:])
    except ValueError:
        return None


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def verification_window(now: datetime, access_ttl: timedelta) -> datetime:
    """How long a retired key must still verify: its last token's lifetime."""
    return now + access_ttl
