"""``lastUsedAt`` of API keys: each gateway notes the keys it accepts, in memory, and
reports them to identity in one batch every ``report_seconds`` (a dictionary write per
request, one RPC per interval — never a write per request)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from uuid import UUID

from outpost_contracts.envelope import PLATFORM_ORG_ID, Principal, PrincipalKind, RequestContext
from outpost_contracts.identity import RECORD_KEY_USAGE, KeyUse, RecordKeyUsage
from outpost_gateway.app.ports import Backend
from outpost_kit import ids

_log = logging.getLogger(__name__)

KEY_KINDS = frozenset({PrincipalKind.API_KEY, PrincipalKind.OPERATOR})
SYSTEM = Principal(kind=PrincipalKind.SYSTEM, id=PLATFORM_ORG_ID, org_id=PLATFORM_ORG_ID)


class KeyUsage:
    def __init__(self) -> None:
        self._seen: dict[UUID, KeyUse] = {}

    def note(self, principal: Principal, at: datetime) -> None:
        if principal.kind in KEY_KINDS:
            self._seen[principal.id] = KeyUse(id=principal.id, org_id=principal.org_id, at=at)

    def drain(self) -> list[KeyUse]:
        uses, self._seen = list(self._seen.values()), {}
        return uses

    def restore(self, uses: list[KeyUse]) -> None:
        """Put back a report that did not reach identity (newer uses noted since win)."""
        for use in uses:
            newer = self._seen.get(use.id)
            if newer is None or newer.at < use.at:
                self._seen[use.id] = use

    async def report(self, backend: Backend) -> int:
        uses = self.drain()
        if not uses:
            return 0
        ctx = RequestContext(request_id=ids.request_id(), org_id=PLATFORM_ORG_ID, principal=SYSTEM)
        try:
            await backend.call(RECORD_KEY_USAGE, ctx, RecordKeyUsage(uses=uses))
        except Exception as exc:
            self.restore(uses)
            _log.warning(
                "could not report API key usage (%s: %s); will retry", type(exc).__name__, exc
            )
            return 0
        return len(uses)

    async def report_forever(self, backend: Backend, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.report(backend)
