"""Authentication: a bearer string + the credential cache + now → a principal, or a 401."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from outpost_contracts.credentials import KEY_PREFIX, lookup_prefix, verify_key
from outpost_contracts.envelope import Principal, PrincipalKind
from outpost_contracts.errors import AccessDenied, ErrorType, OutpostError
from outpost_gateway.domain.credentials import CredentialCache

_WHITESPACE = re.compile(r"\s")

OPERATOR_SCOPES = ("*",)


@dataclass(frozen=True, slots=True)
class SessionClaims:
    """What a verified session access token says (signature, algorithm, kid, audience, issuer
    and expiry were checked by the verifier in ``adapters/``)."""

    user_id: UUID
    org_id: UUID
    role: str
    scopes: tuple[str, ...]
    session_id: UUID


@dataclass(frozen=True, slots=True)
class ClientClaims:
    """What a verified OAuth2 client-credentials access token says."""

    client: UUID  # the client's id (``sub``)
    client_id: str  # its public client identifier
    org_id: UUID
    scopes: tuple[str, ...]


# token, now → claims; raises ``invalid_token`` when the token does not verify.
SessionVerifier = Callable[[str, datetime], SessionClaims | ClientClaims]


def invalid_token() -> OutpostError:
    return unauthenticated(ErrorType.INVALID_TOKEN, "the bearer token is not valid")


def organization_suspended() -> AccessDenied:
    """The credential is genuine but its organization is suspended: 403, not 401 (the client
    should not retry with a new token; the operator must lift the suspension)."""
    return AccessDenied("the organization is suspended: its credentials are refused")


def unauthenticated(type_: ErrorType, message: str) -> OutpostError:
    return OutpostError(message, type=type_)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; ``invalid_auth`` otherwise."""
    if not authorization:
        raise unauthenticated(ErrorType.INVALID_AUTH, "the Authorization header is missing")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or _WHITESPACE.search(token):
        raise unauthenticated(
            ErrorType.INVALID_AUTH, "the Authorization header must be 'Bearer <token>'"
        )
    return token


def authenticate(
    authorization: str | None,
    cache: CredentialCache,
    now: datetime,
    verify_session: SessionVerifier | None = None,
) -> Principal:
    token = bearer_token(authorization)
    if not token.startswith(KEY_PREFIX):
        if verify_session is None:
            raise invalid_token()
        claims = verify_session(token, now)
        if isinstance(claims, ClientClaims):
            return client_principal(claims, cache)
        return session_principal(claims, cache)
    invalid = unauthenticated(ErrorType.INVALID_APIKEY, "the API key is not valid")
    prefix = lookup_prefix(token)
    if prefix is None:
        raise invalid
    record = cache.key(prefix)
    if record is None or not verify_key(token, record.key_hash):
        raise invalid
    if record.revoked:
        raise invalid
    if record.expires_at is not None and record.expires_at <= now:
        raise invalid
    if record.operator:
        return Principal(
            kind=PrincipalKind.OPERATOR,
            id=record.id,
            org_id=record.org_id,
            scopes=OPERATOR_SCOPES,
        )
    if cache.organization_suspended(record.org_id):
        raise organization_suspended()
    return Principal(
        kind=PrincipalKind.API_KEY, id=record.id, org_id=record.org_id, scopes=record.scopes
    )


def session_principal(claims: SessionClaims, cache: CredentialCache) -> Principal:
    """The USER principal of verified claims, unless the session was revoked (logout, refresh
    token reuse) or the organization suspended since the token was signed."""
    if cache.session_revoked(claims.session_id):
        raise invalid_token()
    if cache.organization_suspended(claims.org_id):
        raise organization_suspended()
    return Principal(
        kind=PrincipalKind.USER,
        id=claims.user_id,
        org_id=claims.org_id,
        role=claims.role,
        scopes=claims.scopes,
        session_id=claims.session_id,
    )


def client_principal(claims: ClientClaims, cache: CredentialCache) -> Principal:
    """The OAUTH_CLIENT principal of verified claims, unless the client was deleted or the
    organization suspended since the token was signed. Scopes are the token's."""
    if cache.client_deleted(claims.client):
        raise invalid_token()
    if cache.organization_suspended(claims.org_id):
        raise invalid_token()
    return Principal(
        kind=PrincipalKind.OAUTH_CLIENT,
        id=claims.client,
        org_id=claims.org_id,
        scopes=claims.scopes,
    )
