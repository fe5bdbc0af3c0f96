"""What the gateway needs from the outside world, as protocols (fakes implement them in tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, TypeVar
from uuid import UUID

from outpost_contracts.envelope import RequestContext
from outpost_contracts.rpc import Operation
from outpost_gateway.domain.idempotency import Record, StoredResponse

Req = TypeVar("Req")
Rep = TypeVar("Rep")


class Backend(Protocol):
    """Sends a request contract to the service that owns ``op`` and returns its reply.

    Raises the service's ``OutpostError``, or ``ServiceUnavailable`` when it does not answer.
    """

    async def call(self, op: Operation[Req, Rep], ctx: RequestContext, body: Req) -> Rep: ...


class RateLimitStore(Protocol):
    """The shared, atomic counters every replica increments."""

    async def hit(
        self, org_id: UUID, credential_id: UUID, category: str, window_start: int, n: int = 1
    ) -> int:
        """Add ``n`` requests to a window's count, atomically; returns the new count (so this
        caller owns the counts ``new - n + 1 .. new``)."""
        ...

    async def overrides(self, org_id: UUID) -> dict[str, int]:
        """An organization's per-category limits (requests per minute), if any."""
        ...

    async def set_overrides(self, org_id: UUID, overrides: dict[str, int | None]) -> None:
        """Set (a number) or clear (None) an organization's per-category limits."""
        ...


class IdempotencyStore(Protocol):
    async def claim(
        self, credential_id: UUID, key: str, org_id: UUID, request_hash: bytes
    ) -> Record | None:
        """Claim ``key`` of this credential in this organization for a new request: None
        when claimed (new, expired or abandoned), otherwise the record already there. The
        same key in another organization is another key (decision 78)."""
        ...

    async def complete(
        self, credential_id: UUID, key: str, org_id: UUID, response: StoredResponse
    ) -> None: ...

    async def release(self, credential_id: UUID, key: str, org_id: UUID) -> None: ...


class GatewayStorePort(RateLimitStore, IdempotencyStore, Protocol):
    """Both, as the gateway's schema provides them."""


class ArtifactReader(Protocol):
    """Export archives in the object store, read chunk by chunk (decision 65)."""

    async def open(self, bucket: str, name: str) -> AsyncIterator[bytes]: ...
