"""Recompute the effective desired state of exactly the devices a change affects (ADR 0093).

Set-based: the organization's bindings and their documents are loaded once, the devices are
read in pages of ``PAGE`` in id order, each page computed in Python and written in one
transaction (one statement for the states, one for the queue), and only the devices whose
digest moved are queued for delivery. A recompute that stops half-way is run again from the
start by its redelivered message: the pages already written have their digest and are
skipped, so the second run writes only what the first did not.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from outpost_contracts import fleet
from outpost_contracts.envelope import EventEnvelope
from outpost_fleet.app import profile_application
from outpost_fleet.app.rollout_ports import Clock, RolloutTx, RolloutUnitOfWork, StateRow
from outpost_fleet.domain import placement, rollout
from outpost_fleet.domain.desired_state import DeviceFacts, ResolvedBinding, effective_state
from outpost_fleet.domain.rollout import Selection

_log = logging.getLogger(__name__)

PAGE = 2000


async def compute_into(
    tx: RolloutTx,
    devices: Sequence[DeviceFacts],
    bindings: Sequence[ResolvedBinding],
    now: datetime,
) -> int:
    """Compute ``devices``' effective states, store and queue those whose digest moved; the
    number queued. A device no binding ever applied to gets no state (nothing to deliver)."""
    if not devices:
        return 0
    by_id = {b.binding.id: b for b in bindings}
    known = await tx.digests([d.id for d in devices])
    rows: list[StateRow] = []
    for device in devices:
        state = effective_state(device, bindings)
        if not state.applied and device.id not in known:
            continue
        item = rollout.desired(device.id, state, by_id)
        if known.get(device.id) == item.digest:
            continue
        rows.append(
            StateRow(
                desired=item,
                applied=state.applied,
                artefact_versions=rollout.artefact_versions(state, by_id),
                size=state.size,
            )
        )
    await tx.save_states(rows, now)
    return len(rows)


async def recompute(
    uow: RolloutUnitOfWork, org_id: UUID, selection: Selection, clock: Clock, page: int = PAGE
) -> int:
    """Recompute ``selection`` of ``org_id``'s devices, a transaction per page; the number
    of devices queued for delivery."""
    if selection.empty:
        return 0
    async with uow(org_id) as tx:
        bindings = await tx.resolved_bindings()
    after: UUID | None = None
    queued = 0
    while True:
        async with uow(org_id) as tx:
            devices = await tx.devices(selection, after, page)
            queued += await compute_into(tx, devices, bindings, clock())
            await tx.commit()
        if len(devices) < page:
            return queued
        after = devices[-1].id


async def affected(tx: RolloutTx, event: EventEnvelope) -> Selection:
    """The devices a fleet event affects (the configuration as it is now: a later change
    recomputes again)."""
    data = event.data
    if isinstance(data, fleet.DesiredStateBindingCreated):
        return rollout.of_target(data.target)
    if isinstance(data, fleet.DesiredStateBindingChanged):
        target = await tx.binding_target(event.stream_id)
        selection = rollout.of_bindings([event.stream_id])
        return selection if target is None else selection | rollout.of_target(target)
    if isinstance(data, fleet.DesiredStateBindingRemoved):
        return rollout.of_bindings([event.stream_id])
    if isinstance(data, fleet.ConfigArtefactVersionPublished | fleet.ConfigArtefactVersionDeleted):
        return rollout.of_targets(await tx.latest_targets_of_artefact(event.stream_id))
    if isinstance(data, fleet.DeviceProfileChanged) and "configArtefactId" in data.changed:
        # the profile's default configuration (an implicit binding on the profile)
        return rollout.of_target(fleet.Target(type=fleet.TargetType.PROFILE, id=event.stream_id))
    return rollout.NOTHING


FLEET_EVENTS = (
    fleet.DesiredStateBindingCreated,
    fleet.DesiredStateBindingChanged,
    fleet.DesiredStateBindingRemoved,
    fleet.ConfigArtefactVersionPublished,
    fleet.ConfigArtefactVersionDeleted,
    fleet.DeviceProfileChanged,
)


async def on_fleet_event(
    uow: RolloutUnitOfWork, event: EventEnvelope, clock: Clock, page: int = PAGE
) -> int:
    """A binding, an artefact version or a device profile changed: recompute the devices
    it affects; a device profile's change is applied to the devices that have it (its job)."""
    data = event.data
    if isinstance(data, fleet.DeviceProfileChanged):
        await profile_application.request_application(
            uow, event.org_id, event.stream_id, data.profile_version, clock
        )
    async with uow(event.org_id) as tx:
        selection = await affected(tx, event)
    queued = await recompute(uow, event.org_id, selection, clock, page)
    _log.info("%s %s: %d device(s) to deliver", event.type, event.stream_id, queued)
    return queued


async def on_device_events(
    uow: RolloutUnitOfWork, events: Sequence[EventEnvelope], clock: Clock
) -> None:
    """A batch of the DEVICES stream, in one transaction: the fleet's view of each device
    (bulk), then the effective state of the devices registered or moved (their site, group or
    profile), computed with their organization's bindings, loaded once per organization."""
    by_org: dict[UUID, dict[UUID, list[EventEnvelope]]] = defaultdict(lambda: defaultdict(list))
    for event in events:
        if isinstance(event.data, placement.EVENTS):
            by_org[event.org_id][event.stream_id].append(event)
    if not by_org:
        return
    now = clock()
    async with uow(None) as tx:
        for org_id, streams in by_org.items():
            await tx.set_tenant(org_id)
            known = await tx.placements(list(streams))
            changed: list[placement.Placement] = []
            moved: list[DeviceFacts] = []
            for device_id, device_events in streams.items():
                before = known.get(device_id)
                folded = placement.fold(before, device_events)
                if folded.placement is None or folded.placement == before:
                    continue
                changed.append(folded.placement)
                if folded.moved and not folded.placement.decommissioned:
                    moved.append(folded.placement.facts())
            await tx.save_placements(changed, now)
            if moved:
                moved.sort(key=lambda d: d.id)
                await compute_into(tx, moved, await tx.resolved_bindings(), now)
        await tx.commit()
