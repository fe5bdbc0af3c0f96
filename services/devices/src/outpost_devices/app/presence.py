"""Presence use cases (ADR 0055): apply a broker fact to a device under its row
lock, reconcile every tenant with the broker's lists, record telemetry as "last seen", and
answer ``GET /devices/{id}/health``."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from outpost_contracts.devices import DeviceStatus
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound
from outpost_contracts.presence import (
    GET_DEVICE_HEALTH,
    DeviceConnected,
    DeviceHealth,
    GetDeviceHealth,
)
from outpost_contracts.rpc import Operation
from outpost_devices.adapters.broker_events import DeviceFact, Snapshot
from outpost_devices.app.aggregates import DEVICES
from outpost_devices.app.handlers import Deps
from outpost_devices.app.ports import DevicesUnitOfWork
from outpost_devices.domain import devices, presence
from outpost_kit import ids
from outpost_kit.db.eventstore import ConcurrencyConflict

_log = logging.getLogger(__name__)


async def apply(
    uow_factory: DevicesUnitOfWork,
    org_id: UUID,
    device_id: UUID,
    fact: presence.Fact,
    now: datetime | None = None,
) -> list[Any] | None:
    """One fact about one device, in one transaction under the device's presence row lock;
    the events it decided (already in the outbox), or None if nothing changed."""
    now = now or ids.now()
    async with uow_factory(org_id) as tx:
        locked = await tx.lock_presence(device_id)
        if locked is None:
            return None  # not a device of this organization (any more): nothing to keep
        state, version = locked
        after, events = presence.step(state, fact, now)
        if after == state:
            return None
        await tx.save_presence(device_id, after, version, events, now)
        await tx.commit()
    for event in events:
        if isinstance(event, DeviceConnected):
            await _activate(uow_factory, org_id, device_id, event.connected_at)
    return events


async def _activate(
    uow_factory: DevicesUnitOfWork, org_id: UUID, device_id: UUID, connected_at: datetime
) -> None:
    """A PROVISIONED device's first connection makes it ACTIVE: a device event, in the audit
    log as the platform's doing; any other status is left. Its own transaction, after the
    presence fold's: holding the presence row while appending to the device's stream
    deadlocked against a decommissioning that appends first. A concurrent change of the
    device is retried; a crash in between leaves it PROVISIONED until its next connection."""
    for attempt in range(3):
        try:
            async with uow_factory(org_id) as tx:
                if await tx.device_status(device_id) != DeviceStatus.PROVISIONED:
                    return
                await DEVICES.execute(
                    tx,
                    None,
                    stream_id=device_id,
                    command=devices.Activate(connected_at=connected_at),
                    org_id=org_id,
                )
                await tx.commit()
                return
        except ConcurrencyConflict:
            if attempt == 2:
                _log.warning("presence: could not activate device %s (kept changing)", device_id)


async def on_broker_fact(uow_factory: DevicesUnitOfWork, fact: DeviceFact) -> list[Any] | None:
    return await apply(uow_factory, fact.org_id, fact.device_id, fact.fact)


class Reconciler:
    """Repairs presence from the broker's truth (``CONNZ``): at start and every interval, so
    what happened while no devices replica listened (a restart, a lost advisory) is put right.

    A server that held connections of ours and did not answer two rounds in a row is taken
    as gone (a restarted nats-server has a new id), and its connections end."""

    def __init__(self, uow_factory: DevicesUnitOfWork) -> None:
        self.uow = uow_factory
        self._silent: set[str] = set()

    async def reconcile(self, snapshot: Snapshot) -> int:
        """Bring every tenant's presence in line with ``snapshot``; the devices changed."""
        by_org: dict[UUID, dict[UUID, list[presence.Connection]]] = {}
        for (org_id, device_id), conns in snapshot.devices.items():
            by_org.setdefault(org_id, {})[device_id] = conns
        async with self.uow(None) as tx:
            orgs = set(await tx.presence_organizations()) | set(by_org)
        complete = snapshot.complete
        referenced: set[str] = set()
        plans: list[tuple[UUID, UUID, presence.Presence, list[presence.Connection]]] = []
        for org_id in orgs:
            listed = by_org.get(org_id, {})
            async with self.uow(org_id) as tx:
                known = await tx.online_presences()
                missing = [d for d in listed if d not in known]
                known.update(await tx.presences(missing) if missing else {})
            for device_id in set(known) | set(listed):
                state = known.get(device_id)
                if state is not None:
                    referenced.update(c.server_id for c in state.connections)
                plans.append(
                    (org_id, device_id, state or presence.Presence(), listed.get(device_id, []))
                )
        silent = referenced - set(snapshot.answered)
        gone = frozenset(silent & self._silent)
        self._silent = silent
        changed = 0
        for org_id, device_id, looked, live in plans:
            fact = presence.Reconciled(answered=complete, live=live, gone=gone)
            try:
                if await self._apply_if_changed(org_id, device_id, looked, fact):
                    changed += 1
            except Exception:
                _log.exception("presence: reconciling device %s failed", device_id)
        return changed

    async def _apply_if_changed(
        self, org_id: UUID, device_id: UUID, looked: presence.Presence, fact: presence.Reconciled
    ) -> bool:
        """Lock and apply only when the state read without a lock would change: in a steady
        state a reconciliation costs one read per organization."""
        now = ids.now()
        after, _ = presence.step(looked, fact, now)
        if [c.key for c in after.connections] == [c.key for c in looked.connections]:
            return False  # nothing to repair: no lock taken
        return await apply(self.uow, org_id, device_id, fact, now) is not None


class SeenRecorder:
    """Telemetry as "last seen": each message notes its device in memory (the subject is
    all it reads); ``flush`` writes the newest time per device, one statement per tenant."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}

    def note(self, subject: str) -> None:
        # outpost.tel.<org>.<device>
        parts = subject.split(".")
        if len(parts) == 4:
            self._seen[(parts[2], parts[3])] = time.time()

    def __len__(self) -> int:
        return len(self._seen)

    async def flush(self, uow_factory: DevicesUnitOfWork) -> int:
        pending, self._seen = self._seen, {}
        by_org: dict[UUID, dict[UUID, datetime]] = {}
        for (org, device), at in pending.items():
            try:
                by_org.setdefault(UUID(org), {})[UUID(device)] = datetime.fromtimestamp(at, UTC)
            except ValueError:
                continue
        moved = 0
        for org_id, seen in by_org.items():
            try:
                async with uow_factory(org_id) as tx:
                    moved += await tx.record_seen(seen)
                    await tx.commit()
            except Exception:
                _log.exception("presence: recording last-seen times failed; kept for next time")
                for device_id, when in seen.items():
                    key = (str(org_id), str(device_id))
                    self._seen[key] = max(self._seen.get(key, 0.0), when.timestamp())
        return moved


async def get_device_health(deps: Deps, ctx: RequestContext, q: GetDeviceHealth) -> DeviceHealth:
    health = await deps.reads.health(ctx.org_id, q.id)
    if health is None:
        raise NotFound("no such device")
    return health


Handler = Callable[[Deps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {GET_DEVICE_HEALTH: get_device_health}
