"""The expiry job: archives past their lifetime are deleted and their exports show EXPIRED."""

from __future__ import annotations

import logging
from datetime import datetime

from outpost_exports.adapters.artifacts import ArtifactStore
from outpost_exports.app.handlers import EXPORTS, remove_artifacts
from outpost_exports.domain import exports as domain
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
            _state, events = await EXPORTS.execute(
                tx, None, stream_id=export_id, command=domain.Expire(), org_id=tenant_id, now=now
            )
            if not events:  # already expired or deleted by another replica: drop the entry
                await tx.execute(
                    "DELETE FROM export_expiries WHERE export_id = :id", {"id": export_id}
                )
            await tx.commit()
        await remove_artifacts(store, tenant_id, export_id)
        expired += 1 if events else 0
    if expired:
        _log.info("expired %d export archives", expired)
    return expired
