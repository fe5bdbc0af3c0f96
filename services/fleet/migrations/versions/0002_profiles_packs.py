"""The read models of sensor profiles, device profiles and packs (ADR 0092).

Revision ID: 0002
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.execute(
        op,
        """
        CREATE TABLE sensor_profiles (
            org_id       uuid             NOT NULL,
            id           uuid             NOT NULL PRIMARY KEY,
            name         text             NOT NULL,
            unit         text             NOT NULL,
            value_type   text             NOT NULL,
            key          text,
            min          double precision,
            max          double precision,
            precision    integer,
            display_name text,
            created_at   timestamptz      NOT NULL,
            updated_at   timestamptz      NOT NULL,
            version      integer          NOT NULL
        );
        CREATE INDEX sensor_profiles_org_id ON sensor_profiles (org_id, id);
        CREATE TABLE device_profiles (
            org_id                    uuid        NOT NULL,
            id                        uuid        NOT NULL PRIMARY KEY,
            name                      text        NOT NULL,
            components                jsonb       NOT NULL,
            sensors                   jsonb       NOT NULL,
            rule_templates            jsonb       NOT NULL,
            config_artefact_id        uuid,
            expected_interval_seconds integer,
            firmware_family           text,
            description               text,
            created_at                timestamptz NOT NULL,
            updated_at                timestamptz NOT NULL,
            version                   integer     NOT NULL
        );
        CREATE INDEX device_profiles_org_id ON device_profiles (org_id, id);
        -- The device profiles naming a sensor profile (sensors @> [{sensorProfileId}]) and
        -- an artefact (a delete's uses).
        CREATE INDEX device_profiles_sensors ON device_profiles USING gin (sensors jsonb_path_ops);
        CREATE INDEX device_profiles_artefact ON device_profiles (config_artefact_id)
            WHERE config_artefact_id IS NOT NULL;
        CREATE TABLE packs (
            org_id       uuid        NOT NULL,
            id           uuid        NOT NULL PRIMARY KEY,
            name         text        NOT NULL,
            pack_version text        NOT NULL,
            origin       text        NOT NULL,
            items        jsonb       NOT NULL,
            conflicts    jsonb       NOT NULL,
            description  text,
            created_at   timestamptz NOT NULL,
            updated_at   timestamptz NOT NULL,
            version      integer     NOT NULL
        );
        -- A pack's name once per organization: the import of a pack finds its install by it.
        CREATE UNIQUE INDEX packs_name ON packs (org_id, name);
        CREATE INDEX packs_org_id ON packs (org_id, id);
        """,
        ddl.tenant_rls("sensor_profiles"),
        ddl.tenant_rls("device_profiles"),
        ddl.tenant_rls("packs"),
    )


def downgrade() -> None:
    op.execute("DROP TABLE packs, device_profiles, sensor_profiles CASCADE")
