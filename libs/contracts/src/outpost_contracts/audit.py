"""The audit log: every change in an organization, read from every service's event store.

Each service answers ``<service>.ListAuditLog`` over its own ``events`` table (the kit serves
it for every service with a database); the gateway asks them all and merges the pages by
event id, which is a UUIDv7 and so orders entries by time across services.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Request
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.rpc import Operation
from outpost_contracts.subjects import SERVICES


class AuditEntry(Contract, kw_only=True, frozen=True):
    """Who did what, when, under which request."""

    id: UUID  # the event's id
    service: str
    type: str  # the event's wire tag, e.g. devices.DeviceRegistered.v1
    stream_type: str
    stream_id: UUID
    version: int
    occurred_at: datetime
    actor_kind: str | None = None
    actor_id: UUID | None = None
    request_id: str | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    object: str = "audit-entry"


class ListAuditLog(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


def list_audit_log(service: str) -> Operation[ListAuditLog, Page[AuditEntry]]:
    return Operation(service, "ListAuditLog", ListAuditLog, Page[AuditEntry])


LIST_AUDIT_LOG: dict[str, Operation[ListAuditLog, Page[AuditEntry]]] = {
    service: list_audit_log(service) for service in SERVICES
}
