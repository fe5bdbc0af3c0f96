"""The registry beside devices: sites, device groups, components and sensors (read models of
their event streams), each under FORCEd row-level security.

Revision ID: 0003_registry
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0003_registry"
down_revision = "0002_provisioning"
branch_labels = None
depends_on = None

TABLES = ("sites", "device_groups", "components", "sensors")


def upgrade() -> None:
    ddl.execute(
        op,
        """
        CREATE TABLE sites (
            org_id      uuid NOT NULL,
            id          uuid NOT NULL,
            name        text NOT NULL,
            address     text,
            location    jsonb,
            timezone    text,
            attributes  jsonb NOT NULL DEFAULT '{}',
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            version     integer NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        -- Uniqueness is per tenant (unique checks ignore RLS: docs/design/reliability.md).
        CREATE UNIQUE INDEX sites_org_name ON sites (org_id, name);
        CREATE TABLE device_groups (
            org_id      uuid NOT NULL,
            id          uuid NOT NULL,
            name        text NOT NULL,
            description text,
            attributes  jsonb NOT NULL DEFAULT '{}',
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            version     integer NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        CREATE UNIQUE INDEX device_groups_org_name ON device_groups (org_id, name);
        CREATE TABLE components (
            org_id      uuid NOT NULL,
            id          uuid NOT NULL,
            device_id   uuid NOT NULL,
            name        text NOT NULL,
            kind        text,
            attributes  jsonb NOT NULL DEFAULT '{}',
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            version     integer NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        CREATE INDEX components_org_device ON components (org_id, device_id, id);
        CREATE TABLE sensors (
            org_id      uuid NOT NULL,
            id          uuid NOT NULL,
            device_id   uuid NOT NULL,
            key         text NOT NULL,
            value_type  text NOT NULL,
            unit        text,
            valid_range jsonb,
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            version     integer NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        CREATE UNIQUE INDEX sensors_org_device_key ON sensors (org_id, device_id, key);
        -- "Is this site or group in use?" and the device lists filtered by them.
        CREATE INDEX devices_org_site ON devices (org_id, site_id) WHERE site_id IS NOT NULL;
        CREATE INDEX devices_org_group ON devices (org_id, group_id) WHERE group_id IS NOT NULL;
        """,
        *(ddl.tenant_rls(t) for t in TABLES),
    )


def downgrade() -> None:
    op.execute("DROP INDEX devices_org_site, devices_org_group")
    op.execute("DROP TABLE sensors, components, device_groups, sites")
