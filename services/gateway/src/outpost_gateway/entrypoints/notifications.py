"""Notification channels (docs/api.md, "Notification channels"; decision 64):
``/notification-channels`` (create, list, get, PATCH with ``If-Match``, DELETE), ``/test``
(one delivery now, its outcome in the answer), and the delivery log of a channel and of an
alert (``/notification-channels/{id}/deliveries``, ``/alerts/{id}/deliveries``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, Response, delete, get, patch, post
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, JSONBody

from outpost_contracts.notifications import (
    CREATE_CHANNEL,
    DELETE_CHANNEL,
    GET_CHANNEL,
    LIST_CHANNELS,
    LIST_DELIVERIES,
    TEST_CHANNEL,
    UPDATE_CHANNEL,
    ChannelTestResult,
    CreateNotificationChannel,
    DeleteNotificationChannel,
    DeliveryAttemptView,
    GetNotificationChannel,
    NotificationChannelPatch,
    NotificationChannelView,
    TestNotificationChannel,
    UpdateNotificationChannel,
)
from outpost_gateway.domain.query import parse_single_request
from outpost_gateway.entrypoints.devices import IfMatch, parse_if_match
from outpost_gateway.entrypoints.params import DEFAULT, After, Include, Limit, Order
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, render_one, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]

CHANNEL = resource_of(NotificationChannelView)
ATTEMPT = resource_of(DeliveryAttemptView)
PATH = "/api/v1/notification-channels"
ITEM = PATH + "/{id:uuid}"
TAGS = ["notification-channels"]
ETAG = [ResponseHeader(name="ETag", description="The channel's version", documentation_only=True)]
_SECRET = (
    "A webhook's `secret` is write-only: no answer, event or log carries it (`hasSecret` says"
    " there is one); deliveries are signed with it (`X-Outpost-Signature: sha256=<hex"
    " HMAC-SHA256 of the body>`)."
)
_SSRF = (
    "A webhook `url` must be http(s), and every address its host resolves to must be public:"
    " loopback, private, link-local, multicast, reserved addresses and their IPv6 forms are a"
    " `validation_error` on `url` unless the deployment allows loopback or private ones. The"
    " host is resolved and checked again at every delivery, and redirects are not followed."
)
_LOG = (
    "The delivery log: every attempt (`attempt`, `attemptedAt`, `outcome` SUCCEEDED | FAILED"
    " (retried) | DEAD (retry budget spent, or a permanent failure: the dead letter),"
    " `statusCode` or `error`, `latencyMs`), oldest first."
)


def _etag(view: NotificationChannelView) -> dict[str, str]:
    return {"ETag": f'"{view.version}"'}


@post(
    PATH,
    tags=TAGS,
    summary="Create a notification channel",
    description=(
        "`{type: WEBHOOK, name, url, secret}` or `{type: EMAIL, name, addresses}`. "
        f"{_SECRET} {_SSRF}"
    ),
)
async def create_notification_channel(
    data: JSONBody[CreateNotificationChannel], ctx: Ctx, backend: BackendDep
) -> NotificationChannelView:
    return await backend.call(CREATE_CHANNEL, ctx, data)


@get(PATH, tags=TAGS, summary="List notification channels")
async def list_notification_channels(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[NotificationChannelView]:
    params = list(request.query_params.multi_items())
    return await fetch_list(params, backend, ctx, LIST_CHANNELS, CHANNEL)


@get(ITEM, tags=TAGS, response_headers=ETAG)
async def get_notification_channel(
    id: FromPath[UUID], request: Req, ctx: Ctx, backend: BackendDep
) -> Response[NotificationChannelView]:
    shape = parse_single_request(list(request.query_params.multi_items()), CHANNEL)
    view = await backend.call(GET_CHANNEL, ctx, GetNotificationChannel(id=id))
    return Response(render_one(view, shape), headers=_etag(view))


@patch(
    ITEM,
    tags=TAGS,
    response_headers=ETAG,
    summary="Change a notification channel (JSON merge patch)",
    description=f"`type` never changes. {_SECRET} {_SSRF}",
)
async def update_notification_channel(
    id: FromPath[UUID],
    data: JSONBody[NotificationChannelPatch],
    ctx: Ctx,
    backend: BackendDep,
    if_match: IfMatch = None,
) -> Response[NotificationChannelView]:
    cmd = UpdateNotificationChannel(id=id, patch=data, expected_version=parse_if_match(if_match))
    view = await backend.call(UPDATE_CHANNEL, ctx, cmd)
    return Response(view, headers=_etag(view))


@delete(ITEM, tags=TAGS, summary="Delete a notification channel (pending deliveries are dropped)")
async def delete_notification_channel(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep, if_match: IfMatch = None
) -> None:
    cmd = DeleteNotificationChannel(id=id, expected_version=parse_if_match(if_match))
    await backend.call(DELETE_CHANNEL, ctx, cmd)


@post(
    ITEM + "/test",
    tags=TAGS,
    status_code=200,
    summary="Send a test delivery now",
    description=(
        "One delivery of a test event (`data.type` `alerting.NotificationTest.v1`), sent at"
        " once and never retried; the answer says how it went (`outcome` SUCCEEDED or DEAD,"
        " `statusCode` or `error`, `latencyMs`). It is in the channel's delivery log."
    ),
)
async def send_test_notification(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep
) -> ChannelTestResult:
    return await backend.call(TEST_CHANNEL, ctx, TestNotificationChannel(id=id))


@get(ITEM + "/deliveries", tags=TAGS, summary="A channel's delivery log", description=_LOG)
async def list_channel_deliveries(
    id: FromPath[UUID],
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[DeliveryAttemptView]:
    params = list(request.query_params.multi_items())
    return await fetch_list(params, backend, ctx, LIST_DELIVERIES, ATTEMPT, channel_id=id)


@get(
    "/api/v1/alerts/{id:uuid}/deliveries",
    tags=["alerts"],
    summary="An alert's delivery log, over every channel",
    description=_LOG,
)
async def list_alert_deliveries(
    id: FromPath[UUID],
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[DeliveryAttemptView]:
    params = list(request.query_params.multi_items())
    return await fetch_list(params, backend, ctx, LIST_DELIVERIES, ATTEMPT, alert_id=id)


ROUTES = [
    create_notification_channel,
    list_notification_channels,
    get_notification_channel,
    update_notification_channel,
    delete_notification_channel,
    send_test_notification,
    list_channel_deliveries,
    list_alert_deliveries,
]
