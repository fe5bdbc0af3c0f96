"""The maintenance jobs: archives past their lifetime are deleted and their exports show
EXPIRED; the work item of a job nobody has worked on for a long time is published again."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from outpost_exports.adapters.artifacts import ArtifactStore
from outpost_exports.app.handlers import EXPORTS, remove_artifacts
from outpost_exports.app.ports import ExportsUnitOfWork
from outpost_exports.domain import exports as domain
from outpost_kit import ids

_log = logging.getLogger(__name__)


async def expire_due(
    uow: ExportsUnitOfWork, store: ArtifactStore, now: datetime, batch: int = 100
) -> int:
    """Expire up to ``batch`` exports whose archive's lifetime ended by ``now``; how many."""
    async with uow(None) as plumbing:
        due = await plumbing.due_expiries(now, batch)
    expired = 0
    for export_id, tenant_id in due:
        async with uow(tenant_id) as tx:
            await tx.status(export_id, lock=True)
            state, events = await EXPORTS.execute(
                tx, None, stream_id=export_id, command=domain.Expire(), org_id=tenant_id, now=now
            )
            if not events:  # already expired or deleted by another replica: drop the entry
                await tx.drop_expiry(export_id)
            await tx.commit()
        if state is not None:
            await remove_artifacts(store, tenant_id, export_id, state.attempt)
        expired += 1 if events else 0
    if expired:
        _log.info("expired %d export archives", expired)
    return expired


async def requeue_stuck(
    uow: ExportsUnitOfWork, now: datetime, after: timedelta, batch: int = 100
) -> int:
    """Publish again the work item of every unfinished job whose item went out more than
    ``after`` ago and that no worker holds (PENDING, or RUNNING with a lease lapsed that
    long): its message was lost (a broker that lost acknowledged writes) or is queued behind
    a long backlog. A duplicate is harmless: the claim runs a job once, and a finished job's
    message is acknowledged and dropped. Returns how many were published again."""
    cutoff = now - after
    async with uow(None) as plumbing:
        due = await plumbing.due_requeues(cutoff, batch)
    published = 0
    for export_id, tenant_id in due:
        async with uow(tenant_id) as tx:
            job = await tx.queued(export_id)
            if job is None or job.status not in ("PENDING", "RUNNING"):
                await tx.drop_queued(export_id)
            elif job.status == "PENDING" or job.lease_until is None or job.lease_until <= cutoff:
                stamp = int(now.timestamp())
                await tx.enqueue(tenant_id, export_id, ids.new_id(), f"work-{export_id}-{stamp}")
                published += 1
            await tx.touch_queued(export_id, now)
            await tx.commit()
    if published:
        _log.warning("published the work items of %d stuck exports again", published)
    return published
