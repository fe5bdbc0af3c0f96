"""The ``Backend`` port over NATS request/reply."""

from __future__ import annotations

from typing import TypeVar

from nats.aio.client import Client as NATS

from outpost_contracts.envelope import RequestContext
from outpost_contracts.rpc import Operation
from outpost_kit import messaging

Req = TypeVar("Req")
Rep = TypeVar("Rep")


class NatsBackend:
    def __init__(self, nc: NATS, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout

    @property
    def connected(self) -> bool:
        return bool(self._nc.is_connected)

    async def call(self, op: Operation[Req, Rep], ctx: RequestContext, body: Req) -> Rep:
        return await messaging.call(self._nc, op, ctx, body, timeout=self._timeout)
