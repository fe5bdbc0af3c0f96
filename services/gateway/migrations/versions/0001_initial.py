"""The gateway's infrastructure state: rate-limit windows, per-organization limit overrides
and idempotency records. No domain data and no tenant rows to hide from one another (every
row is keyed by the credential or organization it belongs to, and only the gateway reads
them), so no row-level security.

Revision ID: 0001
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.execute(
        op,
        """
        -- UNLOGGED: a counter lives one minute; after a crash Postgres empties the table, which
        -- at worst grants each credential one fresh window. Skipping the WAL keeps the
        -- one-statement-per-request increment cheap (ADR 0020).
        CREATE UNLOGGED TABLE rate_limit_windows (
            credential_id uuid   NOT NULL,
            category      text   NOT NULL,
            window_start  bigint NOT NULL,  -- UTC epoch seconds
            org_id        uuid   NOT NULL,
            n             integer NOT NULL,
            PRIMARY KEY (credential_id, category, window_start)
        );
        CREATE INDEX rate_limit_windows_start ON rate_limit_windows (window_start);

        CREATE TABLE rate_limit_overrides (
            org_id     uuid    NOT NULL,
            category   text    NOT NULL CHECK (category IN ('single', 'list', 'write')),
            per_minute integer NOT NULL CHECK (per_minute > 0),
            PRIMARY KEY (org_id, category)
        );

        CREATE TABLE idempotency_keys (
            credential_id uuid        NOT NULL,
            key           text        NOT NULL,
            org_id        uuid        NOT NULL,
            request_hash  bytea       NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            claimed_at    timestamptz NOT NULL DEFAULT now(),
            status        integer,  -- NULL while the first request is in flight
            headers       jsonb,
            body          bytea,
            PRIMARY KEY (credential_id, key)
        );
        CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
        """,
    )


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys, rate_limit_overrides, rate_limit_windows")
