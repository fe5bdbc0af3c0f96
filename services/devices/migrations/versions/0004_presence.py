"""Presence (ADR 0055): what the device view shows on the devices row, and the
fold's state (live connections, tombstones) in ``device_presence``, under FORCEd RLS.

Revision ID: 0004_presence
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0004_presence"
down_revision = "0003_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.execute(
        op,
        """
        ALTER TABLE devices
            ADD COLUMN online boolean NOT NULL DEFAULT false,
            ADD COLUMN last_seen_at timestamptz,
            ADD COLUMN last_connected_at timestamptz,
            ADD COLUMN last_disconnected_at timestamptz;
        CREATE TABLE device_presence (
            org_id      uuid NOT NULL,
            device_id   uuid NOT NULL,
            state       jsonb NOT NULL DEFAULT '{}',
            version     integer NOT NULL DEFAULT 0,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (org_id, device_id)
        );
        -- The reconciliation visits each organization with presence state, under its own
        -- tenant (RLS as everywhere), and there the devices that are online. This list is
        -- plumbing like the outbox: organization ids only, no device data, no tenant rows.
        CREATE TABLE presence_organizations (
            organization uuid PRIMARY KEY
        );
        CREATE INDEX devices_online ON devices (org_id) WHERE online;
        """,
        ddl.tenant_rls("device_presence"),
    )


def downgrade() -> None:
    op.execute("DROP TABLE device_presence, presence_organizations")
    op.execute("DROP INDEX devices_online")
    op.execute(
        "ALTER TABLE devices DROP COLUMN online, DROP COLUMN last_seen_at,"
        " DROP COLUMN last_connected_at, DROP COLUMN last_disconnected_at"
    )
