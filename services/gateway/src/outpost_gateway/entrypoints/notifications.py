"""Notification channels (docs/api.md, "Notification channels"; decision 64) beyond the five
routes of their resource group (``domain/resources.py``): ``/test``
(one delivery now, its outcome in the answer), and the delivery log of a channel and of an
alert (``/notification-channels/{id}/deliveries``, ``/alerts/{id}/deliveries``)."""

from __future__ import annotations

from uuid import UUID

from litestar import get, post
from litestar.params import FromPath

from outpost_contracts.notifications import (
    LIST_DELIVERIES,
    TEST_CHANNEL,
    ChannelTestResult,
    DeliveryAttemptView,
    TestNotificationChannel,
)
from outpost_gateway.entrypoints.params import Listing
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

ATTEMPT = resource_of(DeliveryAttemptView)
ITEM = "/api/v1/notification-channels/{id:uuid}"
TAGS = ["notification-channels"]
_LOG = (
    "The delivery log: every attempt (`attempt`, `attemptedAt`, `outcome` SUCCEEDED | FAILED"
    " (retried) | DEAD (retry budget spent, or a permanent failure: the dead letter),"
    " `statusCode` or `error`, `latencyMs`), oldest first."
)


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
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
) -> ListOf[DeliveryAttemptView]:
    return await fetch_list(listing, backend, ctx, LIST_DELIVERIES, ATTEMPT, channel_id=id)


@get(
    "/api/v1/alerts/{id:uuid}/deliveries",
    tags=["alerts"],
    summary="An alert's delivery log, over every channel",
    description=_LOG,
)
async def list_alert_deliveries(
    id: FromPath[UUID],
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
) -> ListOf[DeliveryAttemptView]:
    return await fetch_list(listing, backend, ctx, LIST_DELIVERIES, ATTEMPT, alert_id=id)


ROUTES = [
    send_test_notification,
    list_channel_deliveries,
    list_alert_deliveries,
]
