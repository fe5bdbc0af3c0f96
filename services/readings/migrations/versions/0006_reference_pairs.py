"""Reference pairs (ADR 0098): the read model of the reference pair aggregates, one row per
live pair, under the organization's row-level security.

Revision ID: 0006_reference_pairs
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0006_reference_pairs"
down_revision = "0005_suspensions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.execute(
        op,
        """
        CREATE TABLE reference_pairs (
            org_id               uuid        NOT NULL,
            id                   uuid        NOT NULL PRIMARY KEY,
            name                 text        NOT NULL,
            description          text,
            test_device_id       uuid        NOT NULL,
            test_sensor          text        NOT NULL,
            reference_device_id  uuid        NOT NULL,
            reference_sensor     text        NOT NULL,
            window_seconds integer     NOT NULL
                CHECK (window_seconds IN (60, 300, 900, 3600, 86400)),
            created_at           timestamptz NOT NULL,
            updated_at           timestamptz NOT NULL,
            version              integer     NOT NULL,
            CHECK ((test_device_id, test_sensor) <> (reference_device_id, reference_sensor))
        );
        CREATE INDEX reference_pairs_org_id ON reference_pairs (org_id, id);
        -- The pairs a device's sensor takes part in (either side).
        CREATE INDEX reference_pairs_test ON reference_pairs (test_device_id, test_sensor);
        CREATE INDEX reference_pairs_reference
            ON reference_pairs (reference_device_id, reference_sensor);
        """,
        ddl.tenant_rls("reference_pairs"),
    )


def downgrade() -> None:
    op.execute("DROP TABLE reference_pairs")
