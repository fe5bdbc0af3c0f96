"""Evaluation's use cases: a batch of telemetry through every rule that covers each device,
the timers that fire ``forSeconds`` windows and ``nodata``, and alerting's local view of
devices (with their timeline entries).

One transaction per batch: the watches of every (rule, device) the batch touches are locked
in one order, folded over the readings in timestamp order, and stored with the alerts they
opened or cleared; the messages are acked after the commit. A redelivered batch finds the
watches past those readings and changes nothing; two replicas evaluating one device wait for
each other on the watch rows; and the partial unique index on alerts refuses a second
unresolved alert of a rule and device whatever happens.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import msgspec

from outpost_alerting.adapters import evaluation_store as store
from outpost_alerting.adapters import timeline
from outpost_alerting.app.handlers import execute_alert
from outpost_alerting.domain import alerts
from outpost_alerting.domain.evaluation import (
    Clear,
    Effect,
    Fire,
    Watch,
    on_presence,
    on_reading,
    on_timer,
    rule_changed,
    start,
)
from outpost_alerting.domain.timeline import DEVICE_EVENT_TYPES
from outpost_contracts import alerting as api
from outpost_contracts import devices as device_events
from outpost_contracts import presence
from outpost_contracts.envelope import EventEnvelope
from outpost_kit import ids, suspensions
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory

_log = logging.getLogger(__name__)
ORGANIZATION = api.ScopeType.ORGANIZATION
Pair = tuple[UUID, UUID]  # (rule, device)


class Reading(Protocol):
    """One reading as evaluation reads it: a device's own (``TelemetryReading``, decoded
    once and used as it is: 100k a second under load) or a ``Point``. ``value``: numbers and
    booleans compare (``number``), text does not; ``ts`` None: the message's arrival."""

    @property
    def sensor(self) -> str: ...
    @property
    def value(self) -> float | int | bool | str | None: ...
    @property
    def ts(self) -> datetime | None: ...


class Point(msgspec.Struct, frozen=True):
    """A reading made by hand (tests, tools)."""

    sensor: str
    value: float | int | bool | str | None
    ts: datetime | None = None


@dataclass
class Incoming:
    """One telemetry message: the device named by its subject, its readings, and when the
    stream received it."""

    org_id: UUID
    device_id: UUID
    arrival: datetime
    points: Sequence[Reading]


@dataclass
class Outcome:
    fired: int = 0
    cleared: int = 0
    claimed: int = 0  # timers claimed (fire_due)
    opened: list[UUID] = field(default_factory=list)
    # Devices whose messages evaluation could not judge: not in alerting's view yet (their
    # registration is still on its way). Their messages are delivered again.
    unknown: set[tuple[UUID, UUID]] = field(default_factory=set)
    suspended: int = 0  # messages of suspended organizations, not evaluated (acknowledged)


def number(value: object) -> float | None:
    """A reading's value as comparisons see it: numbers and booleans (1/0); text is None."""
    if value.__class__ is float:  # nearly every reading: the cheapest test first
        return value  # type: ignore[return-value]
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None


async def evaluate(uow_factory: UnitOfWorkFactory, batch: list[Incoming], now: datetime) -> Outcome:
    outcome = Outcome()
    by_org: dict[UUID, list[Incoming]] = defaultdict(list)
    for item in batch:
        by_org[item.org_id].append(item)
    async with uow_factory(None) as uow:
        # A suspended organization's telemetry is not evaluated (decision 76).
        for org_id in await suspensions.suspended_among(uow.conn, by_org):
            outcome.suspended += len(by_org.pop(org_id))
        for org_id in sorted(by_org):  # one order on every replica
            await uow.set_tenant(org_id)
            await _evaluate_org(uow, org_id, by_org[org_id], now, outcome)
        await uow.commit()
    return outcome


async def _evaluate_org(
    uow: UnitOfWork, org_id: UUID, items: list[Incoming], now: datetime, outcome: Outcome
) -> None:
    sensors = {p.sensor for item in items for p in item.points}
    batch_devices = {item.device_id for item in items}
    devices, rules = await store.devices_and_rules(uow.conn, batch_devices, sensors)
    unknown = batch_devices - devices.keys()
    if not rules:
        return
    # A device not known here yet (its registration is still on its way) that a rule may
    # cover: its messages are judged later, with its scope, not now without it.
    for device_id in unknown:
        if any(r.scope_type == ORGANIZATION or r.scope_id == device_id for r in rules):
            outcome.unknown.add((org_id, device_id))
    # Per (rule, device), the messages' readings of the rule's sensor: whole lists, not a
    # tuple per reading (at 100k readings a second the per-reading work is the cost).
    work: dict[Pair, list[Chunk]] = defaultdict(list)
    scopes = _ScopeIndex(rules)
    for item in items:
        device = devices.get(item.device_id)
        if device is None:
            continue
        by_sensor = scopes.of(device)
        if not by_sensor:
            continue
        for sensor, readings in _by_sensor(item.points).items():
            for row in by_sensor.get(sensor, ()):
                work[(row.rule.id, item.device_id)].append((item.arrival, readings))
    if not work:
        return
    rows = {row.rule.id: row for row in rules}
    locked = await store.lock(uow.conn, org_id, list(work))
    watches = locked.watches
    changed: dict[Pair, Watch] = {}
    for pair in sorted(work):
        row = rows[pair[0]]
        rule = row.rule
        watch = rule_changed(rule, watches.get(pair) or start(rule, now), now)
        effects: list[Effect] = []
        for arrival, readings in _in_order(work[pair]):
            for r in readings:
                ts = r.ts or arrival
                watch, step = on_reading(rule, watch, number(r.value), ts, arrival)
                if step:  # most readings change nothing but the watch
                    effects += step
        if effects:
            await _apply(uow, org_id, row, pair[1], effects, outcome, locked.alerts)
        changed[pair] = watch
    timed = [pair for pair, w in watches.items() if w.due_at is not None]
    await store.save_watches(uow.conn, org_id, changed, timed)


Chunk = tuple[datetime, Sequence[Reading]]  # a message's arrival and readings of one sensor


def _by_sensor(readings: Sequence[Reading]) -> dict[str, Sequence[Reading]]:
    """A message's readings by sensor, in their order (most messages have one sensor)."""
    if not readings:
        return {}
    first = readings[0].sensor
    if all(r.sensor == first for r in readings):
        return {first: readings}
    grouped: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        grouped[r.sensor].append(r)
    return dict(grouped)


def _in_order(chunks: list[Chunk]) -> list[Chunk]:
    """A pair's readings in timestamp order (ties in arrival order): as they came when they
    already are (one message whose readings are in order, the usual case), else sorted one
    by one."""
    if len(chunks) == 1:
        arrival, readings = chunks[0]
        last: datetime | None = None
        for r in readings:
            ts = r.ts or arrival
            if last is not None and ts < last:
                break
            last = ts
        else:
            return chunks
    singles: list[Chunk] = [(arrival, (r,)) for arrival, readings in chunks for r in readings]
    singles.sort(key=lambda c: c[1][0].ts or c[0])
    return singles


class _ScopeIndex:
    """The rules of a batch by what their scope names, so a device's rules are found with
    four lookups (the organization's, its id's, its group's, its site's) rather than by
    asking every rule; per device, by sensor, computed once per batch."""

    def __init__(self, rules: list[store.RuleRow]) -> None:
        self._by_scope: dict[tuple[api.ScopeType, UUID | None], list[store.RuleRow]] = defaultdict(
            list
        )
        for row in rules:
            self._by_scope[(row.scope_type, row.scope_id)].append(row)
        self._of: dict[UUID, dict[str, list[store.RuleRow]]] = {}

    def of(self, device: store.Scoped) -> dict[str, list[store.RuleRow]]:
        found = self._of.get(device.id)
        if found is None:
            found = defaultdict(list)
            keys = [(api.ScopeType.ORGANIZATION, None), (api.ScopeType.DEVICE, device.id)]
            if device.group_id is not None:
                keys.append((api.ScopeType.GROUP, device.group_id))
            if device.site_id is not None:
                keys.append((api.ScopeType.SITE, device.site_id))
            for key in keys:
                for row in self._by_scope.get(key, ()):
                    if row.covers(device):  # decommissioned devices are covered by none
                        found[row.rule.sensor].append(row)
            self._of[device.id] = found
        return found


async def _apply(
    uow: UnitOfWork,
    org_id: UUID,
    row: store.RuleRow,
    device_id: UUID,
    effects: list[Effect],
    outcome: Outcome,
    unresolved: dict[Pair, UUID],
) -> None:
    """Open or resolve alerts. ``unresolved``: each pair's alert that is not resolved, as
    ``store.lock`` read it, kept current here as this transaction opens and resolves them.

    That read may be stale in one way: a statement that waited for a watch's lock sees the
    alert as it was when the statement began. Each use fails safe: an alert believed open
    when the watch says it is not firing is looked up again before a fire is dropped; an
    alert opened meanwhile makes the partial unique index refuse a second one (the
    transaction fails and the batch is evaluated again, seeing it); an alert resolved
    meanwhile makes the append's version check refuse the resolution (likewise)."""
    pair = (row.rule.id, device_id)
    for effect in effects:
        if isinstance(effect, Fire):
            if pair in unresolved:
                existing = await store.unresolved_alert(uow.conn, row.rule.id, device_id)
                if existing is not None:
                    # The watch said it was not firing, yet an alert of this rule and device
                    # is not resolved (its state was lost, or a resolution raced). The
                    # database keeps it to one; nothing more to do.
                    _log.info("rule %s already has an unresolved alert on %s", pair[0], device_id)
                    unresolved[pair] = existing
                    continue
            command = alerts.Open(
                rule_id=row.rule.id,
                rule_version=row.rule.version,
                device_id=device_id,
                sensor=row.rule.sensor,
                severity=row.severity,
                trigger=effect.trigger,
            )
            opened = ids.new_id()
            # A new stream (a fresh id): nothing to load, version 0 expected.
            await uow.events.append(
                org_id=org_id,
                stream_id=opened,
                stream_type=alerts.ALERT,
                expected_version=0,
                events=alerts.decide(None, command),
                actor=None,
                request_id=None,
            )
            unresolved[pair] = opened
            outcome.fired += 1
            outcome.opened.append(opened)
        elif isinstance(effect, Clear):
            alert_id = unresolved.pop(pair) if pair in unresolved else None
            if alert_id is None:
                # Not known as of the lock's snapshot: one may have been opened by the
                # holder of the lock this statement waited for.
                alert_id = await store.unresolved_alert(uow.conn, row.rule.id, device_id)
                if alert_id is None:
                    continue
            cleared = alerts.Cleared(value=effect.value, ts=effect.ts)
            await execute_alert(uow, None, org_id, alert_id, cleared)
            outcome.cleared += 1


# --- timers -----------------------------------------------------------------------------


async def fire_due(
    uow_factory: UnitOfWorkFactory, now: datetime, lease: timedelta, limit: int
) -> Outcome:
    """One pass over the due timers: each (rule, device) in its tenant's transaction."""
    outcome = Outcome()
    async with uow_factory(None) as uow:
        due = await store.claim_due(uow.conn, now, now + lease, limit)
        await uow.commit()
    outcome.claimed = len(due)
    for tenant, rule_id, device_id in due:
        try:
            async with uow_factory(tenant) as uow:
                await _timer(uow, tenant, rule_id, device_id, now, outcome)
                await uow.commit()
        except Exception:
            _log.exception(
                "timer of rule %s on %s failed; due again after the lease", rule_id, device_id
            )
    return outcome


async def _timer(
    uow: UnitOfWork, org_id: UUID, rule_id: UUID, device_id: UUID, now: datetime, outcome: Outcome
) -> None:
    pair = (rule_id, device_id)
    if await suspensions.suspended(uow, org_id):
        return  # nothing fires while suspended: due again after the lease
    row = await store.rule(uow.conn, rule_id)
    device = (await store.devices(uow.conn, [device_id])).get(device_id)
    if row is None or not row.rule.enabled or device is None or not row.covers(device):
        await store.forget_timers(uow.conn, [pair])
        return
    locked = await store.lock(uow.conn, org_id, [pair])
    watch = locked.watches.get(pair)
    if watch is None:
        await store.forget_timers(uow.conn, [pair])
        return
    watch = rule_changed(row.rule, watch, now)
    watch, effects = on_timer(row.rule, watch, now)
    await _apply(uow, org_id, row, device_id, effects, outcome, locked.alerts)
    await store.save_watches(uow.conn, org_id, {pair: watch})


# --- devices ----------------------------------------------------------------------------

DEVICE_EVENTS: tuple[type[Any], ...] = tuple(
    dict.fromkeys(
        (device_events.DeviceRegistered, device_events.DeviceUpdated, *DEVICE_EVENT_TYPES)
    )
)


async def on_fleet_event(uow: UnitOfWork, event: EventEnvelope) -> None:
    """The fleet's events the timeline keeps (a device's configuration drifting, ADR 0093)."""
    await timeline.record(uow.conn, event)


async def on_device_event(uow: UnitOfWork, event: EventEnvelope) -> None:
    """Keep alerting's view of devices (scopes), watch a device that comes under a
    ``nodata`` rule, forget a decommissioned one, and record the timeline's entries."""
    data = event.data
    conn = uow.conn
    if isinstance(data, device_events.DeviceRegistered):
        await store.upsert_device(
            conn,
            event.org_id,
            event.stream_id,
            event.version,
            name=data.name,
            status="REGISTERED",
            group_id=data.group_id,
            site_id=data.site_id,
        )
        await _watch_for_nodata(uow, event.org_id, event.stream_id)
    elif isinstance(data, device_events.DeviceUpdated):
        values: dict[str, Any] = {}
        if "name" in data.changed:
            values["name"] = data.name
        if "groupId" in data.changed:
            values["group_id"] = data.group_id
        if "siteId" in data.changed:
            values["site_id"] = data.site_id
        await store.upsert_device(conn, event.org_id, event.stream_id, event.version, **values)
        if "groupId" in data.changed or "siteId" in data.changed:
            await _watch_for_nodata(uow, event.org_id, event.stream_id)
    elif isinstance(data, device_events.DeviceActivated):
        await store.upsert_device(
            conn, event.org_id, event.stream_id, event.version, status="ACTIVE"
        )
    elif isinstance(data, presence.DeviceConnected | presence.DeviceDisconnected):
        connected = isinstance(data, presence.DeviceConnected)
        at = (
            data.connected_at
            if isinstance(data, presence.DeviceConnected)
            else data.disconnected_at
        )
        await _presence(uow, event.org_id, event.stream_id, connected, at)
    elif isinstance(data, device_events.DeviceDecommissioned):
        await store.upsert_device(
            conn, event.org_id, event.stream_id, event.version, status="DECOMMISSIONED"
        )
        await store.forget_device(conn, event.stream_id)
    await timeline.record(conn, event)


async def _presence(
    uow: UnitOfWork, org_id: UUID, device_id: UUID, connected: bool, at: datetime
) -> None:
    """A connect or disconnect through every ``offline`` rule that covers the device; not
    while its organization is suspended (its devices are disconnected then: decision 76)."""
    if await suspensions.suspended(uow, org_id):
        return
    device = (await store.devices(uow.conn, [device_id])).get(device_id)
    if device is None:
        return
    rows = [r for r in await store.rules_of_op(uow.conn, "offline") if r.covers(device)]
    if not rows:
        return
    now = ids.now()
    pairs = [(row.rule.id, device_id) for row in rows]
    locked = await store.lock(uow.conn, org_id, pairs)
    changed: dict[Pair, Watch] = {}
    outcome = Outcome()
    for row, pair in zip(rows, pairs, strict=True):
        watch = rule_changed(row.rule, locked.watches.get(pair) or start(row.rule, now), now)
        watch, effects = on_presence(row.rule, watch, connected, at)
        await _apply(uow, org_id, row, device_id, effects, outcome, locked.alerts)
        changed[pair] = watch
    await store.save_watches(uow.conn, org_id, changed)


async def _watch_for_nodata(uow: UnitOfWork, org_id: UUID, device_id: UUID) -> None:
    device = (await store.devices(uow.conn, [device_id])).get(device_id)
    if device is None:
        return
    rows = [row for row in await store.rules_of_op(uow.conn, "nodata") if row.covers(device)]
    if not rows:
        return
    now = ids.now()
    pairs = [(row.rule.id, device_id) for row in rows]
    current = await store.lock_watches(uow.conn, org_id, pairs)
    fresh = {
        (row.rule.id, device_id): current.get((row.rule.id, device_id)) or start(row.rule, now)
        for row in rows
    }
    await store.save_watches(uow.conn, org_id, fresh)
