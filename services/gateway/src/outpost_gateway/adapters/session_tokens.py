"""Verifies session access tokens (JWTs) against the signing keys identity published.

The algorithm is fixed (``EdDSA``): the token's own ``alg`` is compared with it and never
used to choose one, so ``alg: none`` and HS256 tokens signed with a public key's bytes are
refused before any cryptography runs. Everything else (unknown or no longer valid ``kid``,
bad signature, expiry, audience, issuer, missing claims) is also ``invalid_token``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from outpost_contracts import tokens
from outpost_gateway.domain.auth import SessionClaims, invalid_token
from outpost_gateway.domain.credentials import CredentialCache

LEEWAY_SECONDS = 5  # clock skew between identity and gateway hosts


class JwtVerifier:
    def __init__(self, cache: CredentialCache) -> None:
        self._cache = cache
        self._keys: dict[tuple[str, str], Ed25519PublicKey] = {}  # (kid, pem) → parsed key

    def __call__(self, token: str, now: datetime) -> SessionClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid_token() from None
        kid = header.get("kid")
        if header.get("alg") != tokens.ALGORITHM or not isinstance(kid, str):
            raise invalid_token()
        record = self._cache.signing_key(kid)
        if record is None or record.algorithm != tokens.ALGORITHM or not record.verifies_at(now):
            raise invalid_token()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public_key(kid, record.public_key_pem),
                algorithms=[tokens.ALGORITHM],
                audience=tokens.AUDIENCE,
                issuer=tokens.ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": list(tokens.REQUIRED_CLAIMS)},
            )
            return SessionClaims(
                user_id=UUID(str(claims["sub"])),
                org_id=UUID(str(claims["org"])),
                role=str(claims["role"]),
                scopes=tuple(str(claims["scope"]).split()),
                session_id=UUID(str(claims["sid"])),
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            raise invalid_token() from None

    def _public_key(self, kid: str, pem: str) -> Ed25519PublicKey:
        key = self._keys.get((kid, pem))
        if key is None:
            loaded = load_pem_public_key(pem.encode())
            if not isinstance(loaded, Ed25519PublicKey):
                raise invalid_token()
            key = self._keys[(kid, pem)] = loaded
        return key
