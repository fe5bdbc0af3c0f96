"""Alerting routes (docs/api.md "Alert rules"; decision 63): ``/alert-rules`` with the same five
routes as every registry resource, ``/alerts`` (list, get, ``/acknowledge``, ``/resolve``)
and the organization's timeline ``/events``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.params import Body, FromPath

from outpost_contracts.alerting import (
    ACKNOWLEDGE_ALERT,
    CREATE_RULE,
    DELETE_RULE,
    GET_ALERT,
    GET_RULE,
    LIST_ALERTS,
    LIST_EVENTS,
    LIST_RULES,
    RESOLVE_ALERT,
    UPDATE_RULE,
    AlertAction,
    AlertRulePatch,
    AlertRuleView,
    AlertTransition,
    AlertView,
    ById,
    CreateAlertRule,
    DeleteById,
    TimelineEntry,
    UpdateAlertRule,
)
from outpost_gateway.domain.query import parse_single_request
from outpost_gateway.entrypoints.devices import IfMatch, parse_if_match
from outpost_gateway.entrypoints.params import DEFAULT, After, Include, Limit, Order
from outpost_gateway.entrypoints.registry import RegistryResource, registry_routes
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, render_one, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]
ALERT = resource_of(AlertView)
EVENT = resource_of(TimelineEntry)
ALERT_ETAG = [
    ResponseHeader(name="ETag", description="The alert's version", documentation_only=True)
]

RULES = RegistryResource(
    path="/api/v1/alert-rules",
    one="alert_rule",
    many="alert_rules",
    view=AlertRuleView,
    create_body=CreateAlertRule,
    patch_body=AlertRulePatch,
    update_command=UpdateAlertRule,
    create=CREATE_RULE,
    list=LIST_RULES,
    get=GET_RULE,
    update=UPDATE_RULE,
    delete=DELETE_RULE,
    delete_summary="Delete an alert rule (its unresolved alerts are resolved)",
    get_request=ById,
    delete_request=DeleteById,
)


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


@get(
    "/api/v1/alerts",
    tags=["alerts"],
    summary="List alerts",
    description="Filter by `status`, `severity`, `ruleId`, `deviceId`, `openedAt`…",
)
async def list_alerts(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[AlertView]:
    params = list(request.query_params.multi_items())
    return await fetch_list(params, backend, ctx, LIST_ALERTS, ALERT)


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
    return Response(render_one(view, shape), headers=_etag(view.version))


async def _transition(
    op: Any, id: UUID, data: AlertTransition | None, ctx: Any, backend: Any, if_match: str | None
) -> Response[AlertView]:
    comment = data.comment if data is not None else None
    cmd = AlertAction(id=id, comment=comment, expected_version=parse_if_match(if_match))
    view = await backend.call(op, ctx, cmd)
    return Response(view, headers=_etag(view.version), status_code=200)


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
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[TimelineEntry]:
    params = list(request.query_params.multi_items())
    return await fetch_list(params, backend, ctx, LIST_EVENTS, EVENT)


ROUTES = [
    *registry_routes(RULES),
    list_alerts,
    get_alert,
    acknowledge_alert,
    resolve_alert,
    list_events,
]
