"""OAuth2 clients (client-credentials grant).

Revision ID: 0003
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A tenant table. The secret's hash is not here: it lives in the client's events, which
    # the token grant reads (the read model only lists clients). A deleted client's row goes.
    ddl.execute(
        op,
        """
        CREATE TABLE oauth_clients (
            org_id     uuid NOT NULL,
            id         uuid NOT NULL,
            name       text NOT NULL,
            client_id  text NOT NULL,
            scopes     text[] NOT NULL,
            created_at timestamptz NOT NULL,
            version    integer NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        CREATE UNIQUE INDEX oauth_clients_client_id ON oauth_clients (client_id);
        """,
        ddl.tenant_rls("oauth_clients"),
    )


def downgrade() -> None:
    op.execute("DROP TABLE oauth_clients CASCADE")
