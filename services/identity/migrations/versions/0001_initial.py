"""Identity's event store, outbox, inbox and read models.

Revision ID: 0001
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The organization registry is platform data, not a tenant's: only the operator lists it,
    # an organization's principals reach their own row by id. Hence no org_id column.
    ddl.execute(
        op,
        ddl.core_tables(),
        """
        CREATE TABLE organizations (
            id         uuid PRIMARY KEY,
            name       text NOT NULL,
            status     text NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            version    integer NOT NULL
        );
        CREATE UNIQUE INDEX organizations_name ON organizations (lower(name));
        CREATE TABLE api_keys (
            org_id      uuid NOT NULL,
            id          uuid NOT NULL,
            name        text NOT NULL,
            prefix      text NOT NULL,
            scopes      text[] NOT NULL,
            operator    boolean NOT NULL DEFAULT false,
            created_at  timestamptz NOT NULL,
            expires_at  timestamptz,
            revoked_at  timestamptz,
            version     integer NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        CREATE UNIQUE INDEX api_keys_prefix ON api_keys (prefix);
        """,
        ddl.tenant_rls("api_keys"),
    )


def downgrade() -> None:
    op.execute("DROP TABLE api_keys, organizations, dead_letters, inbox, outbox, events CASCADE")
