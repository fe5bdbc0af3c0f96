"""Identity's fake unit of work, for the unit tests of the use cases (cosmicpython's
FakeUnitOfWork): ``FakeIdentity`` is the ``IdentityUnitOfWork`` port held in memory, with an
event store, the read models ``adapters/projections.py`` keeps (and their unique rules,
refused with the kit's ``Taken`` as the event store does), the two secret tables, row-level
security by tenant and a clock the test moves. A transaction works on a copy and replaces
the world only on ``commit()``, so leaving it rolls back as Postgres would. The Postgres
adapter (``adapters/store.py``) is what the integration and e2e tests cover."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import identity as api
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.query import ListQuery, Page
from outpost_devkit.testing.fakes import (
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    FakeWorld,
    first_page,
)
from outpost_identity.app.ports import ActiveKey, ClientRecord, Credentials, Member, SigningSecret
from outpost_kit import ids
from outpost_kit.aggregate import Taken


@dataclass
class KeyRow:
    org_id: UUID
    view: api.ApiKeyView
    operator: bool


@dataclass
class UserRow:
    email: str
    organizations: list[UUID] = field(default_factory=list)


@dataclass
class SigningKeyRow:
    kid: str
    public_key_pem: str
    not_after: datetime
    retired_at: datetime | None = None
    verify_until: datetime | None = None


@dataclass
class World(FakeWorld):
    now: datetime = field(default_factory=ids.now)  # tokens are checked against the real clock
    organizations: dict[UUID, api.OrganizationView] = field(default_factory=dict)
    api_keys: dict[UUID, KeyRow] = field(default_factory=dict)
    users: dict[UUID, UserRow] = field(default_factory=dict)
    passwords: dict[UUID, str] = field(default_factory=dict)
    memberships: dict[tuple[UUID, UUID], api.UserView] = field(default_factory=dict)
    signing_keys: dict[UUID, SigningKeyRow] = field(default_factory=dict)
    signing_secrets: dict[str, str] = field(default_factory=dict)
    oauth_clients: dict[UUID, tuple[UUID, api.OAuthClientView]] = field(default_factory=dict)
    # An email ``user_by_email`` does not find once: a registration racing ours.
    racing_email: str | None = None


def _project(w: World, e: EventEnvelope) -> None:
    """What ``adapters/projections.py`` does in SQL, on the world, unique rules included."""
    data, key, at = e.data, e.stream_id, e.occurred_at
    if isinstance(data, api.OrganizationCreated):
        if any(o.name.lower() == data.name.lower() for o in w.organizations.values()):
            raise Taken("organizations_name")
        w.organizations[key] = api.OrganizationView(
            id=key,
            name=data.name,
            status=api.OrganizationStatus.ACTIVE,
            created_at=at,
            version=e.version,
        )
    elif isinstance(data, api.OrganizationSuspended | api.OrganizationReinstated):
        status = (
            api.OrganizationStatus.SUSPENDED
            if isinstance(data, api.OrganizationSuspended)
            else api.OrganizationStatus.ACTIVE
        )
        w.organizations[key] = msgspec.structs.replace(
            w.organizations[key], status=status, version=e.version
        )
    elif isinstance(data, api.ApiKeyCreated):
        view = api.ApiKeyView(
            id=key,
            name=data.name,
            prefix=data.prefix,
            scopes=list(data.scopes),
            created_at=at,
            expires_at=data.expires_at,
            version=e.version,
        )
        w.api_keys[key] = KeyRow(e.org_id, view, data.operator)
    elif isinstance(data, api.ApiKeyRevoked):
        row = w.api_keys[key]
        row.view = msgspec.structs.replace(row.view, revoked_at=at, version=e.version)
    elif isinstance(data, api.UserCreated):
        if any(u.email.lower() == data.email.lower() for u in w.users.values()):
            raise Taken("users_email")
        w.users[key] = UserRow(data.email)
    elif isinstance(data, api.MembershipGranted):
        if (e.org_id, data.user_id) in w.memberships:
            raise Taken("memberships_pkey")
        w.memberships[(e.org_id, data.user_id)] = api.UserView(
            id=key, email=data.email, role=data.role, created_at=at, version=e.version
        )
        user = w.users[data.user_id]
        if e.org_id not in user.organizations:
            user.organizations.append(e.org_id)
    elif isinstance(data, api.SigningKeyPublished):
        if any(k.retired_at is None for k in w.signing_keys.values()):
            raise Taken("signing_keys_one_active")
        w.signing_keys[key] = SigningKeyRow(data.kid, data.public_key_pem, data.not_after)
    elif isinstance(data, api.SigningKeyRetired):
        w.signing_keys[key].retired_at = at
        w.signing_keys[key].verify_until = data.verify_until
    elif isinstance(data, api.OAuthClientCreated):
        view = api.OAuthClientView(
            id=key,
            name=data.name,
            client_id=data.client_id,
            scopes=list(data.scopes),
            created_at=at,
            version=e.version,
        )
        w.oauth_clients[key] = (e.org_id, view)
    elif isinstance(data, api.OAuthClientSecretRotated):
        org, view = w.oauth_clients[key]
        w.oauth_clients[key] = (org, msgspec.structs.replace(view, version=e.version))
    elif isinstance(data, api.OAuthClientDeleted):
        w.oauth_clients.pop(key, None)


def _by_id(view: Any) -> UUID:
    return view.id  # type: ignore[no-any-return]


class FakeTx(FakeUnitOfWork[World]):
    """One transaction of ``FakeIdentity``; ``tenant`` plays row-level security."""

    def visible(self, org_id: UUID) -> bool:
        return org_id == self.tenant  # identity's policies show nothing without a tenant

    def project(self, envelope: EventEnvelope) -> None:
        _project(self.w, envelope)

    async def organization(self, org_id: UUID) -> api.OrganizationView | None:
        return self.w.organizations.get(org_id)

    async def organization_status(self, org_id: UUID) -> api.OrganizationStatus | None:
        found = self.w.organizations.get(org_id)
        return None if found is None else found.status

    async def organizations(self, query: ListQuery) -> Page[api.OrganizationView]:
        return first_page(list(self.w.organizations.values()), query, key=_by_id)

    def _keys(self) -> list[KeyRow]:
        return [k for k in self.w.api_keys.values() if k.org_id == self.tenant]

    async def api_keys(self, query: ListQuery) -> Page[api.ApiKeyView]:
        return first_page([k.view for k in self._keys()], query, key=_by_id)

    async def key_used(self, key_id: UUID, at: datetime) -> None:
        for row in self._keys():
            if row.view.id == key_id:
                last = row.view.last_used_at
                row.view = msgspec.structs.replace(
                    row.view, last_used_at=at if last is None else max(last, at)
                )

    async def operator_key(self, prefix: str) -> UUID | None:
        for row in self._keys():
            if row.operator and row.view.prefix == prefix and row.view.revoked_at is None:
                return row.view.id
        return None

    def _user(self, email: str) -> tuple[UUID, UserRow] | None:
        found = [(i, u) for i, u in self.w.users.items() if u.email.lower() == email]
        return found[0] if found else None

    async def user_by_email(self, email: str) -> UUID | None:
        if self.w.racing_email == email:
            self._world.racing_email = self.w.racing_email = None
            return None
        found = self._user(email)
        return None if found is None else found[0]

    async def save_password(self, user_id: UUID, password_hash: str, at: datetime) -> None:
        assert user_id not in self.w.passwords
        self.w.passwords[user_id] = password_hash

    async def credentials(self, email: str) -> Credentials | None:
        found = self._user(email)
        if found is None or found[0] not in self.w.passwords:
            return None
        user_id, row = found
        return Credentials(user_id, tuple(row.organizations), self.w.passwords[user_id])

    async def member(self, user_id: UUID) -> Member | None:
        assert self.tenant is not None
        view = self.w.memberships.get((self.tenant, user_id))
        return None if view is None else Member(view.id, view.role)

    def _members(self) -> list[api.UserView]:
        return [v for (org, _), v in self.w.memberships.items() if org == self.tenant]

    async def user(self, membership_id: UUID) -> api.UserView | None:
        return next((v for v in self._members() if v.id == membership_id), None)

    async def users(self, query: ListQuery) -> Page[api.UserView]:
        return first_page(self._members(), query, key=_by_id)

    async def lock_signing_keys(self) -> None:
        return None  # one test task at a time: nothing races

    async def active_signing_key(self) -> ActiveKey | None:
        for key_id, row in self.w.signing_keys.items():
            if row.retired_at is None:
                return ActiveKey(key_id, row.kid, row.not_after)
        return None

    async def save_signing_secret(self, kid: str, private_key_enc: str) -> None:
        self.w.signing_secrets[kid] = private_key_enc

    async def signing_secret(self) -> SigningSecret | None:
        active = await self.active_signing_key()
        if active is None or active.kid not in self.w.signing_secrets:
            return None
        return SigningSecret(active.kid, active.not_after, self.w.signing_secrets[active.kid])

    def _clients(self) -> list[api.OAuthClientView]:
        return [v for org, v in self.w.oauth_clients.values() if org == self.tenant]

    async def oauth_client(self, client_uuid: UUID) -> ClientRecord | None:
        found = next((v for v in self._clients() if v.id == client_uuid), None)
        return None if found is None else ClientRecord(found.name, found.created_at)

    async def oauth_clients(self, query: ListQuery) -> Page[api.OAuthClientView]:
        return first_page(self._clients(), query, key=_by_id)


class FakeIdentity(FakeUnitOfWorkFactory[World, FakeTx]):
    """The ``IdentityUnitOfWork`` of the unit tests: ``world`` is what Postgres would hold."""

    def __init__(self) -> None:
        super().__init__(World(), FakeTx)
