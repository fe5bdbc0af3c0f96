"""Identity's read models, updated in the transaction that appends the events."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.identity import (
    ApiKeyCreated,
    ApiKeyRevoked,
    IntegrationCreated,
    IntegrationCredentialRotated,
    IntegrationRevoked,
    MembershipGranted,
    OAuthClientCreated,
    OAuthClientDeleted,
    OAuthClientSecretRotated,
    OrganizationCreated,
    OrganizationReinstated,
    OrganizationStatus,
    OrganizationSuspended,
    SigningKeyPublished,
    SigningKeyRetired,
    UserCreated,
)


class OrganizationsProjector:
    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        if isinstance(data, OrganizationCreated):
            await conn.execute(
                text(
                    "INSERT INTO organizations (id, name, status, created_at, updated_at, version)"
                    " VALUES (:id, :name, :status, :at, :at, :v)"
                ),
                {
                    "id": e.stream_id,
                    "name": data.name,
                    "status": OrganizationStatus.ACTIVE.value,
                    "at": e.occurred_at,
                    "v": e.version,
                },
            )
        elif isinstance(data, OrganizationSuspended | OrganizationReinstated):
            status = (
                OrganizationStatus.SUSPENDED
                if isinstance(data, OrganizationSuspended)
                else OrganizationStatus.ACTIVE
            )
            await conn.execute(
                text(
                    "UPDATE organizations SET status = :s, updated_at = :at, version = :v"
                    " WHERE id = :id"
                ),
                {
                    "id": e.stream_id,
                    "s": status.value,
                    "at": e.occurred_at,
                    "v": e.version,
                },
            )


class ApiKeysProjector:
    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        if isinstance(data, ApiKeyCreated):
            await conn.execute(
                text(
                    "INSERT INTO api_keys (org_id, id, name, prefix, scopes, operator, created_at,"
                    " expires_at, version) VALUES (:org, :id, :name, :prefix, :scopes, :op, :at,"
                    " :exp, :v)"
                ),
                {
                    "org": e.org_id,
                    "id": e.stream_id,
                    "name": data.name,
                    "prefix": data.prefix,
                    "scopes": list(data.scopes),
                    "op": data.operator,
                    "at": e.occurred_at,
                    "exp": data.expires_at,
                    "v": e.version,
                },
            )
        elif isinstance(data, ApiKeyRevoked):
            await conn.execute(
                text(
                    "UPDATE api_keys SET revoked_at = :at, version = :v"
                    " WHERE org_id = :org AND id = :id"
                ),
                {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version},
            )


class UsersProjector:
    """``users`` (platform) and ``memberships`` (tenant). A membership also adds its
    organization to the user's row, which is how login finds a user's organizations."""

    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        if isinstance(data, UserCreated):
            await conn.execute(
                text(
                    "INSERT INTO users (id, email, created_at, version)"
                    " VALUES (:id, :email, :at, :v)"
                ),
                {"id": e.stream_id, "email": data.email, "at": e.occurred_at, "v": e.version},
            )
        elif isinstance(data, MembershipGranted):
            await conn.execute(
                text(
                    "INSERT INTO memberships (org_id, id, membership_id, email, role, created_at,"
                    " version) VALUES (:org, :user, :mid, :email, :role, :at, :v)"
                ),
                {
                    "org": e.org_id,
                    "user": data.user_id,
                    "mid": e.stream_id,
                    "email": data.email,
                    "role": data.role.value,
                    "at": e.occurred_at,
                    "v": e.version,
                },
            )
            await conn.execute(
                text(
                    "UPDATE users SET organizations = array_append(organizations, :org)"
                    " WHERE id = :user AND NOT (:org = ANY(organizations))"
                ),
                {"org": e.org_id, "user": data.user_id},
            )


class SigningKeysProjector:
    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        if isinstance(data, SigningKeyPublished):
            await conn.execute(
                text(
                    "INSERT INTO signing_keys (id, kid, public_key_pem, not_before, not_after)"
                    " VALUES (:id, :kid, :pem, :nb, :na)"
                ),
                {
                    "id": e.stream_id,
                    "kid": data.kid,
                    "pem": data.public_key_pem,
                    "nb": data.not_before,
                    "na": data.not_after,
                },
            )
        elif isinstance(data, SigningKeyRetired):
            await conn.execute(
                text(
                    "UPDATE signing_keys SET retired_at = :at, verify_until = :until WHERE id = :id"
                ),
                {"id": e.stream_id, "at": e.occurred_at, "until": data.verify_until},
            )


class OAuthClientsProjector:
    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        if isinstance(data, OAuthClientCreated):
            await conn.execute(
                text(
                    "INSERT INTO oauth_clients (org_id, id, name, client_id, scopes, created_at,"
                    " version) VALUES (:org, :id, :name, :cid, :scopes, :at, :v)"
                ),
                {
                    "org": e.org_id,
                    "id": e.stream_id,
                    "name": data.name,
                    "cid": data.client_id,
                    "scopes": list(data.scopes),
                    "at": e.occurred_at,
                    "v": e.version,
                },
            )
        elif isinstance(data, OAuthClientSecretRotated):
            await conn.execute(
                text("UPDATE oauth_clients SET version = :v WHERE org_id = :org AND id = :id"),
                {"org": e.org_id, "id": e.stream_id, "v": e.version},
            )
        elif isinstance(data, OAuthClientDeleted):
            await conn.execute(
                text("DELETE FROM oauth_clients WHERE org_id = :org AND id = :id"),
                {"org": e.org_id, "id": e.stream_id},
            )


class IntegrationsProjector:
    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        if isinstance(data, IntegrationCreated):
            await conn.execute(
                text(
                    "INSERT INTO integrations (org_id, id, name, broker_user, subjects,"
                    " deliver_policy, start_time, consumers, created_at, version)"
                    " VALUES (:org, :id, :name, :user, :subjects, :policy, :start, :consumers,"
                    " :at, :v)"
                ),
                {
                    "org": e.org_id,
                    "id": e.stream_id,
                    "name": data.name,
                    "user": data.user,
                    "subjects": list(data.subjects),
                    "policy": data.deliver_policy.value,
                    "start": data.start_time,
                    "consumers": list(data.consumers),
                    "at": e.occurred_at,
                    "v": e.version,
                },
            )
        elif isinstance(data, IntegrationCredentialRotated):
            await conn.execute(
                text("UPDATE integrations SET version = :v WHERE org_id = :org AND id = :id"),
                {"org": e.org_id, "id": e.stream_id, "v": e.version},
            )
        elif isinstance(data, IntegrationRevoked):
            await conn.execute(
                text(
                    "UPDATE integrations SET revoked_at = :at, version = :v"
                    " WHERE org_id = :org AND id = :id"
                ),
                {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version},
            )


PROJECTORS = (
    OrganizationsProjector(),
    ApiKeysProjector(),
    UsersProjector(),
    SigningKeysProjector(),
    OAuthClientsProjector(),
    IntegrationsProjector(),
)
