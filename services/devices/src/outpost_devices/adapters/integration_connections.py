"""``lastConnectedAt`` of integrations (ADR 0097): the auth callout notes each integration it
admits, in memory, and reports them to identity in one batch every
``OUTPOST_DEVICES_INTEGRATION_REPORT_SECONDS`` (as the gateways report API keys' use:
a dictionary write per admission, one request per interval)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from uuid import UUID

from outpost_contracts.envelope import PLATFORM_ORG_ID, Principal, PrincipalKind, RequestContext
from outpost_contracts.identity import IntegrationConnection, RecordIntegrationConnections
from outpost_kit import ids

_log = logging.getLogger(__name__)
SYSTEM = Principal(kind=PrincipalKind.SYSTEM, id=PLATFORM_ORG_ID, org_id=PLATFORM_ORG_ID)


# Sends one report to identity (``messaging.call`` on the service's connection).
Send = Callable[[RequestContext, RecordIntegrationConnections], Awaitable[object]]


class IntegrationConnections:
    def __init__(self, send: Send, every: float) -> None:
        self.send = send
        self.every = every
        self._seen: dict[UUID, IntegrationConnection] = {}

    def note(self, integration_id: UUID, org_id: UUID, at: datetime) -> None:
        self._seen[integration_id] = IntegrationConnection(id=integration_id, org_id=org_id, at=at)

    def drain(self) -> list[IntegrationConnection]:
        seen, self._seen = list(self._seen.values()), {}
        return seen

    def restore(self, connections: list[IntegrationConnection]) -> None:
        """Put back a report that did not reach identity (newer admissions noted since win)."""
        for connection in connections:
            newer = self._seen.get(connection.id)
            if newer is None or newer.at < connection.at:
                self._seen[connection.id] = connection

    async def report(self) -> int:
        connections = self.drain()
        if not connections:
            return 0
        ctx = RequestContext(request_id=ids.request_id(), org_id=PLATFORM_ORG_ID, principal=SYSTEM)
        body = RecordIntegrationConnections(connections=connections)
        try:
            await self.send(ctx, body)
        except Exception as exc:
            self.restore(connections)
            _log.warning("could not report integrations' connections (%s); will retry", exc)
            return 0
        return len(connections)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)
            await self.report()
