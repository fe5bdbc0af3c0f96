"""Export jobs: the projection of the ``export`` aggregate, each job's current run (lease and
progress), and the expiry schedule of READY archives.

Revision ID: 0002
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("exports", "export_runs")


def upgrade() -> None:
    ddl.execute(
        op,
        """
        -- The projection of export jobs (every column from their events).
        CREATE TABLE exports (
            org_id           uuid        NOT NULL,
            id               uuid        NOT NULL,
            version          integer     NOT NULL,
            scope_type       text        NOT NULL,
            scope_id         uuid,
            from_ts          timestamptz NOT NULL,
            to_ts            timestamptz NOT NULL,
            includes         text[]      NOT NULL,
            format           text        NOT NULL,
            status           text        NOT NULL,
            requested_by     uuid,
            attempt          integer     NOT NULL DEFAULT 0,
            started_at       timestamptz,
            completed_at     timestamptz,
            expires_at       timestamptz,
            object_name      text,
            size_bytes       bigint,
            sha256           text,
            reading_count    bigint,
            annotation_count bigint,
            reason           text,
            created_at       timestamptz NOT NULL,
            updated_at       timestamptz NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        CREATE INDEX exports_active ON exports (org_id, status)
            WHERE status IN ('PENDING', 'RUNNING');
        -- The current run of a job: which worker holds it until when (the lease: another
        -- worker may take the job over once it lapses), and its progress. Operational
        -- state, written by the worker, not an event (replay leaves it as it is).
        CREATE TABLE export_runs (
            org_id         uuid        NOT NULL,
            export_id      uuid        NOT NULL,
            attempt        integer     NOT NULL,
            worker         text        NOT NULL,
            lease_until    timestamptz NOT NULL,
            rows_written   bigint      NOT NULL DEFAULT 0,
            rows_estimated bigint,
            updated_at     timestamptz NOT NULL,
            PRIMARY KEY (org_id, export_id)
        );
        -- Plumbing like the outbox (ids and a time, no tenant data), read by the expiry job
        -- before it knows the tenant; the export itself is changed in the tenant's own
        -- transaction.
        CREATE TABLE export_expiries (
            export_id  uuid        NOT NULL PRIMARY KEY,
            tenant_id  uuid        NOT NULL,
            expires_at timestamptz NOT NULL
        );
        CREATE INDEX export_expiries_due ON export_expiries (expires_at);
        -- Jobs not finished yet and when their work item was last published: the sweep
        -- publishes it again for a job nobody has worked on for a long time (its message
        -- lost with a broker that lost data). Plumbing, like export_expiries.
        CREATE TABLE export_queue (
            export_id   uuid        NOT NULL PRIMARY KEY,
            tenant_id   uuid        NOT NULL,
            enqueued_at timestamptz NOT NULL
        );
        CREATE INDEX export_queue_due ON export_queue (enqueued_at);
        """,
        *(ddl.tenant_rls(t) for t in TABLES),
    )


def downgrade() -> None:
    op.execute("DROP TABLE export_queue, export_expiries, export_runs, exports")
