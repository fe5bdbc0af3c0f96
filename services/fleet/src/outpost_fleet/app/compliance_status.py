"""Compliance (ADR 0093): devices' reported states, kept as they arrive, each device's
compliance with its whole effective state (a device that was in sync and reports something
else drifts: ``DeviceConfigDrifted``, once per drift), and the counts of a binding or an
artefact version, computed when asked over the devices it was merged into."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from uuid import UUID

from outpost_contracts import device_config, fleet
from outpost_contracts.envelope import EventEnvelope, RequestContext
from outpost_contracts.errors import NotFound
from outpost_fleet.app.rollout_ports import Clock, Report, RolloutTx, RolloutUnitOfWork, Stored
from outpost_fleet.domain.compliance import (
    Counts,
    DeviceCompliance,
    count,
    device_compliance,
    differing,
    drifted,
)

STREAM_TYPE = "device_config"  # the stream of a device's drifts, id: the device's
MAX_POINTERS = 20


async def on_reports(uow: RolloutUnitOfWork, events: Sequence[EventEnvelope]) -> int:
    """A batch of ``ReportedStateChanged``, in one transaction: the newest report of each
    device, its compliance, and a drift event for each device that drifted. The drifts."""
    by_org: dict[UUID, dict[UUID, Report]] = defaultdict(dict)
    for event in events:
        data = event.data
        if not isinstance(data, device_config.ReportedStateChanged):
            continue
        report = Report(
            device_id=data.device_id, reported=data.reported, reported_at=data.reported_at
        )
        newest = by_org[event.org_id].get(data.device_id)
        if newest is None or newest.reported_at <= report.reported_at:
            by_org[event.org_id][data.device_id] = report
    drifts = 0
    async with uow(None) as tx:
        for org_id, reports in by_org.items():
            await tx.set_tenant(org_id)
            fresh = await tx.save_reports(list(reports.values()))
            if fresh:
                drifts += await _judge(tx, org_id, [r.device_id for r in fresh])
        await tx.commit()
    return drifts


async def _judge(tx: RolloutTx, org_id: UUID, device_ids: list[UUID]) -> int:
    values: dict[UUID, tuple[DeviceCompliance, int]] = {}
    drifts = 0
    for state in await tx.stored(device_ids):
        if state.delivered_at is None:
            continue
        now = device_compliance(
            state.document, state.delivered_at, state.reported, state.reported_at
        )
        version = state.compliance_version
        if drifted(state.compliance, now) and state.reported is not None:
            assert state.reported_at is not None
            pointers = differing(state.document, state.reported)[:MAX_POINTERS]
            await tx.events.append(
                org_id=org_id,
                stream_id=state.device_id,
                stream_type=STREAM_TYPE,
                expected_version=version,
                events=[
                    fleet.DeviceConfigDrifted(
                        device_id=state.device_id,
                        digest=state.digest,
                        pointers=pointers,
                        reported_at=state.reported_at,
                    )
                ],
            )
            version += 1
            drifts += 1
        if now != state.compliance or version != state.compliance_version:
            values[state.device_id] = (now, version)
    await tx.set_compliance(values)
    return drifts


def _tally(states: Sequence[Stored], keys_of: Callable[[Stored], list[str]]) -> Counts:
    """Each device compared on its ``keys_of`` (PENDING until delivered and reported)."""
    statuses = [
        DeviceCompliance.PENDING
        if state.delivered_at is None
        else device_compliance(
            state.document, state.delivered_at, state.reported, state.reported_at, keys_of(state)
        )
        for state in states
    ]
    return count(statuses)


async def binding_status(
    uow: RolloutUnitOfWork, clock: Clock, ctx: RequestContext, q: fleet.GetBindingStatus
) -> fleet.ComplianceView:
    """``GET /desired-state-bindings/{id}/status``: each device compared on the keys the
    binding sets for it (its explanation)."""
    async with uow(ctx.org_id) as tx:
        if await tx.binding_target(q.id) is None:
            raise NotFound("no such desired-state binding")
        states = await tx.applying(q.id, None)
    binding = str(q.id)
    tally = _tally(
        states, lambda s: [p for p, src in s.sources.items() if src.get("bindingId") == binding]
    )
    return fleet.ComplianceView(
        targeted=tally.targeted,
        in_sync=tally.in_sync,
        drifted=tally.drifted,
        pending=tally.pending,
        binding_id=q.id,
        computed_at=clock(),
    )


async def artefact_version_status(
    uow: RolloutUnitOfWork, clock: Clock, ctx: RequestContext, q: fleet.GetArtefactVersionStatus
) -> fleet.ComplianceView:
    """``GET /config-artefacts/{id}/versions/{n}/status``: the devices whose effective state
    merged that version, each compared on the keys the version's bindings set for it."""
    async with uow(ctx.org_id) as tx:
        if not await tx.artefact_version_exists(q.id, q.version):
            raise NotFound("no such config artefact version")
        states = await tx.applying(None, f"{q.id}@{q.version}")
    artefact = str(q.id)
    tally = _tally(
        states,
        lambda s: [
            p
            for p, src in s.sources.items()
            if src.get("artefactId") == artefact and src.get("artefactVersion") == q.version
        ],
    )
    return fleet.ComplianceView(
        targeted=tally.targeted,
        in_sync=tally.in_sync,
        drifted=tally.drifted,
        pending=tally.pending,
        artefact_id=q.id,
        artefact_version=q.version,
        computed_at=clock(),
    )
