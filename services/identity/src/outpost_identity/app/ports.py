"""What identity's use cases need of storage, as ports: a unit of work opened per tenant
that carries the event stream (for the kit's ``Aggregate``) and the reads and writes of the
read models and of the two secret tables the events never carry (password hashes, signing
keys' private halves). Postgres implements it in ``adapters/store.py``; the unit tests use
the fake in ``tests/unit/identity_fakes.py``. No SQL and no driver type here (ADR 0086)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from outpost_contracts import identity as api
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.tokens import Role
from outpost_kit.aggregate import EventStream


@dataclass(frozen=True)
class ActiveKey:
    """The signing key not yet retired: its stream, its kid, its end."""

    id: UUID
    kid: str
    not_after: datetime


@dataclass(frozen=True)
class SigningSecret:
    """The active signing key's kid, end and encrypted private half."""

    kid: str
    not_after: datetime
    private_key_enc: str


@dataclass(frozen=True)
class Credentials:
    """A platform user found by email: their id, organizations and password hash."""

    user_id: UUID
    organizations: tuple[UUID, ...]
    password_hash: str


@dataclass(frozen=True)
class Member:
    """A platform user's membership of the transaction's tenant."""

    membership_id: UUID
    role: Role


@dataclass(frozen=True)
class ClientRecord:
    """An OAuth client's name and creation, as the read model holds them."""

    name: str
    created_at: datetime


class IdentityTx(Protocol):
    """One transaction in one tenant (``None``: no tenant yet); leaving it without
    ``commit()`` rolls back. An append whose projection a unique rule refuses raises the
    kit's ``aggregate.Taken``."""

    @property
    def events(self) -> EventStream: ...

    async def commit(self) -> None: ...

    async def set_tenant(self, org_id: UUID) -> None:
        """Switch the transaction's tenant (users and signing keys are platform data)."""
        ...

    # --- organizations ------------------------------------------------------------------

    async def organization(self, org_id: UUID) -> api.OrganizationView | None: ...

    async def organization_status(self, org_id: UUID) -> api.OrganizationStatus | None: ...

    async def organizations(self, query: ListQuery) -> Page[api.OrganizationView]: ...

    # --- API keys -----------------------------------------------------------------------

    async def api_keys(self, query: ListQuery) -> Page[api.ApiKeyView]: ...

    async def key_used(self, key_id: UUID, at: datetime) -> None:
        """Move the key's ``last_used_at`` to ``at`` unless it is already later."""
        ...

    async def operator_key(self, prefix: str) -> UUID | None:
        """The live (not revoked) operator key with this prefix."""
        ...

    # --- users and memberships ----------------------------------------------------------

    async def user_by_email(self, email: str) -> UUID | None:
        """The platform user with this (normalized) email; platform tenant."""
        ...

    async def save_password(self, user_id: UUID, password_hash: str, at: datetime) -> None: ...

    async def credentials(self, email: str) -> Credentials | None:
        """The user with this (normalized) email and their password hash; platform tenant."""
        ...

    async def member(self, user_id: UUID) -> Member | None:
        """The platform user's membership of the transaction's tenant."""
        ...

    async def user(self, membership_id: UUID) -> api.UserView | None: ...

    async def users(self, query: ListQuery) -> Page[api.UserView]: ...

    # --- signing keys (platform tenant) -------------------------------------------------

    async def lock_signing_keys(self) -> None:
        """One rotation at a time across replicas, until the transaction ends."""
        ...

    async def active_signing_key(self) -> ActiveKey | None: ...

    async def save_signing_secret(self, kid: str, private_key_enc: str) -> None: ...

    async def signing_secret(self) -> SigningSecret | None:
        """The active key with its encrypted private half."""
        ...

    # --- OAuth clients ------------------------------------------------------------------

    async def oauth_client(self, client_uuid: UUID) -> ClientRecord | None: ...

    async def oauth_clients(self, query: ListQuery) -> Page[api.OAuthClientView]: ...

    # --- integrations -------------------------------------------------------------------

    async def integration(self, integration_id: UUID) -> api.IntegrationView | None: ...

    async def integrations(self, query: ListQuery) -> Page[api.IntegrationView]: ...

    async def integration_connected(self, integration_id: UUID, at: datetime) -> None:
        """Move the integration's ``last_connected_at`` to ``at`` unless it is later."""
        ...


class IntegrationConsumers(Protocol):
    """Integrations' durable consumers on the broker (ADR 0097): made before the integration
    is committed (idempotent: the names come from its id), removed after its revocation."""

    async def ensure(
        self,
        names: tuple[str, ...],
        filters: tuple[str, ...],
        policy: api.DeliverPolicy,
        start_time: datetime | None,
        description: str,
    ) -> None: ...

    async def remove(self, names: tuple[str, ...]) -> None: ...


class IdentityUnitOfWork(Protocol):
    """``async with uow(org_id) as tx: ...; await tx.commit()``."""

    def __call__(self, org_id: UUID | None) -> AbstractAsyncContextManager[IdentityTx]: ...
