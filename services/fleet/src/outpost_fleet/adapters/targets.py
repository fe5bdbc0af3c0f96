"""A binding's target, checked with the devices service (the owner of sites, groups and
devices) over request/reply, as exports checks its scopes: fleet's own read model of
devices may be a moment behind a registration, the devices service is not."""

from __future__ import annotations

from nats.aio.client import Client as NATS

from outpost_contracts import devices, registry
from outpost_contracts import fleet as api
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound
from outpost_kit import messaging


class NatsTargets:
    def __init__(self, nc: NATS, timeout: float = 5.0) -> None:
        self._nc = nc
        self._timeout = timeout

    async def exists(self, ctx: RequestContext, target: api.Target) -> bool:
        if target.type is api.TargetType.ORGANIZATION:
            return True
        if target.type is api.TargetType.PROFILE:
            return True  # fleet's own: the use case asks its store (ConfigTx.profile_exists)
        assert target.id is not None
        try:
            if target.type is api.TargetType.DEVICE:
                await messaging.call(
                    self._nc,
                    devices.GET_DEVICE,
                    ctx,
                    devices.GetDevice(id=target.id),
                    timeout=self._timeout,
                )
            elif target.type is api.TargetType.SITE:
                await messaging.call(
                    self._nc,
                    registry.GET_SITE,
                    ctx,
                    registry.Get(id=target.id),
                    timeout=self._timeout,
                )
            else:
                await messaging.call(
                    self._nc,
                    registry.GET_GROUP,
                    ctx,
                    registry.Get(id=target.id),
                    timeout=self._timeout,
                )
        except NotFound:
            return False
        return True
