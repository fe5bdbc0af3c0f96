"""An alert's lifecycle as a decider: OPEN → ACKNOWLEDGED → RESOLVED, resolved when its
condition clears or by hand, with who and a comment. No I/O, no clock, no ids made here.

Evaluation's effects repeat (redelivery, two replicas), so a clearing that no longer applies
decides nothing; a person's transition that does not apply is a 409 they can read.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts import alerting as api
from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound

ALERT = "alert"


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    rule_id: UUID
    rule_version: int
    device_id: UUID
    sensor: str | None  # None: an ``offline`` rule without one
    severity: api.Severity
    trigger: api.AlertTrigger
    status: api.AlertStatus = api.AlertStatus.OPEN


class Open(msgspec.Struct, frozen=True, kw_only=True):
    rule_id: UUID
    rule_version: int
    device_id: UUID
    sensor: str | None  # None: an ``offline`` rule without one
    severity: api.Severity
    trigger: api.AlertTrigger


class Acknowledge(msgspec.Struct, frozen=True, kw_only=True):
    by: UUID | None
    comment: str | None = None


class Resolve(msgspec.Struct, frozen=True, kw_only=True):
    """By hand (``by``: the user or API key's principal)."""

    by: UUID | None
    comment: str | None = None


class Cleared(msgspec.Struct, frozen=True, kw_only=True):
    """Evaluation saw the condition clear (or the rule was deleted: no value)."""

    value: float | None = None
    ts: datetime | None = None


AlertCommand = Open | Acknowledge | Resolve | Cleared


def decide(state: Alert | None, command: AlertCommand) -> list[Event]:
    if isinstance(command, Open):
        if state is not None:
            raise Conflict("the alert already exists")
        return [
            api.AlertOpened(
                rule_id=command.rule_id,
                rule_version=command.rule_version,
                device_id=command.device_id,
                sensor=command.sensor,
                severity=command.severity,
                trigger=command.trigger,
            )
        ]
    if state is None:
        raise NotFound("no such alert")
    if isinstance(command, Cleared):
        if state.status == api.AlertStatus.RESOLVED:
            return []
        return [
            api.AlertResolved(resolution=api.Resolution.CLEARED, value=command.value, ts=command.ts)
        ]
    if state.status == api.AlertStatus.RESOLVED:
        raise Conflict("the alert is resolved")
    if isinstance(command, Acknowledge):
        if state.status == api.AlertStatus.ACKNOWLEDGED:
            raise Conflict("the alert is already acknowledged")
        return [api.AlertAcknowledged(by=command.by, comment=command.comment)]
    return [
        api.AlertResolved(resolution=api.Resolution.MANUAL, by=command.by, comment=command.comment)
    ]


def evolve(state: Alert | None, event: Event, aggregate_id: UUID) -> Alert:
    if isinstance(event, api.AlertOpened):
        return Alert(
            id=aggregate_id,
            version=1,
            rule_id=event.rule_id,
            rule_version=event.rule_version,
            device_id=event.device_id,
            sensor=event.sensor,
            severity=event.severity,
            trigger=event.trigger,
        )
    assert state is not None
    if isinstance(event, api.AlertAcknowledged):
        status = api.AlertStatus.ACKNOWLEDGED
    elif isinstance(event, api.AlertResolved):
        status = api.AlertStatus.RESOLVED
    else:
        return state
    return msgspec.structs.replace(state, version=state.version + 1, status=status)
