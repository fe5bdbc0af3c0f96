"""Alerting routes (docs/api.md "Alert rules"; decision 63) beyond ``/alert-rules`` (a resource
group, ``domain/resources.py``): ``/alerts`` (list, get, ``/acknowledge``, ``/resolve``)
and the organization's timeline ``/events``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, Response, get, post
from litestar.params import Body, FromPath

from outpost_contracts.alerting import (
    ACKNOWLEDGE_ALERT,
    GET_ALERT,
    LIST_ALERTS,
    LIST_EVENTS,
    RESOLVE_ALERT,
    AlertAction,
    AlertTransition,
    AlertView,
    ById,
    TimelineEntry,
)
from outpost_gateway.domain.query import parse_single_request
from outpost_gateway.entrypoints.params import IfMatch, Listing, etag, etag_header, parse_if_match
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, render_one, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]
ALERT = resource_of(AlertView)
EVENT = resource_of(TimelineEntry)
ALERT_ETAG = etag_header("The alert's version")


@get(
    "/api/v1/alerts",
    tags=["alerts"],
    summary="List alerts",
    description="Filter by `status`, `severity`, `ruleId`, `deviceId`, `openedAt`…",
)
async def list_alerts(
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
) -> ListOf[AlertView]:
    return await fetch_list(listing, backend, ctx, LIST_ALERTS, ALERT)


@get(
    "/api/v1/alerts/{id:uuid}",
    tags=["alerts"],
    summary="Get an alert, with why it fired (`trigger`)",
    response_headers=ALERT_ETAG,
)
async def get_alert(
    id: FromPath[UUID], request: Req, ctx: Ctx, backend: BackendDep
) -> Response[AlertView]:
    shape = parse_single_request(list(request.query_params.multi_items()), ALERT)
    view = await backend.call(GET_ALERT, ctx, ById(id=id))
    return Response(render_one(view, shape), headers=etag(view.version))


async def _transition(
    op: Any, id: UUID, data: AlertTransition | None, ctx: Any, backend: Any, if_match: str | None
) -> Response[AlertView]:
    comment = data.comment if data is not None else None
    cmd = AlertAction(id=id, comment=comment, expected_version=parse_if_match(if_match))
    view = await backend.call(op, ctx, cmd)
    return Response(view, headers=etag(view.version), status_code=200)


@post(
    "/api/v1/alerts/{id:uuid}/acknowledge",
    tags=["alerts"],
    summary="Acknowledge an alert (OPEN → ACKNOWLEDGED), with an optional comment",
    description="409 `conflict` when it is already acknowledged or resolved.",
    status_code=200,
    response_headers=ALERT_ETAG,
)
async def acknowledge_alert(
    id: FromPath[UUID],
    ctx: Ctx,
    backend: BackendDep,
    if_match: IfMatch = None,
    data: AlertTransition | None = Body(default=None),
) -> Response[AlertView]:
    return await _transition(ACKNOWLEDGE_ALERT, id, data, ctx, backend, if_match)


@post(
    "/api/v1/alerts/{id:uuid}/resolve",
    tags=["alerts"],
    summary="Resolve an alert by hand, with an optional comment",
    description=(
        "The rule fires again for this device only after the value has cleared. 409"
        " `conflict` when it is already resolved."
    ),
    status_code=200,
    response_headers=ALERT_ETAG,
)
async def resolve_alert(
    id: FromPath[UUID],
    ctx: Ctx,
    backend: BackendDep,
    if_match: IfMatch = None,
    data: AlertTransition | None = Body(default=None),
) -> Response[AlertView]:
    return await _transition(RESOLVE_ALERT, id, data, ctx, backend, if_match)


@get(
    "/api/v1/events",
    tags=["events"],
    summary="The organization's timeline",
    description=(
        "Alert transitions, device connects and disconnects, provisioning, activation,"
        " decommissioning and commands. `type` is the source event's type"
        " (`alerting.AlertOpened.v1`, `devices.DeviceConnected.v1`…); filter by `type`,"
        " `deviceId`, `alertId`, `ts`."
    ),
)
async def list_events(
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
) -> ListOf[TimelineEntry]:
    return await fetch_list(listing, backend, ctx, LIST_EVENTS, EVENT)


ROUTES = [
    list_alerts,
    get_alert,
    acknowledge_alert,
    resolve_alert,
    list_events,
]
