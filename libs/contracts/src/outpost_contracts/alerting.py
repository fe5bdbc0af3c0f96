"""Alerting: alert rules, alerts and their lifecycle (docs/api.md, "Alert rules"). Owned by the
alerting service; its events go to the ALERTING stream."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Empty, Event, Request, wire_tag
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.registry import SensorKey
from outpost_contracts.rpc import Operation

SERVICE = "alerting"

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Comment = Annotated[str, msgspec.Meta(max_length=1024)]
# A condition must hold this long before it fires: at most a day.
MAX_FOR_SECONDS = 86_400
# ``nodata``: from 10 s to 7 days without a reading.
MIN_NODATA_SECONDS = 10
MAX_NODATA_SECONDS = 7 * 86_400
MAX_CHANNELS = 16
ForSeconds = Annotated[int, msgspec.Meta(ge=0, le=MAX_FOR_SECONDS)]
Threshold = Annotated[float, msgspec.Meta(ge=-1e300, le=1e300)]


class ScopeType(enum.StrEnum):
    DEVICE = "DEVICE"
    GROUP = "GROUP"
    SITE = "SITE"
    ORGANIZATION = "ORGANIZATION"


class Severity(enum.StrEnum):
    CRITICAL = "CRITICAL"
    MAJOR = "MAJOR"
    MINOR = "MINOR"
    WARNING = "WARNING"


class AlertStatus(enum.StrEnum):
    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RESOLVED = "RESOLVED"


class Resolution(enum.StrEnum):
    """How an alert was resolved: its condition cleared, or someone resolved it."""

    CLEARED = "CLEARED"
    MANUAL = "MANUAL"


ConditionOp = Literal[">", ">=", "<", "<=", "==", "!=", "outside", "nodata", "offline"]
# ``offline``: the device has been disconnected from the broker for ``seconds`` (0 to 7 days).
MAX_OFFLINE_SECONDS = 7 * 86_400
COMPARISONS = (">", ">=", "<", "<=", "==", "!=")


class Condition(Request, kw_only=True, frozen=True):
    """``{op: ">"|">="|"<"|"<="|"=="|"!=", threshold}``, ``{op: "outside", low, high}`` or
    ``{op: "nodata", seconds}`` (docs/api.md), and ``{op: "offline", seconds}``: the device has
    been disconnected that long (its presence, not a reading of ``sensor``). One struct with
    the operator as its discriminant and the domain checking which fields go with it, so a
    wrong combination is a ``validation_error`` naming the field."""

    op: ConditionOp
    threshold: Threshold | None = None
    low: Threshold | None = None
    high: Threshold | None = None
    seconds: int | None = None


class RuleScope(Request, kw_only=True, frozen=True):
    """What a rule watches: one device, a group's or a site's devices, or every device of
    the organization (``id`` absent)."""

    type: ScopeType
    id: UUID | None = None


# --- rules ------------------------------------------------------------------------------


class CreateAlertRule(Request, kw_only=True, frozen=True):
    """``clear``: the condition that resolves the alert (default: the condition no longer
    holds); ``hysteresis``: a margin a comparison or ``outside`` must get back inside before
    the alert clears (not with ``clear``). ``sensor``: the sensor whose readings are judged;
    required for every op but ``offline``, which follows the device's presence (a sensor
    given with ``offline`` is kept as a label and never matched by readings)."""

    name: Name
    scope: RuleScope
    sensor: SensorKey | None = None
    condition: Condition
    severity: Severity
    for_seconds: ForSeconds = 0
    clear: Condition | None = None
    hysteresis: Annotated[float, msgspec.Meta(ge=0, le=1e300)] | None = None
    enabled: bool = True
    channel_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_CHANNELS)] = msgspec.field(
        default_factory=list
    )
    description: Comment | None = None


class AlertRuleView(Contract, kw_only=True, frozen=True):
    """``sensor`` is null for an ``offline`` rule created without one."""

    id: UUID
    name: str
    scope: RuleScope
    sensor: str | None
    condition: Condition
    severity: Severity
    for_seconds: int
    clear: Condition | None
    hysteresis: float | None
    enabled: bool
    channel_ids: list[UUID]
    description: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    object: str = "alertRule"


# --- alerts -----------------------------------------------------------------------------


class TriggerReading(Contract, kw_only=True, frozen=True):
    value: float
    ts: datetime


class AlertTrigger(Contract, kw_only=True, frozen=True):
    """Why an alert fired: the reading that made it fire (``value`` is absent for
    ``nodata``), when the condition started to hold (``since``), the condition as it was
    evaluated, in words, and the rule's version at the time."""

    value: float | None
    ts: datetime
    since: datetime
    condition: str
    rule_version: int
    first: TriggerReading | None = None
    last_seen_at: datetime | None = None


class AlertView(Contract, kw_only=True, frozen=True):
    """``sensor``: the rule's when the alert opened (null for an ``offline`` rule without
    one)."""

    id: UUID
    rule_id: UUID
    rule_version: int
    device_id: UUID
    sensor: str | None
    status: AlertStatus
    severity: Severity
    opened_at: datetime
    trigger: AlertTrigger
    acknowledged_at: datetime | None = None
    acknowledged_by: UUID | None = None
    acknowledge_comment: str | None = None
    resolved_at: datetime | None = None
    resolved_by: UUID | None = None
    resolve_comment: str | None = None
    resolution: Resolution | None = None
    clear_value: float | None = None
    version: int = 1
    object: str = "alert"


class AlertTransition(Request, kw_only=True, frozen=True):
    """The body of ``/acknowledge`` and ``/resolve``."""

    comment: Comment | None = None


# --- events -----------------------------------------------------------------------------


class AlertOpened(Event, tag=wire_tag(SERVICE, "AlertOpened", 1), kw_only=True, frozen=True):
    rule_id: UUID
    rule_version: int
    device_id: UUID
    sensor: str | None  # null: an ``offline`` rule without a sensor
    severity: Severity
    trigger: AlertTrigger


class AlertAcknowledged(
    Event, tag=wire_tag(SERVICE, "AlertAcknowledged", 1), kw_only=True, frozen=True
):
    by: UUID | None
    comment: str | None = None


class AlertResolved(Event, tag=wire_tag(SERVICE, "AlertResolved", 1), kw_only=True, frozen=True):
    """``resolution`` CLEARED: the condition cleared (``value``/``ts``, the reading that
    cleared it; both absent when data came back after ``nodata``); MANUAL: ``by`` resolved it."""

    resolution: Resolution
    by: UUID | None = None
    comment: str | None = None
    value: float | None = None
    ts: datetime | None = None


class AlertRuleCreated(
    Event, tag=wire_tag(SERVICE, "AlertRuleCreated", 1), kw_only=True, frozen=True
):
    name: str
    scope: RuleScope
    sensor: str | None  # null: an ``offline`` rule without a sensor
    condition: Condition
    severity: Severity
    for_seconds: int = 0
    clear: Condition | None = None
    hysteresis: float | None = None
    enabled: bool = True
    channel_ids: list[UUID] = msgspec.field(default_factory=list)
    description: str | None = None


class AlertRuleUpdated(
    Event, tag=wire_tag(SERVICE, "AlertRuleUpdated", 1), kw_only=True, frozen=True
):
    """The rule as it now is, whole (a new version: every field, not only the changed ones,
    so an alert's rule version can be read back from one event)."""

    changed: list[str]
    name: str
    scope: RuleScope
    sensor: str | None  # null: an ``offline`` rule without a sensor
    condition: Condition
    severity: Severity
    for_seconds: int = 0
    clear: Condition | None = None
    hysteresis: float | None = None
    enabled: bool = True
    channel_ids: list[UUID] = msgspec.field(default_factory=list)
    description: str | None = None


class AlertRuleDeleted(
    Event, tag=wire_tag(SERVICE, "AlertRuleDeleted", 1), kw_only=True, frozen=True
):
    """The rule is gone; its alerts that were not resolved are resolved with it."""


class AlertRulePatch(Request, kw_only=True, frozen=True):
    """``PATCH /alert-rules/{id}``: the fields given replace the rule's (``clear``,
    ``hysteresis``, ``description`` and, for an ``offline`` rule, ``sensor`` can be set to
    null). A change is a new version."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    scope: RuleScope | msgspec.UnsetType = msgspec.UNSET
    sensor: SensorKey | msgspec.UnsetType | None = msgspec.UNSET
    condition: Condition | msgspec.UnsetType = msgspec.UNSET
    severity: Severity | msgspec.UnsetType = msgspec.UNSET
    for_seconds: ForSeconds | msgspec.UnsetType = msgspec.UNSET
    clear: Condition | msgspec.UnsetType | None = msgspec.UNSET
    hysteresis: Annotated[float, msgspec.Meta(ge=0, le=1e300)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    channel_ids: (
        Annotated[list[UUID], msgspec.Meta(max_length=MAX_CHANNELS)] | msgspec.UnsetType
    ) = msgspec.UNSET
    description: Comment | msgspec.UnsetType | None = msgspec.UNSET


EVENT_TYPES: tuple[type[Event], ...] = (
    AlertRuleCreated,
    AlertRuleUpdated,
    AlertRuleDeleted,
    AlertOpened,
    AlertAcknowledged,
    AlertResolved,
)


# --- requests and operations ------------------------------------------------------------


class ById(Request, kw_only=True, frozen=True):
    id: UUID


class DeleteById(Request, kw_only=True, frozen=True):
    id: UUID
    expected_version: int | None = None  # from If-Match


class UpdateAlertRule(Request, kw_only=True, frozen=True):
    id: UUID
    patch: AlertRulePatch
    expected_version: int | None = None  # from If-Match


class ListOf(Request, kw_only=True, frozen=True):
    """A collection query (docs/api.md "Collections"), compiled by the gateway."""

    query: ListQuery = msgspec.field(default_factory=ListQuery)


class AlertAction(Request, kw_only=True, frozen=True):
    """``/acknowledge`` or ``/resolve`` of an alert, by the caller."""

    id: UUID
    comment: Comment | None = None
    expected_version: int | None = None  # from If-Match


class TimelineEntry(Contract, kw_only=True, frozen=True):
    """One entry of the organization's timeline (``/events``): ``type`` is the source
    event's wire tag (``alerting.AlertOpened.v1``, ``devices.DeviceConnected.v1``…), ``id``
    its event id. ``seq``: its place in the organization's timeline, 1, 2, 3… in the order
    the entries were committed (an entry is visible only once every smaller one is); the
    ``id:`` of ``/events/stream``'s messages and what ``Last-Event-ID`` names (decision 96)."""

    id: UUID
    ts: datetime
    type: str
    summary: str
    device_id: UUID | None = None
    alert_id: UUID | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    seq: int = 0
    object: str = "event"


class TimelineAdvanced(Contract, kw_only=True, frozen=True):
    """What alerting's outbox publishes on ``subjects.timeline(org)`` once a transaction
    that added timeline entries commits: the organization's timeline now reaches ``seq``
    (the largest it added). A wake-up, not the entry: readers query ``/events`` for what
    is past their position (decision 96)."""

    seq: int


CREATE_RULE = Operation(SERVICE, "CreateAlertRule", CreateAlertRule, AlertRuleView)
GET_RULE = Operation(SERVICE, "GetAlertRule", ById, AlertRuleView)
LIST_RULES = Operation(SERVICE, "ListAlertRules", ListOf, Page[AlertRuleView])
UPDATE_RULE = Operation(SERVICE, "UpdateAlertRule", UpdateAlertRule, AlertRuleView)
DELETE_RULE = Operation(SERVICE, "DeleteAlertRule", DeleteById, Empty)
GET_ALERT = Operation(SERVICE, "GetAlert", ById, AlertView)
LIST_ALERTS = Operation(SERVICE, "ListAlerts", ListOf, Page[AlertView])
ACKNOWLEDGE_ALERT = Operation(SERVICE, "AcknowledgeAlert", AlertAction, AlertView)
RESOLVE_ALERT = Operation(SERVICE, "ResolveAlert", AlertAction, AlertView)
LIST_EVENTS = Operation(SERVICE, "ListEvents", ListOf, Page[TimelineEntry])
