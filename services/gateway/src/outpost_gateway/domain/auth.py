"""Authentication: a bearer string + the credential cache + now → a principal, or a 401."""

from __future__ import annotations

from datetime import datetime

from outpost_contracts.credentials import KEY_PREFIX, lookup_prefix, verify_key
from outpost_contracts.envelope import Principal, PrincipalKind
from outpost_contracts.errors import ErrorType, OutpostError
from outpost_gateway.domain.credentials import CredentialCache

OPERATOR_SCOPES = ("*",)


def unauthenticated(type_: ErrorType, message: str) -> OutpostError:
    return OutpostError(message, type=type_)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; ``invalid_auth`` otherwise."""
    if not authorization:
        raise unauthenticated(ErrorType.INVALID_AUTH, "the Authorization header is missing")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        raise unauthenticated(
            ErrorType.INVALID_AUTH, "the Authorization header must be 'Bearer <token>'"
        )
    return token


def authenticate(authorization: str | None, cache: CredentialCache, now: datetime) -> Principal:
    token = bearer_token(authorization)
    if not token.startswith(KEY_PREFIX):
        # Session JWTs and OAuth2 access tokens are verified here once they exist.
        raise unauthenticated(ErrorType.INVALID_TOKEN, "the bearer token is not valid")
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
        raise invalid
    return Principal(
        kind=PrincipalKind.API_KEY, id=record.id, org_id=record.org_id, scopes=record.scopes
    )
