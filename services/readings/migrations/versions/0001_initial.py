"""Readings' event store plumbing, its local device registry and the readings table.

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
        ddl.core_tables(),
        """
        -- What readings knows of devices, learnt from the DEVICES stream.
        CREATE TABLE devices (
            org_id  uuid NOT NULL,
            id      uuid NOT NULL,
            name    text NOT NULL,
            status  text NOT NULL,
            version integer NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        -- Readings are facts, not aggregates: append-only rows, unique per device, sensor and
        -- timestamp so a redelivered message never stores a reading twice.
        CREATE TABLE readings (
            org_id      uuid             NOT NULL,
            device_id   uuid             NOT NULL,
            sensor      text             NOT NULL,
            ts          timestamptz      NOT NULL,
            kind        smallint         NOT NULL,
            num         double precision,
            txt         text,
            seq         bigint,
            received_at timestamptz      NOT NULL,
            PRIMARY KEY (org_id, device_id, sensor, ts)
        );
        CREATE INDEX readings_device_ts ON readings (org_id, device_id, ts);
        """,
        ddl.tenant_rls("devices"),
        ddl.tenant_rls("readings"),
    )


def downgrade() -> None:
    op.execute("DROP TABLE readings, devices, dead_letters, inbox, outbox, events CASCADE")
