"""What the gateway needs from the outside world, as protocols (fakes implement them in tests)."""

from __future__ import annotations

from typing import Protocol, TypeVar

from outpost_contracts.envelope import RequestContext
from outpost_contracts.rpc import Operation

Req = TypeVar("Req")
Rep = TypeVar("Rep")


class Backend(Protocol):
    """Sends a request contract to the service that owns ``op`` and returns its reply.

    Raises the service's ``OutpostError``, or ``ServiceUnavailable`` when it does not answer.
    """

    async def call(self, op: Operation[Req, Rep], ctx: RequestContext, body: Req) -> Rep: ...
