"""Integrations: broker credentials for an organization's own services (issue 23, ADR 0097).

Revision ID: 0005
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A tenant table. The password's hash is not here: it lives in the integration's events,
    # which the broker's auth callout (devices) learns it from. A revoked integration's row
    # stays, with its revocation time.
    ddl.execute(
        op,
        """
        CREATE TABLE integrations (
            org_id            uuid NOT NULL,
            id                uuid NOT NULL,
            name              text NOT NULL,
            broker_user       text NOT NULL,
            subjects          text[] NOT NULL,
            deliver_policy    text NOT NULL,
            start_time        timestamptz,
            consumers         text[] NOT NULL,
            created_at        timestamptz NOT NULL,
            revoked_at        timestamptz,
            last_connected_at timestamptz,
            version           integer NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        """,
        ddl.tenant_rls("integrations"),
    )


def downgrade() -> None:
    op.execute("DROP TABLE integrations CASCADE")
