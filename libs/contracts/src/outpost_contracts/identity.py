"""Identity: organizations and API keys (more arrives with sessions and OAuth clients)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Empty, Event, Request, wire_tag
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.rpc import Operation

SERVICE = "identity"

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Scope = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z-]*:(read|write|\*)$|^\*$")]


class OrganizationStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


# --- events -----------------------------------------------------------------------------


class OrganizationCreated(
    Event, tag=wire_tag(SERVICE, "OrganizationCreated", 1), kw_only=True, frozen=True
):
    name: str


class OrganizationSuspended(
    Event, tag=wire_tag(SERVICE, "OrganizationSuspended", 1), kw_only=True, frozen=True
):
    reason: str = ""


class ApiKeyCreated(Event, tag=wire_tag(SERVICE, "ApiKeyCreated", 1), kw_only=True, frozen=True):
    """Carries the key's lookup prefix and SHA-256 hash (never the key) so that gateways can
    verify it from their local cache."""

    name: str
    prefix: str
    key_hash: str
    scopes: tuple[str, ...]
    operator: bool = False
    expires_at: datetime | None = None
    created_by: UUID | None = None


class ApiKeyRevoked(Event, tag=wire_tag(SERVICE, "ApiKeyRevoked", 1), kw_only=True, frozen=True):
    prefix: str


# --- requests ---------------------------------------------------------------------------


class CreateOrganization(Request, kw_only=True, frozen=True):
    name: Name


class ListOrganizations(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class GetOrganization(Request, kw_only=True, frozen=True):
    id: UUID


class CreateApiKey(Request, kw_only=True, frozen=True):
    name: Name
    scopes: list[Scope] | None = None
    expires_at: datetime | None = None


class ListApiKeys(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class RevokeApiKey(Request, kw_only=True, frozen=True):
    id: UUID


# --- replies ----------------------------------------------------------------------------


class OrganizationView(Contract, kw_only=True, frozen=True):
    id: UUID
    name: str
    status: OrganizationStatus
    created_at: datetime
    version: int


class ApiKeyView(Contract, kw_only=True, frozen=True):
    id: UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    version: int = 1


class ApiKeyIssued(Contract, kw_only=True, frozen=True):
    """The one time a key is shown."""

    id: UUID
    name: str
    key: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None = None


CREATE_ORGANIZATION = Operation(SERVICE, "CreateOrganization", CreateOrganization, OrganizationView)
LIST_ORGANIZATIONS = Operation(
    SERVICE, "ListOrganizations", ListOrganizations, Page[OrganizationView]
)
GET_ORGANIZATION = Operation(SERVICE, "GetOrganization", GetOrganization, OrganizationView)
CREATE_API_KEY = Operation(SERVICE, "CreateApiKey", CreateApiKey, ApiKeyIssued)
LIST_API_KEYS = Operation(SERVICE, "ListApiKeys", ListApiKeys, Page[ApiKeyView])
REVOKE_API_KEY = Operation(SERVICE, "RevokeApiKey", RevokeApiKey, Empty)
