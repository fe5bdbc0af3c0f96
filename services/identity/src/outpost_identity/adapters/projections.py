"""Identity's read models, updated in the transaction that appends the events."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.identity import (
    ApiKeyCreated,
    ApiKeyRevoked,
    OrganizationCreated,
    OrganizationStatus,
    OrganizationSuspended,
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
        elif isinstance(data, OrganizationSuspended):
            await conn.execute(
                text(
                    "UPDATE organizations SET status = :s, updated_at = :at, version = :v "
                    "WHERE id = :id"
                ),
                {
                    "id": e.stream_id,
                    "s": OrganizationStatus.SUSPENDED.value,
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
                    "UPDATE api_keys SET revoked_at = :at, version = :v "
                    "WHERE org_id = :org AND id = :id"
                ),
                {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version},
            )


PROJECTORS = (OrganizationsProjector(), ApiKeysProjector())
