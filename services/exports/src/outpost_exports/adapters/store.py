"""Exports' SQL: the port of ``app/ports.py`` over the kit's unit of work. The read model
(``exports``), the work queue (``export_queue``, items through the outbox), the expiry
schedule (``export_expiries``) and the workers' leases (``export_runs``). The projector
(``adapters/projections.py``) keeps the first three in step with the events."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts import exports as api
from outpost_contracts import subjects
from outpost_contracts.query import ListQuery, Page
from outpost_exports.adapters import queries
from outpost_exports.app.ports import Lease, Queued, Stored
from outpost_kit.db import outbox
from outpost_kit.db.listing import get_one, list_page
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory
from outpost_kit.messaging import MSG_ID

_encoder = msgspec.json.Encoder()


class PgExportsTx(UnitOfWork):
    """One transaction (the kit's ``UnitOfWork``) with exports' statements."""

    async def __aenter__(self) -> PgExportsTx:
        await super().__aenter__()
        return self

    # --- the read model -----------------------------------------------------------------

    async def find(self, export_id: UUID) -> Stored | None:
        row = await get_one(self.conn, queries.EXPORTS, export_id)
        if row is None:
            return None
        return Stored(queries.export_view(row), row["object_name"])

    async def page(self, query: ListQuery) -> Page[api.ExportView]:
        return await list_page(self.conn, queries.EXPORTS, query, queries.export_view)

    async def status(self, export_id: UUID, *, lock: bool = False) -> str | None:
        sql = "SELECT status FROM exports WHERE id = :id" + (" FOR UPDATE" if lock else "")
        row = (await self.execute(sql, {"id": export_id})).first()
        return None if row is None else str(row.status)

    async def lock_creations(self, org_id: UUID) -> None:
        await self.execute(
            "SELECT pg_advisory_xact_lock(hashtext('outpost.exports.' || :org))",
            {"org": str(org_id)},
        )

    async def count_active(self) -> int:
        result = await self.execute(
            "SELECT count(*) FROM exports WHERE status IN ('PENDING', 'RUNNING')"
        )
        return int(result.scalar_one())

    # --- the work queue -----------------------------------------------------------------

    async def enqueue(
        self, org_id: UUID, export_id: UUID, event_id: UUID, msg_id: str | None = None
    ) -> None:
        """Published with the rest of the transaction, exactly once by ``Nats-Msg-Id``
        (``work-<id>``; a republication by the sweep has its own)."""
        await outbox.write(
            self.conn,
            [
                outbox.OutboxRow(
                    event_id=event_id,
                    subject=subjects.work(api.SERVICE, org_id, export_id),
                    payload=_encoder.encode(api.ExportWork(org_id=org_id, export_id=export_id)),
                    headers={MSG_ID: msg_id or f"work-{export_id}"},
                )
            ],
        )

    async def due_requeues(self, cutoff: datetime, batch: int) -> list[tuple[UUID, UUID]]:
        result = await self.execute(
            "SELECT export_id, tenant_id FROM export_queue WHERE enqueued_at <= :cutoff"
            " ORDER BY enqueued_at LIMIT :batch",
            {"cutoff": cutoff, "batch": batch},
        )
        return [(row.export_id, row.tenant_id) for row in result]

    async def queued(self, export_id: UUID) -> Queued | None:
        row = (
            await self.execute(
                "SELECT e.status, r.lease_until FROM exports e LEFT JOIN export_runs r"
                " ON r.org_id = e.org_id AND r.export_id = e.id WHERE e.id = :id"
                " FOR UPDATE OF e",
                {"id": export_id},
            )
        ).first()
        return None if row is None else Queued(row.status, row.lease_until)

    async def drop_queued(self, export_id: UUID) -> None:
        await self.execute("DELETE FROM export_queue WHERE export_id = :id", {"id": export_id})

    async def touch_queued(self, export_id: UUID, now: datetime) -> None:
        await self.execute(
            "UPDATE export_queue SET enqueued_at = :now WHERE export_id = :id",
            {"now": now, "id": export_id},
        )

    # --- the expiry schedule ------------------------------------------------------------

    async def due_expiries(self, now: datetime, batch: int) -> list[tuple[UUID, UUID]]:
        result = await self.execute(
            "SELECT export_id, tenant_id FROM export_expiries WHERE expires_at <= :now"
            " ORDER BY expires_at LIMIT :batch",
            {"now": now, "batch": batch},
        )
        return [(row.export_id, row.tenant_id) for row in result]

    async def drop_expiry(self, export_id: UUID) -> None:
        await self.execute("DELETE FROM export_expiries WHERE export_id = :id", {"id": export_id})

    # --- the workers' runs (leases) -----------------------------------------------------

    async def lease(self, export_id: UUID) -> Lease | None:
        row = (
            await self.execute(
                "SELECT worker, extract(epoch FROM lease_until - now()) AS left"
                " FROM export_runs WHERE export_id = :id",
                {"id": export_id},
            )
        ).first()
        return None if row is None else Lease(row.worker, float(row.left))

    async def open_run(
        self, org_id: UUID, export_id: UUID, attempt: int, worker: str, lease_seconds: float
    ) -> None:
        await self.execute(
            "INSERT INTO export_runs (org_id, export_id, attempt, worker, lease_until,"
            " updated_at) VALUES (:org, :id, :attempt, :worker,"
            " now() + make_interval(secs => :lease), now())"
            " ON CONFLICT (org_id, export_id) DO UPDATE SET attempt = EXCLUDED.attempt,"
            " worker = EXCLUDED.worker, lease_until = EXCLUDED.lease_until,"
            " rows_written = 0, rows_estimated = NULL, updated_at = now()",
            {
                "org": org_id,
                "id": export_id,
                "attempt": attempt,
                "worker": worker,
                "lease": lease_seconds,
            },
        )

    async def renew_run(
        self,
        export_id: UUID,
        attempt: int,
        rows: int,
        estimate: int | None,
        lease_seconds: float,
    ) -> bool:
        held = (
            await self.execute(
                "UPDATE export_runs r SET rows_written = :rows, rows_estimated = :estimate,"
                " lease_until = now() + make_interval(secs => :lease), updated_at = now()"
                " FROM exports e WHERE r.export_id = :id AND r.attempt = :attempt"
                " AND e.id = :id AND e.attempt = :attempt AND e.status = 'RUNNING'"
                " RETURNING r.attempt",
                {
                    "rows": rows,
                    "estimate": estimate,
                    "lease": lease_seconds,
                    "id": export_id,
                    "attempt": attempt,
                },
            )
        ).first()
        return held is not None

    async def release_run(self, export_id: UUID, attempt: int) -> None:
        await self.execute(
            "UPDATE export_runs SET lease_until = now() WHERE export_id = :id"
            " AND attempt = :attempt",
            {"id": export_id, "attempt": attempt},
        )

    async def end_run(self, export_id: UUID) -> None:
        await self.execute("DELETE FROM export_runs WHERE export_id = :id", {"id": export_id})


class PgExports(UnitOfWorkFactory):
    """The ``ExportsUnitOfWork`` bootstrap hands to the use cases: the kit's factory, whose
    units of work carry exports' statements (``PgExports.over(runtime.uow)``)."""

    def __call__(self, org_id: UUID | None) -> PgExportsTx:
        return PgExportsTx(self.engine, self.codec, org_id=org_id, projectors=self.projectors)
