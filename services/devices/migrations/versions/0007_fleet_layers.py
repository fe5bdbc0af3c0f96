"""A device's profile and the two layers of its desired state (issue 21, ADR 0091): the
device's ``profile_id`` (a filterable column), and on ``device_states`` the fleet's layer
(document, the binding behind each leaf, its digest), the local layer (what users set; NULL
on rows from before: their desired state is all local) and the version of the reported
state's facts (``ReportedStateChanged``).

Revision ID: 0007_fleet_layers
"""

from alembic import op

revision = "0007_fleet_layers"
down_revision = "0006_suspensions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE devices ADD COLUMN profile_id uuid")
    op.execute("CREATE INDEX devices_profile_id ON devices (org_id, profile_id)")
    op.execute(
        "ALTER TABLE device_states"
        " ADD COLUMN local jsonb,"
        " ADD COLUMN fleet_document jsonb NOT NULL DEFAULT '{}',"
        " ADD COLUMN fleet_sources jsonb NOT NULL DEFAULT '{}',"
        " ADD COLUMN fleet_digest text NOT NULL DEFAULT '',"
        " ADD COLUMN reported_version integer NOT NULL DEFAULT 0"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE device_states DROP COLUMN local, DROP COLUMN fleet_document,"
        " DROP COLUMN fleet_sources, DROP COLUMN fleet_digest, DROP COLUMN reported_version"
    )
    op.execute("DROP INDEX devices_profile_id")
    op.execute("ALTER TABLE devices DROP COLUMN profile_id")
