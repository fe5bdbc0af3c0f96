"""Integrations' broker credentials as the auth callout checks them (issue 23, ADR 0097): the
``devices-integrations`` consumer's table, from identity's events. Plumbing like
``organization_suspensions`` (ids, a user name, a password's SHA-256, consumer names, a
flag, a version), without row-level security: a connection names its integration, not its
organization.

Revision ID: 0008_integrations
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0008_integrations"
down_revision = "0007_fleet_layers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.execute(
        op,
        """
        CREATE TABLE broker_integrations (
            id            uuid PRIMARY KEY,
            tenant_id     uuid NOT NULL,
            broker_user   text NOT NULL,
            password_hash text NOT NULL,
            consumers     text[] NOT NULL,
            revoked       boolean NOT NULL,
            version       integer NOT NULL
        )
        """,
    )


def downgrade() -> None:
    op.execute("DROP TABLE broker_integrations")
