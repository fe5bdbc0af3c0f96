"""What travels with every request and event: who asked, for which tenant, under which id.

The gateway verifies the principal and the tenant and puts them in ``RequestContext``; a
service trusts the context and never reads a tenant from a body (docs/architecture.md principle 6).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Event
from outpost_contracts.errors import ServiceError

T = TypeVar("T")

# The platform's own tenant: the operator's credentials belong to it.
PLATFORM_ORG_ID = UUID("00000000-0000-0000-0000-000000000000")


class PrincipalKind(enum.StrEnum):
    OPERATOR = "operator"
    API_KEY = "api_key"
    USER = "user"
    OAUTH_CLIENT = "oauth_client"
    DEVICE = "device"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"  # a public route's caller (login, refresh): no credential yet


class Principal(Contract, kw_only=True, frozen=True):
    kind: PrincipalKind
    id: UUID
    org_id: UUID
    role: str | None = None
    scopes: tuple[str, ...] = ()
    session_id: UUID | None = None  # USER principals: the session their access token belongs to


class RequestContext(Contract, kw_only=True, frozen=True):
    request_id: str
    org_id: UUID
    principal: Principal


class RpcRequest(Contract, Generic[T], kw_only=True, frozen=True):
    ctx: RequestContext
    body: T


class RpcReply(Contract, Generic[T], kw_only=True, frozen=True):
    """Exactly one of ``result`` and ``error`` is set."""

    result: T | None = None
    error: ServiceError | None = None


class EventEnvelope(Contract, kw_only=True, frozen=True):
    """An event as it is stored in an event store and published on its service's stream."""

    id: UUID
    org_id: UUID
    stream_id: UUID
    stream_type: str
    version: int
    occurred_at: datetime
    data: Event
    request_id: str | None = None
    actor: Principal | None = None
    meta: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def type(self) -> str:
        tag = type(self.data).__struct_config__.tag
        assert isinstance(tag, str)
        return tag
