"""Integrations' broker credentials (issue 23, ADR 0097): the ``devices-integrations``
consumer writes identity's ``Integration*`` events into ``broker_integrations`` (the
password's hash, never the password); the auth callout reads one row per connection. The
integration stream's version orders the rows, so a redelivered older event never undoes a
newer one. Every replica also applies a rotation or revocation it hears on core NATS at once
(``record``), before the consumer gets to it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text

from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.identity import (
    INTEGRATION_EVENTS,
    IntegrationCreated,
    IntegrationCredentialRotated,
    IntegrationRevoked,
)
from outpost_devices.app.ports import IntegrationCredential
from outpost_kit.db.uow import UnitOfWork

EVENT_TYPES = INTEGRATION_EVENTS

_CREATE = text(
    "INSERT INTO broker_integrations"
    " (id, tenant_id, broker_user, password_hash, consumers, revoked, version)"
    " VALUES (:id, :org, :user, :hash, :consumers, false, :v) ON CONFLICT (id) DO NOTHING"
)
_ROTATE = text(
    "UPDATE broker_integrations SET password_hash = :hash, version = :v"
    " WHERE id = :id AND version < :v"
)
_REVOKE = text(
    "UPDATE broker_integrations SET revoked = true, version = :v WHERE id = :id AND version < :v"
)

# The callout's one statement (asyncpg placeholders): the integration and whether its
# organization is suspended (decision 76).
CREDENTIAL = (
    "SELECT i.tenant_id, i.broker_user, i.password_hash, i.consumers, i.revoked,"
    " (SELECT suspended FROM organization_suspensions s WHERE s.tenant_id = i.tenant_id)"
    " AS suspended FROM broker_integrations i WHERE i.id = $1"
)


def credential(row: Mapping[str, Any]) -> IntegrationCredential:
    """The callout's view of a row (an asyncpg Record)."""
    return IntegrationCredential(
        org_id=row["tenant_id"],
        user=row["broker_user"],
        password_hash=row["password_hash"],
        consumers=tuple(row["consumers"]),
        revoked=bool(row["revoked"]),
        suspended=bool(row["suspended"]),
    )


async def on_integration_event(uow: UnitOfWork, event: EventEnvelope) -> None:
    """The ``devices-integrations`` consumer's handler."""
    data = event.data
    if isinstance(data, IntegrationCreated):
        await uow.conn.execute(
            _CREATE,
            {
                "id": event.stream_id,
                "org": event.org_id,
                "user": data.user,
                "hash": data.password_hash,
                "consumers": list(data.consumers),
                "v": event.version,
            },
        )
    elif isinstance(data, IntegrationCredentialRotated):
        await uow.conn.execute(
            _ROTATE, {"id": event.stream_id, "hash": data.password_hash, "v": event.version}
        )
    elif isinstance(data, IntegrationRevoked):
        await uow.conn.execute(_REVOKE, {"id": event.stream_id, "v": event.version})
