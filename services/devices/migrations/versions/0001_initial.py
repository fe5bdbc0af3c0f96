"""Devices' event store, outbox, inbox and the device registry read model.

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
        CREATE TABLE devices (
            org_id      uuid NOT NULL,
            id          uuid NOT NULL,
            name        text NOT NULL,
            status      text NOT NULL,
            device_type text,
            site_id     uuid,
            group_id    uuid,
            tags        jsonb NOT NULL DEFAULT '[]',
            attributes  jsonb NOT NULL DEFAULT '{}',
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            version     integer NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        -- Uniqueness is per tenant (unique checks ignore RLS: docs/design/reliability.md).
        CREATE UNIQUE INDEX devices_org_name ON devices (org_id, name);
        CREATE INDEX devices_org_id ON devices (org_id, id);
        CREATE INDEX devices_tags ON devices USING gin (tags jsonb_path_ops);
        """,
        ddl.tenant_rls("devices"),
    )


def downgrade() -> None:
    op.execute("DROP TABLE devices, dead_letters, inbox, outbox, events CASCADE")
