"""Identity's SQL: the port of ``app/ports.py`` over the kit's unit of work. The read models
the projector (``adapters/projections.py``) keeps (``organizations``, ``api_keys``,
``users``, ``memberships``, ``signing_keys``, ``oauth_clients``) and the two tables the
events never carry: ``user_passwords`` and ``signing_key_secrets`` (ADR 0086)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from outpost_contracts import identity as api
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.tokens import Role
from outpost_identity.adapters import queries
from outpost_identity.app.ports import ActiveKey, ClientRecord, Credentials, Member, SigningSecret
from outpost_kit.db.listing import get_one, list_page
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory

_SIGNING_LOCK = "SELECT pg_advisory_xact_lock(hashtext('outpost.identity.signing_key'))"


class PgIdentityTx(UnitOfWork):
    """One transaction (the kit's ``UnitOfWork``) with identity's statements."""

    async def __aenter__(self) -> PgIdentityTx:
        await super().__aenter__()
        return self

    # --- organizations ------------------------------------------------------------------

    async def organization(self, org_id: UUID) -> api.OrganizationView | None:
        row = await get_one(self.conn, queries.ORGANIZATIONS, org_id)
        return None if row is None else queries.organization_view(row)

    async def organization_status(self, org_id: UUID) -> api.OrganizationStatus | None:
        status = (
            await self.execute("SELECT status FROM organizations WHERE id = :id", {"id": org_id})
        ).scalar()
        return None if status is None else api.OrganizationStatus(status)

    async def organizations(self, query: ListQuery) -> Page[api.OrganizationView]:
        return await list_page(self.conn, queries.ORGANIZATIONS, query, queries.organization_view)

    # --- API keys -----------------------------------------------------------------------

    async def api_keys(self, query: ListQuery) -> Page[api.ApiKeyView]:
        return await list_page(self.conn, queries.API_KEYS, query, queries.api_key_view)

    async def key_used(self, key_id: UUID, at: datetime) -> None:
        await self.execute(
            "UPDATE api_keys SET last_used_at = greatest(last_used_at, :at) WHERE id = :id",
            {"id": key_id, "at": at},
        )

    async def operator_key(self, prefix: str) -> UUID | None:
        row = (
            await self.execute(
                "SELECT id FROM api_keys WHERE prefix = :p AND operator AND revoked_at IS NULL",
                {"p": prefix},
            )
        ).first()
        return None if row is None else UUID(str(row.id))

    # --- users and memberships ----------------------------------------------------------

    async def user_by_email(self, email: str) -> UUID | None:
        found = (
            await self.execute("SELECT id FROM users WHERE lower(email) = :e", {"e": email})
        ).scalar()
        return None if found is None else UUID(str(found))

    async def save_password(self, user_id: UUID, password_hash: str, at: datetime) -> None:
        await self.execute(
            "INSERT INTO user_passwords (user_id, password_hash, updated_at) VALUES (:u, :h, :at)",
            {"u": user_id, "h": password_hash, "at": at},
        )

    async def credentials(self, email: str) -> Credentials | None:
        row = (
            await self.execute(
                "SELECT u.id, u.organizations, p.password_hash FROM users u"
                " JOIN user_passwords p ON p.user_id = u.id WHERE lower(u.email) = :e",
                {"e": email},
            )
        ).first()
        if row is None:
            return None
        return Credentials(row.id, tuple(row.organizations), row.password_hash)

    async def member(self, user_id: UUID) -> Member | None:
        row = (
            await self.execute(
                "SELECT role, membership_id FROM memberships WHERE id = :u", {"u": user_id}
            )
        ).first()
        return None if row is None else Member(row.membership_id, Role(row.role))

    async def user(self, membership_id: UUID) -> api.UserView | None:
        row = await get_one(self.conn, queries.USERS, membership_id)
        return None if row is None else queries.user_view(row)

    async def users(self, query: ListQuery) -> Page[api.UserView]:
        return await list_page(self.conn, queries.USERS, query, queries.user_view)

    # --- signing keys -------------------------------------------------------------------

    async def lock_signing_keys(self) -> None:
        await self.execute(_SIGNING_LOCK)

    async def active_signing_key(self) -> ActiveKey | None:
        row = (
            await self.execute(
                "SELECT id, kid, not_after FROM signing_keys WHERE retired_at IS NULL"
            )
        ).first()
        return None if row is None else ActiveKey(row.id, str(row.kid), row.not_after)

    async def save_signing_secret(self, kid: str, private_key_enc: str) -> None:
        await self.execute(
            "INSERT INTO signing_key_secrets (kid, private_key_enc) VALUES (:kid, :enc)",
            {"kid": kid, "enc": private_key_enc},
        )

    async def signing_secret(self) -> SigningSecret | None:
        row = (
            await self.execute(
                "SELECT k.kid, k.not_after, s.private_key_enc FROM signing_keys k"
                " JOIN signing_key_secrets s ON s.kid = k.kid WHERE k.retired_at IS NULL"
            )
        ).first()
        return (
            None if row is None else SigningSecret(str(row.kid), row.not_after, row.private_key_enc)
        )

    # --- OAuth clients ------------------------------------------------------------------

    async def oauth_client(self, client_uuid: UUID) -> ClientRecord | None:
        row = (
            await self.execute(
                "SELECT name, created_at FROM oauth_clients WHERE id = :id", {"id": client_uuid}
            )
        ).first()
        return None if row is None else ClientRecord(row.name, row.created_at)

    async def oauth_clients(self, query: ListQuery) -> Page[api.OAuthClientView]:
        return await list_page(self.conn, queries.OAUTH_CLIENTS, query, queries.oauth_client_view)

    # --- integrations -------------------------------------------------------------------

    async def integration(self, integration_id: UUID) -> api.IntegrationView | None:
        row = await get_one(self.conn, queries.INTEGRATIONS, integration_id)
        return None if row is None else queries.integration_view(row)

    async def integrations(self, query: ListQuery) -> Page[api.IntegrationView]:
        return await list_page(self.conn, queries.INTEGRATIONS, query, queries.integration_view)

    async def integration_connected(self, integration_id: UUID, at: datetime) -> None:
        await self.execute(
            "UPDATE integrations SET last_connected_at = greatest(last_connected_at, :at)"
            " WHERE id = :id",
            {"id": integration_id, "at": at},
        )


class PgIdentity(UnitOfWorkFactory):
    """The ``IdentityUnitOfWork`` bootstrap hands to the use cases: the kit's factory, whose
    units of work carry identity's statements (``PgIdentity.over(runtime.uow)``)."""

    def __call__(self, org_id: UUID | None) -> PgIdentityTx:
        return PgIdentityTx(self.engine, self.codec, org_id=org_id, projectors=self.projectors)
