"""Streaming evaluation of one rule on one device: a pure fold over the device's readings
and the service's timers, with the state (a ``Watch``) kept in Postgres beside the alerts,
so a restart continues a pending ``forSeconds`` window and never fires twice.

Time. ``forSeconds`` is measured on the readings' own timestamps: a reading that still
satisfies the condition ``forSeconds`` after the one that started the window fires it. When
no such reading comes, a timer fires the window ``forSeconds`` after the first reading
*arrived* (the service's clock), as long as no reading contradicted it: the last value is
taken to hold until a reading says otherwise. ``nodata`` is measured on the service's clock
only: ``seconds`` after the last reading arrived (or after the device came under the rule),
so a device's wrong clock cannot make it fire early. ``offline`` follows the device's
presence instead of readings: ``seconds`` after the broker reported it disconnected.

Repeats. Every input may come again (redelivery, two replicas): a reading no newer than the
newest one applied changes nothing, a timer that is not due changes nothing, and firing is
only ever decided from ``firing == False``; the database's one-open-alert-per-rule-and-device
constraint is the last word.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from outpost_alerting.domain.conditions import clears, describe, holds
from outpost_contracts import alerting as api


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    """What evaluation needs of a rule (a rule's projection row)."""

    id: UUID
    version: int
    # None at run time for an ``offline`` rule without a sensor (decision 71): readings never
    # reach it (``rules_for`` matches ``sensor = ANY(...)``, never true of NULL) and timers
    # only hand it to ``alerts.Open``/``describe``, which take None. Typed ``str`` until
    # app/evaluation.py's per-sensor index is keyed ``str | None`` (owned elsewhere now).
    sensor: str
    condition: api.Condition
    for_seconds: int = 0
    clear: api.Condition | None = None
    hysteresis: float | None = None
    enabled: bool = True

    @property
    def nodata(self) -> bool:
        return self.condition.op == "nodata"

    @property
    def offline(self) -> bool:
        """Judged on the device's presence (connects and disconnects), not on readings."""
        return self.condition.op == "offline"


class Watch(msgspec.Struct, frozen=True, kw_only=True):
    """One rule's view of one device.

    ``firing``: an alert of this rule and device is not resolved. ``armed``: false after the
    alert was resolved by hand while the condition still held; the rule fires again only
    once the value has cleared (or, for ``nodata``, data came back). ``since``: the
    condition has held since (the first reading's ``ts``; for ``nodata``, when the last
    reading arrived). ``due_at``: when the timer decides, on the service's clock.
    ``last_ts``: the newest reading applied; older and repeated readings change nothing."""

    rule_version: int
    firing: bool = False
    armed: bool = True
    since: datetime | None = None
    first: api.TriggerReading | None = None
    last: api.TriggerReading | None = None
    last_ts: datetime | None = None
    due_at: datetime | None = None


class Fire(msgspec.Struct, frozen=True, kw_only=True):
    trigger: api.AlertTrigger


class Clear(msgspec.Struct, frozen=True, kw_only=True):
    """The condition cleared: ``value``/``ts`` of the reading that cleared it (absent when
    data came back after ``nodata``)."""

    value: float | None = None
    ts: datetime | None = None


Effect = Fire | Clear
Step = tuple[Watch, list[Effect]]


def start(rule: Rule, now: datetime) -> Watch:
    """A device comes under a rule (the rule is created, or the device joins its scope)."""
    if rule.nodata:
        return Watch(rule_version=rule.version, since=now, due_at=_nodata_due(rule, now))
    return Watch(rule_version=rule.version)


def rule_changed(rule: Rule, watch: Watch, now: datetime) -> Watch:
    """The rule has a new version: a pending window starts again under the new condition;
    an alert that is firing stays until a reading clears it under the new one."""
    if watch.rule_version == rule.version:
        return watch
    if rule.offline:
        due = None
        if not watch.firing and watch.since is not None:
            due = watch.since + timedelta(seconds=rule.condition.seconds or 0)
        return msgspec.structs.replace(watch, rule_version=rule.version, due_at=due)
    if rule.nodata:
        since = watch.since if watch.since is not None else now
        return Watch(
            rule_version=rule.version,
            firing=watch.firing,
            armed=watch.armed,
            since=since,
            last_ts=watch.last_ts,
            due_at=None if watch.firing else _nodata_due(rule, since),
        )
    return Watch(
        rule_version=rule.version, firing=watch.firing, armed=watch.armed, last_ts=watch.last_ts
    )


def on_reading(
    rule: Rule, watch: Watch, value: float | None, ts: datetime, arrival: datetime
) -> Step:
    """Apply one reading of the rule's sensor. ``value`` is None for a reading that is not a
    number (a text value): it counts as data for ``nodata`` and is ignored by comparisons."""
    if rule.offline:  # presence decides, not readings
        return watch, []
    if watch.last_ts is not None and ts <= watch.last_ts:
        return watch, []
    if rule.nodata:
        back = watch.firing
        moved = msgspec.structs.replace(
            watch,
            firing=False,
            armed=True,
            since=arrival,
            last_ts=ts,
            due_at=_nodata_due(rule, arrival),
        )
        return moved, [Clear()] if back else []
    if value is None:
        return msgspec.structs.replace(watch, last_ts=ts), []
    if watch.firing:
        if clears(rule.condition, rule.clear, rule.hysteresis, value):
            return _idle(watch, ts, armed=True), [Clear(value=value, ts=ts)]
        last = api.TriggerReading(value=value, ts=ts)
        return msgspec.structs.replace(watch, last_ts=ts, last=last), []
    if not watch.armed:
        rearmed = clears(rule.condition, rule.clear, rule.hysteresis, value)
        return msgspec.structs.replace(watch, armed=rearmed, last_ts=ts), []
    if not holds(rule.condition, value):
        return _idle(watch, ts, armed=True), []
    reading = api.TriggerReading(value=value, ts=ts)
    since = watch.since if watch.since is not None else ts
    first = watch.first if watch.first is not None else reading
    if ts - since >= timedelta(seconds=rule.for_seconds):
        return _fired(rule, watch, ts), [Fire(trigger=_trigger(rule, reading, since, first))]
    due_at = watch.due_at
    if due_at is None:
        due_at = arrival + timedelta(seconds=rule.for_seconds)
    pending = msgspec.structs.replace(
        watch, since=since, first=first, last=reading, last_ts=ts, due_at=due_at
    )
    return pending, []


def on_timer(rule: Rule, watch: Watch, now: datetime) -> Step:
    """The service's clock reached (or passed) ``due_at``: a pending ``forSeconds`` window
    whose last reading still held fires, and so does ``nodata`` with no reading since."""
    if watch.firing or not watch.armed or watch.due_at is None or now < watch.due_at:
        return watch, []
    if rule.offline:
        assert watch.since is not None
        trigger = api.AlertTrigger(
            value=None,
            ts=now,
            since=watch.since,
            condition=describe(rule.sensor, rule.condition),
            rule_version=rule.version,
            last_seen_at=watch.since,
        )
        return _fired(rule, watch, watch.last_ts), [Fire(trigger=trigger)]
    if rule.nodata:
        assert watch.since is not None and rule.condition.seconds is not None
        trigger = api.AlertTrigger(
            value=None,
            ts=now,
            since=watch.since,
            condition=describe(rule.sensor, rule.condition),
            rule_version=rule.version,
            last_seen_at=watch.since if watch.last_ts is not None else None,
        )
        return _fired(rule, watch, watch.last_ts), [Fire(trigger=trigger)]
    if watch.since is None or watch.last is None or watch.first is None:
        return msgspec.structs.replace(watch, due_at=None), []
    trigger = _trigger(rule, watch.last, watch.since, watch.first)
    return _fired(rule, watch, watch.last_ts), [Fire(trigger=trigger)]


def on_presence(rule: Rule, watch: Watch, connected: bool, at: datetime) -> Step:
    """The device connected or disconnected at ``at`` (the broker's report). An ``offline``
    rule's window starts at a disconnect and fires from the timer ``seconds`` later; a
    connect clears it (and re-arms a rule resolved by hand). Reports older than the newest
    applied change nothing."""
    if not rule.offline or (watch.last_ts is not None and at <= watch.last_ts):
        return watch, []
    if connected:
        return _idle(watch, at, armed=True), [Clear()] if watch.firing else []
    if watch.firing or not watch.armed:
        return msgspec.structs.replace(watch, last_ts=at), []
    due = at + timedelta(seconds=rule.condition.seconds or 0)
    return Watch(rule_version=rule.version, since=at, last_ts=at, due_at=due), []


def resolved_by_hand(watch: Watch) -> Watch:
    """Someone resolved the alert: the rule fires again only after the value cleared (or
    data came back), not on the next reading that still satisfies the condition."""
    if not watch.firing:
        return watch
    return msgspec.structs.replace(watch, firing=False, armed=False, due_at=None)


def _idle(watch: Watch, ts: datetime, *, armed: bool) -> Watch:
    return Watch(rule_version=watch.rule_version, armed=armed, last_ts=ts)


def _fired(rule: Rule, watch: Watch, last_ts: datetime | None) -> Watch:
    return Watch(
        rule_version=rule.version,
        firing=True,
        last_ts=last_ts,
        since=watch.since if rule.nodata or rule.offline else None,
    )


def _trigger(
    rule: Rule, reading: api.TriggerReading, since: datetime, first: api.TriggerReading
) -> api.AlertTrigger:
    return api.AlertTrigger(
        value=reading.value,
        ts=reading.ts,
        since=since,
        condition=describe(rule.sensor, rule.condition, rule.for_seconds),
        rule_version=rule.version,
        first=first,
    )


def _nodata_due(rule: Rule, since: datetime) -> datetime:
    assert rule.condition.seconds is not None
    return since + timedelta(seconds=rule.condition.seconds)
