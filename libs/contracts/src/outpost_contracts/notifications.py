"""Notification channels and their deliveries (docs/api.md, "Notification channels"). Owned by the
alerting service; channel events go to the ALERTING stream.

A webhook channel's ``secret`` is write-only: requests carry it, no view, event or log does.
The service keeps it encrypted at rest beside the channel's stream (ADR 0064).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Empty, Event, Request, whole, wire_tag
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.rpc import Operation

SERVICE = "alerting"

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
WebhookUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
# At least 16 characters: it keys an HMAC, and a short one can be guessed from signatures.
WebhookSecret = Annotated[str, msgspec.Meta(min_length=16, max_length=256)]
EmailAddress = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        # One mailbox, no display name, no header-breaking characters.
        pattern=whole(
            r"[^@\s<>,;:\"()\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
            r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
        ),
    ),
]
MAX_ADDRESSES = 20
Addresses = Annotated[list[EmailAddress], msgspec.Meta(min_length=1, max_length=MAX_ADDRESSES)]


class ChannelType(enum.StrEnum):
    WEBHOOK = "WEBHOOK"
    EMAIL = "EMAIL"


class DeliveryKind(enum.StrEnum):
    ALERT = "ALERT"  # an alert event of a rule naming the channel
    TEST = "TEST"  # POST /notification-channels/{id}/test


class DeliveryOutcome(enum.StrEnum):
    """Of one attempt: it succeeded; it failed and will be retried; it failed and the retry
    budget is spent (or the failure is permanent), so the delivery is dead-lettered."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    DEAD = "DEAD"


class DeliveryStatus(enum.StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    DEAD = "DEAD"


# --- requests ---------------------------------------------------------------------------


class CreateNotificationChannel(Request, kw_only=True, frozen=True):
    """``WEBHOOK``: ``url`` and ``secret``; ``EMAIL``: ``addresses``. A field of the other
    type is a ``validation_error``."""

    type: ChannelType
    name: Name
    url: WebhookUrl | None = None
    secret: WebhookSecret | None = None
    addresses: Addresses | None = None
    enabled: bool = True


class NotificationChannelPatch(Request, kw_only=True, frozen=True):
    """A JSON merge patch; ``type`` never changes. ``secret`` replaces the webhook's secret."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    url: WebhookUrl | msgspec.UnsetType = msgspec.UNSET
    secret: WebhookSecret | msgspec.UnsetType = msgspec.UNSET
    addresses: Addresses | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class UpdateNotificationChannel(Request, kw_only=True, frozen=True):
    id: UUID
    patch: NotificationChannelPatch
    expected_version: int | None = None  # from If-Match


class DeleteNotificationChannel(Request, kw_only=True, frozen=True):
    id: UUID
    expected_version: int | None = None  # from If-Match


class GetNotificationChannel(Request, kw_only=True, frozen=True):
    id: UUID


class ListNotificationChannels(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class TestNotificationChannel(Request, kw_only=True, frozen=True):
    id: UUID


class ListDeliveries(Request, kw_only=True, frozen=True):
    """The delivery log (every attempt) of one alert or one channel."""

    query: ListQuery = msgspec.field(default_factory=ListQuery)
    alert_id: UUID | None = None
    channel_id: UUID | None = None


# --- replies ----------------------------------------------------------------------------


class NotificationChannelView(Contract, kw_only=True, frozen=True):
    id: UUID
    type: ChannelType
    name: str
    enabled: bool
    created_at: datetime
    updated_at: datetime
    version: int
    url: str | None = None
    addresses: list[str] | None = None
    has_secret: bool = False  # the secret itself is never returned
    object: str = "notificationChannel"


class DeliveryAttemptView(Contract, kw_only=True, frozen=True):
    """One attempt of one delivery: when, how it ended (HTTP status or error), how long."""

    id: UUID
    delivery_id: UUID
    channel_id: UUID
    event_id: UUID
    event_type: str
    kind: DeliveryKind
    attempt: int
    attempted_at: datetime
    outcome: DeliveryOutcome
    latency_ms: float
    alert_id: UUID | None = None
    status_code: int | None = None
    error: str | None = None
    object: str = "deliveryAttempt"


class ChannelTestResult(Contract, kw_only=True, frozen=True):
    """What ``/test`` answers: the one attempt it made, at once."""

    delivery_id: UUID
    channel_id: UUID
    event_id: UUID
    outcome: DeliveryOutcome
    attempted_at: datetime
    latency_ms: float
    status_code: int | None = None
    error: str | None = None


# --- events -----------------------------------------------------------------------------


class NotificationChannelCreated(
    Event, tag=wire_tag(SERVICE, "NotificationChannelCreated", 1), kw_only=True, frozen=True
):
    """No secret, in clear or otherwise: ``hasSecret`` says a webhook has one."""

    channel_type: ChannelType
    name: str
    enabled: bool = True
    url: str | None = None
    addresses: list[str] | None = None
    has_secret: bool = False


class NotificationChannelUpdated(
    Event, tag=wire_tag(SERVICE, "NotificationChannelUpdated", 1), kw_only=True, frozen=True
):
    """``changed`` names the fields that changed (camelCase); each carries its new value,
    except ``secret``: its name in ``changed`` says it was replaced, never what it is."""

    changed: list[str]
    name: str | None = None
    enabled: bool | None = None
    url: str | None = None
    addresses: list[str] | None = None


class NotificationChannelDeleted(
    Event, tag=wire_tag(SERVICE, "NotificationChannelDeleted", 1), kw_only=True, frozen=True
):
    """The channel is gone; its pending deliveries end DEAD ("the channel was deleted")."""


class NotificationTest(
    Event, tag=wire_tag(SERVICE, "NotificationTest", 1), kw_only=True, frozen=True
):
    """The ``data`` of a test delivery's envelope (``/test``). Sent, never stored as an
    event nor published: a receiver sees the shape of an alert event with this type."""

    channel_id: UUID
    message: str = "This is a test notification from Outpost."


EVENT_TYPES: tuple[type[Event], ...] = (
    NotificationChannelCreated,
    NotificationChannelUpdated,
    NotificationChannelDeleted,
)

CREATE_CHANNEL = Operation(
    SERVICE, "CreateNotificationChannel", CreateNotificationChannel, NotificationChannelView
)
GET_CHANNEL = Operation(
    SERVICE, "GetNotificationChannel", GetNotificationChannel, NotificationChannelView
)
LIST_CHANNELS = Operation(
    SERVICE, "ListNotificationChannels", ListNotificationChannels, Page[NotificationChannelView]
)
UPDATE_CHANNEL = Operation(
    SERVICE, "UpdateNotificationChannel", UpdateNotificationChannel, NotificationChannelView
)
DELETE_CHANNEL = Operation(SERVICE, "DeleteNotificationChannel", DeleteNotificationChannel, Empty)
TEST_CHANNEL = Operation(
    SERVICE, "TestNotificationChannel", TestNotificationChannel, ChannelTestResult
)
LIST_DELIVERIES = Operation(
    SERVICE, "ListNotificationDeliveries", ListDeliveries, Page[DeliveryAttemptView]
)
