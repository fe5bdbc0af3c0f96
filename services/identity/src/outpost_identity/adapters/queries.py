"""Identity's collections: what may be filtered, and how rows become views."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outpost_contracts import integrations
from outpost_contracts.identity import (
    ApiKeyView,
    DeliverPolicy,
    IntegrationView,
    OAuthClientView,
    OrganizationStatus,
    OrganizationView,
    UserView,
)
from outpost_contracts.tokens import Role
from outpost_kit.db.listing import Collection, Field

ORGANIZATIONS = Collection(
    table="organizations",
    columns="id, name, status, created_at, version",
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "status": Field("status", ops=frozenset({"eq", "ne", "in", "nin"})),
        "createdAt": Field("created_at", "datetime"),
    },
)

API_KEYS = Collection(
    table="api_keys",
    columns="id, name, prefix, scopes, created_at, expires_at, revoked_at, last_used_at, version",
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "createdAt": Field("created_at", "datetime"),
        "expiresAt": Field("expires_at", "datetime"),
        "lastUsedAt": Field("last_used_at", "datetime"),
    },
)

OAUTH_CLIENTS = Collection(
    table="oauth_clients",
    columns="id, name, client_id, scopes, created_at, version",
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "clientId": Field("client_id"),
        "createdAt": Field("created_at", "datetime"),
    },
)


INTEGRATIONS = Collection(
    table="integrations",
    columns=(
        "id, name, broker_user, subjects, deliver_policy, start_time, consumers, created_at,"
        " revoked_at, last_connected_at, version"
    ),
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "createdAt": Field("created_at", "datetime"),
        "revokedAt": Field("revoked_at", "datetime"),
        "lastConnectedAt": Field("last_connected_at", "datetime"),
    },
)


def integration_view(row: Mapping[str, Any]) -> IntegrationView:
    prefix = integrations.consumer(row["id"], "")
    return IntegrationView(
        id=row["id"],
        name=row["name"],
        user=row["broker_user"],
        subjects=list(row["subjects"]),
        deliver_policy=DeliverPolicy(row["deliver_policy"]),
        start_time=row["start_time"],
        stream=integrations.STREAM,
        consumers={c.removeprefix(prefix): c for c in row["consumers"]},
        inbox_prefix=integrations.inbox_prefix(row["id"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_connected_at=row["last_connected_at"],
        version=row["version"],
    )


def oauth_client_view(row: Mapping[str, Any]) -> OAuthClientView:
    return OAuthClientView(
        id=row["id"],
        name=row["name"],
        client_id=row["client_id"],
        scopes=list(row["scopes"]),
        created_at=row["created_at"],
        version=row["version"],
    )


# A user as an organization sees them: their membership (its id, its creation), never the
# platform user's id or age, which would tell one organization about another (decision 78).
USERS = Collection(
    table="memberships",
    columns="membership_id AS id, email, role, created_at, version",
    id_column="membership_id",
    fields={
        "id": Field("membership_id", "uuid"),
        "email": Field("email"),
        "role": Field("role", ops=frozenset({"eq", "ne", "in", "nin"})),
        "createdAt": Field("created_at", "datetime"),
    },
)


def user_view(row: Mapping[str, Any]) -> UserView:
    return UserView(
        id=row["id"],
        email=row["email"],
        role=Role(row["role"]),
        created_at=row["created_at"],
        version=row["version"],
    )


def organization_view(row: Mapping[str, Any]) -> OrganizationView:
    return OrganizationView(
        id=row["id"],
        name=row["name"],
        status=OrganizationStatus(row["status"]),
        created_at=row["created_at"],
        version=row["version"],
    )


def api_key_view(row: Mapping[str, Any]) -> ApiKeyView:
    return ApiKeyView(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=list(row["scopes"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        version=row["version"],
    )
