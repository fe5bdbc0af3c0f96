"""Verifies access tokens (JWTs: sessions' and OAuth2 clients') against the signing keys
identity published.

The algorithm is fixed (``EdDSA``): the token's own ``alg`` is compared with it and never
used to choose one, so ``alg: none`` and HS256 tokens signed with a public key's bytes are
refused before any cryptography runs. Everything else (unknown or no longer valid ``kid``,
bad signature, expiry, audience, issuer, missing claims) is also ``invalid_token``. A token
with a ``client_id`` claim is a client's (``tokens.CLIENT_REQUIRED_CLAIMS``, and no ``sid``
nor ``role``); any other must carry every session claim.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from outpost_contracts import tokens
from outpost_gateway.domain.auth import ClientClaims, SessionClaims, invalid_token
from outpost_gateway.domain.credentials import CredentialCache

LEEWAY_SECONDS = 5  # clock skew between identity and gateway hosts


class JwtVerifier:
    def __init__(self, cache: CredentialCache) -> None:
        self._cache = cache
        self._keys: dict[tuple[str, str], Ed25519PublicKey] = {}  # (kid, pem) → parsed key

    def __call__(self, token: str, now: datetime) -> SessionClaims | ClientClaims:
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
                options={"require": ["aud", "iss", "iat", "exp", "jti", "sub", "org", "scope"]},
            )
            if "client_id" in claims:
                if "sid" in claims or "role" in claims:
                    raise invalid_token()
                if any(c not in claims for c in tokens.CLIENT_REQUIRED_CLAIMS):
                    raise invalid_token()
                if not isinstance(claims["client_id"], str) or not isinstance(claims["scope"], str):
                    raise invalid_token()
                return ClientClaims(
                    client=UUID(str(claims["sub"])),
                    client_id=claims["client_id"],
                    org_id=UUID(str(claims["org"])),
                    scopes=tuple(claims["scope"].split()),
                )
            if any(c not in claims for c in tokens.REQUIRED_CLAIMS):
                raise invalid_token()
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
