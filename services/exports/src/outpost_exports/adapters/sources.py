"""What an export reads, asked of the services that own it over request/reply (exports
never reads another service's schema): the devices of a scope (devices service), readings
in chunks (readings' ``StreamReadings``), annotations (readings' ``ListAnnotations``), and
alerts and timeline entries (alerting's ``ListAlerts`` and ``ListEvents``, filtered on the
devices and the range, paged with ``after``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from nats.aio.client import Client as NATS

from outpost_contracts import alerting, devices, registry
from outpost_contracts import exports as api
from outpost_contracts import readings as readings_api
from outpost_contracts.annotations import (
    LIST_ANNOTATIONS,
    MAX_DEVICE_IDS,
    AnnotationView,
    ListAnnotations,
)
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound, validation_error
from outpost_contracts.query import MAX_LIMIT, And, Cmp, ListQuery, Page
from outpost_kit import messaging


class Sources(Protocol):
    async def check_scope(
        self, ctx: RequestContext, scope: api.ScopeType, id: UUID | None
    ) -> None: ...

    async def devices(
        self, ctx: RequestContext, scope: api.ScopeType, id: UUID | None
    ) -> list[UUID]: ...

    async def readings(
        self,
        ctx: RequestContext,
        device_id: UUID,
        start: datetime,
        end: datetime,
        after: tuple[datetime, str] | None,
        limit: int,
        estimate: bool,
    ) -> readings_api.ReadingsChunk: ...

    def annotations(
        self, ctx: RequestContext, device_ids: list[UUID], start: datetime, end: datetime
    ) -> AsyncIterator[list[AnnotationView]]: ...

    def alerts(
        self, ctx: RequestContext, device_ids: list[UUID], start: datetime, end: datetime
    ) -> AsyncIterator[list[alerting.AlertView]]: ...

    def events(
        self, ctx: RequestContext, device_ids: list[UUID], start: datetime, end: datetime
    ) -> AsyncIterator[list[alerting.TimelineEntry]]: ...


# Alerting's collections take at most this many values in an ``in`` filter.
MAX_IN_VALUES = 100

_FILTER_FIELD = {api.ScopeType.GROUP: "groupId", api.ScopeType.SITE: "siteId"}


class NatsSources:
    def __init__(self, nc: NATS, timeout: float = 10.0) -> None:
        self._nc = nc
        self._timeout = timeout

    async def check_scope(self, ctx: RequestContext, scope: api.ScopeType, id: UUID | None) -> None:
        """A DEVICE, GROUP or SITE scope must name one of the organization's."""
        if scope == api.ScopeType.ORGANIZATION:
            return
        assert id is not None
        try:
            if scope == api.ScopeType.DEVICE:
                await messaging.call(self._nc, devices.GET_DEVICE, ctx, devices.GetDevice(id=id))
            elif scope == api.ScopeType.GROUP:
                await messaging.call(self._nc, registry.GET_GROUP, ctx, registry.Get(id=id))
            else:
                await messaging.call(self._nc, registry.GET_SITE, ctx, registry.Get(id=id))
        except NotFound:
            raise validation_error("scopeId", f"no such {scope.value.lower()}") from None

    async def devices(
        self, ctx: RequestContext, scope: api.ScopeType, id: UUID | None
    ) -> list[UUID]:
        if scope == api.ScopeType.DEVICE:
            assert id is not None
            return [id]
        where = (
            None
            if scope == api.ScopeType.ORGANIZATION
            else Cmp(field=_FILTER_FIELD[scope], op="eq", value=str(id))
        )
        found: list[UUID] = []
        after: str | None = None
        while True:
            page = await messaging.call(
                self._nc,
                devices.LIST_DEVICES,
                ctx,
                devices.ListDevices(query=ListQuery(filter=where, limit=MAX_LIMIT, after=after)),
                timeout=self._timeout,
            )
            found.extend(d.id for d in page.data)
            if not page.has_more or not page.data:
                return found
            after = str(page.data[-1].id)

    async def readings(
        self,
        ctx: RequestContext,
        device_id: UUID,
        start: datetime,
        end: datetime,
        after: tuple[datetime, str] | None,
        limit: int,
        estimate: bool,
    ) -> readings_api.ReadingsChunk:
        return await messaging.call(
            self._nc,
            readings_api.STREAM_READINGS,
            ctx,
            readings_api.StreamReadings(
                device_id=device_id,
                from_=start,
                to=end,
                after_ts=after[0] if after else None,
                after_sensor=after[1] if after else None,
                limit=limit,
                estimate=estimate,
            ),
            timeout=self._timeout,
        )

    async def annotations(
        self, ctx: RequestContext, device_ids: list[UUID], start: datetime, end: datetime
    ) -> AsyncIterator[list[AnnotationView]]:
        for i in range(0, len(device_ids), MAX_DEVICE_IDS):
            batch = device_ids[i : i + MAX_DEVICE_IDS]
            after: UUID | None = None
            while True:
                page = await messaging.call(
                    self._nc,
                    LIST_ANNOTATIONS,
                    ctx,
                    ListAnnotations(
                        device_ids=batch, from_=start, to=end, limit=MAX_LIMIT, after=after
                    ),
                    timeout=self._timeout,
                )
                if page.data:
                    yield list(page.data)
                if not page.has_more or not page.data:
                    break
                after = page.data[-1].id

    async def alerts(
        self, ctx: RequestContext, device_ids: list[UUID], start: datetime, end: datetime
    ) -> AsyncIterator[list[alerting.AlertView]]:
        """The devices' alerts whose ``openedAt`` is in ``[start, end)``, in id order per
        batch of devices."""
        async for page in self._alerting(
            ctx, alerting.LIST_ALERTS, "openedAt", device_ids, start, end
        ):
            yield page

    async def events(
        self, ctx: RequestContext, device_ids: list[UUID], start: datetime, end: datetime
    ) -> AsyncIterator[list[alerting.TimelineEntry]]:
        """The devices' timeline entries whose ``ts`` is in ``[start, end)``."""
        async for page in self._alerting(ctx, alerting.LIST_EVENTS, "ts", device_ids, start, end):
            yield page

    async def _alerting(
        self,
        ctx: RequestContext,
        operation: Any,
        ts_field: str,
        device_ids: list[UUID],
        start: datetime,
        end: datetime,
    ) -> AsyncIterator[list[Any]]:
        for i in range(0, len(device_ids), MAX_IN_VALUES):
            batch = [str(d) for d in device_ids[i : i + MAX_IN_VALUES]]
            where = And(
                items=[
                    Cmp(field="deviceId", op="in", value=list(batch)),
                    Cmp(field=ts_field, op="ge", value=_instant(start)),
                    Cmp(field=ts_field, op="lt", value=_instant(end)),
                ]
            )
            after: str | None = None
            while True:
                page: Page[Any] = await messaging.call(
                    self._nc,
                    operation,
                    ctx,
                    alerting.ListOf(query=ListQuery(filter=where, limit=MAX_LIMIT, after=after)),
                    timeout=self._timeout,
                )
                if page.data:
                    yield list(page.data)
                if not page.has_more or not page.data:
                    break
                after = str(page.data[-1].id)


def _instant(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
