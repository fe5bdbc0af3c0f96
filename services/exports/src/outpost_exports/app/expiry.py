"""The maintenance jobs: archives past their lifetime are deleted and their exports show
EXPIRED; the work item of a job nobody has worked on for a long time is published again."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from outpost_exports.adapters.artifacts import ArtifactStore
from outpost_exports.app.handlers import EXPORTS, enqueue, remove_artifacts
from outpost_exports.domain import exports as domain
from outpost_kit import ids
from outpost_kit.db.uow import UnitOfWorkFactory

_log = logging.getLogger(__name__)


async def expire_due(
    uow: UnitOfWorkFactory, store: ArtifactStore, now: datetime, batch: int = 100
) -> int:
    """Expire up to ``batch`` exports whose archive's lifetime ended by ``now``; how many."""
    async with uow(None) as plumbing:
        due = (
            await plumbing.execute(
                "SELECT export_id, tenant_id FROM export_expiries WHERE expires_at <= :now"
                " ORDER BY expires_at LIMIT :batch",
                {"now": now, "batch": batch},
            )
        ).all()
    expired = 0
    for export_id, tenant_id in due:
        async with uow(tenant_id) as tx:
            await tx.execute("SELECT 1 FROM exports WHERE id = :id FOR UPDATE", {"id": export_id})
            state, events = await EXPORTS.execute(
                tx, None, stream_id=export_id, command=domain.Expire(), org_id=tenant_id, now=now
            )
            if not events:  # already expired or deleted by another replica: drop the entry
                await tx.execute(
                    "DELETE FROM export_expiries WHERE export_id = :id", {"id": export_id}
                )
            await tx.commit()
        if state is not None:
            await remove_artifacts(store, tenant_id, export_id, state.attempt)
        expired += 1 if events else 0
    if expired:
        _log.info("expired %d export archives", expired)
    return expired


async def requeue_stuck(
    uow: UnitOfWorkFactory, now: datetime, after: timedelta, batch: int = 100
) -> int:
    """Publish again the work item of every unfinished job whose item went out more than
    ``after`` ago and that no worker holds (PENDING, or RUNNING with a lease lapsed that
    long): its message was lost (a broker that lost acknowledged writes) or is queued behind
    a long backlog. A duplicate is harmless: the claim runs a job once, and a finished job's
    message is acknowledged and dropped. Returns how many were published again."""
    cutoff = now - after
    async with uow(None) as plumbing:
        due = (
            await plumbing.execute(
                "SELECT export_id, tenant_id FROM export_queue WHERE enqueued_at <= :cutoff"
                " ORDER BY enqueued_at LIMIT :batch",
                {"cutoff": cutoff, "batch": batch},
            )
        ).all()
    published = 0
    for export_id, tenant_id in due:
        async with uow(tenant_id) as tx:
            row = (
                await tx.execute(
                    "SELECT e.status, r.lease_until FROM exports e LEFT JOIN export_runs r"
                    " ON r.org_id = e.org_id AND r.export_id = e.id WHERE e.id = :id"
                    " FOR UPDATE OF e",
                    {"id": export_id},
                )
            ).first()
            if row is None or row.status not in ("PENDING", "RUNNING"):
                await tx.execute(
                    "DELETE FROM export_queue WHERE export_id = :id", {"id": export_id}
                )
            elif row.status == "PENDING" or row.lease_until is None or row.lease_until <= cutoff:
                stamp = int(now.timestamp())
                await enqueue(tx, tenant_id, export_id, ids.new_id(), f"work-{export_id}-{stamp}")
                published += 1
            await tx.execute(
                "UPDATE export_queue SET enqueued_at = :now WHERE export_id = :id",
                {"now": now, "id": export_id},
            )
            await tx.commit()
    if published:
        _log.warning("published the work items of %d stuck exports again", published)
    return published
