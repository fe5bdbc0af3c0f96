"""Session access tokens: what identity (which signs them) and the gateway (which verifies them
from the published signing keys) must agree on, and the one role → scopes table.

Access tokens are JWTs (RFC 7519) signed with Ed25519 (``EdDSA``, RFC 8037). The algorithm is
fixed here, never read from a token: a verifier that accepts whatever ``alg`` a token names is
the classic ``alg: none`` / HS256-with-the-public-key hole.
"""

from __future__ import annotations

import enum

ALGORITHM = "EdDSA"
AUDIENCE = "outpost-api"
ISSUER = "outpost-identity"
TOKEN_TYPE = "Bearer"

# The claims every access token carries (registered ones plus Outpost's own).
REQUIRED_CLAIMS = ("sub", "org", "role", "scope", "aud", "iss", "iat", "exp", "jti", "sid")

# OAuth2 client-credentials access tokens (an OAUTH_CLIENT principal): the same signing keys,
# audience and issuer; ``sub`` is the client's id, ``client_id`` (RFC 9068) its public client
# identifier. They carry no ``role`` and no ``sid``; a session token carries no ``client_id``,
# so the two kinds cannot be mistaken for each other.
CLIENT_REQUIRED_CLAIMS = ("sub", "org", "client_id", "scope", "aud", "iss", "iat", "exp", "jti")
CLIENT_TOKEN_TYPE = "bearer"  # RFC 6749's spelling in the token endpoint's answer


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


# What each role may do, in the shared scope grammar (``credentials.scope_covers``). ``*`` never
# reaches operator routes: those check the principal's kind, not a scope. An admin reads and
# writes every resource (``*:read``, ``*:write``: every route's scope, today's and
# tomorrow's); ``*`` is the owner's alone, and it is what makes owners: a credential never
# holds more than its creator (API keys, OAuth clients) and never grants a role whose scopes
# it does not cover (``users.may_grant``), so nothing an admin mints can make an owner or
# hold ``*`` (decision 78). The roles are ordered by their scopes: owner ⊃ admin ⊃ member.
ROLE_SCOPES: dict[Role, tuple[str, ...]] = {
    Role.OWNER: ("*",),
    Role.ADMIN: ("*:read", "*:write"),
    Role.MEMBER: (
        "devices:*",
        "readings:*",
        "alert-rules:*",
        "alerts:*",
        "notification-channels:*",
        "events:read",
        "exports:*",
        "fleet:*",
        "users:read",
        "api-keys:read",
    ),
    Role.VIEWER: ("*:read",),
}


def scopes_of(role: Role | str) -> tuple[str, ...]:
    return ROLE_SCOPES[Role(role)]
